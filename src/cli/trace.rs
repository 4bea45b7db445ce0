//! `hoptrace trace`: one packet through a node's netfilter, every reachable endpoint with its
//! probability (interface.md). A thin view over [`crate::netfilter::trace()`].

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use std::io::Write as _;
use std::net::IpAddr;
use std::process::ExitCode;

use super::{EXIT_OK, EXIT_UNUSABLE, EXIT_WARNINGS};
use crate::netfilter::{
    self, DecidedBy, NodeContext, Origin, Packet, PathStep, Protocol, Ruleset, Trace, TraceOptions,
    Verdict, eval::fmt_sock,
};
use crate::sanitize::escape_str;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProtoArg {
    Tcp,
    Udp,
    Sctp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OriginArg {
    /// Local when the source is a node address, else from the network.
    #[default]
    Auto,
    /// Arrives on an interface (PREROUTING).
    Incoming,
    /// Sent by a process on the node (OUTPUT).
    Local,
}

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// The node's `iptables-save` output (`[NODE=]FILE`).
    #[arg(long, value_name = "[NODE=]FILE")]
    pub rules: String,
    /// Source address, optionally with port: `10.0.0.2`, `10.0.0.2:40000`, `[fd00::2]:40000`.
    #[arg(long, value_name = "IP[:PORT]")]
    pub src: String,
    /// Destination address and port.
    #[arg(long, value_name = "IP:PORT")]
    pub dst: String,
    #[arg(long, value_enum, default_value_t = ProtoArg::Tcp)]
    pub proto: ProtoArg,
    /// The node's own addresses (addrtype LOCAL); 127.0.0.1 and ::1 always are. Repeatable.
    #[arg(long = "local-ip", value_name = "IP")]
    pub local_ip: Vec<IpAddr>,
    /// Input interface of the packet (for `-i` rules).
    #[arg(long, value_name = "NAME")]
    pub in_iface: Option<String>,
    /// Output interface (for `-o` rules).
    #[arg(long, value_name = "NAME")]
    pub out_iface: Option<String>,
    /// Where the packet comes from.
    #[arg(long, value_enum, default_value_t = OriginArg::Auto)]
    pub origin: OriginArg,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `IP[:PORT]` (IPv6 with a port in brackets).
pub fn parse_socket(s: &str, need_port: bool) -> anyhow::Result<(IpAddr, Option<u16>)> {
    let (ip, port) = if let Some(rest) = s.strip_prefix('[') {
        let (ip, after) = rest
            .split_once(']')
            .with_context(|| format!("`{}`: missing `]`", escape_str(s)))?;
        (ip, after.strip_prefix(':'))
    } else if s.matches(':').count() == 1 {
        let (a, p) = s.split_once(':').expect("one colon");
        (a, Some(p))
    } else {
        (s, None)
    };
    let ip: IpAddr = ip
        .parse()
        .with_context(|| format!("`{}`: expected an IP address", escape_str(s)))?;
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .with_context(|| format!("`{}`: expected a port number 0-65535", escape_str(s)))?,
        ),
        None => None,
    };
    if need_port && port.is_none() {
        bail!("`{}`: expected IP:PORT", escape_str(s));
    }
    Ok((ip, port))
}

/// Read and load a rules file given as `[NODE=]FILE`. Returns the rule set and the messages the
/// user should read (parse errors of skipped lines, warnings).
pub fn load_rules(arg: &str) -> anyhow::Result<(Ruleset, Vec<String>)> {
    let path = match arg.split_once('=') {
        Some((_, p)) if !std::path::Path::new(arg).exists() => p,
        _ => arg,
    };
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read rules file {}", escape_str(path)))?;
    let (rs, errors) = netfilter::load(&bytes, path);
    let mut msgs: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    if rs.tables.is_empty() {
        if let Some(first) = msgs.first() {
            bail!("{first}");
        }
        bail!(
            "{}: no `*table` … `COMMIT` block: is this iptables-save output?",
            escape_str(path)
        );
    }
    msgs.extend(rs.warnings.iter().map(|w| match w.line {
        Some(l) => format!("{path}:{l}: warning: {}", w.message),
        None => format!("{path}: warning: {}", w.message),
    }));
    Ok((rs, msgs))
}

fn step_json(s: &PathStep) -> Value {
    let mut v = json!({
        "hook": s.hook, "table": s.table, "chain": &*s.chain, "rule": s.rule,
        "text": &*s.text, "matched": s.matched,
    });
    if let Some(w) = &s.why_not {
        v["why_not"] = json!(w);
    }
    if let Some(a) = &s.action {
        v["action"] = json!(a);
    }
    v
}

