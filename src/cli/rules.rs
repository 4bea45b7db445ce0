//! `hoptrace rules FILE`: the kube-proxy service map of a rules file (interface.md), the rules
//! listed like `iptables -nvL`, and the session-affinity what-if as `iptables-restore` text.

use anyhow::bail;
use clap::Args;
use serde_json::json;
use std::io::Write as _;
use std::process::ExitCode;

use super::trace::{Format, load_rules};
use super::{EXIT_OK, EXIT_UNUSABLE, EXIT_WARNINGS};
use crate::netfilter::kube::{self, FrontendKind, ServiceMap};
use crate::netfilter::{Neg, Policy, Protocol, Ruleset, Target, eval::fmt_sock, print};
use crate::sanitize::escape_str;

#[derive(Debug, Args)]
pub struct RulesArgs {
    /// The node's `iptables-save` output (`[NODE=]FILE`).
    #[arg(value_name = "[NODE=]FILE")]
    pub file: String,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Also list every chain like `iptables -nvL` (text format).
    #[arg(long)]
    pub list: bool,
    /// What-if: print, as `iptables-restore` input, the rules kube-proxy would write with
    /// ClientIP session affinity switched on (`SERVICE=on`, `SERVICE=SECONDS`) or off
    /// (`SERVICE=off`). SERVICE is `ns/name:port` or the chain suffix.
    #[arg(long, value_name = "SERVICE=on|off|SECONDS")]
    pub set_affinity: Option<String>,
}

pub fn run(args: RulesArgs) -> anyhow::Result<ExitCode> {
    let (rs, warnings) = match load_rules(&args.file) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("hoptrace: error: {e:#}");
            return Ok(ExitCode::from(EXIT_UNUSABLE));
        }
    };
    let mut out = std::io::stdout().lock();
    if let Some(spec) = &args.set_affinity {
        let (svc, val) = match spec.rsplit_once('=') {
            Some(x) => x,
            None => bail!(
                "--set-affinity {}: expected SERVICE=on|off|SECONDS",
                escape_str(spec)
            ),
        };
        let timeout = match val {
            "on" => Some(kube::DEFAULT_AFFINITY_TIMEOUT),
            "off" => None,
            n => match n.parse::<u32>() {
                Ok(s) => Some(s),
                Err(_) => bail!(
                    "--set-affinity {}: expected on, off or a timeout in seconds",
                    escape_str(spec)
                ),
            },
        };
        // Rewrite what the file says, not the jumps hoptrace added for tracing.
        let bytes = std::fs::read(
            args.file
                .split_once('=')
                .map(|(_, p)| p)
                .filter(|_| !std::path::Path::new(&args.file).exists())
                .unwrap_or(&args.file),
        )?;
        let (original, _) = crate::netfilter::parse_lenient(&bytes, &args.file);
        match kube::set_session_affinity_text(&original, svc, timeout) {
            Ok((_, text)) => write!(out, "{text}")?,
            Err(e) => {
                eprintln!("hoptrace: error: {}", escape_str(&e.to_string()));
                return Ok(ExitCode::from(EXIT_UNUSABLE));
            }
        }
    } else {
        let map = kube::service_map(&rs);
        match args.format {
            Format::Json => {
                serde_json::to_writer_pretty(
                    &mut out,
                    &json!({"layout": map.layout, "services": map.services,
                    "masquerade": map.masquerade, "warnings": warnings}),
                )?;
                writeln!(out)?;
            }
            Format::Text => {
                write!(out, "{}", map_text(&map))?;
                if args.list {
                    write!(out, "\n{}", list_text(&rs))?;
                }
            }
        }
    }
    out.flush()?;
    for w in &warnings {
        eprintln!("hoptrace: {}", escape_str(w));
    }
    Ok(ExitCode::from(if warnings.is_empty() {
        EXIT_OK
    } else {
        EXIT_WARNINGS
    }))
}

fn kind_text(k: FrontendKind) -> &'static str {
    match k {
        FrontendKind::ClusterIp => "cluster IP",
        FrontendKind::ExternalIp => "external IP",
        FrontendKind::LoadBalancerIp => "loadbalancer IP",
        FrontendKind::ExternalOrLoadBalancerIp => "external/LB IP",
        FrontendKind::NodePort => "NodePort",
        FrontendKind::HealthCheckNodePort => "health check NodePort",
    }
}

