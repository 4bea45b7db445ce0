//! View 2: the TCP connections each capture saw, with the requests each carried — several requests
//! on one connection is keep-alive, and they share one 5-tuple, one ALB bucket, one pod.

use crate::journey::snapshot::{ConnectionState, ConnectionSummary, Initiator};
use crate::sanitize::escape_str;
use crate::ui::app::{App, Pane};
use crate::ui::render::{pane_block, scroll_offset};
use crate::ui::text::{self, fit, pod_suffix};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    if area.width >= 120 {
        let [list, side] =
            Layout::horizontal([Constraint::Percentage(62), Constraint::Percentage(38)])
                .areas(area);
        render_list(f, list, app);
        render_requests(f, side, app);
    } else if area.height >= 16 {
        let [list, side] =
            Layout::vertical([Constraint::Min(5), Constraint::Length(area.height * 2 / 5)])
                .areas(area);
        render_list(f, list, app);
        render_requests(f, side, app);
    } else if app.focus == Pane::Side {
        render_requests(f, area, app);
    } else {
        render_list(f, area, app);
    }
}

fn state_word(s: ConnectionState) -> &'static str {
    match s {
        ConnectionState::SynSent => "syn-sent",
        ConnectionState::Established => "open",
        ConnectionState::Closed => "closed",
        ConnectionState::Reset => "reset",
        ConnectionState::HalfClosed => "half-closed",
        ConnectionState::Unknown => "?",
    }
}

fn render_list(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let rows = app.connection_rows();
    let mut title = format!(" Connections {}", rows.len());
    if rows.len() != app.snap.connections.len() {
        title.push_str(&format!(" of {}", app.snap.connections.len()));
    }
    title.push(' ');
    let block = pane_block(app, title, app.focus == Pane::Main);
    let inner = block.inner(area);
    f.render_widget(block, area);
    if inner.height < 2 {
        return;
    }
    let wide = inner.width >= 96;
    let height = inner.height as usize - 1;
    app.list_height.set(height);
    let off = scroll_offset(app.conn_offset.get(), app.conn_sel, height, rows.len());
    app.conn_offset.set(off);
    let head = if wide {
        format!(
            "  {:>4} {:<22} {:<19} {:<10} {:>9} {:>11} {:<7} {}",
            "#",
            "client (initiator)",
            "server",
            "seen in",
            "pkts →/←",
            "bytes →/←",
            "state",
            "requests"
        )
    } else {
        format!(
            "  {:>3} {:<22} {:<19} {:<7} {:<6} {}",
            "#", "client", "server", "seen in", "state", "reqs"
        )
    };
    let mut lines = vec![Line::styled(head, t.dim)];
    for pos in off..(off + height).min(rows.len()) {
        let Some(c) = rows.get(pos).and_then(|i| app.snap.connections.get(i)) else {
            continue;
        };
        let selected = pos == app.conn_sel;
        let style = if selected { t.selected } else { t.base };
        let text = format!("{}{}", if selected { "▸" } else { " " }, row_text(c, wide));
        lines.push(Line::styled(text, style));
    }
    if rows.is_empty() {
        lines.push(Line::styled("no connections", t.dim));
    }
    f.render_widget(Paragraph::new(lines), inner);
}

/// The capture a leg was seen in, short: `node0-eth0.pcap` → `node0` (the lab's naming), other
/// names without their extension. The same connection appears once per capture that saw it.
fn capture_tag(capture: &str) -> String {
    let c = crate::sanitize::escape_str(capture);
    let c = c.rsplit('/').next().unwrap_or(&c).to_string();
    for suffix in ["-eth0.pcap", "-eth0.pcapng", ".pcapng", ".pcap"] {
        if let Some(stem) = c.strip_suffix(suffix) {
            return stem.to_string();
        }
    }
    c
}

