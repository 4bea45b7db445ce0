//! The status line (filter input, last message, what-if summary, scenario totals) and the key
//! hints line under it.

use crate::journey::snapshot::alb_mode_name;
use crate::sanitize::escape_str;
use crate::ui::app::App;
use crate::ui::keys::View;
use crate::ui::text::fit;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let width = area.width as usize;
    let line = if let Some(text) = &app.filter.editing {
        let count = match app.view {
            View::Connections => format!("{} connections", app.connection_rows().len()),
            View::Rules => format!("{} chains", app.chain_list().len()),
            _ => format!("{} requests", app.request_rows().len()),
        };
        Line::from(vec![
            Span::styled("/", t.key),
            Span::raw(escape_str(text)),
            Span::styled("▏", t.key),
            Span::styled(format!("  {count} · Enter keep · Esc clear"), t.dim),
        ])
    } else if let Some(msg) = &app.message {
        Line::from(Span::styled(fit(&escape_str(msg), width), t.warn))
    } else if app.pending.is_some() && !app.loading {
        let pct = app
            .progress
            .as_ref()
            .filter(|p| p.2 > 0)
            .map(|p| format!(" {:.0}%", p.1 as f64 * 100.0 / p.2 as f64))
            .unwrap_or_default();
        Line::from(Span::styled(
            format!(
                "recomputing the journeys for what-if: {}…{pct}",
                app.whatif.describe()
            ),
            t.dim,
        ))
    } else if !app.snap.whatif.settings.is_recorded() {
        Line::from(Span::styled(whatif_summary(app), t.moved))
    } else if !app.filter.query.is_empty() {
        let text = format!(
            "filter \"{}\": {} of {} requests, {} of {} connections · n/N next/prev · Esc clears",
            escape_str(&app.filter.query),
            app.request_rows().len(),
            app.snap.requests.len(),
            app.connection_rows().len(),
            app.snap.connections.len()
        );
        Line::from(Span::raw(fit(&text, width)))
    } else {
        let s = &app.snap;
        let narrow = width < 120;
        // Client connections are the journeys' connections (one per client 5-tuple, however many
        // captures saw it); the per-capture legs are view 2's rows.
        let client_conns = app.client_connections;
        let mut text = if narrow {
            format!(
                "recorded · {} requests on {} client connection{}",
                s.requests.len(),
                client_conns,
                if client_conns == 1 { "" } else { "s" }
            )
        } else {
            format!(
                "recorded · {} requests on {} client connection{} ({} legs in the captures) · {} node{}, {} pod{}",
                s.requests.len(),
                client_conns,
                if client_conns == 1 { "" } else { "s" },
                s.connections.len(),
                s.distribution.nodes.len(),
                if s.distribution.nodes.len() == 1 {
                    ""
                } else {
                    "s"
                },
                s.distribution.pods.len(),
                if s.distribution.pods.len() == 1 {
                    ""
                } else {
                    "s"
                }
            )
        };
        let mut spans = vec![];
        if let Some(w) = s.warnings.first() {
            text.push_str(" · ");
            spans.push(Span::raw(text));
            let n = s.warnings.len();
            let head = if n == 1 {
                "⚠ 1 warning (? lists it)".to_string()
            } else {
                format!("⚠ {n} warnings (? lists them)")
            };
            let first = if narrow {
                String::new()
            } else {
                format!(": {}", escape_str(w))
            };
            spans.push(Span::styled(format!("{head}{first}"), t.warn));
        } else {
            spans.push(Span::raw(text));
        }
        Line::from(spans)
    };
    f.render_widget(
        Paragraph::new(line).wrap(ratatui::widgets::Wrap { trim: true }),
        area,
    );
}

/// True when the status line shows the what-if summary and it needs a second line.
#[must_use]
pub fn wants_two_lines(app: &App, width: u16) -> bool {
    app.filter.editing.is_none()
        && app.message.is_none()
        && app.pending.is_none()
        && !app.snap.whatif.settings.is_recorded()
        && unicode_width::UnicodeWidthStr::width(whatif_summary(app).as_str()) > width as usize
}

