//! Line-level grammar of `iptables-save` / `iptables-restore` files, with nom.
//!
//! ```text
//! file      := line*
//! line      := blank | '#' any* | '*' table | ':' chain policy counters? | 'COMMIT'
//!            | counters? command word*
//! counters  := '[' u64 ':' u64 ']'
//! word      := (bare | '"' (escape | [^"\\])* '"' | "'" (escape | [^'\\])* "'")+
//! escape    := '\' any
//! ```
//!
//! A word is what iptables-restore passes as one argv element: quotes group, a backslash inside
//! quotes escapes the next character, and the quotes themselves are removed.

use nom::{
    IResult, Parser,
    branch::alt,
    bytes::complete::{take_while, take_while1},
    character::complete::{char, digit1, space0, space1},
    combinator::{map_res, opt},
    error::{Error as NomError, ErrorKind},
    sequence::{delimited, preceded, separated_pair, terminated},
};

use std::borrow::Cow;

use super::model::Counters;

/// One argv element of a rule line (borrowed from the line unless quotes had to be removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token<'a> {
    pub text: Cow<'a, str>,
    /// Some part of it was quoted.
    pub quoted: bool,
    /// 0-based byte offset in the line.
    pub offset: usize,
}

/// What a non-empty line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    Table(&'a str),
    ChainDecl {
        name: &'a str,
        policy: &'a str,
        counters: Option<Counters>,
    },
    Commit,
    /// A command line (`-A …`, `-N …` …): its counters prefix, and the command text from the
    /// command word on, with the offset of that text in the line.
    Command {
        counters: Option<Counters>,
        text: &'a str,
        offset: usize,
    },
}

/// Why a line could not be split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    /// 0-based byte offset in the line.
    pub offset: usize,
    pub message: String,
}

fn is_space(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn u64_dec(i: &str) -> IResult<&str, u64> {
    map_res(digit1, str::parse::<u64>).parse(i)
}

/// `counters := '[' u64 ':' u64 ']'`
pub fn counters(i: &str) -> IResult<&str, Counters> {
    delimited(
        char('['),
        separated_pair(u64_dec, char(':'), u64_dec),
        char(']'),
    )
    .map(|(packets, bytes)| Counters { packets, bytes })
    .parse(i)
}

/// `':' chain policy counters?`
fn chain_decl(i: &str) -> IResult<&str, Line<'_>> {
    let (i, (name, policy, counters)) = (
        preceded(char(':'), take_while1(|c: char| !is_space(c))),
        preceded(space1, take_while1(|c: char| !is_space(c))),
        opt(preceded(space1, counters)),
    )
        .parse(i)?;
    let (i, _) = space0(i)?;
    Ok((
        i,
        Line::ChainDecl {
            name,
            policy,
            counters,
        },
    ))
}

/// Classify one line (already stripped of its newline). `Ok(None)` for blank and comment lines.
pub fn line(input: &str) -> Result<Option<Line<'_>>, LexError> {
    let trimmed_start = input.len() - input.trim_start_matches(is_space).len();
    let body = input[trimmed_start..].trim_end_matches([' ', '\t', '\r']);
    if body.is_empty() || body.starts_with('#') {
        return Ok(None);
    }
    let err = |message: &str| LexError {
        offset: trimmed_start,
        message: message.to_string(),
    };
    if let Some(name) = body.strip_prefix('*') {
        return Ok(Some(Line::Table(name.trim())));
    }
    if body == "COMMIT" {
        return Ok(Some(Line::Commit));
    }
    if body.starts_with(':') {
        return match chain_decl(body) {
            Ok(("", l)) => Ok(Some(l)),
            Ok((rest, _)) => Err(LexError {
                offset: trimmed_start + body.len() - rest.len(),
                message: "expected end of line after the chain counters".into(),
            }),
            Err(_) => Err(err("expected `:CHAIN POLICY [packets:bytes]`")),
        };
    }
    let prefixed: IResult<&str, Option<Counters>> = opt(terminated(counters, space1)).parse(body);
    match prefixed {
        Ok((text, counters)) => {
            if text.starts_with('[') {
                return Err(LexError {
                    offset: trimmed_start,
                    message: "expected rule counters `[packets:bytes]`".into(),
                });
            }
            Ok(Some(Line::Command {
                counters,
                text,
                offset: trimmed_start + body.len() - text.len(),
            }))
        }
        Err(_) => Err(err("expected a command")),
    }
}

