"""kube-proxy (iptables mode) rule generator for the hoptrace lab.

Writes the `iptables-restore` input that kube-proxy would write for a set of Services, in one
of two layouts:

* ``2020``: the v1.18-v1.20 layout the seed posts show (KUBE-FW-<h> for a LoadBalancer IP that
  masquerades and jumps to KUBE-SVC-<h>, then KUBE-MARK-DROP; KUBE-XLB-<h> for
  externalTrafficPolicy Local; the per-Service masquerade rule in KUBE-SERVICES; plain
  MASQUERADE). The Service port name of an unnamed port is ``ns/name:`` (trailing colon), which
  is what the 2020 code hashed: ``default/testapp:`` + ``tcp`` gives K4VUERBNKSOP4S25, the chain
  in the seed post.
* ``current``: the >= v1.26 layout (KUBE-EXT-<h>, KUBE-SVL-<h>, KUBE-PROXY-FIREWALL, the
  masquerade rule at the start of KUBE-SVC-<h>, ``MASQUERADE --random-fully``). An unnamed port
  is ``ns/name``.

Chain names: ``base32(sha256(servicePortName + protocol))[:16]`` for SVC/SVL/EXT/FW/XLB and
``base32(sha256(servicePortName + protocol + "ip:port"))[:16]`` for SEP (see
shared/corpus/kube-proxy/SEMANTICS.md section (c)). Endpoints are written sorted by
"ip:port" string, as kube-proxy does. Probabilities use ``%0.10f`` of 1/k.

Only the standard library is used; ``python3 kpgen.py --selftest`` checks the hashes against the
seed post and the kube-proxy test corpus.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

MASQ_MARK = "0x4000"
DROP_MARK = "0x8000"


def chain_hash(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


@dataclass
class Endpoint:
    ip: str
    port: int
    node: str


@dataclass
class Service:
    namespace: str
    name: str
    protocol: str  # "tcp" | "udp"
    cluster_ip: str
    port: int
    port_name: str = ""  # "" = unnamed port
    lb_ip: str | None = None
    node_port: int | None = None
    health_check_node_port: int | None = None
    endpoints: list[Endpoint] = field(default_factory=list)
    affinity_seconds: int | None = None  # ClientIP affinity timeout, None = off
    external_local: bool = False  # externalTrafficPolicy: Local

    def port_name_string(self, layout: str) -> str:
        base = f"{self.namespace}/{self.name}"
        if self.port_name:
            return f"{base}:{self.port_name}"
        # The 2020 ServicePortName.String() always printed "ns/name:port" even for "".
        return base + ":" if layout == "2020" else base

    def sorted_endpoints(self) -> list[Endpoint]:
        return sorted(self.endpoints, key=lambda e: f"{e.ip}:{e.port}")


def svc_chain(svc: Service, layout: str, kind: str) -> str:
    return f"KUBE-{kind}-" + chain_hash(svc.port_name_string(layout) + svc.protocol)


def sep_chain(svc: Service, layout: str, ep: Endpoint) -> str:
    return "KUBE-SEP-" + chain_hash(svc.port_name_string(layout) + svc.protocol + f"{ep.ip}:{ep.port}")


def probability(k: int) -> str:
    return "%0.10f" % (1.0 / k)


def _q(comment: str) -> str:
    """Quote a comment the way kube-proxy does: only when it contains a space."""
    return f'"{comment}"' if " " in comment else comment


def _proto(svc: Service) -> str:
    return f"-m {svc.protocol} -p {svc.protocol}"


class Rules:
    def __init__(self) -> None:
        self.chains: dict[str, list[str]] = {"filter": [], "nat": []}
        self.rules: dict[str, list[str]] = {"filter": [], "nat": []}

    def chain(self, table: str, name: str) -> None:
        if name not in self.chains[table]:
            self.chains[table].append(name)

    def add(self, table: str, chain: str, rest: str) -> None:
        self.chain(table, chain)
        self.rules[table].append(f"-A {chain} {rest}")

    def render(self) -> str:
        builtin = {
            "filter": ["INPUT", "FORWARD", "OUTPUT"],
            "nat": ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
        }
        out: list[str] = []
        for table in ("filter", "nat"):
            out.append(f"*{table}")
            for b in builtin[table]:
                out.append(f":{b} ACCEPT [0:0]")
            for c in self.chains[table]:
                if c not in builtin[table]:
                    out.append(f":{c} - [0:0]")
            out.extend(self.rules[table])
            out.append("COMMIT")
        return "\n".join(out) + "\n"


def _base_jumps(r: Rules, layout: str) -> None:
    """The jumps from built-in chains (kubelet + kube-proxy install them with -I)."""
    if layout == "current":
        for hook in ("INPUT", "FORWARD", "OUTPUT"):
            r.add("filter", hook, '-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL')
        r.add("filter", "INPUT", '-m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS')
    r.add("filter", "INPUT", '-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES')
    r.add("filter", "INPUT", "-j KUBE-FIREWALL")
    r.add("filter", "FORWARD", '-m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD')
    r.add("filter", "FORWARD", '-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES')
    r.add("filter", "FORWARD", '-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES')
    r.add("filter", "OUTPUT", '-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES')
    r.add("filter", "OUTPUT", "-j KUBE-FIREWALL")
    r.add("nat", "PREROUTING", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES')
    r.add("nat", "OUTPUT", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES')
    r.add("nat", "POSTROUTING", '-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING')


def _fixed_chains(r: Rules, layout: str) -> None:
    for c in ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-NODEPORTS", "KUBE-FIREWALL"):
        r.chain("filter", c)
    if layout == "current":
        r.chain("filter", "KUBE-PROXY-FIREWALL")
    for c in ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"):
        r.chain("nat", c)
    if layout == "2020":
        r.chain("nat", "KUBE-MARK-DROP")


def _tail_rules(r: Rules, layout: str, cluster_cidr: str) -> None:
    if layout == "2020":
        # kubelet's chains (KUBE-MARK-DROP + KUBE-FIREWALL) as on a 2020 node.
        r.add("filter", "KUBE-FIREWALL", f'-m comment --comment "kubernetes firewall for dropping marked packets" -m mark --mark {DROP_MARK}/{DROP_MARK} -j DROP')
        r.add("nat", "KUBE-MARK-DROP", f"-j MARK --or-mark {DROP_MARK}")
    else:
        r.add("filter", "KUBE-FIREWALL", '-m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP')
    r.add("filter", "KUBE-FORWARD", "-m conntrack --ctstate INVALID -j DROP")
    r.add("filter", "KUBE-FORWARD", f'-m comment --comment "kubernetes forwarding rules" -m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT')
    if layout == "2020":
        r.add("filter", "KUBE-FORWARD", f'-m comment --comment "kubernetes forwarding conntrack pod source rule" -s {cluster_cidr} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT')
        r.add("filter", "KUBE-FORWARD", f'-m comment --comment "kubernetes forwarding conntrack pod destination rule" -d {cluster_cidr} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT')
    else:
        r.add("filter", "KUBE-FORWARD", '-m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT')
    r.add("nat", "KUBE-POSTROUTING", f"-m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN")
    r.add("nat", "KUBE-POSTROUTING", f"-j MARK --xor-mark {MASQ_MARK}")
    fully = " --random-fully" if layout == "current" else ""
    r.add("nat", "KUBE-POSTROUTING", f'-m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE{fully}')
    r.add("nat", "KUBE-MARK-MASQ", f"-j MARK --or-mark {MASQ_MARK}")


def _comment(text: str | None) -> str:
    return f"-m comment --comment {_q(text)} " if text else ""


def _sep_chains(r: Rules, svc: Service, layout: str) -> None:
    # The seed post's 2020 node printed its SEP and SVC rules without comments.
    spn = svc.port_name_string(layout) if layout == "current" else None
    for ep in svc.sorted_endpoints():
        sep = sep_chain(svc, layout, ep)
        r.chain("nat", sep)
        r.add("nat", sep, f"{_comment(spn)}-s {ep.ip}/32 -j KUBE-MARK-MASQ")
        recent = f"-m recent --name {sep} --set " if svc.affinity_seconds else ""
        r.add("nat", sep, f"{_comment(spn)}{recent}{_proto(svc)} -j DNAT --to-destination {ep.ip}:{ep.port}")


def _balance(r: Rules, svc: Service, layout: str, chain: str, eps: list[Endpoint], comment_of) -> None:
    """Affinity lookups then the statistic cascade over `eps`, into `chain`."""
    if svc.affinity_seconds:
        for ep in eps:
            sep = sep_chain(svc, layout, ep)
            r.add("nat", chain, f"{_comment(comment_of(ep, None))}-m recent --name {sep} --rcheck --seconds {svc.affinity_seconds} --reap -j {sep}")
    n = len(eps)
    for i, ep in enumerate(eps):
        sep = sep_chain(svc, layout, ep)
        stat = f" -m statistic --mode random --probability {probability(n - i)}" if i < n - 1 else ""
        r.add("nat", chain, f"{_comment(comment_of(ep, i))}{stat.lstrip()}{' ' if stat else ''}-j {sep}")


def _service_2020(r: Rules, svc: Service, node: str, cluster_cidr: str) -> None:
    layout = "2020"
    spn = svc.port_name_string(layout)
    svc_c = svc_chain(svc, layout, "SVC")
    eps = svc.sorted_endpoints()
    r.chain("nat", svc_c)
    pr = _proto(svc)
    r.add("nat", "KUBE-SERVICES", f'-m comment --comment "{spn} cluster IP" {pr} -d {svc.cluster_ip}/32 --dport {svc.port} ! -s {cluster_cidr} -j KUBE-MARK-MASQ')
    r.add("nat", "KUBE-SERVICES", f'-m comment --comment "{spn} cluster IP" {pr} -d {svc.cluster_ip}/32 --dport {svc.port} -j {svc_c}')
    xlb_c = svc_chain(svc, layout, "XLB")
    if svc.lb_ip:
        fw_c = svc_chain(svc, layout, "FW")
        r.chain("nat", fw_c)
        r.add("nat", "KUBE-SERVICES", f'-m comment --comment "{spn} loadbalancer IP" {pr} -d {svc.lb_ip}/32 --dport {svc.port} -j {fw_c}')
        if not svc.external_local:
            r.add("nat", fw_c, f'-m comment --comment "{spn} loadbalancer IP" -j KUBE-MARK-MASQ')
        target = xlb_c if svc.external_local else svc_c
        r.add("nat", fw_c, f'-m comment --comment "{spn} loadbalancer IP" -j {target}')
        r.add("nat", fw_c, f'-m comment --comment "{spn} loadbalancer IP" -j KUBE-MARK-DROP')
    if svc.node_port:
        if svc.external_local:
            r.add("nat", "KUBE-NODEPORTS", f"-m comment --comment {_q(spn)} {pr} --dport {svc.node_port} -s 127.0.0.0/8 -j KUBE-MARK-MASQ")
            r.add("nat", "KUBE-NODEPORTS", f"-m comment --comment {_q(spn)} {pr} --dport {svc.node_port} -j {xlb_c}")
        else:
            r.add("nat", "KUBE-NODEPORTS", f"-m comment --comment {_q(spn)} {pr} --dport {svc.node_port} -j KUBE-MARK-MASQ")
            r.add("nat", "KUBE-NODEPORTS", f"-m comment --comment {_q(spn)} {pr} --dport {svc.node_port} -j {svc_c}")
    if svc.health_check_node_port and svc.external_local:
        r.add("filter", "KUBE-NODEPORTS", f'-m comment --comment "{spn} health check node port" -m tcp -p tcp --dport {svc.health_check_node_port} -j ACCEPT')
    _balance(r, svc, layout, svc_c, eps, lambda ep, i: None)
    _sep_chains(r, svc, layout)
    if svc.external_local and (svc.lb_ip or svc.node_port):
        r.chain("nat", xlb_c)
        r.add("nat", xlb_c, f'-m comment --comment "Redirect pods trying to reach external loadbalancer VIP to clusterIP" -s {cluster_cidr} -j {svc_c}')
        r.add("nat", xlb_c, f'-m comment --comment "masquerade LOCAL traffic for {spn} LB IP" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ')
        r.add("nat", xlb_c, f'-m comment --comment "route LOCAL traffic for {spn} LB IP to service chain" -m addrtype --src-type LOCAL -j {svc_c}')
        local = [e for e in eps if e.node == node]
        if not local:
            r.add("nat", xlb_c, f'-m comment --comment "{spn} has no local endpoints" -j KUBE-MARK-DROP')
        else:
            _balance(r, svc, layout, xlb_c, local, lambda ep, i: f"Balancing rule {i} for {spn}" if i is not None else None)


def _service_current(r: Rules, svc: Service, node: str, cluster_cidr: str) -> None:
    layout = "current"
    spn = svc.port_name_string(layout)
    svc_c = svc_chain(svc, layout, "SVC")
    ext_c = svc_chain(svc, layout, "EXT")
    svl_c = svc_chain(svc, layout, "SVL")
    eps = svc.sorted_endpoints()
    local = [e for e in eps if e.node == node]
    pr = _proto(svc)
    has_external = bool(svc.lb_ip or svc.node_port)
    r.chain("nat", svc_c)
    if has_external:
        r.chain("nat", ext_c)
    if svc.external_local and local:
        r.chain("nat", svl_c)
    r.add("nat", "KUBE-SERVICES", f'-m comment --comment "{spn} cluster IP" {pr} -d {svc.cluster_ip} --dport {svc.port} -j {svc_c}')
    if svc.lb_ip:
        r.add("nat", "KUBE-SERVICES", f'-m comment --comment "{spn} loadbalancer IP" {pr} -d {svc.lb_ip} --dport {svc.port} -j {ext_c}')
    if svc.node_port:
        r.add("nat", "KUBE-NODEPORTS", f"-m comment --comment {_q(spn)} {pr} --dport {svc.node_port} -j {ext_c}")
    if svc.health_check_node_port and svc.external_local:
        r.add("filter", "KUBE-NODEPORTS", f'-m comment --comment "{spn} health check node port" -m tcp -p tcp --dport {svc.health_check_node_port} -j ACCEPT')
    if svc.external_local and not local:
        if svc.lb_ip:
            r.add("filter", "KUBE-EXTERNAL-SERVICES", f'-m comment --comment "{spn} has no local endpoints" {pr} -d {svc.lb_ip} --dport {svc.port} -j DROP')
        if svc.node_port:
            r.add("filter", "KUBE-EXTERNAL-SERVICES", f'-m comment --comment "{spn} has no local endpoints" -m addrtype --dst-type LOCAL {pr} --dport {svc.node_port} -j DROP')
    if has_external:
        if svc.external_local:
            r.add("nat", ext_c, f'-m comment --comment "pod traffic for {spn} external destinations" -s {cluster_cidr} -j {svc_c}')
            r.add("nat", ext_c, f'-m comment --comment "masquerade LOCAL traffic for {spn} external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ')
            r.add("nat", ext_c, f'-m comment --comment "route LOCAL traffic for {spn} external destinations" -m addrtype --src-type LOCAL -j {svc_c}')
            if local:
                r.add("nat", ext_c, f"-j {svl_c}")
        else:
            r.add("nat", ext_c, f'-m comment --comment "masquerade traffic for {spn} external destinations" -j KUBE-MARK-MASQ')
            r.add("nat", ext_c, f"-j {svc_c}")
    r.add("nat", svc_c, f'-m comment --comment "{spn} cluster IP" {pr} -d {svc.cluster_ip} --dport {svc.port} ! -s {cluster_cidr} -j KUBE-MARK-MASQ')
    arrow = lambda ep, i: f"{spn} -> {ep.ip}:{ep.port}"  # noqa: E731
    _balance(r, svc, layout, svc_c, eps, arrow)
    if svc.external_local and local:
        _balance(r, svc, layout, svl_c, local, arrow)
    _sep_chains(r, svc, layout)


def generate(layout: str, services: list[Service], node: str, cluster_cidr: str) -> str:
    """The iptables-restore input kube-proxy (plus kubelet's chains) would give `node`."""
    if layout not in ("2020", "current"):
        raise ValueError(f"unknown layout {layout!r}")
    r = Rules()
    _fixed_chains(r, layout)
    _base_jumps(r, layout)
    for svc in services:
        (_service_2020 if layout == "2020" else _service_current)(r, svc, node, cluster_cidr)
    r.add("nat", "KUBE-SERVICES", '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS')
    _tail_rules(r, layout, cluster_cidr)
    return r.render()


def _selftest() -> None:
    # Seed post part 2 (2020, unnamed port) and the kube-proxy test corpus (current).
    svc = Service("default", "testapp", "tcp", "10.200.105.65", 80)
    assert svc_chain(svc, "2020", "SVC") == "KUBE-SVC-K4VUERBNKSOP4S25"
    expect = {"10.100.0.7": "GB5ZXZKDF6JWMI74", "10.100.1.4": "SHJOK7USDC7L53KY", "10.100.2.2": "STQ7EMRESDHHERMG"}
    for ip, h in expect.items():
        assert sep_chain(svc, "2020", Endpoint(ip, 80, "x")) == "KUBE-SEP-" + h
    dns = Service("kube-system", "kube-dns", "tcp", "10.200.0.10", 53, port_name="dns-tcp")
    assert svc_chain(dns, "2020", "SVC") == "KUBE-SVC-ERIFXISQEP7F7OF4"
    corpus = Service("ns1", "svc1", "tcp", "172.30.0.41", 80, port_name="p80")
    assert svc_chain(corpus, "current", "SVC") == "KUBE-SVC-XPGD46QRK7WJZT7O"
    assert sep_chain(corpus, "current", Endpoint("10.180.0.1", 80, "x")) == "KUBE-SEP-SXIVWICOYRO3J4NJ"
    unnamed = Service("ns1", "svc1", "tcp", "172.30.0.41", 80)
    assert svc_chain(unnamed, "current", "SVC") == "KUBE-SVC-AQI2S6QIMU7PVVRP"
    assert probability(3) == "0.3333333333"
    print("kpgen selftest ok")


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--selftest"]:
        _selftest()
    else:
        print("usage: kpgen.py --selftest", file=sys.stderr)
        sys.exit(2)
