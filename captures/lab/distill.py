"""Distil a lab recording's kernel ground truth into truth.json (one entry per TCP connection)
and write the scenario README.

Sources, none of them the pcaps (so tests/lab_truth.rs can check truth.json against the pcaps):
* conntrack -L on every node: the original tuple names the client and the ingress node; the
  reply tuple gives the DNAT choice (reply source = endpoint) and the SNAT source (reply
  destination, when it differs from the client);
* conntrack -L in the ALB namespace: the ct mark = MARK_BASE + bucket the nft jhash rule chose
  (cross-checked with an independent jhash implementation, jhash.py);
* xtables-monitor --trace on every node: the rules each client SYN matched, in order; rule
  numbers come from the rule handles (`nft -a list table ip nat|filter`) turned into 1-based
  positions, as `iptables -t nat -L CHAIN --line-numbers` numbers them;
* the pods' request logs: which requests arrived on which connection (keyed by the peer
  address the pod saw).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import jhash


class DistillError(Exception):
    pass


def parse_nft_handles(table: str, listing: str) -> dict[tuple[str, int], dict]:
    """(table, rule handle) -> {table, chain, rule (1-based position)} from `nft -a list table ip T`.
    Handles are unique per table only."""
    out: dict[tuple[str, int], dict] = {}
    chain = None
    pos = 0
    for line in listing.splitlines():
        s = line.strip()
        m = re.match(r"chain (\S+) \{", s)
        if m:
            chain, pos = m.group(1), 0
            continue
        if s == "}":
            chain = None
            continue
        m = re.search(r"# handle (\d+)$", s)
        if chain and m and not s.startswith("type "):
            pos += 1
            out[(table, int(m.group(1)))] = {"table": table, "chain": chain, "rule": pos}
    return out


def parse_conntrack(text: str) -> list[dict]:
    """`conntrack -L -p tcp` lines -> [{orig:(src,sport,dst,dport), reply:(...), mark, state}]."""
    entries = []
    for line in text.splitlines():
        if not line.startswith("tcp"):
            continue
        kv: dict[str, list[str]] = defaultdict(list)
        for tok in line.split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                kv[k].append(v)
        try:
            orig = (kv["src"][0], int(kv["sport"][0]), kv["dst"][0], int(kv["dport"][0]))
            reply = (kv["src"][1], int(kv["sport"][1]), kv["dst"][1], int(kv["dport"][1]))
        except (IndexError, ValueError) as e:
            raise DistillError(f"unreadable conntrack line: {line!r}") from e
        state = line.split()[3] if len(line.split()) > 3 and "=" not in line.split()[3] else ""
        entries.append({"orig": orig, "reply": reply, "mark": int(kv.get("mark", ["0"])[0]), "state": state})
    return entries


VERDICTS = {"0xffffffff": "CONTINUE", "0xfffffffe": "BREAK", "0xfffffffd": "JUMP", "0xfffffffc": "GOTO",
            "0xfffffffb": "RETURN"}


def parse_trace(text: str) -> dict[tuple, list[tuple]]:
    """xtables-monitor --trace output -> {4-tuple on arrival: [(table, chain, handle, verdict)]}.

    The trace id is derived from the packet buffer, so it is not unique over time (and a packet
    forwarded between namespaces keeps it). A traced packet's walk through this node starts with
    the lab's raw PREROUTING TRACE rule, so that event opens a new walk keyed by the addresses of
    the PACKET line just before it. A retransmitted SYN makes a second walk for the same 4-tuple;
    only the first is kept."""
    last_packet: dict[str, tuple] = {}
    current: dict[str, list[tuple]] = {}
    walks: list[tuple[tuple, list[tuple]]] = []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("PACKET:"):
            parts = s.split()
            f = dict(p.split("=", 1) for p in parts[3:] if "=" in p)
            if "SPORT" in f:
                last_packet[parts[2]] = (f["SRC"], int(f["SPORT"]), f["DST"], int(f["DPORT"]))
        elif s.startswith("TRACE:"):
            parts = s.split(None, 3)
            tid = parts[2]
            fields = parts[3].split(None, 1)[0].split(":")
            if len(fields) < 5 or fields[2] != "rule":
                continue
            table, chain, handle = fields[0], fields[1], int(fields[3], 16)
            text = parts[3].split(None, 1)[1].strip() if len(parts[3].split(None, 1)) > 1 else ""
            verdict = ":".join(fields[4:])
            verdict = VERDICTS.get(verdict, verdict)
            if table == "raw" and chain == "PREROUTING":
                if tid not in last_packet:
                    continue
                current[tid] = []
                walks.append((last_packet[tid], current[tid]))
                continue
            if tid in current:
                current[tid].append((table, chain, handle, verdict, text))
    out: dict[tuple, list[tuple]] = {}
    for key, events in walks:
        out.setdefault(key, events)
    return out


def parse_conntrack_events(text: str) -> dict[tuple, float]:
    """`conntrack -E -e NEW -o timestamp` lines -> {original 4-tuple: event time (unix seconds)}."""
    out: dict[tuple, float] = {}
    for line in text.splitlines():
        m = re.match(r"\[(\d+\.\d+)\]\s+\[NEW\] tcp", line)
        if not m:
            continue
        kv: dict[str, list[str]] = defaultdict(list)
        for tok in line.split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                kv[k].append(v)
        out.setdefault((kv["src"][0], int(kv["sport"][0]), kv["dst"][0], int(kv["dport"][0])), float(m.group(1)))
    return out


def read_pod_logs(paths: list[Path]) -> list[dict]:
    reqs = []
    for p in paths:
        for line in p.read_text().splitlines():
            if line.strip():
                reqs.append(json.loads(line))
    return reqs


def distill(run, nodes, pods, clients, frontend, node_port, seed, mark_base, crowd_net, vm) -> dict:
    sc = run.sc
    work = run.work
    node_by_ip = {n["ip"]: n for n in nodes}
    pod_by_ip = {p["ip"]: p for p in pods if p["name"] in sc["replicas"]}
    zone = {n["name"]: n["zone"] for n in nodes}
    client_net = [ipaddress.ip_network(f"{ip}/32") for ip in clients.values()] + [
        ipaddress.ip_network(crowd_net), ipaddress.ip_network(f"{vm['ip']}/32")]

    def is_client(ip: str) -> bool:
        a = ipaddress.ip_address(ip)
        return any(a in net for net in client_net)

    alb_marks: dict[tuple, int] = {}
    if sc["alb_mode"]:
        for e in parse_conntrack((work / "truth" / "conntrack-alb.txt").read_text()):
            if e["orig"][2] == frontend:
                alb_marks[(e["orig"][0], e["orig"][1])] = e["mark"]

    requests_by_peer: dict[tuple, list[dict]] = defaultdict(list)
    for r in read_pod_logs([work / "raw" / f"pod-{name}.log" for name in sc["replicas"]]):
        requests_by_peer[(r["pod"], r["peer_ip"], r["peer_port"])].append(r)
    used_peers: set[tuple] = set()

    conns = []
    for n in nodes:
        trace = parse_trace((work / "raw" / f"trace-{n['name']}.txt").read_text())
        new_times = parse_conntrack_events((work / "truth" / f"conntrack-events-{n['name']}.txt").read_text())
        handles = run.handles[n["name"]]
        for e in parse_conntrack((work / "truth" / f"conntrack-{n['name']}.txt").read_text()):
            src, sport, dst, dport = e["orig"]
            if not is_client(src):
                continue
            if not ((dst == frontend and dport == 80) or (dst == n["ip"] and dport == node_port)):
                continue
            rsrc, rsport, rdst, rdport = e["reply"]
            pod = pod_by_ip.get(rsrc)
            if pod is None:
                raise DistillError(f"{n['name']}: connection {src}:{sport} answered by {rsrc}, not a pod of this scenario")
            snat = None if (rdst, rdport) == (src, sport) else {"ip": rdst, "port": rdport}
            events = trace.get(e["orig"])
            if events is None:
                raise DistillError(f"{n['name']}: no nftrace for the SYN of {src}:{sport} -> {dst}:{dport}")
            path = []
            choice = None
            for table, chain, handle, verdict, text in events:
                if chain.startswith(("KUBE-SVC-", "KUBE-SVL-", "KUBE-XLB-")) and verdict.startswith("JUMP:KUBE-SEP-"):
                    choice = "affinity" if "--rcheck" in text else "cascade"
                h = handles.get((table, handle))
                if h is None or h["chain"] != chain or h["table"] != table:
                    raise DistillError(f"{n['name']}: trace names {table}:{chain} handle {handle}, unknown to the handle map")
                path.append({"table": table, "chain": chain, "rule": h["rule"], "verdict": verdict})
            dnat = [p for p in path if p["table"] == "nat" and p["chain"].startswith("KUBE-SEP-") and p["verdict"] == "ACCEPT"]
            if len(dnat) != 1:
                raise DistillError(f"{n['name']}: trace of {src}:{sport} has {len(dnat)} DNAT rules, expected 1")
            sep = dnat[0]["chain"]
            expect_sep = f"KUBE-SEP-{sep_hash_for(run, rsrc, rsport)}"
            if sep != expect_sep:
                raise DistillError(f"{n['name']}: {src}:{sport} DNATed by {sep} but conntrack says {rsrc}:{rsport} ({expect_sep})")
            alb = None
            if sc["alb_mode"] and dst == frontend:
                mark = alb_marks.get((src, sport))
                if mark is None:
                    raise DistillError(f"ALB conntrack has no entry for {src}:{sport}")
                bucket = mark - mark_base
                computed = jhash.alb_bucket(sc["alb_mode"], seed, len(sc["backends"]), src, sport, dst, dport)
                if computed != bucket:
                    raise DistillError(f"jhash model says bucket {computed} for {src}:{sport}, the kernel chose {bucket}")
                if sc["backends"][bucket] != n["name"]:
                    raise DistillError(f"{src}:{sport}: bucket {bucket} routes to {sc['backends'][bucket]} but arrived on {n['name']}")
                alb = {"mode": sc["alb_mode"], "bucket": bucket, "node": sc["backends"][bucket], "ct_mark": mark}
            peer = (pod["name"], rdst, rdport)
            reqs = requests_by_peer.get(peer, [])
            used_peers.add(peer)
            counts = Counter((r["method"], r["target"]) for r in reqs)
            first_t = new_times.get(e["orig"])
            if first_t is None:
                raise DistillError(f"{n['name']}: no conntrack NEW event for {src}:{sport}")
            conns.append({
                "time": datetime.datetime.fromtimestamp(first_t, datetime.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "client": {"ip": src, "port": sport},
                "frontend": {"ip": dst, "port": dport},
                "ingress_node": n["name"],
                "alb": alb,
                "chain_path": path,
                "endpoint": {"ip": rsrc, "port": rsport, "chain": sep},
                "pod": {"name": pod["name"], "ip": pod["ip"], "node": pod["node"], "zone": zone[pod["node"]]},
                "endpoint_choice": choice,
                "snat": snat,
                "crossed_node": pod["node"] != n["name"],
                "crossed_zone": zone[pod["node"]] != zone[n["name"]],
                "requests": [{"method": m, "target": t, "count": c} for (m, t), c in sorted(counts.items())],
                "conntrack_state": e["state"],
                "_t": first_t,
            })
    stray = [k for k in requests_by_peer if k not in used_peers]
    if stray:
        raise DistillError(f"pod requests on connections conntrack does not know: {stray[:5]}")
    empty = [c for c in conns if not c["requests"]]
    if empty:
        raise DistillError(f"{len(empty)} connections carried no request, e.g. {empty[0]['client']}")
    conns.sort(key=lambda c: (c["_t"], c["client"]["ip"], c["client"]["port"]))
    for i, c in enumerate(conns, 1):
        del c["_t"]
        c["id"] = i
    conns = [{"id": c.pop("id"), **c} for c in conns]
    return {
        "scenario": run.name,
        "title": sc["title"],
        "layout": sc["layout"],
        "service": {"name": "default/testapp", "cluster_ip": "10.200.105.65:80", "frontend": f"{frontend}:80",
                    "node_port": node_port, "session_affinity": "ClientIP" if sc["affinity"] else "None",
                    "external_traffic_policy": "Local" if sc["local"] else "Cluster", "replicas": sc["replicas"]},
        "alb": ({"mode": sc["alb_mode"], "hash": "jhash", "seed": f"{seed:#010x}", "backends": sc["backends"]}
                if sc["alb_mode"] else None),
        "connections": conns,
        "summary": summary(conns),
    }


def dump_truth(truth: dict) -> str:
    """Pretty JSON with one connection per line (compact, diff-friendly, easy to read in Rust)."""
    conns = truth["connections"]
    head = dict(truth, connections=[])
    text = json.dumps(head, indent=1)
    lines = ",\n".join("  " + json.dumps(c, separators=(",", ":")) for c in conns)
    return text.replace('"connections": []', '"connections": [\n' + lines + "\n ]") + "\n"


def sep_hash_for(run, ip: str, port: int) -> str:
    import kpgen  # local: keep this module importable on its own

    for svc in run.services(run.sc["replicas"]):
        for ep in svc.endpoints:
            if ep.ip == ip and ep.port == port:
                return kpgen.sep_chain(svc, run.sc["layout"], ep)[len("KUBE-SEP-"):]
    raise DistillError(f"no endpoint {ip}:{port} in the generated Services")


def summary(conns: list[dict]) -> dict:
    balancing = Counter(f"{p['chain']} rule {p['rule']}" for c in conns for p in c["chain_path"]
                        if p["table"] == "nat" and p["chain"].startswith(("KUBE-SVC-", "KUBE-SVL-", "KUBE-XLB-"))
                        and p["verdict"].startswith("JUMP:KUBE-SEP-"))
    by_client: dict[str, list[dict]] = defaultdict(list)
    for c in conns:
        by_client[c["client"]["ip"]].append(c)
    return {
        "connections": len(conns),
        "requests": sum(r["count"] for c in conns for r in c["requests"]),
        "by_ingress_node": dict(sorted(Counter(c["ingress_node"] for c in conns).items())),
        "by_pod": dict(sorted(Counter(c["pod"]["name"] for c in conns).items())),
        "snat": sum(1 for c in conns if c["snat"]),
        "crossed_node": sum(1 for c in conns if c["crossed_node"]),
        "crossed_zone": sum(1 for c in conns if c["crossed_zone"]),
        "balancing_rules": dict(sorted(balancing.items())),
        "endpoint_choice": dict(sorted(Counter(str(c["endpoint_choice"]) for c in conns).items())),
        "clients_with_several_connections": [
            {"client": ip, "connections": [f"{c['endpoint_choice']} -> {c['pod']['name']}" for c in cs]}
            for ip, cs in sorted(by_client.items(), key=lambda kv: kv[1][0]["time"]) if len(cs) > 1]
        if any(c["endpoint_choice"] == "affinity" for c in conns) else [],
    }


NOTES = {
    "01-keepalive": "hey keeps one TCP connection alive, so the ALB hashes one 5-tuple once: every request "
                    "arrives on one node over one connection (seed post 1, first tshark output).",
    "02-no-keepalive": "Each request is a new connection with a new source port, so the ALB spreads them over "
                       "the three nodes; the only pod is on node1 (10.220.1.5), so connections that entered "
                       "node0/node2 are DNATed there, masqueraded (KUBE-FW -> KUBE-MARK-MASQ) and reach the pod "
                       "from 10.220.1.4 / 10.220.1.6, as in the seed posts. Connections that entered node1 are "
                       "masqueraded too (KUBE-FW marks everything) but to the cbr0 address 10.100.2.1.",
    "03-three-replicas": "The KUBE-SVC chain holds the 1/3 -> 1/2 -> 1 cascade (0.33333333349 and 0.50000000000 as "
                         "iptables-save prints them); the chain path of each connection shows which statistic rule "
                         "matched. Ingress node and pod are independent, so many connections cross nodes and zones.",
    "04-affinity-sourceip": "SessionAffinity ClientIP adds the `recent --rcheck` rules (KUBE-SVC rules 1-3) before "
                            "the cascade (rules 4-6) and `recent --set` in each KUBE-SEP chain; the ALB in SourceIP "
                            "mode sends each client IP to one node (client1 to node1, client2 to node2, as in seed "
                            "post 1). A client's first connection goes through the cascade, later ones match the "
                            "rcheck rule of the endpoint recorded in that node's xt_recent table (truth/xt_recent-*). "
                            "`hey -c 2` opens its first two connections at once, before either is recorded, so both "
                            "can go through the cascade and land on two endpoints; from then on the client is in two "
                            "tables and the rcheck rule that comes first in the chain wins. client2 (curl 4 times, "
                            "as from the seed's Cloud Shell) has its own tables on its own node.",
    "05-nodeport": "A host inside the node subnet (10.220.1.10) calls NodePort 31857 on each node: KUBE-SERVICES' "
                   "last rule (addrtype --dst-type LOCAL) jumps to KUBE-NODEPORTS, which marks for masquerade and "
                   "jumps to KUBE-SVC. No ALB is involved (alb is null).",
    "06-local-current": "Current kube-proxy layout (KUBE-EXT/KUBE-SVL, KUBE-PROXY-FIREWALL, MASQUERADE "
                        "--random-fully) with externalTrafficPolicy Local and two replicas (node0, node1). The rules "
                        "differ per node: KUBE-SVL lists only local endpoints and node2, without one, has no "
                        "KUBE-SVL chain and a filter KUBE-EXTERNAL-SERVICES DROP. Like Azure after its health probe "
                        "marks node2 down, the ALB hashes over node0 and node1 only (mod 2). No connection is "
                        "masqueraded or crosses nodes; the pods see the client IP.",
    "07-affinity-eviction": "ClientIP affinity with the ALB in SourceIP mode. client1 (71.246.222.12) connects once "
                            "(recorded in one endpoint's xt_recent table on its node), then 360 crowd addresses "
                            "chosen to hash to the same node each open one connection. Each KUBE-SEP table keeps at "
                            "most 100 addresses (xt_recent ip_list_tot), evicting the least recently set one, so "
                            "client1 and the earliest crowd clients are forgotten: their next connection's chain "
                            "path goes through the statistic cascade instead of a `recent --rcheck` rule and may "
                            "land on another pod, while the latest crowd clients still match their rcheck rule. "
                            "truth/xt_recent-<node>-<phase>.txt shows the tables after each phase.",
}


def readme(run, truth: dict, versions: dict, nodes) -> str:
    sc = run.sc
    s = truth["summary"]
    lines = [f"# {run.name}: {sc['title']}", "", NOTES.get(run.name, ""), "",
             "## What the kernel did", "",
             f"- connections: {s['connections']}, HTTP requests: {s['requests']}",
             f"- ingress node (ALB choice): {', '.join(f'{k} {v}' for k, v in s['by_ingress_node'].items())}",
             f"- pod: {', '.join(f'{k} {v}' for k, v in s['by_pod'].items())}",
             f"- masqueraded (SNAT): {s['snat']}, crossed node: {s['crossed_node']}, crossed zone: {s['crossed_zone']}",
             "- endpoint choice (the KUBE-SVC/SVL/XLB rule that jumped to a KUBE-SEP chain, 1-based): "
             + ", ".join(f"{k}: {v}" for k, v in s["balancing_rules"].items()),
             f"- endpoint chosen by: {', '.join(f'{k} {v}' for k, v in s['endpoint_choice'].items())} "
             "(affinity = a `recent --rcheck` rule, cascade = the statistic rules)"]
    several = s["clients_with_several_connections"]
    if several:
        lines += ["- clients with several connections, in time order:"]
        lines += [f"  - {x['client']}: " + "; ".join(x["connections"]) for x in several]
    lines += ["", "## Files", "",
             "- `cluster.toml`: nodes, zones, pods, the ALB (mode, jhash seed, backend order = bucket order) and which "
             "capture was taken where (`[[clients]]` lists the client-side captures).",
             "- `<node>-eth0.pcap`: tcpdump on each node's primary interface; `client*-eth0.pcap` / `vm-eth0.pcap`: "
             f"on the client. Filter `tcp`, snaplen {run.snaplen}.",
             "- `<node>.rules`: `iptables-save -c` on that node after the traffic (rule text identical on every node "
             "unless the layout makes it per node; counters are per node). The raw table holds the lab's "
             "`-j TRACE` rule for SYNs, used for the chain paths.",
             "- `truth.json`: one entry per TCP connection (see captures/README.md for the fields).",
             "- `truth/`: the raw ground truth: `conntrack-<node>.txt` and `conntrack-alb.txt` (`conntrack -L -p tcp`), "
             "`trace-<node>.txt` (`xtables-monitor --trace`), `conntrack-events-<node>.txt` (`conntrack -E -e NEW`, "
             "the time of each connection), `xt_recent-<node>-<phase>.txt` (`/proc/net/xt_recent/*` "
             "with the jiffies at the time), `alb-nft-ruleset.txt` (`nft list ruleset` with counters) and `alb.nft` "
             "(as loaded), `alb-policy-routing.txt`, `<node>.iptables-restore` (the generator's output as loaded), "
             "`pod-requests.jsonl` (each pod's request log: peer address as the pod saw it), `traffic.log` (client "
             "output). Files over 100 kB are gzipped (`.gz`), otherwise verbatim.",
             "", "## How it was recorded", "",
             "`captures/lab/lab up && captures/lab/lab scenario " + run.name + "` (root). Versions:", ""]
    lines += [f"- {k}: {v}" for k, v in versions.items()]
    lines += ["", "Commands, in order (network namespaces `ht-lab-*`):", "", "```"]
    lines += run.commands
    lines += ["```", ""]
    return "\n".join(lines)
