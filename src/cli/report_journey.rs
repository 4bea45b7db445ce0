//! `hoptrace report` (requests): every HTTP request with its whole journey — ALB bucket and node
//! (model beside observed), chain path, endpoint with its evidence, pod, SNAT, cross-node/zone
//! hops, the what-if — as a table (with a summary block), JSON, NDJSON or CSV.
//!
//! Deterministic for a given input and `--seed`: flows, requests and every listing are in a fixed
//! order, and the only randomness is the seeded `statistic` draws.

use super::report::{Format, ReportArgs};
use super::{EXIT_OK, EXIT_UNUSABLE, EXIT_WARNINGS};
use crate::capture::CaptureOptions;
use crate::journey::model::{Evidence, RequestJourney};
use crate::journey::run::{Balance, Journeys, RunOptions, Share, run, whatif_settings};
use crate::journey::scenario::Scenario;
use serde::Serialize;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

/// A record as `report` prints it: interface.md's fields plus extensions.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_shorten_without_splitting_characters() {
        assert_eq!(short_chain("KUBE-SVC-K4VUERBNKSOP4S25"), "KUBE-SVC-K4VU…");
        // 16 bytes whose 4th byte is inside a character.
        assert_eq!(short_chain("KUBE-SVC-aéééééééX"), "KUBE-SVC-aééé…");
        assert_eq!(
            short_chain("KUBE-SVC-ééééééééK4VU"),
            "KUBE-SVC-ééééééééK4VU"
        );
        assert_eq!(short_chain("PREROUTING"), "PREROUTING");
    }

    #[test]
    fn csv_quotes_separators() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("x"), "x");
    }
}

#[derive(Serialize)]
struct Record<'a> {
    #[serde(flatten)]
    request: &'a RequestJourney,
    /// `observed` when a post-NAT packet shows the source, `modeled` otherwise.
    masquerade_evidence: Option<Evidence>,
    /// The kube-proxy Service port reached.
    service: Option<&'a str>,
    /// Notes on this connection (pre-capture start, unpredictable ports, contradictions).
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    notes: &'a [String],
}

/// Load the scenario named by the arguments (the embedded one without inputs).
pub fn load_scenario(args: &ReportArgs) -> Result<Scenario, String> {
    let opts = CaptureOptions {
        keep_packets: false,
        ..Default::default()
    };
    if args.inputs.is_empty()
        && args.captures.is_empty()
        && args.rules.is_empty()
        && args.clusters.is_empty()
    {
        return super::embedded::scenario(opts).map_err(|e| e.to_string());
    }
    super::scenario::load(
        &args.inputs,
        &args.captures,
        &args.rules,
        &args.clusters,
        opts,
    )
    .map_err(|e| e.to_string())
}

/// Run options from the arguments.
pub fn run_options(sc: &Scenario, args: &ReportArgs) -> RunOptions {
    let affinity = args.affinity.map(|a| a == super::report::OnOff::On);
    RunOptions {
        seed: args.seed,
        whatif: whatif_settings(sc, affinity, args.alb_mode),
        full_walk: false,
    }
}

/// The request report.
pub fn run_report(
    args: &ReportArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let sc = match load_scenario(args) {
        Ok(s) => s,
        Err(e) => {
            writeln!(err, "hoptrace: error: {e}")?;
            return Ok(ExitCode::from(EXIT_UNUSABLE));
        }
    };
    let js = run(&sc, &run_options(&sc, args));
    let mut warnings = sc.warnings.clone();
    warnings.extend(js.warnings.iter().cloned());
    if sc.captures.is_empty() {
        warnings.push(format!(
            "no capture among the inputs ({} rules file(s), {} cluster input(s)): no requests to report",
            sc.rules.len(),
            sc.inputs.len().saturating_sub(sc.rules.len())
        ));
    }
    let embedded = args.inputs.is_empty()
        && args.captures.is_empty()
        && args.rules.is_empty()
        && args.clusters.is_empty();
    if embedded && args.format == Format::Table {
        writeln!(
            out,
            "# Embedded walkthrough: the lab recording captures/{} (real kernel, three replicas).\n# Run `hoptrace report DIR|FILE…` on your own captures, rules and cluster files.",
            super::embedded::EMBEDDED_NAME
        )?;
    }
    write(&js, args.format, &warnings, out)?;
    out.flush()?;
    for w in &warnings {
        writeln!(err, "hoptrace: warning: {}", crate::sanitize::escape_str(w))?;
    }
    Ok(ExitCode::from(if warnings.is_empty() {
        EXIT_OK
    } else {
        EXIT_WARNINGS
    }))
}

