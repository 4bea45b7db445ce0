//! Printing a rule set exactly as `iptables-save` (v1.8) prints it, so that
//! `parse(print(parse(x)))` is the same model as `parse(x)`, and the output of a rewrite can be
//! fed to `iptables-restore`.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::model::*;

/// Quote the way `xtables_save_string` does: always in double quotes, `"` and `\` escaped.
fn quote(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

fn word(out: &mut String, w: &Word) {
    if w.quoted || w.text.is_empty() || w.text.contains([' ', '\t', '"', '\'']) {
        quote(out, &w.text);
    } else {
        out.push_str(&w.text);
    }
}

fn bang(out: &mut String, negated: bool) {
    if negated {
        out.push_str(" !");
    }
}

fn addr(out: &mut String, ip: &IpAddr, bracket: bool) {
    match ip {
        IpAddr::V6(a) if bracket => {
            let _ = write!(out, "[{a}]");
        }
        _ => {
            let _ = write!(out, "{ip}");
        }
    }
}

fn nat_range(out: &mut String, r: &NatRange) {
    let v6 = matches!(r.addrs, Some((IpAddr::V6(_), _)));
    let bracket = v6 && r.ports.is_some();
    if let Some((a, b)) = &r.addrs {
        addr(out, a, bracket);
        if a != b {
            out.push('-');
            addr(out, b, bracket);
        }
    }
    if let Some((p, q)) = r.ports {
        let _ = write!(out, ":{p}");
        if p != q {
            let _ = write!(out, "-{q}");
        }
    }
}

fn type_list(out: &mut String, bits: u16) {
    let mut first = true;
    for (i, n) in addr_types::NAMES.iter().enumerate() {
        if bits & (1 << i) != 0 {
            if !first {
                out.push(',');
            }
            out.push_str(n);
            first = false;
        }
    }
}

fn state_list(out: &mut String, bits: u8) {
    let mut first = true;
    for (n, b) in ct_states::NAMES {
        if bits & b != 0 {
            if !first {
                out.push(',');
            }
            out.push_str(n);
            first = false;
        }
    }
}

fn flag_list(out: &mut String, bits: u8) {
    if bits == 0 {
        out.push_str("NONE");
        return;
    }
    let mut first = true;
    for (n, b) in tcp_flags::NAMES {
        if bits & b != 0 {
            if !first {
                out.push(',');
            }
            out.push_str(n);
            first = false;
        }
    }
}

fn hex(v: u32) -> String {
    format!("0x{v:x}")
}

fn ports(out: &mut String, p: &PortsMatch) {
    if let Some(s) = &p.sport {
        bang(out, s.negated);
        let _ = write!(out, " --sport {}", s.value);
    }
    if let Some(d) = &p.dport {
        bang(out, d.negated);
        let _ = write!(out, " --dport {}", d.value);
    }
}

fn matcher(out: &mut String, m: &Match, family: Option<Family>) {
    let _ = write!(out, " -m {}", m.module_name());
    match m {
        Match::Comment(c) => {
            out.push_str(" --comment ");
            quote(out, c);
        }
        Match::Tcp(t) => {
            ports(out, &t.ports);
            if let Some(o) = &t.option {
                bang(out, o.negated);
                let _ = write!(out, " --tcp-option {}", o.value);
            }
            if let Some(f) = &t.flags {
                bang(out, f.negated);
                out.push_str(" --tcp-flags ");
                flag_list(out, f.value.mask);
                out.push(' ');
                flag_list(out, f.value.comp);
            }
        }
        Match::Udp(p) | Match::Sctp(p) => ports(out, p),
        Match::Multiport(mp) => {
            bang(out, mp.negated);
            out.push_str(match mp.which {
                MultiportKind::Source => " --sports ",
                MultiportKind::Destination => " --dports ",
                MultiportKind::Either => " --ports ",
            });
            let list: Vec<String> = mp.ports.iter().map(|p| p.to_string()).collect();
            out.push_str(&list.join(","));
        }
        Match::Statistic(StatisticMatch::Random { stored, invert }) => {
            out.push_str(" --mode random");
            bang(out, *invert);
            let _ = write!(out, " --probability {:.11}", *stored as f64 / 2147483648.0);
        }
        Match::Statistic(StatisticMatch::Nth {
            every,
            packet,
            invert,
        }) => {
            out.push_str(" --mode nth");
            bang(out, *invert);
            let _ = write!(out, " --every {every} --packet {packet}");
        }
        Match::Recent(r) => {
            bang(out, r.invert);
            let _ = write!(out, " --{}", r.op.as_str());
            if let Some(s) = r.seconds {
                let _ = write!(out, " --seconds {s}");
            }
            if r.reap {
                out.push_str(" --reap");
            }
            if let Some(h) = r.hitcount {
                let _ = write!(out, " --hitcount {h}");
            }
            if r.rttl {
                out.push_str(" --rttl");
            }
            out.push_str(" --name ");
            out.push_str(&r.name);
            let mask = match (r.mask, family) {
                (Some(m), _) => m.to_string(),
                (None, Some(Family::Ipv6)) => "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".into(),
                (None, _) => "255.255.255.255".into(),
            };
            let _ = write!(out, " --mask {mask}");
            out.push_str(if r.rdest { " --rdest" } else { " --rsource" });
        }
        Match::Mark(mk) | Match::Connmark(mk) => {
            bang(out, mk.negated);
            if mk.mask == u32::MAX {
                let _ = write!(out, " --mark {}", hex(mk.value));
            } else {
                let _ = write!(out, " --mark {}/{}", hex(mk.value), hex(mk.mask));
            }
        }
        Match::Addrtype(a) => {
            if let Some(s) = &a.src {
                bang(out, s.negated);
                out.push_str(" --src-type ");
                type_list(out, s.value);
            }
            if let Some(d) = &a.dst {
                bang(out, d.negated);
                out.push_str(" --dst-type ");
                type_list(out, d.value);
            }
            if a.limit_iface_in {
                out.push_str(" --limit-iface-in");
            }
            if a.limit_iface_out {
                out.push_str(" --limit-iface-out");
            }
        }
        Match::Conntrack(c) => {
            if let Some(s) = &c.ctstate {
                bang(out, s.negated);
                out.push_str(" --ctstate ");
                state_list(out, s.value);
            }
        }
        Match::State(s) => {
            bang(out, s.negated);
            out.push_str(" --state ");
            state_list(out, s.value);
        }
        Match::Nfacct(n) => {
            out.push_str(" --nfacct-name ");
            out.push_str(n);
        }
        Match::Physdev(p) => {
            for (v, name) in [
                (p.is_in, "--physdev-is-in"),
                (p.is_out, "--physdev-is-out"),
                (p.is_bridged, "--physdev-is-bridged"),
            ] {
                if let Some(v) = v {
                    bang(out, !v);
                    out.push(' ');
                    out.push_str(name);
                }
            }
        }
        Match::Unknown { args, .. } => {
            for a in args {
                out.push(' ');
                word(out, a);
            }
        }
    }
}

fn target(out: &mut String, t: &Target, family: Option<Family>) {
    match t {
        Target::Accept => out.push_str(" -j ACCEPT"),
        Target::Drop => out.push_str(" -j DROP"),
        Target::Return => out.push_str(" -j RETURN"),
        Target::Reject { with } => {
            let default = if family == Some(Family::Ipv6) {
                "icmp6-port-unreachable"
            } else {
                "icmp-port-unreachable"
            };
            let _ = write!(
                out,
                " -j REJECT --reject-with {}",
                with.as_deref().unwrap_or(default)
            );
        }
        Target::Jump(c) => {
            let _ = write!(out, " -j {}", c.name);
        }
        Target::Goto(c) => {
            let _ = write!(out, " -g {}", c.name);
        }
        Target::Dnat {
            to,
            random,
            persistent,
        } => {
            out.push_str(" -j DNAT --to-destination ");
            nat_range(out, to);
            if *random {
                out.push_str(" --random");
            }
            if *persistent {
                out.push_str(" --persistent");
            }
        }
        Target::Snat {
            to,
            random,
            random_fully,
            persistent,
        } => {
            out.push_str(" -j SNAT --to-source ");
            nat_range(out, to);
            if *random {
                out.push_str(" --random");
            }
            if *random_fully {
                out.push_str(" --random-fully");
            }
            if *persistent {
                out.push_str(" --persistent");
            }
        }
        Target::Masquerade {
            to_ports,
            random,
            random_fully,
        } => {
            out.push_str(" -j MASQUERADE");
            to_ports_opt(out, to_ports);
            if *random {
                out.push_str(" --random");
            }
            if *random_fully {
                out.push_str(" --random-fully");
            }
        }
        Target::Redirect { to_ports, random } => {
            out.push_str(" -j REDIRECT");
            to_ports_opt(out, to_ports);
            if *random {
                out.push_str(" --random");
            }
        }
        Target::Mark { value, mask } => {
            let _ = write!(out, " -j MARK --set-xmark {}/{}", hex(*value), hex(*mask));
        }
        Target::Connmark(op) => match op {
            ConnmarkOp::SetXmark { value, mask } => {
                let _ = write!(
                    out,
                    " -j CONNMARK --set-xmark {}/{}",
                    hex(*value),
                    hex(*mask)
                );
            }
            ConnmarkOp::Save { nfmask, ctmask } => {
                let _ = write!(
                    out,
                    " -j CONNMARK --save-mark --nfmask {} --ctmask {}",
                    hex(*nfmask),
                    hex(*ctmask)
                );
            }
            ConnmarkOp::Restore { nfmask, ctmask } => {
                let _ = write!(
                    out,
                    " -j CONNMARK --restore-mark --nfmask {} --ctmask {}",
                    hex(*nfmask),
                    hex(*ctmask)
                );
            }
        },
        Target::Log { name, args } | Target::Unknown { name, args } => {
            let _ = write!(out, " -j {name}");
            for a in args {
                out.push(' ');
                word(out, a);
            }
        }
        Target::Notrack { legacy } => out.push_str(if *legacy {
            " -j NOTRACK"
        } else {
            " -j CT --notrack"
        }),
    }
}

fn to_ports_opt(out: &mut String, to_ports: &Option<(u16, u16)>) {
    if let Some((p, q)) = to_ports {
        let _ = write!(out, " --to-ports {p}");
        if p != q {
            let _ = write!(out, "-{q}");
        }
    }
}

fn net(out: &mut String, flag: &str, n: &Neg<ipnet::IpNet>) {
    if n.negated {
        out.push_str(" !");
    }
    let _ = write!(out, " {flag} {}/{}", n.value.addr(), n.value.prefix_len());
}

/// The rule specification as `iptables-save` prints it (without `-A CHAIN`).
pub fn rule_spec(spec: &RuleSpec, family: Option<Family>) -> String {
    let mut out = String::with_capacity(96);
    if let Some(s) = &spec.src {
        net(&mut out, "-s", s);
    }
    if let Some(d) = &spec.dst {
        net(&mut out, "-d", d);
    }
    if let Some(i) = &spec.in_iface {
        bang(&mut out, i.negated);
        let _ = write!(out, " -i {}", i.value.0);
    }
    if let Some(o) = &spec.out_iface {
        bang(&mut out, o.negated);
        let _ = write!(out, " -o {}", o.value.0);
    }
    if let Some(p) = &spec.proto {
        bang(&mut out, p.negated);
        let _ = write!(out, " -p {}", p.value);
    }
    if let Some(neg) = spec.fragment {
        bang(&mut out, neg);
        out.push_str(" -f");
    }
    for m in &spec.matches {
        matcher(&mut out, m, family);
    }
    if let Some(t) = &spec.target {
        target(&mut out, t, family);
    }
    if out.starts_with(' ') {
        out.remove(0);
    }
    out
}

/// `-A CHAIN spec` as `iptables-save` prints it.
pub fn rule_line(chain: &str, spec: &RuleSpec, family: Option<Family>) -> String {
    let s = rule_spec(spec, family);
    if s.is_empty() {
        format!("-A {chain}")
    } else {
        format!("-A {chain} {s}")
    }
}

/// Options for [`save`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SaveOptions {
    /// Print `[pkts:bytes]` before each rule (`iptables-save -c`).
    pub counters: bool,
}

/// The whole rule set in `iptables-save` format (accepted by `iptables-restore`).
pub fn save(rs: &Ruleset, opts: SaveOptions) -> String {
    let mut out = String::new();
    for t in &rs.tables {
        let _ = writeln!(out, "*{}", t.name);
        for c in &t.chains {
            let _ = writeln!(
                out,
                ":{} {} [{}:{}]",
                c.name,
                c.policy.map(Policy::as_str).unwrap_or("-"),
                c.counters.packets,
                c.counters.bytes
            );
        }
        for c in &t.chains {
            for r in &c.rules {
                if opts.counters {
                    let k = r.counters.unwrap_or_default();
                    let _ = write!(out, "[{}:{}] ", k.packets, k.bytes);
                }
                out.push_str(&rule_line(&c.name, &r.spec, rs.family));
                out.push('\n');
            }
        }
        out.push_str("COMMIT\n");
    }
    out
}