/// The service map as text.
pub fn map_text(map: &ServiceMap) -> String {
    let mut o = String::new();
    o.push_str(&format!("kube-proxy layout: {:?}\n", map.layout).to_lowercase());
    if let Some(m) = &map.masquerade {
        o.push_str(&format!(
            "masquerade: {} {} rule {}{}{}\n",
            m.rule.table,
            escape_str(&m.rule.chain),
            m.rule.rule,
            m.mark
                .map(|k| format!(" for mark 0x{k:x}"))
                .unwrap_or_default(),
            if m.random_fully {
                ", --random-fully"
            } else {
                ""
            }
        ));
    }
    o.push_str(&format!("{} service ports\n", map.services.len()));
    for s in &map.services {
        o.push_str(&format!(
            "\n{}  {}  chains …{}{}\n",
            escape_str(&s.label()),
            s.protocol.map(|p| p.name()).unwrap_or_else(|| "?".into()),
            s.hash,
            if s.name_verified {
                " (name matches the chain hash)"
            } else if s.name.is_some() {
                " (name NOT confirmed by the chain hash)"
            } else {
                ""
            }
        ));
        o.push_str(&format!(
            "   externalTrafficPolicy {:?}, internalTrafficPolicy {:?}, sessionAffinity {}\n",
            s.external_traffic_policy,
            s.internal_traffic_policy,
            match s.affinity_timeout {
                Some(t) => format!("ClientIP (timeout {t} s)"),
                None => "None".into(),
            }
        ));
        for f in &s.frontends {
            let addr = match f.ip {
                Some(ip) => fmt_sock(ip, f.port),
                None => format!("*:{}", f.port),
            };
            o.push_str(&format!(
                "   {:<22} {:<24} -> {}{}\n",
                kind_text(f.kind),
                addr,
                f.chain
                    .as_deref()
                    .map(escape_str)
                    .unwrap_or_else(|| "(filter only)".into()),
                if f.source_ranges.is_empty() {
                    String::new()
                } else {
                    format!(
                        "  from {}",
                        f.source_ranges
                            .iter()
                            .map(|r| r.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ));
        }
        if s.endpoints.is_empty() {
            o.push_str(&format!(
                "   no endpoints{}\n",
                s.no_endpoints.map(|v| format!(": {v}")).unwrap_or_default()
            ));
        }
        for e in &s.endpoints {
            o.push_str(&format!(
                "   endpoint {:<24} {:>10}  {:<26}{}{}\n",
                fmt_sock(e.ip, e.port),
                e.probability
                    .map(|p| format!("{:.6}%", p * 100.0))
                    .unwrap_or_else(|| "-".into()),
                escape_str(&e.chain),
                if e.local {
                    format!(
                        " local ({:.6}%)",
                        e.local_probability.unwrap_or(0.0) * 100.0
                    )
                } else {
                    String::new()
                },
                if e.chain_verified {
                    ""
                } else {
                    " (chain hash not confirmed)"
                }
            ));
        }
    }
    o
}

fn addr_col(n: &Option<Neg<ipnet::IpNet>>, any: &str) -> String {
    match n {
        None => any.to_string(),
        Some(n) => {
            let a = if n.value.prefix_len() == n.value.max_prefix_len() {
                n.value.addr().to_string()
            } else {
                n.value.to_string()
            };
            format!("{}{a}", if n.negated { "!" } else { "" })
        }
    }
}

/// Every chain like `iptables -t TABLE -nvL` (the match column shows the matches in save syntax).
pub fn list_text(rs: &Ruleset) -> String {
    let mut o = String::new();
    let any = if rs.family == Some(crate::netfilter::Family::Ipv6) {
        "::/0"
    } else {
        "0.0.0.0/0"
    };
    for t in &rs.tables {
        o.push_str(&format!("# table {}\n", t.name));
        for c in &t.chains {
            let refs = t
                .chains
                .iter()
                .flat_map(|x| &x.rules)
                .filter(|r| {
                    r.spec
                        .target
                        .as_ref()
                        .and_then(|t| t.chain_ref())
                        .is_some_and(|x| x.name == c.name)
                })
                .count();
            match c.policy {
                Some(p) => o.push_str(&format!(
                    "Chain {} (policy {} {} packets, {} bytes)\n",
                    escape_str(&c.name),
                    if p == Policy::Accept {
                        "ACCEPT"
                    } else {
                        "DROP"
                    },
                    c.counters.packets,
                    c.counters.bytes
                )),
                None => o.push_str(&format!(
                    "Chain {} ({refs} references)\n",
                    escape_str(&c.name)
                )),
            }
            o.push_str(" num   pkts bytes target                     prot opt in     out    source               destination\n");
            for (i, r) in c.rules.iter().enumerate() {
                let s = &r.spec;
                let target = match &s.target {
                    None => String::new(),
                    Some(Target::Jump(x) | Target::Goto(x)) => x.name.to_string(),
                    Some(t) => print::rule_spec(
                        &crate::netfilter::RuleSpec {
                            target: Some(t.clone()),
                            ..Default::default()
                        },
                        rs.family,
                    )
                    .trim_start_matches("-j ")
                    .split(' ')
                    .next()
                    .unwrap_or("")
                    .to_string(),
                };
                let prot = s
                    .proto
                    .map(|p| format!("{}{}", if p.negated { "!" } else { "" }, p.value))
                    .unwrap_or_else(|| "all".into());
                let iface = |x: &Option<Neg<crate::netfilter::Iface>>| {
                    x.as_ref()
                        .map(|i| format!("{}{}", if i.negated { "!" } else { "" }, i.value.0))
                        .unwrap_or_else(|| "*".into())
                };
                let extra = print::rule_spec(
                    &crate::netfilter::RuleSpec {
                        matches: s.matches.clone(),
                        target: s.target.clone(),
                        ..Default::default()
                    },
                    rs.family,
                );
                let k = r.counters.unwrap_or_default();
                let _ = Protocol::Tcp;
                o.push_str(&format!(
                    " {:<4} {:>6} {:>5} {:<26} {:<4} --  {:<6} {:<6} {:<20} {:<20} {}\n",
                    i + 1,
                    k.packets,
                    k.bytes,
                    escape_str(&target),
                    prot,
                    escape_str(&iface(&s.in_iface)),
                    escape_str(&iface(&s.out_iface)),
                    addr_col(&s.src, any),
                    addr_col(&s.dst, any),
                    escape_str(&extra)
                ));
            }
            o.push('\n');
        }
    }
    o
}
