//! The guided tour's narration box. It only shows text; every key keeps working.

use crate::sanitize::escape_str;
use crate::ui::app::App;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let Some(ts) = &app.tour else { return };
    let t = &app.theme;
    let Some(step) = ts.tour.steps.get(ts.step) else { return };
    let title = format!(
        " Tour {}/{}: {} · [ prev · ] next · t hide ",
        ts.step + 1,
        ts.tour.steps.len(),
        escape_str(&step.title)
    );
    let lines: Vec<Line> = step.narration.trim().lines().map(|l| Line::raw(escape_str(l.trim_end()))).collect();
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(Block::default().borders(Borders::ALL).border_style(t.focus_border).title(title).title_style(t.title)),
        area,
    );
}
