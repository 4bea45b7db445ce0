//! The selected request's journey as a diagram: client → ALB (mode, bucket → node) → the ingress
//! node's netfilter (each chain and rule number, the statistic cascade, recent checks) → DNAT →
//! SNAT → pod (node, zone). Every line that states a fact carries its evidence mark.

use crate::journey::model::{Evidence, RequestJourney};
use crate::journey::snapshot::{RequestDetail, RuleOutcome, alb_mode_name};
use crate::sanitize::escape_str;
use crate::ui::app::{App, Pane};
use crate::ui::render::pane_block;
use crate::ui::text::{self, abbrev_chain, prob, rule_action, short_chain};
use crate::ui::theme::{Theme, evidence_mark, evidence_word};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let focused = app.focus == Pane::Side;
    let Some(r) = app.selected_request() else {
        f.render_widget(
            Paragraph::new("no request selected").block(pane_block(
                app,
                " Journey ".into(),
                focused,
            )),
            area,
        );
        return;
    };
    let title = format!(" Journey #{} ", r.id);
    let width = area.width.saturating_sub(2) as usize;
    let full = text::wrap_indented(diagram_lines(app, r, width), width);
    let rows = full.len();
    // When the whole diagram does not fit and the pane is not focused, one line per hop.
    let lines = if !focused && rows > area.height.saturating_sub(2) as usize {
        text::wrap_indented(compact_lines(app, r), width)
    } else {
        full
    };
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((app.diagram_scroll, 0))
            .block(pane_block(app, title, focused)),
        area,
    );
}

fn mark(app: &App, e: Evidence) -> Span<'static> {
    Span::styled(format!("{} ", evidence_mark(e)), app.theme.evidence(e))
}

