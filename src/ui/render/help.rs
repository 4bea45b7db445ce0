//! `?`: the keys of the current view and what the marks mean, on top of the body.

use crate::journey::model::Evidence;
use crate::ui::app::App;
use crate::ui::keys::help_for;
use crate::ui::theme::evidence_mark;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let w = area.width.min(96);
    let mut lines: Vec<Line> = Vec::new();
    for b in help_for(app.view) {
        lines.push(Line::from(vec![
            Span::styled(format!(" {:<8}", b.label), t.key),
            Span::raw(b.help),
        ]));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(" Marks (also without colour)", t.title));
    for (e, what) in [
        (Evidence::Observed, "observed: a capture shows it"),
        (
            Evidence::Inferred,
            "inferred: follows from what the captures show (e.g. every rule on the way to a DNAT \
             a packet shows: the kernel must have walked them)",
        ),
        (
            Evidence::Affinity,
            "affinity: the replayed `recent` table (sessionAffinity) decided it",
        ),
        (
            Evidence::Modeled,
            "modelled: nothing observed it; the rules' probabilities / the ALB hash model only",
        ),
    ] {
        lines.push(Line::from(vec![
            Span::styled(format!(" {:<8}", evidence_mark(e)), t.evidence(e)),
            Span::raw(what),
        ]));
    }
    for (m, what) in [
        (
            "N Z S",
            "flags: crossed Node, crossed Zone, SNAT (MASQUERADE); · = no",
        ),
        ("»", "what-if moved this request (before → after)"),
        ("✓ ✗", "rule matched / did not match (detail says why)"),
    ] {
        lines.push(Line::from(vec![
            Span::styled(format!(" {m:<8}"), t.key),
            Span::raw(what),
        ]));
    }
    if !app.snap.warnings.is_empty() {
        lines.push(Line::raw(""));
        lines.push(Line::styled(
            format!(" Warnings ({})", app.snap.warnings.len()),
            t.title,
        ));
        for w in &app.snap.warnings {
            lines.push(Line::styled(
                format!(" ⚠ {}", crate::sanitize::escape_str(w)),
                t.warn,
            ));
        }
    }
    // Long lines continue under their text, not under the key column.
    let lines = crate::ui::text::wrap_indented(lines, w.saturating_sub(2) as usize);
    let h = (lines.len() as u16 + 2).min(area.height);
    let x = area.x + (area.width - w) / 2;
    let y = area.y + (area.height - h) / 2;
    let popup = Rect {
        x,
        y,
        width: w,
        height: h,
    };
    f.render_widget(Clear, popup);
    let more = lines.len() as u16 + 2 > area.height;
    let title = format!(
        " Help: {} view — ? or Esc closes{} ",
        app.view.title(),
        if more { " · j/k scroll" } else { "" }
    );
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((app.help_scroll, 0))
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .border_style(t.focus_border)
                    .title(title)
                    .title_style(t.title),
            ),
        popup,
    );
}
