//! View 1: one row per HTTP request, and the selected request's journey diagram beside it (wide
//! terminals) or under it (narrow ones; on short ones Tab swaps the diagram in).

use crate::journey::model::RequestJourney;
use crate::sanitize::escape_str;
use crate::ui::app::{App, Pane};
use crate::ui::render::{journey, pane_block, scroll_offset};
use crate::ui::text::{self, fit, pod_suffix, short_chain};
use crate::ui::theme::evidence_mark;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

/// Below this many rows the diagram does not fit under the list: one pane at a time.
const STACK_MIN_HEIGHT: u16 = 16;

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    if area.width >= 120 {
        let [list, diagram] =
            Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)])
                .areas(area);
        render_list(f, list, app);
        journey::render(f, diagram, app);
    } else if area.height >= STACK_MIN_HEIGHT {
        // The pane with the keys gets the larger share.
        let diagram_h = if app.focus == Pane::Side {
            area.height - 6
        } else {
            (area.height * 9 / 20).max(8)
        };
        let [list, diagram] =
            Layout::vertical([Constraint::Min(5), Constraint::Length(diagram_h)]).areas(area);
        render_list(f, list, app);
        journey::render(f, diagram, app);
    } else if app.focus == Pane::Side {
        journey::render(f, area, app);
    } else if area.height >= 13 && app.tour.as_ref().is_some_and(|t| t.shown) {
        // A tour's narration took the room (80×24): the selected row and the one-line-per-hop
        // journey still show, since the narration talks about them.
        let [list, diagram] =
            Layout::vertical([Constraint::Min(4), Constraint::Length(9)]).areas(area);
        render_list(f, list, app);
        journey::render(f, diagram, app);
    } else {
        render_list(f, area, app);
    }
}

struct Columns {
    wide: bool,
    client: usize,
    pod: usize,
}

fn render_list(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let rows = app.request_rows();
    let total = app.snap.requests.len();
    let mut title = format!(" Requests {}", rows.len());
    if rows.len() != total {
        title.push_str(&format!(" of {total}"));
    }
    if !app.filter.query.is_empty() {
        title.push_str(&format!(" · /{}", escape_str(&app.filter.query)));
    }
    title.push(' ');
    let block = pane_block(app, title, app.focus == Pane::Main);
    let inner = block.inner(area);
    f.render_widget(block, area);
    if inner.height < 2 || inner.width < 20 {
        return;
    }
    let width = inner.width as usize;
    let wide = width >= 90;
    // fixed: markers 2, id 5, time 13, flags 4, evidence 2 (+ separators)
    let fixed = 2 + 5 + 13 + 4 + 2 + if wide { 12 + 19 } else { 7 };
    let client = 22.min(width.saturating_sub(fixed + 10));
    let pod = width.saturating_sub(fixed + client).max(5);
    let cols = Columns { wide, client, pod };
    let height = inner.height as usize - 1;
    app.list_height.set(height);
    let off = scroll_offset(app.req_offset.get(), app.req_sel, height, rows.len());
    app.req_offset.set(off);

    let mut lines = vec![header_line(app, &cols)];
    for pos in off..(off + height).min(rows.len()) {
        let Some(r) = rows.get(pos).and_then(|i| app.snap.requests.get(i)) else {
            continue;
        };
        lines.push(row_line(app, r, &cols, pos == app.req_sel));
    }
    if rows.is_empty() {
        let why = if app.replay.is_active() {
            "replay: no request yet (Space plays, . steps)"
        } else if !app.filter.query.is_empty() {
            "no request matches the filter (Esc clears it)"
        } else {
            "no HTTP requests in this scenario"
        };
        lines.push(Line::styled(why, t.dim));
    }
    f.render_widget(Paragraph::new(lines), inner);
}

fn header_line(app: &App, c: &Columns) -> Line<'static> {
    let mut s = format!(
        "  {:>4} {:<12} {:<w$} ",
        "#",
        "time",
        "client",
        w = c.client
    );
    if c.wide {
        s.push_str(&format!("{:<11} {:<18} ", "ALB b→node", "chains"));
    } else {
        s.push_str(&format!("{:<6} ", "node"));
    }
    s.push_str(&format!(
        "{:<w$} {:<3} {}",
        "pod",
        "NZS",
        "e",
        w = c.pod.saturating_sub(2)
    ));
    Line::styled(s, app.theme.dim)
}

