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
}