fn decided_json(d: &Option<DecidedBy>) -> (Value, Option<Value>) {
    match d {
        Some(DecidedBy::Rule(r)) => (
            json!({"table": r.table, "chain": &*r.chain, "rule": r.rule}),
            None,
        ),
        Some(DecidedBy::Policy {
            table,
            chain,
            policy,
        }) => (
            json!("policy"),
            Some(json!({"table": table, "chain": &**chain, "policy": policy})),
        ),
        None => (Value::Null, None),
    }
}

/// The JSON document of interface.md (`trace --format json`), with extra fields.
pub fn trace_json(tr: &Trace, pkt: &Packet, warnings: &[String]) -> Value {
    let (decided, policy) = decided_json(&tr.decided_by);
    let endpoints: Vec<Value> = tr
        .endpoints
        .iter()
        .map(|e| {
            let o = &tr.outcomes[e.outcome];
            let mut v = json!({
                "ip": e.ip, "port": e.port, "probability": e.probability, "chain": &*e.chain,
                "masquerade": e.masquerade,
                "path": o.path.iter().filter(|s| s.matched).map(step_json).collect::<Vec<_>>(),
            });
            if let Some(r) = &e.range {
                v["range"] = json!(r);
            }
            v
        })
        .collect();
    let mut doc = json!({
        "verdict": tr.verdict,
        "decided_by": decided,
        "endpoints": endpoints,
        "masquerade": tr.masquerade,
        "path": tr.path.iter().map(step_json).collect::<Vec<_>>(),
        "packet": {"src": pkt.src, "src_port": pkt.src_port, "dst": pkt.dst, "dst_port": pkt.dst_port, "proto": pkt.proto},
        "outcomes": tr.outcomes.iter().map(|o| {
            let (d, p) = decided_json(&o.decided_by);
            json!({"probability": o.probability, "verdict": o.verdict, "decided_by": d, "policy": p,
                   "dnat": o.dnat, "source_nat": o.source_nat, "mark": o.mark, "undecided": o.undecided})
        }).collect::<Vec<_>>(),
        "truncated": tr.truncated,
        "warnings": warnings,
    });
    if let Some(p) = policy {
        doc["policy"] = p;
    }
    if let Some(sn) = tr.outcomes.iter().find_map(|o| o.source_nat.as_ref()) {
        doc["source_nat"] = json!(sn);
    }
    if let Some(u) = tr.outcomes.iter().find_map(|o| o.undecided.as_ref()) {
        doc["undecided"] = json!(u);
    }
    doc
}

fn decided_text(d: &Option<DecidedBy>) -> String {
    match d {
        Some(DecidedBy::Rule(r)) => format!("{} {} rule {}", r.table, escape_str(&r.chain), r.rule),
        Some(DecidedBy::Policy {
            table,
            chain,
            policy,
        }) => format!("{table} {} policy {}", escape_str(chain), policy.as_str()),
        None => "-".into(),
    }
}