/// The chains a request passed, shortened: `FW→SVC→SEP-SHJO`.
#[must_use]
pub fn chain_summary(r: &RequestJourney) -> String {
    let mut out: Vec<String> = Vec::new();
    for p in &r.path {
        if matches!(
            p.chain.as_str(),
            "PREROUTING"
                | "OUTPUT"
                | "POSTROUTING"
                | "KUBE-SERVICES"
                | "KUBE-MARK-MASQ"
                | "KUBE-POSTROUTING"
                | "KUBE-NODEPORTS"
        ) {
            continue;
        }
        let s = short_chain(&p.chain);
        let s = if p.chain.starts_with("KUBE-SEP-") {
            s
        } else {
            s.split('-').next().unwrap_or(&s).to_string()
        };
        if out.last() != Some(&s) {
            out.push(s);
        }
    }
    escape_str(&out.join("→"))
}

fn row_line(app: &App, r: &RequestJourney, c: &Columns, selected: bool) -> Line<'static> {
    let t = &app.theme;
    let moved = r.whatif.as_ref().is_some_and(|w| w.moved);
    let marker = format!(
        "{}{}",
        if selected { "▸" } else { " " },
        if moved { "»" } else { " " }
    );
    let node = r
        .node
        .as_deref()
        .map(escape_str)
        .unwrap_or_else(|| "?".into());
    let mut mid = format!(
        "{:>4} {:<12} {:<w$} ",
        r.id,
        text::clock(&r.time),
        fit(&text::endpoint(&r.client), c.client),
        w = c.client
    );
    if c.wide {
        // A what-if that moves the request to another node shows `before→after` here.
        let new_node = r
            .whatif
            .as_ref()
            .filter(|w| w.moved)
            .and_then(|w| w.node.as_ref())
            .filter(|n| Some(*n) != r.node.as_ref());
        let alb = match (new_node, r.alb.as_ref().and_then(|a| a.bucket)) {
            (Some(n), _) => format!("{node}→{}", escape_str(n)),
            (None, Some(b)) => format!("b{b}→{node}"),
            (None, None) => node.clone(),
        };
        mid.push_str(&format!(
            "{:<11} {:<18} ",
            fit(&alb, 11),
            fit(&chain_summary(r), 18)
        ));
    } else {
        mid.push_str(&format!("{:<6} ", fit(&node, 6)));
    }
    let pod_w = c.pod.saturating_sub(2);
    let pod_name = |name: Option<&str>| -> String {
        let name = name.map(escape_str).unwrap_or_else(|| "?".into());
        let short = crate::ui::render::status::short_pod(&name);
        if name.chars().count() <= pod_w {
            name
        } else if short.chars().count() <= pod_w {
            short
        } else {
            pod_suffix(&name).to_string()
        }
    };
    let recorded_pod = r
        .pod
        .as_ref()
        .map(|p| p.name.clone().unwrap_or_else(|| p.ip.to_string()));
    let pod = match (&r.whatif, moved) {
        (Some(w), true) => {
            let before = recorded_pod
                .as_deref()
                .map(|p| pod_suffix(p).to_string())
                .unwrap_or_else(|| "?".into());
            let after = w
                .pod
                .as_deref()
                .map(|p| pod_suffix(p).to_string())
                .unwrap_or_else(|| "?".into());
            let text = if before == after {
                after
            } else {
                format!("{before} → {after}")
            };
            match &w.node {
                // Wide rows show the node change in the ALB column.
                Some(n) if Some(n) != r.node.as_ref() && !c.wide => {
                    escape_str(&format!("{text} via {n}"))
                }
                _ => escape_str(&text),
            }
        }
        _ => pod_name(recorded_pod.as_deref()),
    };
    let flag = |b: Option<bool>, ch: char| match b {
        Some(true) => ch,
        Some(false) => '·',
        None => '?',
    };
    let flags: String = [
        flag(r.crossed_node, 'N'),
        flag(r.crossed_zone, 'Z'),
        if r.masquerade.is_some() { 'S' } else { '·' },
    ]
    .iter()
    .collect();
    let ev = r.endpoint.as_ref().map(|e| e.evidence);
    let ev_mark = ev.map_or("?", evidence_mark);
    let base = if selected { t.selected } else { t.base };
    let pod_style = if moved { base.patch(t.moved) } else { base };
    let ev_style = if selected {
        base
    } else {
        ev.map_or(t.modeled, |e| t.evidence(e))
    };
    Line::from(vec![
        Span::styled(marker, if moved { base.patch(t.moved) } else { base }),
        Span::styled(mid, base),
        Span::styled(format!("{:<w$} ", fit(&pod, pod_w), w = pod_w), pod_style),
        Span::styled(format!("{flags} "), base),
        Span::styled(ev_mark.to_string(), ev_style),
    ])
}
