//! Text that came from packets or input files is untrusted: it must never reach a terminal with
//! control characters in it (an escape sequence in an HTTP path could repaint the screen or, on
//! some terminals, do worse). Every layer keeps raw bytes; printing goes through here.

use std::fmt::Write as _;

/// Render untrusted bytes as printable text: printable ASCII and valid non-control UTF-8 pass
/// through; control characters, DEL, invalid UTF-8 and Unicode format/bidi controls become
/// `\xNN` / `\u{..}` escapes. A backslash is escaped as `\\` so the output is unambiguous.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        escape_str_into(chunk.valid(), &mut out);
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Same as [`escape_bytes`] for text already known to be UTF-8.
pub fn escape_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_str_into(s, &mut out);
    out
}

fn escape_str_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            // C1 controls, bidi overrides/isolates and other invisible format characters.
            c if ('\u{80}'..='\u{9f}').contains(&c)
                || ('\u{200b}'..='\u{200f}').contains(&c)
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c)
                || c == '\u{feff}' =>
            {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_bytes(b"/a\x1b[2Jb"), "/a\\x1b[2Jb");
        assert_eq!(escape_bytes(b"ok\r\n"), "ok\\x0d\\x0a");
        assert_eq!(escape_bytes(b"\xff/x"), "\\xff/x");
        assert_eq!(escape_str("a\u{202e}b"), "a\\u{202e}b");
        assert_eq!(escape_str("caf\u{e9} \\"), "caf\u{e9} \\\\");
    }

    #[test]
    fn output_never_contains_controls() {
        bolero::check!().for_each(|data: &[u8]| {
            let s = escape_bytes(data);
            assert!(!s.chars().any(|c| c.is_control()), "{s:?}");
        });
    }
}