/// "sessionAffinity ClientIP (what-if): 41 of 60 requests moved; 71.246.222.12 → testapp-…-zp4ns
/// only; …" — the what-if settings of the snapshot on screen and what they changed.
#[must_use]
pub fn whatif_summary(app: &App) -> String {
    let snap = &app.snap;
    let settings = &snap.whatif.settings;
    let mut parts = Vec::new();
    for (svc, on) in &settings.affinity {
        let mode = if *on { "ClientIP" } else { "None" };
        if snap.services.len() > 1 {
            parts.push(format!("sessionAffinity {mode} for {}", escape_str(svc)));
        } else {
            parts.push(format!("sessionAffinity {mode}"));
        }
    }
    if let Some(m) = settings.alb_mode {
        parts.push(format!("ALB mode {}", alb_mode_name(m)));
    } else if let Some(m) = snap.whatif.summary.as_ref().and_then(|s| s.alb_mode)
        && m != app.recorded_alb_mode()
    {
        // The model switched the ALB along with the affinity (AKS does: ClientIP → SourceIP).
        parts.push(format!("ALB {} with it", alb_mode_name(m)));
    }
    let mut out = format!("{} (what-if)", parts.join(", "));
    if let Some(sum) = &snap.whatif.summary {
        out.push_str(&format!(
            ": {} of {} requests moved",
            sum.requests_moved, sum.requests_total
        ));
        // Busiest clients first.
        let mut clients: Vec<_> = sum.clients.iter().collect();
        clients.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.client.cmp(&b.client)));
        for c in clients {
            match (c.pods.as_slice(), c.nodes.as_slice()) {
                ([pod], _) => out.push_str(&format!("; {} → {} only", c.client, short_pod(pod))),
                (pods, [node]) => out.push_str(&format!(
                    "; {} → {} only ({} pods)",
                    c.client,
                    escape_str(node),
                    pods.len()
                )),
                (pods, nodes) => out.push_str(&format!(
                    "; {} → {} nodes, {} pods",
                    c.client,
                    nodes.len(),
                    pods.len()
                )),
            }
        }
    }
    out
}

/// `testapp-7f4b8f5c9d-zp4ns` → `testapp-…-zp4ns` (the deployment and the replica suffix).
#[must_use]
pub fn short_pod(name: &str) -> String {
    let name = escape_str(name);
    let parts: Vec<&str> = name.split('-').collect();
    if parts.len() >= 3 {
        format!("{}-…-{}", parts[0], parts[parts.len() - 1])
    } else {
        name
    }
}

pub fn render_hints(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let mut hints: Vec<(&str, &str)> = vec![("?", "help"), ("q", "quit")];
    if app.detail.is_some() && app.view == View::Requests {
        hints.extend([("j/k", "scroll"), ("Esc", "back")]);
    } else {
        match app.view {
            View::Requests => {
                hints.extend([("j/k", "move"), ("Enter", "detail"), ("Tab", "diagram")])
            }
            View::Connections => {
                hints.extend([("j/k", "move"), ("Enter", "its request"), ("Tab", "pane")])
            }
            View::Rules => hints.extend([
                ("Enter", "jump into chain"),
                ("Esc", "back"),
                ("h/l", "node"),
                ("Tab", "chains"),
            ]),
            View::Nodes => hints.extend([("j/k", "select bar")]),
        }
    }
    hints.extend([
        ("a", "affinity"),
        ("m", "ALB mode"),
        ("/", "filter"),
        ("Space", "replay"),
        ("1-4", "views"),
    ]);
    match &app.tour {
        Some(tour) if tour.shown => hints.extend([("[ ]", "tour step"), ("t", "hide tour")]),
        Some(_) => hints.push(("t", "tour")),
        None => {}
    }
    let mut spans = Vec::new();
    let mut used = 0usize;
    for (k, what) in hints {
        let w = k.chars().count() + what.chars().count() + 3;
        if used + w > area.width as usize {
            break;
        }
        spans.push(Span::styled(format!(" {k}"), t.key));
        spans.push(Span::styled(format!(" {what} "), t.dim));
        used += w;
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}
