//! View 4: requests per ingress node and per pod as bars against the expected share (the ALB's even
//! split, the statistic cascade's 1/N), the chi-squared p-value of each, and a sparkline of the
//! selected bar's requests over time.

use crate::journey::snapshot::ShareStat;
use crate::sanitize::escape_str;
use crate::ui::app::App;
use crate::ui::render::pane_block;
use crate::ui::text::fit;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Sparkline};

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let d = &app.snap.distribution;
    let bar_rows = (d.nodes.len() + d.pods.len() + 2).max(1) as u16 + 2;
    let bars_h = bar_rows
        .min(area.height.saturating_sub(4))
        .max(area.height.min(4));
    let [bars, spark] =
        Layout::vertical([Constraint::Length(bars_h), Constraint::Min(0)]).areas(area);
    let block = pane_block(
        app,
        " Requests per node and per pod vs expected share ".into(),
        true,
    );
    let inner = block.inner(bars);
    f.render_widget(block, bars);
    let mut lines = Vec::new();
    let label_w = d
        .nodes
        .iter()
        .chain(&d.pods)
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(4)
        .min(if inner.width >= 100 { 28 } else { 16 });
    lines.push(section_line(app, "Ingress node (ALB)", d.node_p_value));
    for (i, s) in d.nodes.iter().enumerate() {
        lines.push(bar_line(
            app,
            s,
            label_w,
            inner.width as usize,
            i == app.nodes_sel,
        ));
    }
    lines.push(section_line(app, "Pod (statistic cascade)", d.pod_p_value));
    for (i, s) in d.pods.iter().enumerate() {
        lines.push(bar_line(
            app,
            s,
            label_w,
            inner.width as usize,
            d.nodes.len() + i == app.nodes_sel,
        ));
    }
    if d.nodes.is_empty() && d.pods.is_empty() {
        lines.push(Line::styled("no requests", app.theme.dim));
    }
    // Keep the selected bar visible on short terminals.
    let sel_line = if app.nodes_sel < d.nodes.len() {
        app.nodes_sel + 1
    } else {
        app.nodes_sel + 2
    };
    let scroll = sel_line.saturating_sub(inner.height.saturating_sub(1) as usize) as u16;
    f.render_widget(Paragraph::new(lines).scroll((scroll, 0)), inner);

    let selected = d.nodes.iter().chain(&d.pods).nth(app.nodes_sel);
    let title = match selected {
        Some(s) => format!(
            " Requests over time: {} ({} s per column) ",
            escape_str(&s.name),
            d.bucket_seconds
        ),
        None => " Requests over time ".to_string(),
    };
    let block = pane_block(app, title, false);
    let data: &[u64] = selected.map_or(&[], |s| &s.timeline);
    let inner = block.inner(spark);
    f.render_widget(block, spark);
    let start = data.len().saturating_sub(inner.width as usize);
    f.render_widget(
        Sparkline::default()
            .data(&data[start..])
            .style(app.theme.bar),
        inner,
    );
}

fn section_line(app: &App, name: &str, p: Option<f64>) -> Line<'static> {
    let t = &app.theme;
    let verdict = match p {
        Some(p) if p < 0.05 => format!("χ² p = {p:.3}: unlikely under the expected share"),
        Some(p) => format!("χ² p = {p:.3}: consistent with the expected share"),
        None => "χ² p = n/a".to_string(),
    };
    Line::from(vec![
        Span::styled(format!("{name}  "), t.title),
        Span::styled(verdict, t.dim),
    ])
}

fn bar_line(
    app: &App,
    s: &ShareStat,
    label_w: usize,
    width: usize,
    selected: bool,
) -> Line<'static> {
    let t = &app.theme;
    let zone = s
        .zone
        .as_deref()
        .map(|z| format!("z{}", escape_str(z)))
        .unwrap_or_default();
    let name = escape_str(&s.name);
    let name = if name.chars().count() > label_w {
        crate::ui::render::status::short_pod(&s.name)
    } else {
        name
    };
    let label = format!(
        "{} {:<lw$} {:<3}",
        if selected { "▸" } else { " " },
        fit(&name, label_w),
        zone,
        lw = label_w
    );
    let tail = format!(
        " {:>6} {:>5.1}% exp {:>4.1}%",
        s.count,
        s.share * 100.0,
        s.expected_share * 100.0
    );
    let bar_w = width
        .saturating_sub(label.chars().count() + tail.chars().count() + 2)
        .max(4);
    let bar = bar_text(s.share, s.expected_share, bar_w);
    let label_style = if selected { t.selected } else { t.base };
    Line::from(vec![
        Span::styled(label, label_style),
        Span::styled("│".to_string(), t.dim),
        Span::styled(bar, t.bar),
        Span::styled("│".to_string(), t.dim),
        Span::raw(tail),
    ])
}

/// A bar `width` cells wide filled to `share` (eighth blocks) with `┃` where the expected share is.
fn bar_text(share: f64, expected: f64, width: usize) -> String {
    const EIGHTHS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    let eighths = (share.clamp(0.0, 1.0) * width as f64 * 8.0).round() as usize;
    let exp_cell =
        ((expected.clamp(0.0, 1.0) * width as f64).round() as usize).min(width.saturating_sub(1));
    (0..width)
        .map(|i| {
            let filled = eighths.saturating_sub(i * 8).min(8);
            if i == exp_cell && expected > 0.0 {
                '┃'
            } else if filled == 8 {
                '█'
            } else if filled == 0 {
                '·'
            } else {
                EIGHTHS[filled]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn bar_marks_expected_share() {
        assert_eq!(super::bar_text(0.5, 0.25, 8), "██┃█····");
        assert_eq!(super::bar_text(0.0, 0.0, 4), "····");
    }
}