fn row_text(c: &ConnectionSummary, wide: bool) -> String {
    let init = if c.initiator == Initiator::Inferred {
        "◐"
    } else {
        ""
    };
    let reqs = match c.requests.len() {
        0 => "none".to_string(),
        1 => format!("#{}", c.requests[0]),
        n => format!("{n} keep-alive #{}–{}", c.requests[0], c.requests[n - 1]),
    };
    if wide {
        format!(
            " {:>4} {:<22} {:<19} {:<10} {:>9} {:>11} {:<7} {reqs}",
            c.id,
            fit(&format!("{}{init}", text::endpoint(&c.client)), 22),
            fit(&text::endpoint(&c.server), 19),
            fit(&capture_tag(&c.capture), 10),
            format!("{}/{}", c.to_server.packets, c.to_client.packets),
            format!("{}/{}", c.to_server.bytes, c.to_client.bytes),
            fit(state_word(c.state), 7),
        )
    } else {
        let reqs = match c.requests.len() {
            0 => "0".to_string(),
            1 => "1".to_string(),
            n => format!("{n} keep-alive"),
        };
        format!(
            " {:>3} {:<22} {:<19} {:<7} {:<6} {reqs}",
            c.id,
            fit(&format!("{}{init}", text::endpoint(&c.client)), 22),
            fit(&text::endpoint(&c.server), 19),
            fit(&capture_tag(&c.capture), 7),
            fit(state_word(c.state), 6),
        )
    }
}

fn render_requests(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let focused = app.focus == Pane::Side;
    let Some(c) = app.selected_connection() else {
        f.render_widget(
            Paragraph::new("no connection selected").block(pane_block(
                app,
                " Requests on it ".into(),
                focused,
            )),
            area,
        );
        return;
    };
    let mut lines = vec![Line::from(vec![
        Span::styled(
            format!(
                "{} → {}",
                text::endpoint(&c.client),
                text::endpoint(&c.server)
            ),
            t.title,
        ),
        Span::styled(
            format!(
                "  {} · {} · {}",
                escape_str(&c.protocol),
                escape_str(&c.capture),
                text::clock(&c.first)
            ),
            t.dim,
        ),
    ])];
    if c.requests.len() > 1 {
        lines.push(Line::styled(
            format!("keep-alive: {} requests, one 5-tuple:", c.requests.len()),
            t.warn,
        ));
        lines.push(Line::styled(
            "one ALB bucket, one node, one DNAT (conntrack)".to_string(),
            t.warn,
        ));
    }
    let inner_h = area.height.saturating_sub(2 + lines.len() as u16) as usize;
    let off = app.conn_req_sel.saturating_sub(inner_h.saturating_sub(1));
    for (i, id) in c.requests.iter().enumerate().skip(off).take(inner_h) {
        let r = app.snap.requests.iter().find(|r| r.id == *id);
        let text = match r {
            Some(r) => format!(
                "#{:<4} {} {} {} → {} / {} {}",
                r.id,
                text::clock(&r.time),
                escape_str(&r.method),
                fit(&escape_str(&r.target), 16),
                r.node
                    .as_deref()
                    .map(escape_str)
                    .unwrap_or_else(|| "?".into()),
                r.pod
                    .as_ref()
                    .and_then(|p| p.name.as_deref())
                    .map(|n| pod_suffix(&escape_str(n)).to_string())
                    .unwrap_or_else(|| "?".into()),
                r.endpoint
                    .as_ref()
                    .map_or("?", |e| crate::ui::theme::evidence_mark(e.evidence)),
            ),
            None => format!("#{id} (not in this view)"),
        };
        let selected = focused && i == app.conn_req_sel;
        let style = if selected { t.selected } else { t.base };
        lines.push(Line::styled(
            format!("{}{text}", if selected { "▸" } else { " " }),
            style,
        ));
    }
    f.render_widget(
        Paragraph::new(lines).block(pane_block(
            app,
            format!(" Requests on connection {} ", c.id),
            focused,
        )),
        area,
    );
}
