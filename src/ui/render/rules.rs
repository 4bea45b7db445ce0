//! View 3: the chain browser, like `iptables -t nat -nvL --line-numbers`, with per-rule hit counts
//! from the replay (modelled) beside the dump's own `iptables-save -c` counters (observed).
//! Enter on a rule jumps into the chain it targets; Esc comes back.

use crate::sanitize::escape_str;
use crate::ui::app::{App, Pane};
use crate::ui::render::{pane_block, scroll_offset};
use crate::ui::text::{fit, rule_matches};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    if app.snap.rules.is_empty() {
        f.render_widget(
            Paragraph::new("No rule dump in this scenario.").block(pane_block(
                app,
                " Rules ".into(),
                true,
            )),
            area,
        );
        return;
    }
    let [nodes_line, rest] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(2)]).areas(area);
    let mut spans = vec![Span::styled(" node: ", t.dim)];
    for (i, n) in app.snap.rules.iter().enumerate() {
        let name = format!(" {} ", escape_str(&n.node));
        spans.push(if i == app.rules.node {
            Span::styled(name, t.tab_active)
        } else {
            Span::raw(name)
        });
    }
    if let Some(n) = app.snap.rules.get(app.rules.node) {
        spans.push(Span::styled(
            format!("  from {} · h/l other node", escape_str(&n.source)),
            t.dim,
        ));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), nodes_line);
    if rest.width >= 100 {
        let [chains, rules] =
            Layout::horizontal([Constraint::Length(38), Constraint::Min(40)]).areas(rest);
        render_chains(f, chains, app);
        render_rules(f, rules, app);
    } else if app.focus == Pane::Side {
        render_chains(f, rest, app);
    } else {
        render_rules(f, rest, app);
    }
}

fn render_chains(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let list = app.chain_list();
    let block = pane_block(
        app,
        format!(" Chains {} · Σ rule hits ", list.len()),
        app.focus == Pane::Side,
    );
    let inner = block.inner(area);
    f.render_widget(block, area);
    let Some(dump) = app.snap.rules.get(app.rules.node) else {
        return;
    };
    let height = inner.height as usize;
    let off = scroll_offset(app.chain_offset.get(), app.rules.chain, height, list.len());
    app.chain_offset.set(off);
    let mut lines = Vec::new();
    for (pos, (ti, ci)) in list.iter().enumerate().skip(off).take(height) {
        let table = &dump.tables[*ti];
        let chain = &table.chains[*ci];
        let hits: u64 = chain.rules.iter().map(|r| r.replay_hits).sum();
        let w = (inner.width as usize).saturating_sub(12);
        let text = format!(
            "{}{:<5} {:<w$} {:>4}",
            if pos == app.rules.chain { "▸" } else { " " },
            fit(&escape_str(&table.name), 5),
            fit(&escape_str(&chain.name), w),
            hits,
        );
        let style = if pos == app.rules.chain {
            t.selected
        } else if hits > 0 {
            t.base
        } else {
            t.dim
        };
        lines.push(Line::styled(text, style));
    }
    f.render_widget(Paragraph::new(lines), inner);
}

fn render_rules(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let Some(chain) = app.selected_chain() else {
        f.render_widget(
            Paragraph::new("no chain matches").block(pane_block(
                app,
                " Rules ".into(),
                app.focus == Pane::Main,
            )),
            area,
        );
        return;
    };
    let depth = if app.rules.stack.is_empty() {
        String::new()
    } else {
        format!(" · {} deep, Esc back", app.rules.stack.len())
    };
    // As `iptables -nvL` heads a built-in chain: `(policy ACCEPT 1204 packets, 72240 bytes)`.
    let policy = match (chain.policy.as_deref(), chain.counters) {
        (Some(p), Some(c)) => format!(
            " (policy {} {} packets, {} bytes)",
            escape_str(p),
            c.packets,
            c.bytes
        ),
        (Some(p), None) => format!(" (policy {})", escape_str(p)),
        (None, _) => String::new(),
    };
    let block = pane_block(
        app,
        format!(" Chain {}{policy}{depth} ", escape_str(&chain.name)),
        app.focus == Pane::Main,
    );
    let inner = block.inner(area);
    f.render_widget(block, area);
    if inner.height < 2 {
        return;
    }
    // The selected rule's whole text under the table: the columns cut it, this does not.
    let width = inner.width as usize;
    let selected_text = chain
        .rules
        .get(app.rules.rule)
        .map(|r| escape_str(&r.text))
        .unwrap_or_default();
    // Word wrap needs more rows than a plain division; allow a word's worth per row.
    let text_rows = if selected_text.is_empty() {
        0
    } else {
        (selected_text
            .chars()
            .count()
            .div_ceil(width.saturating_sub(12).max(1)) as u16)
            .min(5)
            + 1
    };
    let inner = if inner.height > text_rows + 3 {
        let [table, text] =
            Layout::vertical([Constraint::Min(2), Constraint::Length(text_rows)]).areas(inner);
        f.render_widget(
            Paragraph::new(vec![
                Line::styled("─".repeat(width), t.dim),
                Line::raw(selected_text),
            ])
            .wrap(ratatui::widgets::Wrap { trim: false }),
            text,
        );
        table
    } else {
        inner
    };
    let has_counters = chain.rules.iter().any(|r| r.counters.is_some()) && width >= 90;
    let target_w = if width >= 100 { 26 } else { 14 };
    let head = if has_counters {
        format!(
            " {:>3} {:>7} {:>8} {:>6} {:<tw$} {}",
            "num",
            "pkts",
            "bytes",
            "hits",
            "target",
            "matches",
            tw = target_w
        )
    } else {
        format!(
            " {:>3} {:>6} {:<tw$} {}",
            "num",
            "hits",
            "target",
            "matches",
            tw = target_w
        )
    };
    let height = inner.height as usize - 1;
    app.list_height.set(height);
    let off = scroll_offset(
        app.rule_offset.get(),
        app.rules.rule,
        height,
        chain.rules.len(),
    );
    app.rule_offset.set(off);
    let terms: Vec<String> = app
        .filter
        .query
        .split_whitespace()
        .map(str::to_lowercase)
        .collect();
    let mut lines = vec![Line::styled(head, t.dim)];
    for (i, r) in chain.rules.iter().enumerate().skip(off).take(height) {
        let target = r.target.as_deref().map(escape_str).unwrap_or_default();
        let mark = if i == app.rules.rule { "▸" } else { " " };
        let text = if has_counters {
            let (p, b) = r.counters.map_or(("-".into(), "-".into()), |c| {
                (c.packets.to_string(), c.bytes.to_string())
            });
            format!(
                "{mark}{:>3} {:>7} {:>8} {:>6} {:<tw$} {}",
                r.number,
                p,
                b,
                r.replay_hits,
                fit(&target, target_w),
                rule_matches(&r.text),
                tw = target_w
            )
        } else {
            format!(
                "{mark}{:>3} {:>6} {:<tw$} {}",
                r.number,
                r.replay_hits,
                fit(&target, target_w),
                rule_matches(&r.text),
                tw = target_w
            )
        };
        let hit = !terms.is_empty()
            && terms
                .iter()
                .all(|q| r.text.to_lowercase().contains(q.as_str()));
        let style = if i == app.rules.rule && app.focus == Pane::Main {
            t.selected
        } else if hit {
            t.moved
        } else if r.replay_hits == 0 {
            t.dim
        } else {
            t.base
        };
        lines.push(Line::styled(fit(&text, width), style));
    }
    f.render_widget(Paragraph::new(lines), inner);
}