fn records<'a>(js: &'a Journeys) -> Vec<Record<'a>> {
    js.requests
        .iter()
        .zip(&js.sources)
        .map(|(r, s)| {
            let j = &js.flow_journeys[s.flow];
            Record {
                request: r,
                masquerade_evidence: j.masquerade_evidence,
                service: j.service.as_deref(),
                notes: &j.notes,
            }
        })
        .collect()
}

/// The summary block (JSON form).
#[derive(Serialize)]
struct Summary<'a> {
    connections: usize,
    requests: usize,
    evidence: std::collections::BTreeMap<&'static str, u64>,
    balance: &'a Balance,
    #[serde(skip_serializing_if = "Option::is_none")]
    whatif: Option<&'a crate::journey::run::WhatIfOutcome>,
}

fn evidence_name(e: Option<Evidence>) -> &'static str {
    match e {
        Some(Evidence::Observed) => "observed",
        Some(Evidence::Inferred) => "inferred",
        Some(Evidence::Affinity) => "affinity",
        Some(Evidence::Modeled) | None => "modeled",
    }
}

fn summary(js: &Journeys) -> Summary<'_> {
    let mut evidence = std::collections::BTreeMap::new();
    for r in &js.requests {
        *evidence
            .entry(evidence_name(r.endpoint.as_ref().map(|e| e.evidence)))
            .or_insert(0) += 1;
    }
    let connections = js
        .sources
        .iter()
        .map(|s| s.flow)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    Summary {
        connections,
        requests: js.requests.len(),
        evidence,
        balance: &js.balance,
        whatif: js.whatif.as_ref(),
    }
}

fn write(
    js: &Journeys,
    format: Format,
    warnings: &[String],
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let recs = records(js);
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(
                &mut *out,
                &serde_json::json!({ "requests": recs, "summary": summary(js), "warnings": warnings }),
            )?;
            writeln!(out)?;
        }
        Format::Ndjson => {
            for r in &recs {
                serde_json::to_writer(&mut *out, r)?;
                writeln!(out)?;
            }
        }
        Format::Csv => write_csv(&recs, out)?,
        Format::Table => {
            write_table(&recs, out)?;
            write_summary(js, out)?;
        }
    }
    Ok(())
}

