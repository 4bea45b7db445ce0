//! The top line: program, scenario title, view tabs, what-if and replay state.

use crate::ui::app::App;
use crate::ui::keys::View;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let wide = area.width >= 120;
    let mut spans = vec![Span::styled(" hoptrace ", t.title)];
    for (i, v) in View::ALL.iter().enumerate() {
        let name = if wide || area.width >= 100 {
            v.title()
        } else {
            match v {
                View::Requests => "Req",
                View::Connections => "Conn",
                View::Rules => "Rules",
                View::Nodes => "Nodes",
            }
        };
        let text = format!(" {} {name} ", i + 1);
        spans.push(if *v == app.view {
            Span::styled(text, t.tab_active)
        } else {
            Span::raw(text)
        });
    }
    let mut right = String::new();
    if !app.whatif.is_recorded() {
        right.push_str(" WHAT-IF ");
    }
    if let Some(cursor) = app.replay.cursor() {
        let state = if app.replay.playing { "▶" } else { "⏸" };
        let shown = app.replay_visible();
        right.push_str(&format!(
            " {state} {}× {} {shown}/{} ",
            app.replay.speed(),
            micros_clock(cursor),
            app.snap.requests.len()
        ));
    } else if wide && !app.snap.scenario.title.is_empty() {
        right.push_str(&format!(
            " {} ",
            crate::sanitize::escape_str(&app.snap.scenario.title)
        ));
    }
    let used: usize = spans.iter().map(Span::width).sum();
    let room = (area.width as usize).saturating_sub(used);
    let right = crate::ui::text::fit(&right, room);
    let pad = room.saturating_sub(unicode_width::UnicodeWidthStr::width(right.as_str()));
    spans.push(Span::raw(" ".repeat(pad)));
    spans.push(Span::styled(
        right,
        if app.whatif.is_recorded() {
            t.dim
        } else {
            t.moved
        },
    ));
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// `HH:MM:SS.mmm` of a µs epoch time.
fn micros_clock(us: i64) -> String {
    let ms = us.div_euclid(1000);
    let s = ms.div_euclid(1000);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s.div_euclid(3600).rem_euclid(24),
        s.div_euclid(60).rem_euclid(60),
        s.rem_euclid(60),
        ms.rem_euclid(1000)
    )
}