/// The text view: the verdict, the endpoints like a table, and the walk like `iptables -nvL`
/// with a mark per rule (`✓` matched, `·` not) and why a rule did not match.
pub fn trace_text(tr: &Trace, pkt: &Packet, ctx: &NodeContext) -> String {
    let mut o = String::new();
    let sock = |ip, port: Option<u16>| {
        port.map(|p| fmt_sock(ip, p))
            .unwrap_or_else(|| ip.to_string())
    };
    o.push_str(&format!(
        "packet   {} {} -> {}\nnode     local addresses {}\n",
        pkt.proto,
        sock(pkt.src, pkt.src_port),
        fmt_sock(pkt.dst, pkt.dst_port),
        ctx.local_ips()
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    o.push_str(&format!(
        "verdict  {}  (decided by {})\n",
        tr.verdict.as_str(),
        decided_text(&tr.decided_by)
    ));
    if let Some(u) = tr.outcomes.iter().find_map(|x| x.undecided.as_ref()) {
        o.push_str(&format!(
            "         cannot decide at {} {} rule {}: {}\n         {}\n",
            u.rule.table,
            escape_str(&u.rule.chain),
            u.rule.rule,
            escape_str(&u.reason),
            escape_str(&u.text)
        ));
    }
    if tr.endpoints.is_empty() {
        o.push_str("endpoints none (no DNAT)\n");
    } else {
        o.push_str("endpoints\n   probability  endpoint                 chain                      masquerade\n");
        for e in &tr.endpoints {
            o.push_str(&format!(
                "   {:>10.6}%  {:<24} {:<26} {}\n",
                e.probability * 100.0,
                e.range.clone().unwrap_or_else(|| fmt_sock(e.ip, e.port)),
                escape_str(&e.chain),
                if e.masquerade { "yes" } else { "no" }
            ));
        }
    }
    if let Some(sn) = tr.outcomes.iter().find_map(|x| x.source_nat.as_ref()) {
        o.push_str(&format!(
            "source   {} by {} {} rule {}{}\n",
            sn.kind,
            sn.rule.table,
            escape_str(&sn.rule.chain),
            sn.rule.rule,
            if sn.random_fully {
                " (--random-fully: source port unpredictable)"
            } else {
                ""
            }
        ));
    }
    if tr.truncated {
        o.push_str("note     more branches than shown: probabilities do not sum to 1\n");
    }
    o.push_str("\nwalk (most probable branch; ✓ matched, · did not match)\n");
    o.push_str("   hook         table    chain                          num  rule\n");
    let mut last = None;
    for s in &tr.path {
        let here = (s.hook, s.table, s.chain.clone());
        let (h, t, c) = if last.as_ref() == Some(&here) {
            (String::new(), String::new(), String::new())
        } else {
            (
                format!("{:?}", s.hook).to_uppercase(),
                s.table.to_string(),
                escape_str(&s.chain),
            )
        };
        last = Some(here);
        let num = if s.rule == 0 {
            "-".to_string()
        } else {
            s.rule.to_string()
        };
        o.push_str(&format!(
            " {} {:<12} {:<8} {:<30} {:>3}  {}\n",
            if s.matched { "✓" } else { "·" },
            h,
            t,
            c,
            num,
            escape_str(&s.text)
        ));
        if let Some(w) = &s.why_not {
            o.push_str(&format!("{:>60}{}\n", "", escape_str(w)));
        } else if let Some(a) = &s.action {
            o.push_str(&format!("{:>60}=> {}\n", "", escape_str(a)));
        }
    }
    if tr.endpoints.len() > 1 {
        o.push_str("\nbranches (matched rules to each endpoint)\n");
        for e in &tr.endpoints {
            let steps: Vec<String> = tr.outcomes[e.outcome]
                .path
                .iter()
                .filter(|s| s.matched && s.action.is_some() && s.table == netfilter::TableName::Nat)
                .map(|s| format!("{}#{}", escape_str(&s.chain), s.rule))
                .collect();
            o.push_str(&format!(
                "   {:<24} {}\n",
                fmt_sock(e.ip, e.port),
                steps.join(" -> ")
            ));
        }
    }
    o
}

pub fn run(args: TraceArgs) -> anyhow::Result<ExitCode> {
    let (src, sport) = parse_socket(&args.src, false)?;
    let (dst, dport) = parse_socket(&args.dst, true)?;
    let (rs, mut warnings) = match load_rules(&args.rules) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("hoptrace: error: {e:#}");
            return Ok(ExitCode::from(EXIT_UNUSABLE));
        }
    };
    let proto = match args.proto {
        ProtoArg::Tcp => Protocol::Tcp,
        ProtoArg::Udp => Protocol::Udp,
        ProtoArg::Sctp => Protocol::Sctp,
    };
    let mut pkt = Packet::new(proto, src, sport, dst, dport.expect("required"));
    pkt.in_iface = args.in_iface.clone();
    pkt.out_iface = args.out_iface.clone();
    pkt.origin = match args.origin {
        OriginArg::Auto => Origin::Auto,
        OriginArg::Incoming => Origin::Incoming,
        OriginArg::Local => Origin::Local,
    };
    let ctx = NodeContext::new(args.local_ip.iter().copied());
    let tr = netfilter::trace(&rs, &ctx, &pkt, TraceOptions::default());
    if let Some(u) = tr.outcomes.iter().find_map(|o| o.undecided.as_ref()) {
        warnings.push(format!(
            "cannot decide: {} {} rule {} ({}): {}",
            u.rule.table, u.rule.chain, u.rule.rule, u.text, u.reason
        ));
    }
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &trace_json(&tr, &pkt, &warnings))?;
            writeln!(out)?;
        }
        Format::Text => write!(out, "{}", trace_text(&tr, &pkt, &ctx))?,
    }
    out.flush()?;
    for w in &warnings {
        eprintln!("hoptrace: {}", escape_str(w));
    }
    let undecided = tr.verdict == Verdict::Undecided;
    Ok(ExitCode::from(if warnings.is_empty() && !undecided {
        EXIT_OK
    } else {
        EXIT_WARNINGS
    }))
}