/// A CSV cell (already escaped text).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Names from rules, cluster files and kubectl output are untrusted: escape them for a terminal
/// (method, target and host are escaped when the record is made).
fn esc(s: &str) -> String {
    crate::sanitize::escape_str(s)
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn path_text(r: &RequestJourney) -> String {
    r.path
        .iter()
        .map(|s| format!("{}:{}", s.chain, s.rule))
        .collect::<Vec<_>>()
        .join(" > ")
}

const CSV_HEADER: &str = "id,connection,time,capture,client_ip,client_port,frontend_ip,frontend_port,method,target,host,status,\
alb_mode,alb_hash,alb_bucket,alb_predicted_node,alb_observed_node,node,path,endpoint_ip,endpoint_port,endpoint_chain,\
endpoint_probability,endpoint_evidence,candidates,pod_name,pod_ip,pod_node,pod_zone,masquerade_ip,masquerade_port,\
masquerade_evidence,crossed_node,crossed_zone,service,whatif_node,whatif_pod,whatif_moved";

fn write_csv(recs: &[Record<'_>], out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "{CSV_HEADER}")?;
    for rec in recs {
        let r = rec.request;
        let alb = r.alb.as_ref();
        let ep = r.endpoint.as_ref();
        let pod = r.pod.as_ref();
        let cands = r
            .candidates
            .iter()
            .map(|c| format!("{}={:.4}", SocketAddr::new(c.ip, c.port), c.probability))
            .collect::<Vec<_>>()
            .join(" ");
        let fields: Vec<String> = vec![
            r.id.to_string(),
            r.connection.to_string(),
            r.time.clone(),
            csv_field(&r.capture),
            r.client.ip.to_string(),
            r.client.port.to_string(),
            r.frontend.ip.to_string(),
            r.frontend.port.to_string(),
            csv_field(&r.method),
            csv_field(&r.target),
            csv_field(r.host.as_deref().unwrap_or("")),
            opt(r.status),
            opt(alb.map(|a| a.mode.as_str())),
            opt(alb.map(|a| a.hash.as_str())),
            opt(alb.and_then(|a| a.bucket)),
            csv_field(&esc(&opt(alb.and_then(|a| a.predicted_node.clone())))),
            csv_field(&esc(&opt(alb.and_then(|a| a.observed_node.clone())))),
            csv_field(&esc(&opt(r.node.clone()))),
            csv_field(&esc(&path_text(r))),
            opt(ep.map(|e| e.ip)),
            opt(ep.map(|e| e.port)),
            csv_field(&esc(&opt(ep.map(|e| e.chain.clone())))),
            opt(ep
                .map(|e| e.probability)
                .filter(|p| p.is_finite())
                .map(|p| format!("{p:.6}"))),
            opt(ep.map(|e| evidence_name(Some(e.evidence)))),
            csv_field(&esc(&cands)),
            csv_field(&esc(&opt(pod.and_then(|p| p.name.clone())))),
            opt(pod.map(|p| p.ip)),
            csv_field(&esc(&opt(pod.and_then(|p| p.node.clone())))),
            csv_field(&esc(&opt(pod.and_then(|p| p.zone.clone())))),
            opt(r.masquerade.map(|m| m.ip)),
            opt(r.masquerade.map(|m| m.port)),
            opt(rec.masquerade_evidence.map(|e| evidence_name(Some(e)))),
            opt(r.crossed_node),
            opt(r.crossed_zone),
            csv_field(&esc(rec.service.unwrap_or(""))),
            csv_field(&esc(&opt(r.whatif.as_ref().and_then(|w| w.node.clone())))),
            csv_field(&esc(&opt(r.whatif.as_ref().and_then(|w| w.pod.clone())))),
            opt(r.whatif.as_ref().map(|w| w.moved)),
        ];
        writeln!(out, "{}", fields.join(","))?;
    }
    Ok(())
}

fn table(out: &mut dyn Write, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let n = header.len();
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &[&str]| -> std::io::Result<()> {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}  ", width = w[i]));
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    line(out, header)?;
    for r in rows {
        line(out, &r.iter().map(String::as_str).collect::<Vec<_>>())?;
    }
    Ok(())
}

fn short_chain(c: &str) -> String {
    // KUBE-SVC-K4VUERBNKSOP4S25 → KUBE-SVC-K4VU…
    match c.rsplit_once('-') {
        Some((head, hash)) if hash.len() == 16 && head.starts_with("KUBE-") => {
            format!("{head}-{}…", hash.chars().take(4).collect::<String>())
        }
        _ => c.to_string(),
    }
}

fn write_table(recs: &[Record<'_>], out: &mut dyn Write) -> std::io::Result<()> {
    let whatif = recs.iter().any(|r| r.request.whatif.is_some());
    let mut header = vec![
        "ID",
        "CONN",
        "TIME",
        "CLIENT",
        "FRONTEND",
        "REQUEST",
        "STATUS",
        "ALB BUCKET→NODE (MODEL)",
        "INGRESS (OBSERVED)",
        "DECISION",
        "ENDPOINT",
        "EVIDENCE",
        "POD",
        "POD NODE/ZONE",
        "SNAT",
        "X-NODE",
        "X-ZONE",
    ];
    if whatif {
        header.extend(["WHAT-IF NODE", "WHAT-IF POD", "MOVED"]);
    }
    let yn = |b: Option<bool>| {
        b.map_or_else(
            || "?".to_string(),
            |b| if b { "yes".into() } else { "no".into() },
        )
    };
    let rows: Vec<Vec<String>> = recs
        .iter()
        .map(|rec| {
            let r = rec.request;
            let alb = r.alb.as_ref().map_or_else(
                || "-".to_string(),
                |a| {
                    format!(
                        "{}→{}",
                        opt(a.bucket),
                        a.predicted_node.clone().unwrap_or_else(|| "?".into())
                    )
                },
            );
            let observed = r
                .alb
                .as_ref()
                .and_then(|a| a.observed_node.clone())
                .or_else(|| {
                    // NodePort and other non-LB traffic: the node is still observed when a node
                    // capture saw it.
                    r.node.clone().filter(|_| r.alb.is_none())
                });
            let decision = r
                .path
                .iter()
                .rev()
                .find(|s| {
                    s.chain.starts_with("KUBE-SVC-")
                        || s.chain.starts_with("KUBE-SVL-")
                        || s.chain.starts_with("KUBE-XLB-")
                })
                .map_or_else(
                    || "-".to_string(),
                    |s| format!("{}:{}", short_chain(&s.chain), s.rule),
                );
            let (endpoint, evidence) = match &r.endpoint {
                Some(e) => (
                    SocketAddr::new(e.ip, e.port).to_string(),
                    evidence_name(Some(e.evidence)).to_string(),
                ),
                None if !r.candidates.is_empty() => (
                    r.candidates
                        .iter()
                        .map(|c| {
                            format!(
                                "{} {:.0}%",
                                SocketAddr::new(c.ip, c.port),
                                c.probability * 100.0
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(" | "),
                    "modeled".into(),
                ),
                None => ("-".into(), "-".into()),
            };
            let pod = r.pod.as_ref();
            let snat = match (r.masquerade, rec.masquerade_evidence) {
                (Some(m), Some(Evidence::Observed)) => SocketAddr::new(m.ip, m.port).to_string(),
                (Some(m), _) => format!("{} (model)", SocketAddr::new(m.ip, m.port)),
                (None, _) => "-".into(),
            };
            let mut row = vec![
                r.id.to_string(),
                r.connection.to_string(),
                r.time.get(11..).unwrap_or(&r.time).to_string(),
                SocketAddr::new(r.client.ip, r.client.port).to_string(),
                SocketAddr::new(r.frontend.ip, r.frontend.port).to_string(),
                format!("{} {}", r.method, r.target),
                r.status.map_or_else(|| "-".into(), |s| s.to_string()),
                alb,
                observed.unwrap_or_else(|| "-".into()),
                decision,
                endpoint,
                evidence,
                pod.and_then(|p| p.name.clone())
                    .unwrap_or_else(|| pod.map_or("-".into(), |p| p.ip.to_string())),
                pod.map_or_else(
                    || "-".into(),
                    |p| {
                        format!(
                            "{}/{}",
                            p.node.as_deref().unwrap_or("?"),
                            p.zone.as_deref().unwrap_or("?")
                        )
                    },
                ),
                snat,
                yn(r.crossed_node),
                yn(r.crossed_zone),
            ];
            if whatif {
                let w = r.whatif.as_ref();
                row.push(w.and_then(|w| w.node.clone()).unwrap_or_else(|| "-".into()));
                row.push(w.and_then(|w| w.pod.clone()).unwrap_or_else(|| "-".into()));
                row.push(w.map_or_else(
                    || "-".into(),
                    |w| {
                        if w.moved {
                            "moved".into()
                        } else {
                            "same".into()
                        }
                    },
                ));
            }
            // Column 5 (the request) is escaped already; the names elsewhere come from inputs.
            row.into_iter()
                .enumerate()
                .map(|(i, c)| if i == 5 { c } else { esc(&c) })
                .collect()
        })
        .collect();
    table(out, &header, &rows)
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn share_table(out: &mut dyn Write, what: &str, rows: &[Share]) -> std::io::Result<()> {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|s| {
            vec![
                esc(&s.name),
                esc(s.node.as_deref().unwrap_or("-")),
                esc(s.zone.as_deref().unwrap_or("-")),
                s.connections.to_string(),
                s.requests.to_string(),
                pct(s.share),
                s.expected_share.map_or_else(|| "-".into(), pct),
            ]
        })
        .collect();
    table(
        out,
        &[
            what,
            "NODE",
            "ZONE",
            "CONNECTIONS",
            "REQUESTS",
            "SHARE",
            "EXPECTED (MODEL)",
        ],
        &body,
    )
}

fn fit_line(name: &str, fit: Option<&crate::journey::stats::GoodnessOfFit>) -> String {
    match fit {
        Some(f) => format!(
            "{name}: chi-squared {:.3}, {} degree(s) of freedom, p = {:.4}{}",
            f.statistic,
            f.degrees_of_freedom,
            f.p_value,
            if f.approximation_reliable() {
                ""
            } else {
                " (few connections: the approximation is rough)"
            }
        ),
        None => format!("{name}: no model to test against"),
    }
}

fn write_summary(js: &Journeys, out: &mut dyn Write) -> std::io::Result<()> {
    let s = summary(js);
    writeln!(out)?;
    writeln!(
        out,
        "Summary: {} request(s) on {} connection(s)",
        s.requests, s.connections
    )?;
    let ev: Vec<String> = s.evidence.iter().map(|(k, v)| format!("{k} {v}")).collect();
    writeln!(out, "Endpoint evidence: {}", ev.join(", "))?;
    let b = &js.balance;
    if let Some(x) = b.cross_node_share {
        writeln!(
            out,
            "Crossed a node: {} of connections; crossed a zone: {}",
            pct(x),
            b.cross_zone_share.map_or("?".into(), pct)
        )?;
    }
    writeln!(out)?;
    share_table(out, "INGRESS NODE", &b.nodes)?;
    writeln!(
        out,
        "{}",
        fit_line("Nodes vs the ALB model", b.node_fit.as_ref())
    )?;
    writeln!(out)?;
    share_table(out, "POD", &b.pods)?;
    writeln!(
        out,
        "{}",
        fit_line("Pods vs the rules' probabilities", b.pod_fit.as_ref())
    )?;
    if let Some(w) = &js.whatif {
        writeln!(out)?;
        writeln!(
            out,
            "What-if ({}; ALB mode in force: {}): {} of {} request(s) moved (model)",
            esc(&w.settings),
            w.alb_mode.map_or("-", |m| m.as_str()),
            w.requests_moved,
            w.requests_total
        )?;
        let rows: Vec<Vec<String>> = w
            .clients
            .iter()
            .map(|c| {
                vec![
                    c.client.to_string(),
                    c.requests.to_string(),
                    c.pods.len().to_string(),
                    esc(&c.pods.join(" ")),
                    esc(&c.nodes.join(" ")),
                ]
            })
            .collect();
        table(
            out,
            &["CLIENT", "REQUESTS", "PODS", "PODS REACHED", "NODES"],
            &rows,
        )?;
        writeln!(out)?;
        share_table(out, "WHAT-IF NODE", &w.balance.nodes)?;
        writeln!(out)?;
        share_table(out, "WHAT-IF POD", &w.balance.pods)?;
        if let Some(x) = w.balance.cross_zone_share {
            writeln!(
                out,
                "What-if cross-zone share: {} (recorded {})",
                pct(x),
                b.cross_zone_share.map_or("?".into(), pct)
            )?;
        }
    }
    Ok(())
}
