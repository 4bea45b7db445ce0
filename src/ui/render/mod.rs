//! The view: a pure function of the [`App`] model, one module per widget (trippy's layout).
//!
//! ```text
//! ┌ header: hoptrace · scenario · 1 Requests 2 Connections 3 Rules 4 Nodes/pods · replay ┐
//! │ body: the current view                                                              │
//! │   Requests:  list │ journey diagram   (≥ 120 columns side by side, else stacked;    │
//! │              below 16 rows the diagram collapses and Tab swaps it in)              │
//! │   Connections: list │ its requests    Rules: chains │ rules    Nodes/pods: bars    │
//! │   Enter: detail replaces the body; ?: help on top; loading: a progress gauge       │
//! ├ tour narration (when a tour is shown)                                              ┤
//! │ status: filter input / last message / what-if summary                              │
//! └ key hints                                                                          ┘
//! ```

pub mod connections;
pub mod detail;
pub mod header;
pub mod help;
pub mod journey;
pub mod nodes;
pub mod requests;
pub mod rules;
pub mod status;
pub mod tour;

use crate::ui::app::App;
use crate::ui::keys::View;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Block, Borders, Gauge, Paragraph, Wrap};

/// Draw the whole screen.
pub fn view(f: &mut Frame, app: &App) {
    let area = f.area();
    let tour_h = match &app.tour {
        Some(t) if t.shown => tour::height(app, area.width).min((area.height / 3).max(4)),
        _ => 0,
    };
    // The what-if summary may take two lines on a narrow terminal.
    let status_h = if status::wants_two_lines(app, area.width) {
        2
    } else {
        1
    };
    let [head, body, tour_area, status_area, hints] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(tour_h),
        Constraint::Length(status_h),
        Constraint::Length(1),
    ])
    .areas(area);
    header::render(f, head, app);
    if app.loading {
        render_loading(f, body, app);
    } else if app.detail.is_some() && app.view == View::Requests {
        detail::render(f, body, app);
    } else {
        match app.view {
            View::Requests => requests::render(f, body, app),
            View::Connections => connections::render(f, body, app),
            View::Rules => rules::render(f, body, app),
            View::Nodes => nodes::render(f, body, app),
        }
    }
    if tour_h > 0 {
        tour::render(f, tour_area, app);
    }
    status::render(f, status_area, app);
    status::render_hints(f, hints, app);
    if app.help {
        help::render(f, body, app);
    }
}

fn render_loading(f: &mut Frame, area: Rect, app: &App) {
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(app.theme.border)
        .title(" Loading ");
    let inner = block.inner(area);
    f.render_widget(block, area);
    let [text, gauge] =
        Layout::vertical([Constraint::Length(2), Constraint::Length(1)]).areas(inner);
    let (phase, done, total) = app
        .progress
        .clone()
        .unwrap_or_else(|| ("starting".into(), 0, 0));
    let what = crate::sanitize::escape_str(&app.source_name);
    f.render_widget(
        Paragraph::new(format!(
            "Reading {what} — {}",
            crate::sanitize::escape_str(&phase)
        ))
        .wrap(Wrap { trim: true }),
        text,
    );
    let ratio = if total == 0 {
        0.0
    } else {
        (done as f64 / total as f64).clamp(0.0, 1.0)
    };
    let label = if total == 0 {
        "…".to_string()
    } else {
        format!("{:.0}% ({done} of {total})", ratio * 100.0)
    };
    f.render_widget(
        Gauge::default()
            .gauge_style(app.theme.bar)
            .ratio(ratio)
            .label(label),
        gauge,
    );
}

/// A bordered block whose border shows whether the pane has the keys.
pub(crate) fn pane_block<'a>(app: &App, title: String, focused: bool) -> Block<'a> {
    let style = if focused {
        app.theme.focus_border
    } else {
        app.theme.border
    };
    let title = if focused {
        format!("▸{title}")
    } else {
        title
    };
    Block::default()
        .borders(Borders::ALL)
        .border_style(style)
        .title(title)
        .title_style(app.theme.title)
}

/// First row to draw so that `selected` is inside a window of `height` rows, starting from the
/// previous frame's `offset` (scrolls only as much as needed).
pub(crate) fn scroll_offset(offset: usize, selected: usize, height: usize, len: usize) -> usize {
    if height == 0 {
        return 0;
    }
    let mut off = offset.min(len.saturating_sub(height));
    if selected < off {
        off = selected;
    } else if selected >= off + height {
        off = selected + 1 - height;
    }
    off
}
