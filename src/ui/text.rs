//! Formatting helpers shared by the views: times, names that must fit a column, untrusted text.

use crate::journey::model::Endpoint;
use crate::sanitize;
use unicode_width::UnicodeWidthStr as _;

/// `HH:MM:SS.mmm` from an RFC 3339 record time; the text itself (sanitised) if it has no time part.
#[must_use]
pub fn clock(time: &str) -> String {
    match time.get(11..23) {
        Some(t) if time.as_bytes().get(10) == Some(&b'T') => t.to_string(),
        _ => sanitize::escape_str(time),
    }
}

/// `HH:MM:SS.ffffff` (microseconds) from an RFC 3339 record time.
#[must_use]
pub fn clock_us(time: &str) -> String {
    match time.get(11..26) {
        Some(t) if time.as_bytes().get(10) == Some(&b'T') => t.to_string(),
        _ => clock(time),
    }
}

/// `ip:port`, IPv6 in brackets.
#[must_use]
pub fn endpoint(e: &Endpoint) -> String {
    match e.ip {
        std::net::IpAddr::V4(ip) => format!("{ip}:{}", e.port),
        std::net::IpAddr::V6(ip) => format!("[{ip}]:{}", e.port),
    }
}

/// Fit `s` into `width` display columns, ending with `…` when cut.
#[must_use]
pub fn fit(s: &str, width: usize) -> String {
    if s.width() <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if w + cw + 1 > width {
            break;
        }
        out.push(c);
        w += cw;
    }
    out.push('…');
    out
}

/// A pod name shortened for a narrow column: the part after the last `-` (the random suffix that
/// tells replicas apart), e.g. `testapp-7f4b8f5c9d-zp4ns` → `zp4ns`.
#[must_use]
pub fn pod_suffix(name: &str) -> &str {
    name.rsplit('-').next().unwrap_or(name)
}

/// A kube-proxy chain name shortened: `KUBE-SEP-GB5ZXZKDF6JWMI74` → `SEP-GB5Z`.
#[must_use]
pub fn short_chain(chain: &str) -> String {
    match chain.strip_prefix("KUBE-") {
        Some(rest) => match rest.split_once('-') {
            Some((kind, hash))
                if hash.len() > 4 && hash.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                format!("{kind}-{}", &hash[..4])
            }
            _ => rest.to_string(),
        },
        None => chain.to_string(),
    }
}

/// A kube-proxy chain name abbreviated but still recognisable as iptables shows it:
/// `KUBE-SEP-GB5ZXZKDF6JWMI74` → `KUBE-SEP-GB5Z…`. Other names are unchanged.
#[must_use]
pub fn abbrev_chain(chain: &str) -> String {
    if let Some(rest) = chain.strip_prefix("KUBE-")
        && let Some((kind, hash)) = rest.split_once('-')
        && hash.len() > 6
        && hash.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return format!("KUBE-{kind}-{}…", &hash[..4]);
    }
    chain.to_string()
}

/// The `-j`/`-g` target and its most telling argument, for display: `DNAT → 10.100.0.7:80`,
/// `KUBE-MARK-MASQ`, `MARK 0x4000`. Reads only the rule text; decides nothing.
#[must_use]
pub fn rule_action(text: &str) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let pos = words
        .iter()
        .position(|w| *w == "-j" || *w == "-g" || *w == "--jump" || *w == "--goto")?;
    let target = *words.get(pos + 1)?;
    let arg = |flag: &str| {
        words
            .iter()
            .position(|w| *w == flag)
            .and_then(|i| words.get(i + 1))
            .copied()
    };
    Some(match target {
        "DNAT" => match arg("--to-destination") {
            Some(d) => format!("DNAT → {d}"),
            None => "DNAT".into(),
        },
        "SNAT" => match arg("--to-source") {
            Some(d) => format!("SNAT → {d}"),
            None => "SNAT".into(),
        },
        "MARK" => match arg("--or-mark")
            .or_else(|| arg("--set-xmark"))
            .or_else(|| arg("--set-mark"))
        {
            Some(m) => format!("MARK {m}"),
            None => "MARK".into(),
        },
        t => t.to_string(),
    })
}