/// The diagram's lines for request `r` in a pane `width` columns wide.
#[must_use]
pub fn diagram_lines(app: &App, r: &RequestJourney, width: usize) -> Vec<Line<'static>> {
    let t = &app.theme;
    let chain_name = |c: &str| {
        if width >= 90 {
            escape_str(c)
        } else {
            escape_str(&abbrev_chain(c))
        }
    };
    let pipe = || Span::styled(" │  ", t.dim);
    let arrow = |label: &str, style: Style| {
        vec![
            Span::styled(" ▼ ", t.dim),
            Span::styled(label.to_string(), style),
        ]
    };
    let detail: Option<&RequestDetail> = app.snap.details.get(&r.id);
    let node = r.node.as_deref().map(escape_str);
    let mut out: Vec<Line> = Vec::new();

    out.push(header_line(r, t));
    out.push(Line::from(vec![
        Span::styled(" ● ", t.dim),
        Span::styled(format!("Client {}", text::endpoint(&r.client)), t.title),
    ]));

    // ALB
    let mut alb_line = arrow(&format!("ALB {}", text::endpoint(&r.frontend)), t.title);
    if let Some(a) = &r.alb {
        alb_line.push(Span::styled(
            format!(" · {} · {:?}", alb_mode_name(a.mode), a.hash).to_lowercase(),
            t.dim,
        ));
    }
    out.push(Line::from(alb_line));
    match &r.alb {
        Some(a) => {
            if let (Some(b), Some(n)) = (a.bucket, &a.predicted_node) {
                out.push(Line::from(vec![
                    pipe(),
                    mark(app, Evidence::Modeled),
                    Span::raw(format!("model: bucket {b} → {}", escape_str(n))),
                ]));
            }
            match &a.observed_node {
                Some(n) => {
                    let agree = match &a.predicted_node {
                        Some(p) if p == n => " (model agrees)",
                        Some(_) => " (model differs)",
                        None => "",
                    };
                    out.push(Line::from(vec![
                        pipe(),
                        mark(app, Evidence::Observed),
                        Span::raw(format!(
                            "reached {} in {}{agree}",
                            escape_str(n),
                            escape_str(&r.capture)
                        )),
                    ]));
                }
                None => out.push(Line::from(vec![
                    pipe(),
                    mark(app, Evidence::Modeled),
                    Span::styled("no capture shows the ingress node".to_string(), t.dim),
                ])),
            }
        }
        None => out.push(Line::from(vec![
            pipe(),
            Span::styled("no load balancer model for this request".to_string(), t.dim),
        ])),
    }

    // Netfilter on the ingress node
    out.push(Line::from(arrow(
        &format!(
            "{} netfilter",
            node.clone().unwrap_or_else(|| "node ?".into())
        ),
        t.title,
    )));
    match detail.filter(|d| !d.chain_walk.is_empty()) {
        Some(d) => {
            // Steps grouped by the hook they ran in, each group naming its table, in the order
            // a forwarded packet meets them: PREROUTING (raw, nat) → routing → FORWARD (filter)
            // → POSTROUTING (nat). A KUBE-* chain belongs to the group of the hook that jumped.
            let mut group: Option<(String, String)> = None;
            for s in &d.chain_walk {
                if let Some(hook) = builtin_hook(&s.chain) {
                    let key = (s.table.clone(), hook.to_string());
                    if group.as_ref() != Some(&key) {
                        if group.as_ref().is_some_and(|(_, h)| h == "PREROUTING")
                            && hook != "PREROUTING"
                        {
                            out.push(Line::from(vec![
                                pipe(),
                                Span::styled(
                                    "┄ routing decision (on the DNAT address)".to_string(),
                                    t.dim,
                                ),
                            ]));
                        }
                        out.push(Line::from(vec![
                            pipe(),
                            Span::styled(
                                format!("┄ {hook} · {} table", escape_str(&s.table)),
                                t.dim,
                            ),
                        ]));
                        group = Some(key);
                    }
                }
                let head = format!("{} #{}", chain_name(&s.chain), s.rule);
                let p = s
                    .probability
                    .map(|p| format!(" p={}", prob(p)))
                    .unwrap_or_default();
                match &s.outcome {
                    RuleOutcome::Matched => {
                        let act = rule_action(&s.text)
                            .map(|a| escape_str(&a))
                            .unwrap_or_default();
                        let act = if width >= 90 {
                            act
                        } else {
                            shorten_targets(&act)
                        };
                        out.push(Line::from(vec![
                            pipe(),
                            mark(app, s.evidence),
                            Span::raw(format!("{head}{p} ")),
                            Span::styled(format!("→ {act}"), t.matched),
                        ]));
                    }
                    RuleOutcome::Statistic { taken } => {
                        // Under an endpoint the packets show, the branch is what the kernel must
                        // have done; otherwise it is one draw of the model.
                        let known = s.evidence != Evidence::Modeled;
                        let (sym, what) = match (*taken, known) {
                            (true, true) => ("✓", "kernel took it"),
                            (false, true) => ("✗", "kernel passed it"),
                            (true, false) => ("✓", "model's draw"),
                            (false, false) => ("✗", "not in model's draw"),
                        };
                        let mut spans = vec![
                            pipe(),
                            mark(app, s.evidence),
                            Span::raw(format!("{head}{p} ")),
                            Span::styled(
                                format!("{sym} {what}"),
                                if *taken { t.matched } else { t.not_matched },
                            ),
                        ];
                        if *taken && let Some(a) = rule_action(&s.text) {
                            let a = if width >= 90 {
                                escape_str(&a)
                            } else {
                                shorten_targets(&escape_str(&a))
                            };
                            spans.push(Span::styled(format!(" → {a}"), t.matched));
                        }
                        out.push(Line::from(spans));
                    }
                    // A `recent --rcheck` that missed is why the cascade ran (sessionAffinity):
                    // shown here; other rules that did not match are in the detail pane (Enter).
                    RuleOutcome::NotMatched { .. } if s.text.contains("--rcheck") => {
                        let table = s
                            .text
                            .split_whitespace()
                            .skip_while(|w| *w != "--name")
                            .nth(1)
                            .map(&chain_name)
                            .unwrap_or_default();
                        out.push(Line::from(vec![
                            pipe(),
                            mark(app, s.evidence),
                            Span::raw(format!("{head} ")),
                            Span::styled(format!("✗ recent: client not in {table}"), t.not_matched),
                        ]));
                    }
                    RuleOutcome::NotMatched { .. } | RuleOutcome::NotReached => {}
                }
            }
            for rc in &d.recent {
                let hit = match (rc.op.as_str(), rc.hit) {
                    ("set", false) => "client added",
                    ("set", true) => "client's entry refreshed",
                    (_, true) => "hit",
                    (_, false) => "miss",
                };
                out.push(Line::from(vec![
                    pipe(),
                    mark(app, Evidence::Affinity),
                    Span::raw(format!(
                        "recent {} {} {}: {hit}",
                        escape_str(&rc.op),
                        chain_name(&rc.name),
                        rc.address
                    )),
                ]));
            }
        }
        None if !r.path.is_empty() => {
            for p in &r.path {
                out.push(Line::from(vec![
                    pipe(),
                    Span::raw(format!("{} #{}", chain_name(&p.chain), p.rule)),
                ]));
            }
            out.push(Line::from(vec![
                pipe(),
                Span::styled("(no chain walk detail for this request)".to_string(), t.dim),
            ]));
        }
        None => out.push(Line::from(vec![
            pipe(),
            Span::styled(
                "no rules matched (no rule dump for this node?)".to_string(),
                t.dim,
            ),
        ])),
    }

    // DNAT
    match &r.endpoint {
        Some(e) => out.push(Line::from(vec![
            Span::styled(" ▼ ", t.dim),
            Span::styled(format!("DNAT → {}:{} ", e.ip, e.port), t.title),
            mark(app, e.evidence),
            Span::styled(
                format!(
                    "{} (p={} for a new connection)",
                    evidence_word(e.evidence),
                    prob(e.probability)
                ),
                t.dim,
            ),
        ])),
        None => {
            out.push(Line::from(arrow(
                "DNAT: not observed; reachable endpoints:",
                t.title,
            )));
            for c in &r.candidates {
                out.push(Line::from(vec![
                    pipe(),
                    mark(app, c.evidence),
                    Span::raw(format!(
                        "{}:{} p={} via {}",
                        c.ip,
                        c.port,
                        prob(c.probability),
                        chain_name(&c.chain)
                    )),
                ]));
            }
        }
    }
    // SNAT
    match &r.masquerade {
        Some(m) => {
            let mut spans = vec![
                Span::styled(" ▼ ", t.dim),
                Span::styled(
                    format!("SNAT (MASQUERADE) → {} ", text::endpoint(m)),
                    t.title,
                ),
            ];
            if let Some(e) = detail.and_then(|d| d.masquerade_evidence) {
                spans.push(mark(app, e));
                spans.push(Span::styled(
                    if e == Evidence::Observed {
                        "observed".to_string()
                    } else {
                        "modelled".to_string()
                    },
                    t.dim,
                ));
            }
            out.push(Line::from(spans));
            out.push(Line::from(vec![
                pipe(),
                Span::styled(
                    "the pod sees this address, not the client's".to_string(),
                    t.dim,
                ),
            ]));
        }
        None => out.push(Line::from(vec![
            Span::styled(" ▼ ", t.dim),
            Span::styled(
                "no SNAT: the pod sees the client address".to_string(),
                t.dim,
            ),
        ])),
    }
    // Pod
    match &r.pod {
        Some(p) => {
            let name = p
                .name
                .as_deref()
                .map(escape_str)
                .unwrap_or_else(|| "pod ?".into());
            let ev = r
                .endpoint
                .as_ref()
                .map_or(Evidence::Modeled, |e| e.evidence);
            out.push(Line::from(vec![
                Span::styled(" ■ ", t.dim),
                Span::styled(format!("Pod {name} "), t.title),
                mark(app, ev),
            ]));
            let mut place = format!("{}", p.ip);
            if let Some(n) = &p.node {
                place.push_str(&format!(" on {}", escape_str(n)));
            }
            if let Some(z) = &p.zone {
                place.push_str(&format!(" · zone {}", escape_str(z)));
            }
            out.push(Line::from(vec![Span::raw("    "), Span::raw(place)]));
            let mut hops = Vec::new();
            if r.crossed_node == Some(true) {
                hops.push(format!(
                    "⇄ crossed node {} → {}",
                    node.clone().unwrap_or_default(),
                    p.node.as_deref().map(escape_str).unwrap_or_default()
                ));
            } else if r.crossed_node == Some(false) {
                hops.push("stayed on the ingress node".to_string());
            }
            if r.crossed_zone == Some(true) {
                hops.push("⇄ crossed zone".into());
            }
            if !hops.is_empty() {
                out.push(Line::from(vec![
                    Span::raw("    "),
                    Span::styled(hops.join(" · "), t.warn),
                ]));
            }
        }
        None => out.push(Line::from(vec![
            Span::styled(" ■ ", t.dim),
            Span::styled("pod unknown".to_string(), t.dim),
        ])),
    }
    // What-if
    if let Some(w) = &r.whatif {
        let to = format!(
            "{} / {}",
            w.node
                .as_deref()
                .map(escape_str)
                .unwrap_or_else(|| "?".into()),
            w.pod
                .as_deref()
                .map(escape_str)
                .unwrap_or_else(|| "?".into())
        );
        let (sym, style, what) = if w.moved {
            ("» ", t.moved, "moved")
        } else {
            ("  ", t.dim, "unchanged")
        };
        out.push(Line::from(vec![
            Span::styled(sym.to_string(), style),
            mark(app, Evidence::Modeled),
            Span::styled(
                format!(
                    "what-if ({}): {to} — {what}",
                    app.snap.whatif.settings.describe()
                ),
                style,
            ),
        ]));
    }
    out
}

