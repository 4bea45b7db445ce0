//! The guided tour's narration box. It only shows text; every key keeps working.

use crate::sanitize::escape_str;
use crate::ui::app::App;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

/// Rows the narration box wants at `width` columns (borders included).
#[must_use]
pub fn height(app: &App, width: u16) -> u16 {
    let Some(step) = app.tour.as_ref().and_then(|t| t.tour.steps.get(t.step)) else {
        return 0;
    };
    let inner = width.saturating_sub(2).max(1) as usize;
    // Word wrap takes a little more than a plain division.
    let rows: usize = step
        .narration
        .trim()
        .lines()
        .map(|l| (l.chars().count() + 8).div_ceil(inner).max(1))
        .sum();
    rows as u16 + 2
}

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let Some(ts) = &app.tour else { return };
    let t = &app.theme;
    let Some(step) = ts.tour.steps.get(ts.step) else {
        return;
    };
    let title = format!(
        " Tour {}/{}: {} · [ prev · ] next · t hide ",
        ts.step + 1,
        ts.tour.steps.len(),
        escape_str(&step.title)
    );
    let lines: Vec<Line> = step
        .narration
        .trim()
        .lines()
        .map(|l| Line::raw(escape_str(l.trim_end())))
        .collect();
    f.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: true }).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(t.focus_border)
                .title(title)
                .title_style(t.title),
        ),
        area,
    );
}