/// The rule text without `-A CHAIN` and without the target part, like the "options" column of
/// `iptables -nvL`.
#[must_use]
pub fn rule_matches(text: &str) -> String {
    let mut words: Vec<&str> = text.split_whitespace().collect();
    if words.first() == Some(&"-A") && words.len() >= 2 {
        words.drain(..2);
    }
    if let Some(pos) = words.iter().position(|w| *w == "-j" || *w == "-g") {
        words.truncate(pos);
    }
    let mut text = words.join(" ");
    // Like `iptables -L`, the comment goes last as /* … */ so the matches that decide come first.
    if let Some(start) = text.find("-m comment --comment ") {
        let rest = &text[start + "-m comment --comment ".len()..];
        let (comment, after) = if let Some(q) = rest.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (&q[..end], &q[end + 1..]),
                None => (q, ""),
            }
        } else {
            rest.split_once(' ').unwrap_or((rest, ""))
        };
        text = format!("{}{} /* {comment} */", &text[..start], after.trim_start())
            .trim()
            .to_string();
    }
    sanitize::escape_str(&text)
}

/// `0.33333333349` → `0.333`; `1` for certainties.
#[must_use]
pub fn prob(p: f64) -> String {
    if (p - 1.0).abs() < 1e-9 {
        "1".into()
    } else {
        format!("{p:.3}")
    }
}

/// Split raw HTTP head bytes into sanitised lines (CRLF or LF), dropping the empty end line.
#[must_use]
pub fn head_lines(head: &[u8]) -> Vec<String> {
    let mut out: Vec<String> = head
        .split(|b| *b == b'\n')
        .map(|l| sanitize::escape_bytes(l.strip_suffix(b"\r").unwrap_or(l)))
        .collect();
    while out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    out
}