/// The netfilter hook of a built-in chain (a group header in the diagram), `None` for user chains.
fn builtin_hook(chain: &str) -> Option<&'static str> {
    Some(match chain {
        "PREROUTING" => "PREROUTING",
        "INPUT" => "INPUT",
        "FORWARD" => "FORWARD",
        "OUTPUT" => "OUTPUT",
        "POSTROUTING" => "POSTROUTING",
        _ => return None,
    })
}

/// `DNAT → …` stays; chain targets are abbreviated for narrow panes.
fn shorten_targets(action: &str) -> String {
    if action.starts_with("KUBE-") {
        abbrev_chain(action)
    } else {
        action.to_string()
    }
}

/// The journey in one line per hop, for a pane too short for the whole diagram:
/// client → ALB, the node it reached, the chains (with the statistic probability taken), DNAT and
/// SNAT, the pod, the what-if.
#[must_use]
pub fn compact_lines(app: &App, r: &RequestJourney) -> Vec<Line<'static>> {
    let t = &app.theme;
    let node = r
        .node
        .as_deref()
        .map(escape_str)
        .unwrap_or_else(|| "?".into());
    let mut out = Vec::new();
    out.push(header_line(r, t));
    let mode = r
        .alb
        .as_ref()
        .map(|a| format!(" ({})", alb_mode_name(a.mode)))
        .unwrap_or_default();
    out.push(Line::raw(format!(
        "Client {} → ALB {}{mode}",
        text::endpoint(&r.client),
        text::endpoint(&r.frontend)
    )));
    let mut alb = vec![Span::styled("▼ ", t.dim)];
    if let Some(a) = &r.alb {
        if let (Some(b), Some(n)) = (a.bucket, &a.predicted_node) {
            alb.push(mark(app, Evidence::Modeled));
            alb.push(Span::raw(format!("bucket {b} → {} · ", escape_str(n))));
        }
        match &a.observed_node {
            Some(n) => {
                alb.push(mark(app, Evidence::Observed));
                alb.push(Span::raw(format!("reached {}", escape_str(n))));
            }
            None => alb.push(Span::styled(
                format!("ingress {node}: no capture shows it"),
                t.dim,
            )),
        }
    }
    out.push(Line::from(alb));
    let detail = app.snap.details.get(&r.id);
    let mut hops: Vec<(String, String)> = Vec::new();
    for p in &r.path {
        if matches!(
            p.chain.as_str(),
            "PREROUTING" | "POSTROUTING" | "KUBE-MARK-MASQ" | "KUBE-POSTROUTING"
        ) {
            continue;
        }
        let step = detail.and_then(|d| {
            d.chain_walk
                .iter()
                .find(|s| s.chain == p.chain && s.rule == p.rule)
        });
        let stat = step.and_then(|s| s.probability);
        // The rule that chose the endpoint (a statistic draw or a `recent --rcheck`) keeps its
        // evidence mark: ◐ the packets say the kernel took it, ? the model's draw, ∞ affinity.
        let mut p_text = String::new();
        if let Some(s) =
            step.filter(|s| s.probability.is_some() || s.evidence == Evidence::Affinity)
        {
            p_text.push_str(evidence_mark(s.evidence));
        }
        if let Some(pr) = stat {
            p_text.push_str(&format!(" p={}", prob(pr)));
        }
        // `recent --rcheck` rules that missed before it: why the cascade ran.
        let misses = detail.map_or(0, |d| {
            d.chain_walk
                .iter()
                .filter(|s| {
                    s.chain == p.chain
                        && s.rule < p.rule
                        && matches!(s.outcome, RuleOutcome::NotMatched { .. })
                        && s.text.contains("--rcheck")
                })
                .count()
        });
        if misses > 0 {
            p_text.push_str(&format!(" ({misses}✗recent)"));
        }
        let name = short_chain(&p.chain);
        // Consecutive rules of one chain read as `FW-K4VU#1,2`.
        match hops.last_mut() {
            Some((last, text)) if *last == name => text.push_str(&format!(",{}{p_text}", p.rule)),
            _ => hops.push((name.clone(), format!("{name}#{}{p_text}", p.rule))),
        }
    }
    out.push(Line::from(vec![
        Span::styled("▼ ", t.dim),
        Span::raw(format!(
            "{node}: {}",
            escape_str(
                &hops
                    .iter()
                    .map(|h| h.1.as_str())
                    .collect::<Vec<_>>()
                    .join(" → ")
            )
        )),
    ]));
    let mut nat = vec![Span::styled("▼ ", t.dim)];
    match &r.endpoint {
        Some(e) => {
            nat.push(mark(app, e.evidence));
            nat.push(Span::raw(format!("DNAT → {}:{}", e.ip, e.port)));
        }
        None => nat.push(Span::styled(
            format!("DNAT not observed: {} candidates", r.candidates.len()),
            t.modeled,
        )),
    }
    if let Some(m) = &r.masquerade {
        nat.push(Span::raw(format!(" · SNAT → {}", text::endpoint(m))));
    }
    out.push(Line::from(nat));
    match &r.pod {
        Some(p) => {
            let ev = r
                .endpoint
                .as_ref()
                .map_or(Evidence::Modeled, |e| e.evidence);
            let mut place = String::new();
            if let Some(n) = &p.node {
                place.push_str(&format!(" on {}", escape_str(n)));
            }
            if let Some(z) = &p.zone {
                place.push_str(&format!(" zone {}", escape_str(z)));
            }
            let mut spans = vec![
                Span::styled("■ ", t.dim),
                mark(app, ev),
                Span::raw(format!(
                    "{}{place}",
                    p.name
                        .as_deref()
                        .map(escape_str)
                        .unwrap_or_else(|| p.ip.to_string())
                )),
            ];
            let mut crossed = Vec::new();
            if r.crossed_node == Some(true) {
                crossed.push("node");
            }
            if r.crossed_zone == Some(true) {
                crossed.push("zone");
            }
            if !crossed.is_empty() {
                spans.push(Span::styled(
                    format!(" ⇄ crossed {}", crossed.join("+")),
                    t.warn,
                ));
            }
            out.push(Line::from(spans));
        }
        None => out.push(Line::styled("■ pod unknown", t.dim)),
    }
    if let Some(w) = &r.whatif {
        let style = if w.moved { t.moved } else { t.dim };
        out.push(Line::styled(
            format!(
                "{}what-if: {} / {}{}",
                if w.moved { "» " } else { "  " },
                w.node
                    .as_deref()
                    .map(escape_str)
                    .unwrap_or_else(|| "?".into()),
                w.pod
                    .as_deref()
                    .map(escape_str)
                    .unwrap_or_else(|| "?".into()),
                if w.moved { " (moved)" } else { "" }
            ),
            style,
        ));
    }
    out.push(Line::styled(
        "Tab: the whole diagram · Enter: detail",
        t.dim,
    ));
    out
}

/// `#3 GET / → 200  conn 4 · 10:47:49.948123`: the first line of both diagram forms.
fn header_line(r: &RequestJourney, t: &Theme) -> Line<'static> {
    let status = r.status.map(|s| format!(" → {s}")).unwrap_or_default();
    Line::from(vec![
        Span::styled(
            format!(
                "#{} {} {}{status}",
                r.id,
                escape_str(&r.method),
                escape_str(&r.target)
            ),
            t.title,
        ),
        Span::styled(
            format!("  conn {} · {}", r.connection, text::clock_us(&r.time)),
            t.dim,
        ),
    ])
}
