//! Enter on a request: the packets of its connection, the HTTP request and response heads, the
//! journey, and every rule the packet was checked against with the exact rule text and, for the
//! rules that did not match, why.

use crate::journey::model::Evidence;
use crate::journey::snapshot::{Direction, RuleOutcome};
use crate::sanitize::{escape_bytes, escape_str};
use crate::ui::app::App;
use crate::ui::render::{journey, pane_block};
use crate::ui::text::{self, head_lines, prob};
use crate::ui::theme::evidence_mark;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let Some(r) = app.selected_request() else {
        return;
    };
    let width = area.width.saturating_sub(2) as usize;
    let section = |name: &str| Line::styled(format!("── {name} ──"), t.title);
    let mut lines: Vec<Line> = Vec::new();
    let detail = app.snap.details.get(&r.id);

    lines.push(section("Journey"));
    lines.extend(journey::diagram_lines(app, r, width));

    let Some(d) = detail else {
        lines.push(Line::raw(""));
        lines.push(Line::styled(
            "No packet or rule detail was recorded for this request.",
            t.dim,
        ));
        draw(f, area, app, r.id, lines);
        return;
    };

    lines.push(Line::raw(""));
    lines.push(section(&format!(
        "Packets of connection {} ({})",
        r.connection,
        d.packets.len()
    )));
    // On narrow terminals the capture name moves to a line of its own when it changes, and the
    // time loses its microseconds, so one packet stays one line.
    let narrow = width < 110;
    let mut last_capture: Option<&str> = None;
    for p in &d.packets {
        let dir = match p.direction {
            Direction::ToServer => "→",
            Direction::ToClient => "←",
        };
        let info = escape_bytes(&p.info);
        let addrs = format!(
            "{dir} {} > {} [{}] {}",
            text::endpoint(&p.src),
            text::endpoint(&p.dst),
            escape_str(&p.flags),
            p.payload_len
        );
        if narrow {
            if last_capture != Some(p.capture.as_str()) {
                lines.push(Line::styled(
                    format!("  in {}:", escape_str(&p.capture)),
                    t.dim,
                ));
                last_capture = Some(p.capture.as_str());
            }
            lines.push(Line::from(vec![
                Span::styled(format!("{} ", text::clock(&p.time)), t.dim),
                Span::raw(format!("{addrs} {info}")),
            ]));
        } else {
            lines.push(Line::from(vec![
                Span::styled(format!("{} ", text::clock_us(&p.time)), t.dim),
                Span::raw(format!(
                    "{:<16} {addrs} {info}",
                    text::fit(&escape_str(&p.capture), 16)
                )),
            ]));
        }
    }
    lines.push(Line::raw(""));
    lines.push(section("HTTP request (as captured)"));
    if d.request_head.is_empty() {
        lines.push(Line::styled("(not captured)", t.dim));
    }
    lines.extend(head_lines(&d.request_head).into_iter().map(Line::raw));
    lines.push(Line::raw(""));
    lines.push(section("HTTP response (as captured)"));
    match &d.response_head {
        Some(h) => lines.extend(head_lines(h).into_iter().map(Line::raw)),
        None => lines.push(Line::styled("(no response captured)", t.dim)),
    }
    lines.push(Line::raw(""));
    lines.push(section(&format!(
        "Every rule checked on {} (table · chain #rule)",
        r.node
            .as_deref()
            .map(escape_str)
            .unwrap_or_else(|| "?".into())
    )));
    for s in &d.chain_walk {
        let (sym, style, why) = match &s.outcome {
            RuleOutcome::Matched => ("✓", t.matched, String::new()),
            RuleOutcome::Statistic { taken: true } => (
                "✓",
                t.matched,
                if s.evidence == Evidence::Modeled {
                    format!(
                        "statistic p={}: taken in the model's draw",
                        prob(s.probability.unwrap_or(1.0))
                    )
                } else {
                    format!(
                        "statistic p={}: the endpoint the packets show means the kernel took it",
                        prob(s.probability.unwrap_or(1.0))
                    )
                },
            ),
            RuleOutcome::Statistic { taken: false } => (
                "✗",
                t.not_matched,
                if s.evidence == Evidence::Modeled {
                    format!(
                        "statistic p={}: not taken in the model's draw",
                        prob(s.probability.unwrap_or(1.0))
                    )
                } else {
                    format!(
                        "statistic p={}: the endpoint the packets show means the kernel passed it",
                        prob(s.probability.unwrap_or(1.0))
                    )
                },
            ),
            RuleOutcome::NotMatched { reason } => ("✗", t.not_matched, escape_str(reason)),
            RuleOutcome::NotReached => ("·", t.not_matched, "not reached".to_string()),
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{sym} "), style),
            Span::styled(
                format!("{} ", evidence_mark(s.evidence)),
                t.evidence(s.evidence),
            ),
            Span::styled(
                format!(
                    "{} · {} #{} ",
                    escape_str(&s.table),
                    escape_str(&s.chain),
                    s.rule
                ),
                t.title,
            ),
            Span::styled(escape_str(&s.text), style),
        ]));
        if !why.is_empty() {
            lines.push(Line::from(vec![
                Span::raw("      "),
                Span::styled(why, t.dim),
            ]));
        }
    }
    if !d.recent.is_empty() {
        lines.push(Line::raw(""));
        lines.push(section("recent (sessionAffinity) lookups"));
        for rc in &d.recent {
            let secs = rc
                .seconds
                .map(|s| format!(" --seconds {s}"))
                .unwrap_or_default();
            let seen = rc
                .last_seen
                .as_deref()
                .map(|s| format!(", last seen {}", text::clock_us(s)))
                .unwrap_or_default();
            lines.push(Line::raw(format!(
                "{} {} --{}{secs} {}: {}{seen}",
                evidence_mark(crate::journey::model::Evidence::Affinity),
                escape_str(&rc.name),
                escape_str(&rc.op),
                rc.address,
                if rc.hit {
                    "in the list"
                } else {
                    "not in the list"
                }
            )));
        }
    }
    draw(f, area, app, r.id, lines);
}

fn draw(f: &mut Frame, area: Rect, app: &App, id: u64, lines: Vec<Line<'static>>) {
    let lines = crate::ui::text::wrap_indented(lines, area.width.saturating_sub(2) as usize);
    // Never scroll past the last line (PgDn at the end keeps the end in view).
    let last_top = lines
        .len()
        .saturating_sub(area.height.saturating_sub(2) as usize);
    let scroll = app
        .detail
        .unwrap_or(0)
        .min(u16::try_from(last_top).unwrap_or(u16::MAX));
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0))
            .block(pane_block(
                app,
                format!(" Request #{id} — detail (j/k scroll, Esc back) "),
                true,
            )),
        area,
    );
}