/// Wrap `lines` to `width` columns at spaces, continuing each line under its own tree prefix (the
/// leading run of blanks, tree glyphs and the evidence mark), so a long diagram line does not
/// fall back to column 0. `▼` continues as `│`; a word longer than a row is cut.
#[must_use]
pub fn wrap_indented(
    lines: Vec<ratatui::text::Line<'static>>,
    width: usize,
) -> Vec<ratatui::text::Line<'static>> {
    use ratatui::text::{Line, Span};
    use unicode_width::UnicodeWidthChar as _;
    let mut out = Vec::with_capacity(lines.len());
    for line in lines {
        if width < 8 || line.width() <= width {
            out.push(line);
            continue;
        }
        let cells: Vec<(char, ratatui::style::Style)> = line
            .spans
            .iter()
            .flat_map(|sp| sp.content.chars().map(move |c| (c, sp.style)))
            .collect();
        let prefix_len = cells
            .iter()
            .take_while(|(c, _)| c.is_whitespace() || "│▼■●◐∞?»⇄✓✗·".contains(*c))
            .count();
        let mut indent: String = cells[..prefix_len]
            .iter()
            .map(|(c, _)| match c {
                '▼' | '│' => '│',
                c if c.is_whitespace() => ' ',
                _ => ' ',
            })
            .collect();
        if indent.width() > width / 2 {
            indent = " ".repeat(2);
        }
        let indent_style = cells.first().map(|c| c.1).unwrap_or_default();
        // Rows of cells; break at the last space that fits.
        let mut rows: Vec<Vec<(char, ratatui::style::Style)>> = Vec::new();
        let mut row: Vec<(char, ratatui::style::Style)> = Vec::new();
        let mut row_w = 0usize;
        let avail = |first: bool| {
            if first {
                width
            } else {
                width.saturating_sub(indent.width()).max(1)
            }
        };
        for &(c, st) in &cells {
            let cw = c.width().unwrap_or(0);
            if row_w + cw > avail(rows.is_empty()) {
                let first_row = rows.is_empty();
                let min_keep = if first_row { prefix_len + 1 } else { 1 };
                match row
                    .iter()
                    .rposition(|(ch, _)| *ch == ' ')
                    .filter(|&i| i >= min_keep)
                {
                    Some(i) => {
                        let rest: Vec<_> = row.split_off(i + 1);
                        rows.push(std::mem::take(&mut row));
                        row = rest;
                    }
                    None => rows.push(std::mem::take(&mut row)),
                }
                while row.first().is_some_and(|(ch, _)| *ch == ' ') {
                    row.remove(0);
                }
                row_w = row.iter().map(|(ch, _)| ch.width().unwrap_or(0)).sum();
            }
            row.push((c, st));
            row_w += cw;
        }
        if !row.is_empty() {
            rows.push(row);
        }
        for (i, r) in rows.into_iter().enumerate() {
            let mut spans: Vec<Span<'static>> = Vec::new();
            if i > 0 {
                spans.push(Span::styled(indent.clone(), indent_style));
            }
            let mut cur = String::new();
            let mut cur_style = None;
            for (c, st) in r {
                if cur_style.is_some_and(|s| s != st) {
                    spans.push(Span::styled(
                        std::mem::take(&mut cur),
                        cur_style.unwrap_or_default(),
                    ));
                }
                cur_style = Some(st);
                cur.push(c);
            }
            if !cur.is_empty() {
                spans.push(Span::styled(cur, cur_style.unwrap_or_default()));
            }
            out.push(Line::from(spans).style(line.style));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(clock("2026-11-21T10:06:27.731204Z"), "10:06:27.731");
        assert_eq!(clock("\x1bbad"), "\\x1bbad");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
        assert_eq!(pod_suffix("testapp-7f4b8f5c9d-zp4ns"), "zp4ns");
        assert_eq!(short_chain("KUBE-SEP-GB5ZXZKDF6JWMI74"), "SEP-GB5Z");
        assert_eq!(short_chain("KUBE-SERVICES"), "SERVICES");
        assert_eq!(
            rule_action("-A KUBE-SEP-X -p tcp -m tcp -j DNAT --to-destination 10.100.0.7:80")
                .unwrap(),
            "DNAT → 10.100.0.7:80"
        );
        assert_eq!(
            rule_matches("-A KUBE-SVC-X -m statistic --mode random -j KUBE-SEP-Y"),
            "-m statistic --mode random"
        );
        assert_eq!(
            rule_matches(
                "-A KUBE-SVC-X -m comment --comment \"default/testapp:\" -m statistic --probability 0.5 -j KUBE-SEP-Y"
            ),
            "-m statistic --probability 0.5 /* default/testapp: */"
        );
        assert_eq!(
            head_lines(b"GET / HTTP/1.1\r\nHost: a\x1b\r\n\r\n"),
            vec!["GET / HTTP/1.1", "Host: a\\x1b"]
        );
        assert_eq!(prob(0.33333333349), "0.333");
    }

    #[test]
    fn wrap_keeps_the_tree_indentation() {
        use ratatui::text::{Line, Span};
        let line = Line::from(vec![
            Span::raw(" ▼ "),
            Span::raw("DNAT → 10.100.1.4:80 ● observed (p=0.333 for a new connection)"),
        ]);
        let rows = wrap_indented(vec![line], 40);
        let text: Vec<String> = rows.iter().map(|l| l.to_string()).collect();
        assert!(text.len() >= 2, "{text:?}");
        assert!(text.iter().all(|t| t.width() <= 40), "{text:?}");
        assert!(
            text[1].starts_with(" │ ") && !text[1][" │ ".len()..].starts_with(' '),
            "{text:?}"
        );
        assert!(text.join(" ").contains("a new connection"), "{text:?}");
    }
}