/// A quoted segment; `q` is the quote character. Fails (without backtracking) when unbalanced.
fn quoted(q: char) -> impl Fn(&str) -> IResult<&str, String> {
    move |i: &str| {
        let (after_open, _) = char(q).parse(i)?;
        let mut out = String::new();
        let mut chars = after_open.char_indices();
        while let Some((pos, c)) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some((_, e)) => out.push(e),
                    None => break,
                }
            } else if c == q {
                return Ok((&after_open[pos + c.len_utf8()..], out));
            } else {
                out.push(c);
            }
        }
        Err(nom::Err::Failure(NomError::new(i, ErrorKind::Char)))
    }
}

fn bare(i: &str) -> IResult<&str, String> {
    take_while1(|c: char| !is_space(c) && c != '"' && c != '\'')
        .map(str::to_string)
        .parse(i)
}

/// One word: adjacent bare and quoted segments glued together.
fn word(i: &str) -> IResult<&str, (String, bool)> {
    let mut text = String::new();
    let mut was_quoted = false;
    let mut rest = i;
    loop {
        let seg: IResult<&str, (String, bool)> = alt((
            quoted('"').map(|s| (s, true)),
            quoted('\'').map(|s| (s, true)),
            bare.map(|s| (s, false)),
        ))
        .parse(rest);
        match seg {
            Ok((r, (s, q))) => {
                text.push_str(&s);
                was_quoted |= q;
                rest = r;
            }
            Err(nom::Err::Error(_)) if rest.len() < i.len() => {
                return Ok((rest, (text, was_quoted)));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Split a command text into words. `base` is the text's offset in its line, for error columns.
pub fn words(text: &str, base: usize) -> Result<Vec<Token<'_>>, LexError> {
    let mut out = Vec::with_capacity(32);
    let (mut rest, _) = space0::<&str, NomError<&str>>(text).unwrap_or((text, ""));
    while !rest.is_empty() {
        let offset = base + text.len() - rest.len();
        // Fast path: a bare word is borrowed as is.
        let bare_len = rest
            .find(|c: char| is_space(c) || c == '"' || c == '\'')
            .unwrap_or(rest.len());
        if bare_len > 0 && rest[bare_len..].chars().next().is_none_or(is_space) {
            out.push(Token {
                text: Cow::Borrowed(&rest[..bare_len]),
                quoted: false,
                offset,
            });
            rest = rest[bare_len..].trim_start_matches(is_space);
            continue;
        }
        match word(rest) {
            Ok((r, (t, quoted))) => {
                out.push(Token {
                    text: Cow::Owned(t),
                    quoted,
                    offset,
                });
                let (r, _) = take_while::<_, &str, NomError<&str>>(is_space)(r).unwrap_or((r, ""));
                rest = r;
            }
            Err(nom::Err::Failure(e)) | Err(nom::Err::Error(e)) => {
                let at = base + text.len() - e.input.len();
                let message = if e.code == ErrorKind::Char {
                    "unbalanced quote: no closing quote before the end of the line"
                } else {
                    "expected a word"
                };
                return Err(LexError {
                    offset: at,
                    message: message.into(),
                });
            }
            Err(nom::Err::Incomplete(_)) => {
                return Err(LexError {
                    offset,
                    message: "incomplete word".into(),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_words_with_quotes_and_escapes() {
        let w = words(r#"-A X -m comment --comment "a \"b\" c" -j Y"#, 0).unwrap();
        let t: Vec<_> = w.iter().map(|t| t.text.as_ref()).collect();
        assert_eq!(
            t,
            [
                "-A",
                "X",
                "-m",
                "comment",
                "--comment",
                "a \"b\" c",
                "-j",
                "Y"
            ]
        );
        assert!(w[5].quoted);
        assert_eq!(w[5].offset, 26);
        let w = words("--comment=x\"y z\"w", 0).unwrap();
        assert_eq!(w[0].text, "--comment=xy zw");
    }

    #[test]
    fn unbalanced_quote_is_located() {
        let e = words(r#"-A X --comment "abc"#, 10).unwrap_err();
        assert_eq!(e.offset, 25);
        assert!(e.message.contains("unbalanced"));
    }

    #[test]
    fn classifies_lines() {
        assert_eq!(line("*nat").unwrap(), Some(Line::Table("nat")));
        assert_eq!(line("  # x").unwrap(), None);
        assert_eq!(
            line(":PREROUTING ACCEPT [3:180]").unwrap(),
            Some(Line::ChainDecl {
                name: "PREROUTING",
                policy: "ACCEPT",
                counters: Some(Counters {
                    packets: 3,
                    bytes: 180
                })
            })
        );
        assert_eq!(
            line("[1:2] -A X -j Y").unwrap(),
            Some(Line::Command {
                counters: Some(Counters {
                    packets: 1,
                    bytes: 2
                }),
                text: "-A X -j Y",
                offset: 6
            })
        );
        assert!(line(":X").is_err());
        assert!(line("[1:x] -A X").is_err());
    }
}
