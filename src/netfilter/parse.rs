//! From `iptables-save` text to a linked [`Ruleset`].
//!
//! Accepts both forms users meet: kube-proxy's `iptables-restore` input (options in any order,
//! unquoted comments, bare addresses, `--or-mark`, `-X CHAIN`) and what `iptables-save` prints
//! on a node (`-c` counters, built-in chains with policies, quoted comments, 11-decimal
//! probabilities). Both give the same model (see `model.rs` for the normalisation).
//!
//! Errors name the file, the line, the column and the token that was not understood. The parser
//! does not stop at the first bad line: [`parse_lenient`] keeps every line it understood and
//! returns the errors beside the rule set; [`parse`] turns the first error into `Err`.

use ipnet::IpNet;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use super::lexer::{self, Line, Token};
use super::model::*;

/// A line that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}{}", token.as_ref().map(|t| format!(" (at `{t}`)")).unwrap_or_default())]
pub struct ParseError {
    pub file: String,
    /// 1-based.
    pub line: u32,
    /// 1-based, in characters.
    pub column: u32,
    /// The token that was not understood, escaped and shortened for printing.
    pub token: Option<String>,
    pub message: String,
}

/// Longest token text quoted in an error.
const TOKEN_SHOWN: usize = 60;

fn shown(token: &str) -> String {
    let mut t: String = token.chars().take(TOKEN_SHOWN).collect();
    if t.len() < token.len() {
        t.push('…');
    }
    crate::sanitize::escape_str(&t)
}

/// Parse strictly: the first bad line is an error. Warnings are in [`Ruleset::warnings`].
pub fn parse(text: &[u8], source: &str) -> Result<Ruleset, ParseError> {
    let (rs, mut errors) = parse_lenient(text, source);
    if errors.is_empty() {
        Ok(rs)
    } else {
        Err(errors.swap_remove(0))
    }
}

/// Parse everything that can be parsed; bad lines are skipped and reported.
pub fn parse_lenient(text: &[u8], source: &str) -> (Ruleset, Vec<ParseError>) {
    let mut p = FileParser {
        skipping: false,
        file: source.to_string(),
        rs: Ruleset::empty(source),
        current: None,
        errors: Vec::new(),
    };
    let mut line_no = 0u32;
    for raw in text.split(|&b| b == b'\n') {
        line_no = line_no.saturating_add(1);
        match std::str::from_utf8(raw) {
            Ok(s) => p.line(line_no, s),
            Err(e) => {
                let col = String::from_utf8_lossy(&raw[..e.valid_up_to()])
                    .chars()
                    .count() as u32
                    + 1;
                p.errors.push(ParseError {
                    file: p.file.clone(),
                    line: line_no,
                    column: col,
                    token: None,
                    message: format!(
                        "not text: invalid UTF-8 at byte {} of the line (is this an iptables-save file?)",
                        e.valid_up_to()
                    ),
                });
            }
        }
        if p.errors.len() > 1000 {
            p.errors.push(ParseError {
                file: p.file.clone(),
                line: line_no,
                column: 1,
                token: None,
                message: "more than 1000 bad lines; stopped reading".into(),
            });
            break;
        }
    }
    if let Some(t) = p.current.take() {
        p.errors.push(ParseError {
            file: p.file.clone(),
            line: line_no,
            column: 1,
            token: None,
            message: format!(
                "table {} (started at line {}) has no COMMIT; its rules are kept but iptables-restore would refuse them",
                t.table.name, t.start_line
            ),
        });
        p.finish_table(t);
    }
    if let Err(mut e) = p.rs.link() {
        e.source_name = source.to_string();
        p.errors.push(ParseError {
            file: source.to_string(),
            line: 0,
            column: 0,
            token: Some(e.chain.clone()),
            message: e.to_string(),
        });
        // Evaluation must not loop: drop the jumps of the offending table.
        if let Some(t) = p.rs.table_mut(e.table) {
            for c in &mut t.chains {
                c.rules
                    .retain(|r| r.spec.target.as_ref().and_then(|t| t.chain_ref()).is_none());
            }
        }
        let _ = p.rs.link();
    }
    (p.rs, p.errors)
}

struct TableInProgress {
    table: Table,
    start_line: u32,
}

struct FileParser {
    /// Inside a table that is not understood: its lines are skipped until COMMIT.
    skipping: bool,
    file: String,
    rs: Ruleset,
    current: Option<TableInProgress>,
    errors: Vec<ParseError>,
}

/// Column (1-based, characters) of a byte offset in a line.
fn column(line: &str, offset: usize) -> u32 {
    let offset = offset.min(line.len());
    let mut o = offset;
    while !line.is_char_boundary(o) {
        o -= 1;
    }
    line[..o].chars().count() as u32 + 1
}

impl FileParser {
    fn error(
        &mut self,
        line_no: u32,
        line: &str,
        offset: usize,
        token: Option<&str>,
        message: String,
    ) {
        self.errors.push(ParseError {
            file: self.file.clone(),
            line: line_no,
            column: column(line, offset),
            token: token.map(shown),
            message,
        });
    }

    fn finish_table(&mut self, t: TableInProgress) {
        let mut table = t.table;
        table.reindex();
        if let Some(pos) = self.rs.tables.iter().position(|x| x.name == table.name) {
            self.rs.warnings.push(Warning {
                line: Some(t.start_line),
                message: format!("table {} appears twice; the later one replaces the earlier (as iptables-restore does)", table.name),
            });
            self.rs.tables[pos] = table;
        } else {
            self.rs.tables.push(table);
        }
    }

    fn line(&mut self, no: u32, line: &str) {
        let parsed = match lexer::line(line) {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => {
                let tok = line
                    .get(e.offset..)
                    .and_then(|r| r.split_whitespace().next())
                    .unwrap_or("");
                self.error(no, line, e.offset, Some(tok), e.message);
                return;
            }
        };
        if self.skipping {
            match parsed {
                Line::Commit => self.skipping = false,
                Line::Table(_) => self.skipping = false,
                _ => return,
            }
            if matches!(parsed, Line::Commit) {
                return;
            }
        }
        match parsed {
            Line::Table(name) => {
                if let Some(t) = self.current.take() {
                    self.error(no, line, 0, Some(name), format!(
                        "new table before COMMIT of table {} (started at line {}); its rules are kept",
                        t.table.name, t.start_line
                    ));
                    self.finish_table(t);
                }
                match TableName::parse(name) {
                    Some(n) => {
                        self.current = Some(TableInProgress {
                            table: Table::new(n),
                            start_line: no,
                        })
                    }
                    None => {
                        self.skipping = true;
                        self.error(
                        no,
                        line,
                        1,
                        Some(name),
                        "unknown table: expected filter, nat, mangle, raw or security; its lines are skipped".into(),
                        )
                    }
                }
            }
            Line::Commit => match self.current.take() {
                Some(t) => self.finish_table(t),
                None => self.error(no, line, 0, Some("COMMIT"), "COMMIT without a table".into()),
            },
            Line::ChainDecl {
                name,
                policy,
                counters,
            } => {
                let Some(t) = self.current.as_mut() else {
                    return self.error(
                        no,
                        line,
                        0,
                        Some(name),
                        "chain declared before any `*table` line".into(),
                    );
                };
                let tn = t.table.name;
                let builtin = tn.is_builtin(name);
                let pol = match (policy, builtin) {
                    ("-", true) | ("ACCEPT", true) => Some(Policy::Accept),
                    ("DROP", true) => Some(Policy::Drop),
                    ("-", false) => None,
                    _ => {
                        let off = line.find(policy).unwrap_or(0);
                        return self.error(
                            no,
                            line,
                            off,
                            Some(policy),
                            if builtin {
                                "expected the policy ACCEPT, DROP or `-`".into()
                            } else {
                                "expected `-`: a user chain has no policy".into()
                            },
                        );
                    }
                };
                if let Err(msg) = check_chain_name(name) {
                    return self.error(no, line, 1, Some(name), msg);
                }
                let table = &mut t.table;
                match table.chain_mut(name) {
                    Some(c) => {
                        // Declaring an existing chain again flushes it (iptables-restore semantics).
                        c.rules.clear();
                        c.policy = pol;
                        c.counters = counters.unwrap_or_default();
                    }
                    None => {
                        let mut c = Chain::new(name, pol);
                        c.counters = counters.unwrap_or_default();
                        table.chains.push(c);
                        let i = table.chains.len() - 1;
                        table.by_name.insert(name.into(), i);
                    }
                }
            }
            Line::Command {
                counters,
                text,
                offset,
            } => self.command(no, line, counters, text, offset),
        }
    }

    fn command(
        &mut self,
        no: u32,
        line: &str,
        counters: Option<Counters>,
        text: &str,
        offset: usize,
    ) {
        let toks = match lexer::words(text, offset) {
            Ok(t) => t,
            Err(e) => {
                let tok = line
                    .get(e.offset..)
                    .and_then(|r| r.split_whitespace().next())
                    .unwrap_or("");
                return self.error(no, line, e.offset, Some(tok), e.message);
            }
        };
        let Some(cmd) = toks.first() else { return };
        if self.current.is_none() {
            return self.error(
                no,
                line,
                cmd.offset,
                Some(&cmd.text),
                "rule before any `*table` line".into(),
            );
        }
        let cmd_name = match cmd.text.as_ref() {
            "-A" | "--append" => "A",
            "-I" | "--insert" => "I",
            "-D" | "--delete" => "D",
            "-R" | "--replace" => "R",
            "-N" | "--new-chain" => "N",
            "-X" | "--delete-chain" => "X",
            "-F" | "--flush" => "F",
            "-P" | "--policy" => "P",
            "-Z" | "--zero" => "Z",
            _ => {
                return self.error(
                    no,
                    line,
                    cmd.offset,
                    Some(&cmd.text),
                    "expected a command: -A, -I, -D, -R, -N, -X, -F, -P or -Z".into(),
                );
            }
        };
        let chain_tok = toks.get(1);
        let needs_chain = matches!(cmd_name, "A" | "I" | "D" | "R" | "N" | "P");
        if needs_chain && chain_tok.is_none() {
            return self.error(
                no,
                line,
                line.len(),
                None,
                format!("expected a chain name after {}", cmd.text),
            );
        }
        let table = &mut self.current.as_mut().expect("checked above").table;
        let tname = table.name;
        match cmd_name {
            "N" => {
                let name = &chain_tok.expect("checked").text;
                if table.chain(name).is_some() {
                    return self.error(
                        no,
                        line,
                        chain_tok.unwrap().offset,
                        Some(name),
                        "chain already exists".into(),
                    );
                }
                if let Err(msg) = check_chain_name(name) {
                    return self.error(no, line, chain_tok.unwrap().offset, Some(name), msg);
                }
                table.chains.push(Chain::new(name, None));
                let i = table.chains.len() - 1;
                table.by_name.insert((&**name).into(), i);
            }
            "X" => {
                match chain_tok {
                    Some(t) => {
                        if tname.is_builtin(&t.text) {
                            return self.error(
                                no,
                                line,
                                t.offset,
                                Some(&t.text),
                                "cannot delete a built-in chain".into(),
                            );
                        }
                        if table.chain(&t.text).is_none() {
                            return self.error(
                                no,
                                line,
                                t.offset,
                                Some(&t.text),
                                format!("no chain {} in table {tname}", t.text),
                            );
                        }
                        table.chains.retain(|c| *c.name != *t.text);
                    }
                    None => table.chains.retain(|c| c.policy.is_some()),
                }
                table.reindex();
            }
            "F" => match chain_tok {
                Some(t) => match table.chain_mut(&t.text) {
                    Some(c) => c.rules.clear(),
                    None => self.error(
                        no,
                        line,
                        t.offset,
                        Some(&t.text),
                        format!("no chain {} in table {tname}", t.text),
                    ),
                },
                None => table.chains.iter_mut().for_each(|c| c.rules.clear()),
            },
            "Z" => {}
            "P" => {
                let t = chain_tok.expect("checked");
                let pol = match toks.get(2).map(|p| p.text.as_ref()) {
                    Some("ACCEPT") => Policy::Accept,
                    Some("DROP") => Policy::Drop,
                    other => {
                        let off = toks.get(2).map(|p| p.offset).unwrap_or(line.len());
                        return self.error(
                            no,
                            line,
                            off,
                            other,
                            "expected the policy ACCEPT or DROP".into(),
                        );
                    }
                };
                match table.chain_mut(&t.text) {
                    Some(c) if c.policy.is_some() => c.policy = Some(pol),
                    _ => self.error(
                        no,
                        line,
                        t.offset,
                        Some(&t.text),
                        "policy of a chain that is not built in".into(),
                    ),
                }
            }
            _ => {
                // A, I, D, R: a rule specification follows (with a position for I, D-by-number, R).
                let chain_t = chain_tok.expect("checked");
                if table.chain(&chain_t.text).is_none() {
                    return self.error(
                        no,
                        line,
                        chain_t.offset,
                        Some(&chain_t.text),
                        format!(
                            "rule for chain {} before its declaration in table {tname}",
                            chain_t.text
                        ),
                    );
                }
                let mut spec_start = 2;
                let mut position: Option<usize> = None;
                if matches!(cmd_name, "I" | "D" | "R")
                    && let Some(n) = toks.get(2).and_then(|t| t.text.parse::<usize>().ok())
                {
                    position = Some(n);
                    spec_start = 3;
                }
                if cmd_name == "R" && position.is_none() {
                    let off = toks.get(2).map(|t| t.offset).unwrap_or(line.len());
                    return self.error(
                        no,
                        line,
                        off,
                        toks.get(2).map(|t| t.text.as_ref()),
                        "expected a rule number after -R CHAIN".into(),
                    );
                }
                let chain_len = table
                    .chain(&chain_t.text)
                    .map(|c| c.rules.len())
                    .unwrap_or(0);
                if cmd_name == "D" && position.is_some() && spec_start == toks.len() {
                    let n = position.unwrap_or(0);
                    if n == 0 || n > chain_len {
                        return self.error(
                            no,
                            line,
                            toks[2].offset,
                            Some(&toks[2].text),
                            format!("no rule {n} in chain {}", chain_t.text),
                        );
                    }
                    table
                        .chain_mut(&chain_t.text)
                        .expect("exists")
                        .rules
                        .remove(n - 1);
                    return;
                }
                let mut family = self.rs.family;
                let mut warnings = Vec::new();
                let parsed =
                    RuleParser::new(&toks[spec_start..], &mut family, &mut warnings).parse();
                let (spec, rule_counters) = match parsed {
                    Ok(x) => x,
                    Err(e) => {
                        return self.error(
                            no,
                            line,
                            e.offset.unwrap_or(line.len()),
                            e.token.as_deref(),
                            e.message,
                        );
                    }
                };
                self.rs.family = family;
                for w in warnings {
                    self.rs.warnings.push(Warning {
                        line: Some(no),
                        message: w,
                    });
                }
                let table = &mut self.current.as_mut().expect("checked").table;
                let chain = table.chain_mut(&chain_t.text).expect("exists");
                let rule = Rule {
                    spec,
                    counters: counters.or(rule_counters),
                    text: text.trim_end().into(),
                    line: no,
                    gid: 0,
                };
                let failure: Option<(usize, String)> = match cmd_name {
                    "A" => {
                        chain.rules.push(rule);
                        None
                    }
                    "I" => {
                        let n = position.unwrap_or(1);
                        if n == 0 || n > chain.rules.len() + 1 {
                            Some((
                                2,
                                format!(
                                    "cannot insert at {n}: chain {} has {} rules",
                                    chain_t.text,
                                    chain.rules.len()
                                ),
                            ))
                        } else {
                            chain.rules.insert(n - 1, rule);
                            None
                        }
                    }
                    "R" => {
                        let n = position.unwrap_or(0);
                        if n == 0 || n > chain.rules.len() {
                            Some((2, format!("no rule {n} in chain {}", chain_t.text)))
                        } else {
                            chain.rules[n - 1] = rule;
                            None
                        }
                    }
                    _ => match chain.rules.iter().position(|r| r.spec == rule.spec) {
                        Some(i) => {
                            chain.rules.remove(i);
                            None
                        }
                        None => Some((0, format!("-D: no such rule in chain {}", chain_t.text))),
                    },
                };
                if let Some((k, msg)) = failure {
                    self.error(no, line, toks[k].offset, Some(&toks[k].text), msg);
                }
            }
        }
    }
}

fn check_chain_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 28 {
        return Err("chain names are 1 to 28 characters".into());
    }
    if name.starts_with('-') || name.starts_with('!') {
        return Err("a chain name cannot start with `-` or `!`".into());
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("a chain name cannot contain spaces or control characters".into());
    }
    Ok(())
}

/// An error inside one rule specification.
#[derive(Debug)]
struct SpecError {
    offset: Option<usize>,
    token: Option<String>,
    message: String,
}

fn spec_err(tok: &Token, message: impl Into<String>) -> SpecError {
    SpecError {
        offset: Some(tok.offset),
        token: Some(tok.text.to_string()),
        message: message.into(),
    }
}

/// Targets that are extensions (not chains). Those hoptrace does not model become
/// [`Target::Unknown`].
const EXTENSION_TARGETS: &[&str] = &[
    "AUDIT",
    "CHECKSUM",
    "CLASSIFY",
    "CLUSTERIP",
    "CONNSECMARK",
    "DNPT",
    "DSCP",
    "ECN",
    "HMARK",
    "IDLETIMER",
    "LED",
    "MIRROR",
    "NETMAP",
    "NFQUEUE",
    "QUEUE",
    "RATEEST",
    "SECMARK",
    "SET",
    "SNPT",
    "SYNPROXY",
    "TCPMSS",
    "TCPOPTSTRIP",
    "TEE",
    "TOS",
    "TPROXY",
    "TTL",
    "HL",
    "ULOG",
    "NFACCT",
];

#[derive(Debug)]
struct ModuleAcc<'t> {
    name: &'t Token<'t>,
    toks: Vec<&'t Token<'t>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Scope {
    Base,
    Module(usize),
    Target,
}

/// Options each modelled match module takes (to attach options written after base options,
/// as kube-proxy writes `-m tcp -p tcp -d IP --dport 80`).
fn module_knows(module: &str, opt: &str) -> bool {
    let list: &[&str] = match module {
        "tcp" => &[
            "--sport",
            "--source-port",
            "--dport",
            "--destination-port",
            "--tcp-flags",
            "--syn",
            "--tcp-option",
        ],
        "udp" | "sctp" => &["--sport", "--source-port", "--dport", "--destination-port"],
        "multiport" => &[
            "--sports",
            "--source-ports",
            "--dports",
            "--destination-ports",
            "--ports",
        ],
        "comment" => &["--comment"],
        "statistic" => &["--mode", "--probability", "--every", "--packet"],
        "recent" => &[
            "--set",
            "--rcheck",
            "--update",
            "--remove",
            "--seconds",
            "--reap",
            "--hitcount",
            "--rttl",
            "--name",
            "--mask",
            "--rsource",
            "--rdest",
        ],
        "mark" | "connmark" => &["--mark"],
        "addrtype" => &[
            "--src-type",
            "--dst-type",
            "--limit-iface-in",
            "--limit-iface-out",
        ],
        "conntrack" => &["--ctstate"],
        "state" => &["--state"],
        "nfacct" => &["--nfacct-name"],
        "physdev" => &[
            "--physdev-is-in",
            "--physdev-is-out",
            "--physdev-is-bridged",
        ],
        _ => &[],
    };
    list.contains(&opt)
}

fn target_knows(target: &str, opt: &str) -> bool {
    let list: &[&str] = match target {
        "DNAT" => &["--to-destination", "--random", "--persistent"],
        "SNAT" => &["--to-source", "--random", "--random-fully", "--persistent"],
        "MASQUERADE" => &["--to-ports", "--random", "--random-fully"],
        "REDIRECT" => &["--to-ports", "--random"],
        "REJECT" => &["--reject-with"],
        "MARK" => &[
            "--set-xmark",
            "--set-mark",
            "--and-mark",
            "--or-mark",
            "--xor-mark",
        ],
        "CONNMARK" => &[
            "--set-xmark",
            "--set-mark",
            "--and-mark",
            "--or-mark",
            "--xor-mark",
            "--save-mark",
            "--restore-mark",
            "--mask",
            "--nfmask",
            "--ctmask",
        ],
        "CT" => &["--notrack"],
        _ => &[],
    };
    list.contains(&opt)
}

/// Parses one rule specification (the words after `-A CHAIN`).
struct RuleParser<'t, 'f> {
    toks: &'t [Token<'t>],
    family: &'f mut Option<Family>,
    warnings: &'f mut Vec<String>,
}

impl<'t, 'f> RuleParser<'t, 'f> {
    fn new(
        toks: &'t [Token<'t>],
        family: &'f mut Option<Family>,
        warnings: &'f mut Vec<String>,
    ) -> Self {
        RuleParser {
            toks,
            family,
            warnings,
        }
    }

    fn parse(mut self) -> Result<(RuleSpec, Option<Counters>), SpecError> {
        let mut spec = RuleSpec::default();
        let mut modules: Vec<ModuleAcc<'t>> = Vec::new();
        let mut target: Option<(&'t Token<'t>, bool, Vec<&'t Token<'t>>)> = None;
        let mut counters = None;
        let mut scope = Scope::Base;
        let mut i = 0;
        let toks = self.toks;
        while i < toks.len() {
            let t = &toks[i];
            // `!` before a base option negates it; before a module option it belongs to the module.
            let (neg, opt_tok, opt_idx) = if t.text == "!" && !t.quoted {
                match toks.get(i + 1) {
                    Some(n) => (true, n, i + 1),
                    None => {
                        return Err(spec_err(
                            t,
                            "`!` at the end of the rule: expected an option after it",
                        ));
                    }
                }
            } else {
                (false, t, i)
            };
            let arg = |k: usize| -> Result<&'t Token<'t>, SpecError> {
                toks.get(k).ok_or_else(|| {
                    spec_err(opt_tok, format!("expected a value after {}", opt_tok.text))
                })
            };
            let base = if opt_tok.quoted {
                ""
            } else {
                opt_tok.text.as_ref()
            };
            match base {
                "-s" | "--source" | "--src" | "-d" | "--destination" | "--dst" => {
                    let v = arg(opt_idx + 1)?;
                    let net = self.address(v)?;
                    let slot = if base.starts_with("-s") || base.starts_with("--s") {
                        &mut spec.src
                    } else {
                        &mut spec.dst
                    };
                    if slot.is_some() {
                        return Err(spec_err(opt_tok, format!("{base} given twice")));
                    }
                    *slot = Some(Neg::new(neg, net));
                    i = opt_idx + 2;
                    scope = Scope::Base;
                }
                "-p" | "--protocol" => {
                    let v = arg(opt_idx + 1)?;
                    let p = Protocol::parse(&v.text)
                        .map_err(|_| spec_err(v, "expected a protocol name or number"))?;
                    if spec.proto.is_some() {
                        return Err(spec_err(opt_tok, "-p given twice"));
                    }
                    spec.proto = p.map(|p| Neg::new(neg, p));
                    i = opt_idx + 2;
                    scope = Scope::Base;
                }
                "-i" | "--in-interface" | "-o" | "--out-interface" => {
                    let v = arg(opt_idx + 1)?;
                    if v.text.is_empty() || v.text.len() > 15 {
                        return Err(spec_err(
                            v,
                            "expected an interface name (1 to 15 characters)",
                        ));
                    }
                    let slot = if base.starts_with("-i") || base.starts_with("--i") {
                        &mut spec.in_iface
                    } else {
                        &mut spec.out_iface
                    };
                    *slot = Some(Neg::new(neg, Iface(v.text.to_string())));
                    i = opt_idx + 2;
                    scope = Scope::Base;
                }
                "-f" | "--fragment" => {
                    spec.fragment = Some(neg);
                    i = opt_idx + 1;
                    scope = Scope::Base;
                }
                "-m" | "--match" => {
                    if neg {
                        return Err(spec_err(t, "`!` cannot negate -m"));
                    }
                    let v = arg(opt_idx + 1)?;
                    modules.push(ModuleAcc {
                        name: v,
                        toks: Vec::new(),
                    });
                    scope = Scope::Module(modules.len() - 1);
                    i = opt_idx + 2;
                }
                "-j" | "--jump" | "-g" | "--goto" => {
                    if neg {
                        return Err(spec_err(t, "`!` cannot negate a target"));
                    }
                    if target.is_some() {
                        return Err(spec_err(
                            opt_tok,
                            "a rule has one target; -j/-g given twice",
                        ));
                    }
                    let v = arg(opt_idx + 1)?;
                    target = Some((v, base.starts_with("-g") || base == "--goto", Vec::new()));
                    scope = Scope::Target;
                    i = opt_idx + 2;
                }
                "-c" | "--set-counters" => {
                    let p = arg(opt_idx + 1)?;
                    let b = arg(opt_idx + 2)?;
                    let pk = p
                        .text
                        .parse()
                        .map_err(|_| spec_err(p, "expected a packet count"))?;
                    let by = b
                        .text
                        .parse()
                        .map_err(|_| spec_err(b, "expected a byte count"))?;
                    counters = Some(Counters {
                        packets: pk,
                        bytes: by,
                    });
                    i = opt_idx + 3;
                }
                _ => {
                    // An option or argument of a module or the target.
                    let dest = match scope {
                        Scope::Module(m) => Scope::Module(m),
                        Scope::Target => Scope::Target,
                        Scope::Base => {
                            if !opt_tok.text.starts_with("--") || opt_tok.quoted {
                                return Err(spec_err(
                                    opt_tok,
                                    "unexpected word: expected an option such as -s, -d, -p, -m or -j",
                                ));
                            }
                            self.stray_destination(
                                &opt_tok.text,
                                &mut spec,
                                &mut modules,
                                target.as_ref().map(|t| t.0.text.as_ref()),
                                opt_tok,
                            )?
                        }
                    };
                    let push = |v: &mut Vec<&'t Token<'t>>| {
                        if neg {
                            v.push(t);
                        }
                        v.push(opt_tok);
                    };
                    match dest {
                        Scope::Module(m) => push(&mut modules[m].toks),
                        Scope::Target => push(&mut target.as_mut().expect("scope").2),
                        Scope::Base => unreachable!("stray_destination never returns Base"),
                    }
                    scope = dest;
                    i = opt_idx + 1;
                }
            }
        }
        for m in modules {
            let parsed = self.module(&m)?;
            spec.matches.push(parsed);
        }
        if let Some((name, goto, args)) = target {
            spec.target = Some(self.target(name, goto, &args)?);
        }
        Ok((spec, counters))
    }

    /// Where an option written after base options belongs.
    fn stray_destination(
        &mut self,
        opt: &str,
        spec: &mut RuleSpec,
        modules: &mut Vec<ModuleAcc<'t>>,
        target: Option<&str>,
        tok: &'t Token<'t>,
    ) -> Result<Scope, SpecError> {
        let opt_name = opt.split('=').next().unwrap_or(opt);
        if let Some(m) = modules
            .iter()
            .rposition(|m| module_knows(&m.name.text, opt_name))
        {
            return Ok(Scope::Module(m));
        }
        if let Some(t) = target
            && target_knows(t, opt_name)
        {
            return Ok(Scope::Target);
        }
        // `-p tcp --dport 80` without `-m tcp`: iptables loads the protocol's match implicitly.
        if let Some(p) = spec.proto.as_ref().filter(|p| !p.negated) {
            let implicit = match p.value {
                Protocol::Tcp => Some("tcp"),
                Protocol::Udp => Some("udp"),
                Protocol::Sctp => Some("sctp"),
                _ => None,
            };
            if let Some(name) = implicit
                && module_knows(name, opt_name)
            {
                // The implicit module needs a token for its name; borrow the option's own token
                // position but the module name text comes from a static table below.
                let name_tok = IMPLICIT_TOKENS
                    .iter()
                    .find(|t| t.text == name)
                    .expect("listed");
                modules.push(ModuleAcc {
                    name: name_tok,
                    toks: Vec::new(),
                });
                return Ok(Scope::Module(modules.len() - 1));
            }
        }
        if let Some(m) = modules
            .iter()
            .rposition(|m| !is_modelled_module(&m.name.text))
        {
            return Ok(Scope::Module(m));
        }
        Err(spec_err(
            tok,
            format!("unknown option {opt}: no match module in this rule takes it"),
        ))
    }

    fn address(&mut self, tok: &Token) -> Result<IpNet, SpecError> {
        let text = tok.text.as_ref();
        if text.contains(',') {
            return Err(spec_err(
                tok,
                "address lists are expanded by iptables into one rule per address; write one rule per address",
            ));
        }
        let net = match text.split_once('/') {
            None => IpAddr::from_str(text).map(IpNet::from).map_err(|_| ()),
            Some((a, m)) => {
                let addr = IpAddr::from_str(a).map_err(|_| ());
                match (addr, m.parse::<u8>()) {
                    (Ok(addr), Ok(len)) => IpNet::new(addr, len).map_err(|_| ()),
                    (Ok(addr), Err(_)) => match IpAddr::from_str(m) {
                        Ok(mask) => ipnet::ip_mask_to_prefix(mask)
                            .map_err(|_| ())
                            .and_then(|len| IpNet::new(addr, len).map_err(|_| ())),
                        Err(_) => Err(()),
                    },
                    _ => Err(()),
                }
            }
        }
        .map_err(|_| {
            spec_err(
                tok,
                "expected an address, an address/prefix-length or an address/netmask",
            )
        })?;
        self.family_of(&net.addr(), tok)?;
        Ok(net.trunc())
    }

    fn family_of(&mut self, addr: &IpAddr, tok: &Token) -> Result<(), SpecError> {
        let f = Family::of(addr);
        match *self.family {
            None => *self.family = Some(f),
            Some(g) if g != f => {
                return Err(spec_err(
                    tok,
                    format!(
                        "{} address in a rule set of {} addresses (iptables-save and ip6tables-save output must be separate files)",
                        if f == Family::Ipv4 { "IPv4" } else { "IPv6" },
                        if g == Family::Ipv4 { "IPv4" } else { "IPv6" }
                    ),
                ));
            }
            _ => {}
        }
        Ok(())
    }

    fn module(&mut self, m: &ModuleAcc<'t>) -> Result<Match, SpecError> {
        let name = m.name.text.as_ref();
        match self.known_module(name, &m.toks) {
            Ok(Some(mat)) => Ok(mat),
            Ok(None) => Ok(Match::Unknown {
                module: name.to_string(),
                args: m
                    .toks
                    .iter()
                    .map(|t| Word {
                        text: t.text.to_string(),
                        quoted: t.quoted,
                    })
                    .collect(),
            }),
            Err(e) => Err(e),
        }
    }

    /// `Ok(None)`: a module or option hoptrace does not model (kept verbatim).
    fn known_module(
        &mut self,
        name: &str,
        toks: &[&'t Token<'t>],
    ) -> Result<Option<Match>, SpecError> {
        let mut opts = OptStream { toks, pos: 0 };
        Ok(Some(match name {
            "comment" => {
                let mut text: Option<String> = None;
                let mut extra = Vec::new();
                while let Some((neg, o)) = opts.next_opt() {
                    if neg {
                        return Err(spec_err(o, "`!` cannot negate --comment"));
                    }
                    match o.text.as_ref() {
                        "--comment" => {
                            let v = opts.arg(o)?;
                            if v.text.len() > 255 {
                                return Err(spec_err(v, "comments are at most 255 characters"));
                            }
                            text = Some(v.text.to_string());
                        }
                        _ if !o.text.starts_with('-') && text.is_some() => {
                            extra.push(o.text.clone())
                        }
                        _ => return Ok(None),
                    }
                }
                let mut c = text.ok_or_else(|| {
                    spec_err(
                        toks.first().copied().unwrap_or(&IMPLICIT_TOKENS[0]),
                        "expected --comment",
                    )
                })?;
                if !extra.is_empty() {
                    self.warnings.push(format!(
                        "unquoted multi-word comment: read `{} {}` as one comment (iptables-restore would refuse the line)",
                        crate::sanitize::escape_str(&c),
                        crate::sanitize::escape_str(&extra.join(" "))
                    ));
                    c.push(' ');
                    c.push_str(&extra.join(" "));
                }
                Match::Comment(c)
            }
            "tcp" | "udp" | "sctp" => {
                let mut ports = PortsMatch::default();
                let mut tcp = TcpMatch::default();
                while let Some((neg, o)) = opts.next_opt() {
                    match o.text.as_ref() {
                        "--sport" | "--source-port" => {
                            ports.sport = Some(Neg::new(neg, port_range(opts.arg(o)?)?))
                        }
                        "--dport" | "--destination-port" => {
                            ports.dport = Some(Neg::new(neg, port_range(opts.arg(o)?)?))
                        }
                        "--syn" if name == "tcp" => {
                            tcp.flags = Some(Neg::new(
                                neg,
                                TcpFlagsMatch {
                                    mask: tcp_flags::FIN
                                        | tcp_flags::SYN
                                        | tcp_flags::RST
                                        | tcp_flags::ACK,
                                    comp: tcp_flags::SYN,
                                },
                            ))
                        }
                        "--tcp-flags" if name == "tcp" => {
                            let mask = flag_list(opts.arg(o)?)?;
                            let comp = flag_list(opts.arg(o)?)?;
                            tcp.flags = Some(Neg::new(neg, TcpFlagsMatch { mask, comp }));
                        }
                        "--tcp-option" if name == "tcp" => {
                            let v = opts.arg(o)?;
                            let n = v
                                .text
                                .parse::<u8>()
                                .map_err(|_| spec_err(v, "expected a TCP option number"))?;
                            tcp.option = Some(Neg::new(neg, n));
                        }
                        _ => return Ok(None),
                    }
                }
                match name {
                    "tcp" => Match::Tcp(TcpMatch { ports, ..tcp }),
                    "udp" => Match::Udp(ports),
                    _ => Match::Sctp(ports),
                }
            }
            "multiport" => {
                let mut out = None;
                while let Some((neg, o)) = opts.next_opt() {
                    let which = match o.text.as_ref() {
                        "--sports" | "--source-ports" => MultiportKind::Source,
                        "--dports" | "--destination-ports" => MultiportKind::Destination,
                        "--ports" => MultiportKind::Either,
                        _ => return Ok(None),
                    };
                    let v = opts.arg(o)?;
                    let mut ports = Vec::new();
                    for part in v.text.split(',') {
                        ports.push(parse_port_range(part).ok_or_else(|| {
                            spec_err(v, "expected ports such as 80,443,8000:8080")
                        })?);
                    }
                    if ports.is_empty() || ports.len() > 15 {
                        return Err(spec_err(v, "multiport takes 1 to 15 ports"));
                    }
                    out = Some(MultiportMatch {
                        negated: neg,
                        which,
                        ports,
                    });
                }
                Match::Multiport(out.ok_or_else(|| {
                    spec_err(
                        &IMPLICIT_TOKENS[0],
                        "multiport needs --sports, --dports or --ports",
                    )
                })?)
            }
            "statistic" => {
                let mut mode = None;
                let mut prob = None;
                let mut every = None;
                let mut packet = 0u32;
                let mut invert = false;
                while let Some((neg, o)) = opts.next_opt() {
                    match o.text.as_ref() {
                        "--mode" => mode = Some(opts.arg(o)?),
                        "--probability" => {
                            invert |= neg;
                            let v = opts.arg(o)?;
                            let p: f64 = v.text.parse().map_err(|_| {
                                spec_err(v, "expected a probability between 0 and 1")
                            })?;
                            if !(0.0..=1.0).contains(&p) {
                                return Err(spec_err(v, "expected a probability between 0 and 1"));
                            }
                            prob = Some(StatisticMatch::stored_probability(p));
                        }
                        "--every" => {
                            invert |= neg;
                            let v = opts.arg(o)?;
                            every =
                                Some(
                                    v.text.parse::<u32>().ok().filter(|&n| n >= 1).ok_or_else(
                                        || spec_err(v, "expected a packet count ≥ 1"),
                                    )?,
                                );
                        }
                        "--packet" => {
                            let v = opts.arg(o)?;
                            packet = v
                                .text
                                .parse()
                                .map_err(|_| spec_err(v, "expected a packet number"))?;
                        }
                        _ => return Ok(None),
                    }
                }
                match (mode.map(|m| m.text.as_ref()), prob, every) {
                    (Some("random"), Some(stored), None) => {
                        Match::Statistic(StatisticMatch::Random { stored, invert })
                    }
                    (Some("nth"), None, Some(every)) => {
                        if packet >= every {
                            return Err(spec_err(
                                toks.last().copied().unwrap_or(&IMPLICIT_TOKENS[0]),
                                "--packet must be smaller than --every",
                            ));
                        }
                        Match::Statistic(StatisticMatch::Nth {
                            every,
                            packet,
                            invert,
                        })
                    }
                    _ => {
                        return Err(spec_err(
                            toks.first().copied().unwrap_or(&IMPLICIT_TOKENS[0]),
                            "statistic needs `--mode random --probability P` or `--mode nth --every N [--packet P]`",
                        ));
                    }
                }
            }
            "recent" => {
                let mut r = RecentMatch {
                    op: RecentOp::Rcheck,
                    invert: false,
                    seconds: None,
                    reap: false,
                    hitcount: None,
                    rttl: false,
                    name: "DEFAULT".into(),
                    mask: None,
                    rdest: false,
                };
                let mut ops = 0;
                while let Some((neg, o)) = opts.next_opt() {
                    match o.text.as_ref() {
                        "--set" | "--rcheck" | "--update" | "--remove" => {
                            ops += 1;
                            r.invert = neg;
                            r.op = match o.text.as_ref() {
                                "--set" => RecentOp::Set,
                                "--rcheck" => RecentOp::Rcheck,
                                "--update" => RecentOp::Update,
                                _ => RecentOp::Remove,
                            };
                        }
                        "--seconds" => {
                            let v = opts.arg(o)?;
                            r.seconds = Some(
                                v.text
                                    .parse::<u32>()
                                    .ok()
                                    .filter(|&s| s >= 1)
                                    .ok_or_else(|| spec_err(v, "expected seconds ≥ 1"))?,
                            );
                        }
                        "--hitcount" => {
                            let v = opts.arg(o)?;
                            r.hitcount = Some(
                                v.text
                                    .parse::<u32>()
                                    .ok()
                                    .filter(|&h| h < 65536)
                                    .ok_or_else(|| {
                                        spec_err(v, "expected a hit count below 65536")
                                    })?,
                            );
                        }
                        "--reap" => r.reap = true,
                        "--rttl" => r.rttl = true,
                        "--rsource" => r.rdest = false,
                        "--rdest" => r.rdest = true,
                        "--name" => {
                            let v = opts.arg(o)?;
                            if v.text.is_empty() || v.text.len() >= 200 || v.text.contains('/') {
                                return Err(spec_err(
                                    v,
                                    "expected a list name (1 to 199 characters, no `/`)",
                                ));
                            }
                            r.name = v.text.as_ref().into();
                        }
                        "--mask" => {
                            let v = opts.arg(o)?;
                            let m = IpAddr::from_str(&v.text)
                                .map_err(|_| spec_err(v, "expected an address mask"))?;
                            self.family_of(&m, v)?;
                            let all_ones = match m {
                                IpAddr::V4(a) => a.to_bits() == u32::MAX,
                                IpAddr::V6(a) => a.to_bits() == u128::MAX,
                            };
                            r.mask = (!all_ones).then_some(m);
                        }
                        _ => return Ok(None),
                    }
                }
                if ops != 1 {
                    return Err(spec_err(
                        toks.first().copied().unwrap_or(&IMPLICIT_TOKENS[0]),
                        "recent needs exactly one of --set, --rcheck, --update, --remove",
                    ));
                }
                if matches!(r.op, RecentOp::Set | RecentOp::Remove)
                    && (r.seconds.is_some() || r.hitcount.is_some() || r.reap || r.rttl)
                {
                    return Err(spec_err(
                        toks.first().copied().unwrap_or(&IMPLICIT_TOKENS[0]),
                        "--set and --remove cannot be combined with --seconds, --hitcount, --reap or --rttl (the kernel refuses it)",
                    ));
                }
                if r.reap && r.seconds.is_none() {
                    return Err(spec_err(
                        toks.first().copied().unwrap_or(&IMPLICIT_TOKENS[0]),
                        "--reap needs --seconds",
                    ));
                }
                Match::Recent(r)
            }
            "mark" | "connmark" => {
                let mut out = None;
                while let Some((neg, o)) = opts.next_opt() {
                    match o.text.as_ref() {
                        "--mark" => {
                            let (value, mask) = mark_value(opts.arg(o)?)?;
                            out = Some(MarkMatch {
                                negated: neg,
                                value,
                                mask: mask.unwrap_or(u32::MAX),
                            });
                        }
                        _ => return Ok(None),
                    }
                }
                let m = out.ok_or_else(|| spec_err(&IMPLICIT_TOKENS[0], "expected --mark"))?;
                if name == "mark" {
                    Match::Mark(m)
                } else {
                    Match::Connmark(m)
                }
            }
            "addrtype" => {
                let mut a = AddrtypeMatch::default();
                while let Some((neg, o)) = opts.next_opt() {
                    match o.text.as_ref() {
                        "--src-type" => a.src = Some(Neg::new(neg, addr_type_list(opts.arg(o)?)?)),
                        "--dst-type" => a.dst = Some(Neg::new(neg, addr_type_list(opts.arg(o)?)?)),
                        "--limit-iface-in" => a.limit_iface_in = true,
                        "--limit-iface-out" => a.limit_iface_out = true,
                        _ => return Ok(None),
                    }
                }
                Match::Addrtype(a)
            }
            "conntrack" | "state" => {
                let mut states = None;
                while let Some((neg, o)) = opts.next_opt() {
                    match (name, o.text.as_ref()) {
                        ("conntrack", "--ctstate") | ("state", "--state") => {
                            states = Some(Neg::new(neg, ct_state_list(opts.arg(o)?)?));
                        }
                        _ => return Ok(None),
                    }
                }
                if name == "state" {
                    Match::State(
                        states.ok_or_else(|| spec_err(&IMPLICIT_TOKENS[0], "expected --state"))?,
                    )
                } else {
                    Match::Conntrack(ConntrackMatch { ctstate: states })
                }
            }
            "nfacct" => {
                let mut n = None;
                while let Some((_, o)) = opts.next_opt() {
                    match o.text.as_ref() {
                        "--nfacct-name" => n = Some(opts.arg(o)?.text.clone()),
                        _ => return Ok(None),
                    }
                }
                Match::Nfacct(
                    n.ok_or_else(|| spec_err(&IMPLICIT_TOKENS[0], "expected --nfacct-name"))?
                        .to_string(),
                )
            }
            "physdev" => {
                let mut p = PhysdevMatch::default();
                while let Some((neg, o)) = opts.next_opt() {
                    match o.text.as_ref() {
                        "--physdev-is-in" => p.is_in = Some(!neg),
                        "--physdev-is-out" => p.is_out = Some(!neg),
                        "--physdev-is-bridged" => p.is_bridged = Some(!neg),
                        _ => return Ok(None),
                    }
                }
                Match::Physdev(p)
            }
            _ => return Ok(None),
        }))
    }

    fn target(
        &mut self,
        name: &'t Token<'t>,
        goto: bool,
        args: &[&'t Token<'t>],
    ) -> Result<Target, SpecError> {
        let n = name.text.as_ref();
        let verbatim = || {
            args.iter()
                .map(|t| Word {
                    text: t.text.to_string(),
                    quoted: t.quoted,
                })
                .collect::<Vec<_>>()
        };
        let unknown = || Target::Unknown {
            name: n.to_string(),
            args: verbatim(),
        };
        if goto
            && matches!(
                n,
                "ACCEPT" | "DROP" | "RETURN" | "REJECT" | "DNAT" | "SNAT" | "MASQUERADE" | "MARK"
            )
        {
            return Err(spec_err(name, "-g needs a user chain, not a target"));
        }
        let mut opts = OptStream { toks: args, pos: 0 };
        let no_args = |t: Target| -> Result<Target, SpecError> {
            match args.first() {
                Some(a) => Err(spec_err(a, format!("{n} takes no options"))),
                None => Ok(t),
            }
        };
        Ok(match n {
            "ACCEPT" => no_args(Target::Accept)?,
            "DROP" => no_args(Target::Drop)?,
            "RETURN" => no_args(Target::Return)?,
            "REJECT" => {
                let mut with = None;
                while let Some((_, o)) = opts.next_opt() {
                    match o.text.as_ref() {
                        "--reject-with" => with = Some(opts.arg(o)?.text.clone()),
                        _ => return Ok(unknown()),
                    }
                }
                let with = with.filter(|w| {
                    w != "icmp-port-unreachable"
                        && w != "icmp6-port-unreachable"
                        && w != "port-unreach"
                });
                Target::Reject {
                    with: with.map(|w| w.to_string()),
                }
            }
            "DNAT" | "SNAT" => {
                let (mut to, mut random, mut fully, mut persistent) = (None, false, false, false);
                while let Some((_, o)) = opts.next_opt() {
                    match o.text.as_ref() {
                        "--to-destination" if n == "DNAT" => {
                            to = Some(self.nat_range(opts.arg(o)?)?)
                        }
                        "--to-source" if n == "SNAT" => to = Some(self.nat_range(opts.arg(o)?)?),
                        "--random" => random = true,
                        "--random-fully" if n == "SNAT" => fully = true,
                        "--persistent" => persistent = true,
                        _ => return Ok(unknown()),
                    }
                }
                let to = to.ok_or_else(|| {
                    spec_err(
                        name,
                        format!(
                            "{n} needs {}",
                            if n == "DNAT" {
                                "--to-destination"
                            } else {
                                "--to-source"
                            }
                        ),
                    )
                })?;
                if n == "DNAT" {
                    Target::Dnat {
                        to,
                        random,
                        persistent,
                    }
                } else {
                    Target::Snat {
                        to,
                        random,
                        random_fully: fully,
                        persistent,
                    }
                }
            }
            "MASQUERADE" | "REDIRECT" => {
                let (mut ports, mut random, mut fully) = (None, false, false);
                while let Some((_, o)) = opts.next_opt() {
                    match o.text.as_ref() {
                        "--to-ports" => {
                            let v = opts.arg(o)?;
                            let r = parse_port_range(&v.text.replace('-', ":"))
                                .ok_or_else(|| spec_err(v, "expected a port or port-port"))?;
                            ports = Some((r.first, r.last));
                        }
                        "--random" => random = true,
                        "--random-fully" if n == "MASQUERADE" => fully = true,
                        _ => return Ok(unknown()),
                    }
                }
                if n == "MASQUERADE" {
                    Target::Masquerade {
                        to_ports: ports,
                        random,
                        random_fully: fully,
                    }
                } else {
                    Target::Redirect {
                        to_ports: ports,
                        random,
                    }
                }
            }
            "MARK" => {
                let mut op = None;
                while let Some((_, o)) = opts.next_opt() {
                    let v = opts.arg(o)?;
                    let (value, mask) = mark_value(v)?;
                    op = Some(match (o.text.as_ref(), mask) {
                        ("--set-xmark", m) => (value, m.unwrap_or(u32::MAX)),
                        ("--set-mark", m) => {
                            let m = m.unwrap_or(u32::MAX);
                            (value, m | value)
                        }
                        ("--and-mark", None) => (0, !value),
                        ("--or-mark", None) => (value, value),
                        ("--xor-mark", None) => (value, 0),
                        _ => return Ok(unknown()),
                    });
                }
                let (value, mask) = op.ok_or_else(|| {
                    spec_err(
                        name,
                        "MARK needs --set-xmark, --set-mark, --and-mark, --or-mark or --xor-mark",
                    )
                })?;
                Target::Mark { value, mask }
            }
            "CONNMARK" => {
                let mut op = None;
                let (mut nfmask, mut ctmask) = (u32::MAX, u32::MAX);
                let mut kind = "";
                while let Some((_, o)) = opts.next_opt() {
                    match o.text.as_ref() {
                        "--save-mark" | "--restore-mark" => {
                            kind = if o.text == "--save-mark" {
                                "save"
                            } else {
                                "restore"
                            }
                        }
                        "--mask" => {
                            let (v, _) = mark_value(opts.arg(o)?)?;
                            nfmask = v;
                            ctmask = v;
                        }
                        "--nfmask" => nfmask = mark_value(opts.arg(o)?)?.0,
                        "--ctmask" => ctmask = mark_value(opts.arg(o)?)?.0,
                        other => {
                            let (value, mask) = mark_value(opts.arg(o)?)?;
                            op = Some(match (other, mask) {
                                ("--set-xmark", m) => ConnmarkOp::SetXmark {
                                    value,
                                    mask: m.unwrap_or(u32::MAX),
                                },
                                ("--set-mark", m) => ConnmarkOp::SetXmark {
                                    value,
                                    mask: m.unwrap_or(u32::MAX) | value,
                                },
                                ("--and-mark", None) => ConnmarkOp::SetXmark {
                                    value: 0,
                                    mask: !value,
                                },
                                ("--or-mark", None) => ConnmarkOp::SetXmark { value, mask: value },
                                ("--xor-mark", None) => ConnmarkOp::SetXmark { value, mask: 0 },
                                _ => return Ok(unknown()),
                            });
                        }
                    }
                }
                let op = match kind {
                    "save" => ConnmarkOp::Save { nfmask, ctmask },
                    "restore" => ConnmarkOp::Restore { nfmask, ctmask },
                    _ => op.ok_or_else(|| {
                        spec_err(
                            name,
                            "CONNMARK needs --set-xmark, --save-mark or --restore-mark",
                        )
                    })?,
                };
                Target::Connmark(op)
            }
            "LOG" | "NFLOG" | "TRACE" => Target::Log {
                name: n.to_string(),
                args: verbatim(),
            },
            "NOTRACK" => no_args(Target::Notrack { legacy: true })?,
            "CT" => match args
                .iter()
                .map(|t| t.text.as_ref())
                .collect::<Vec<_>>()
                .as_slice()
            {
                ["--notrack"] => Target::Notrack { legacy: false },
                _ => unknown(),
            },
            _ if EXTENSION_TARGETS.contains(&n) => unknown(),
            _ => {
                if let Some(a) = args.first() {
                    return Err(spec_err(
                        a,
                        format!("unexpected option after jump to chain {n}"),
                    ));
                }
                if n.is_empty() {
                    return Err(spec_err(name, "expected a target or chain name"));
                }
                let c = ChainRef {
                    name: n.into(),
                    id: None,
                };
                if goto {
                    Target::Goto(c)
                } else {
                    Target::Jump(c)
                }
            }
        })
    }

    fn nat_range(&mut self, tok: &Token) -> Result<NatRange, SpecError> {
        let bad = || spec_err(tok, "expected ip[-ip][:port[-port]] (IPv6: [ip]:port)");
        let t = tok.text.as_ref();
        // Split addresses and ports. IPv6 with ports uses brackets.
        let (addr_part, port_part) = if t.starts_with('[') {
            match t.rfind("]:") {
                Some(p) => (&t[..=p], Some(&t[p + 2..])),
                None => (t, None),
            }
        } else if t.matches(':').count() == 1 {
            let (a, p) = t.split_once(':').expect("one colon");
            (a, Some(p))
        } else {
            (t, None)
        };
        let parse_ip = |s: &str| {
            IpAddr::from_str(s.trim_start_matches('[').trim_end_matches(']')).map_err(|_| bad())
        };
        let addrs = if addr_part.is_empty() {
            None
        } else {
            let (a, b) = match addr_part.split_once("-") {
                Some((a, b)) if !addr_part.contains("::") || addr_part.starts_with('[') => {
                    (parse_ip(a)?, parse_ip(b)?)
                }
                _ => {
                    let a = parse_ip(addr_part)?;
                    (a, a)
                }
            };
            self.family_of(&a, tok)?;
            Some((a, b))
        };
        let ports = match port_part {
            None => None,
            Some(p) => {
                let r = parse_port_range(&p.replace('-', ":")).ok_or_else(bad)?;
                Some((r.first, r.last))
            }
        };
        if addrs.is_none() && ports.is_none() {
            return Err(bad());
        }
        Ok(NatRange { addrs, ports })
    }
}

/// Name tokens for modules loaded implicitly (`-p tcp --dport 80`).
static IMPLICIT_TOKENS: std::sync::LazyLock<[Token<'static>; 3]> = std::sync::LazyLock::new(|| {
    ["tcp", "udp", "sctp"].map(|n| Token {
        text: std::borrow::Cow::Borrowed(n),
        quoted: false,
        offset: 0,
    })
});

fn is_modelled_module(name: &str) -> bool {
    matches!(
        name,
        "comment"
            | "tcp"
            | "udp"
            | "sctp"
            | "multiport"
            | "statistic"
            | "recent"
            | "mark"
            | "connmark"
            | "addrtype"
            | "conntrack"
            | "state"
            | "nfacct"
            | "physdev"
    )
}

/// Iterates `[!] --option args…` inside one module's or target's words.
struct OptStream<'a, 't> {
    toks: &'a [&'t Token<'t>],
    pos: usize,
}

impl<'t> OptStream<'_, 't> {
    fn next_opt(&mut self) -> Option<(bool, &'t Token<'t>)> {
        let t = *self.toks.get(self.pos)?;
        self.pos += 1;
        if t.text == "!" && !t.quoted {
            let n = *self.toks.get(self.pos)?;
            self.pos += 1;
            return Some((true, n));
        }
        Some((false, t))
    }

    fn arg(&mut self, opt: &Token) -> Result<&'t Token<'t>, SpecError> {
        let t = self
            .toks
            .get(self.pos)
            .copied()
            .ok_or_else(|| spec_err(opt, format!("expected a value after {}", opt.text)))?;
        self.pos += 1;
        Ok(t)
    }
}

fn parse_port_range(s: &str) -> Option<PortRange> {
    let (a, b) = match s.split_once(':') {
        Some((a, b)) => (a, b),
        None => (s, s),
    };
    let first = if a.is_empty() { 0 } else { a.parse().ok()? };
    let last = if b.is_empty() { 65535 } else { b.parse().ok()? };
    (first <= last).then_some(PortRange { first, last })
}

fn port_range(tok: &Token) -> Result<PortRange, SpecError> {
    parse_port_range(&tok.text)
        .ok_or_else(|| spec_err(tok, "expected a port number or a range first:last"))
}

fn flag_list(tok: &Token) -> Result<u8, SpecError> {
    let mut bits = 0;
    for f in tok.text.split(',') {
        bits |= match f {
            "ALL" => 0x3f,
            "NONE" => 0,
            _ => tcp_flags::NAMES
                .iter()
                .find(|(n, _)| *n == f)
                .map(|(_, b)| *b)
                .ok_or_else(|| spec_err(tok, "expected TCP flags such as SYN,ACK"))?,
        };
    }
    Ok(bits)
}

/// A number the way iptables reads it (`strtoul` base 0: `0x` hex, leading `0` octal).
fn number_u32(s: &str) -> Option<u32> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(h, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u32::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

fn mark_value(tok: &Token) -> Result<(u32, Option<u32>), SpecError> {
    let bad = || spec_err(tok, "expected a mark value[/mask], e.g. 0x4000/0x4000");
    match tok.text.split_once('/') {
        Some((v, m)) => Ok((
            number_u32(v).ok_or_else(bad)?,
            Some(number_u32(m).ok_or_else(bad)?),
        )),
        None => Ok((number_u32(&tok.text).ok_or_else(bad)?, None)),
    }
}

fn addr_type_list(tok: &Token) -> Result<u16, SpecError> {
    let mut bits = 0u16;
    for t in tok.text.split(',') {
        let i = addr_types::NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(t))
            .ok_or_else(|| spec_err(tok, "expected address types such as LOCAL,UNICAST"))?;
        bits |= 1 << i;
    }
    Ok(bits)
}

fn ct_state_list(tok: &Token) -> Result<u8, SpecError> {
    let mut bits = 0u8;
    for t in tok.text.split(',') {
        bits |= ct_states::NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(t))
            .map(|(_, b)| *b)
            .ok_or_else(|| {
                spec_err(
                    tok,
                    "expected states such as NEW,ESTABLISHED,RELATED,INVALID,DNAT",
                )
            })?;
    }
    Ok(bits)
}

/// A rule set built from rule lines by hoptrace itself (tests, generators, rewrites).
pub fn parse_rule_spec(text: &str) -> Result<RuleSpec, ParseError> {
    let toks = lexer::words(text, 0).map_err(|e| ParseError {
        file: "<rule>".into(),
        line: 1,
        column: column(text, e.offset),
        token: None,
        message: e.message,
    })?;
    let mut family = None;
    let mut warnings = Vec::new();
    RuleParser::new(&toks, &mut family, &mut warnings)
        .parse()
        .map(|(s, _)| s)
        .map_err(|e| ParseError {
            file: "<rule>".into(),
            line: 1,
            column: column(text, e.offset.unwrap_or(text.len())),
            token: e.token.as_deref().map(shown),
            message: e.message,
        })
}

/// Helper for callers building rules: a rule from spec text, with its own text as `text`.
pub fn rule_from_text(chain: &str, spec: &str) -> Result<Rule, ParseError> {
    let s = parse_rule_spec(spec)?;
    Ok(Rule {
        spec: s,
        counters: None,
        text: Arc::from(format!("-A {chain} {spec}")),
        line: 0,
        gid: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netfilter::print;

    fn spec(text: &str) -> RuleSpec {
        parse_rule_spec(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn both_forms_of_a_kube_proxy_rule_are_the_same_model() {
        let pairs = [
            (
                r#"-m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ"#,
                r#"! -s 10.0.0.0/8 -d 172.30.0.41/32 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ"#,
            ),
            (
                "-j MARK --or-mark 0x4000",
                "-j MARK --set-xmark 0x4000/0x4000",
            ),
            (
                "-j MARK --xor-mark 0x4000",
                "-j MARK --set-xmark 0x4000/0x0",
            ),
            (
                "-j MARK --and-mark 0xff",
                "-j MARK --set-xmark 0x0/0xffffff00",
            ),
            (
                "-j MARK --set-mark 0x004000",
                "-j MARK --set-xmark 0x4000/0xffffffff",
            ),
            (
                "-m recent --name KUBE-SEP-X --rcheck --seconds 10800 --reap -j KUBE-SEP-X",
                "-m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-X --mask 255.255.255.255 --rsource -j KUBE-SEP-X",
            ),
            (
                "-m statistic --mode random --probability 0.3333333333 -j X",
                "-m statistic --mode random --probability 0.33333333349 -j X",
            ),
            (
                "-m comment --comment ns1/svc1:p80 -j REJECT",
                r#"-m comment --comment "ns1/svc1:p80" -j REJECT --reject-with icmp-port-unreachable"#,
            ),
            (
                "-p tcp --dport 80 -j ACCEPT",
                "-p tcp -m tcp --dport 80 -j ACCEPT",
            ),
            ("-s 10.1.2.3/255.255.0.0 -j DROP", "-s 10.1.0.0/16 -j DROP"),
            ("--source 1.2.3.4 --jump DROP", "-s 1.2.3.4/32 -j DROP"),
        ];
        for (a, b) in pairs {
            assert_eq!(spec(a), spec(b), "{a}  vs  {b}");
        }
    }

    #[test]
    fn a_ruleset_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Ruleset>();
    }

    #[test]
    fn negation_in_both_positions() {
        let s = spec(
            "-m mark ! --mark 0x4000/0x4000 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT ! -p udp -m statistic --mode random ! --probability 0.5 -j RETURN",
        );
        assert!(matches!(
            s.matches[0],
            Match::Mark(MarkMatch {
                negated: true,
                value: 0x4000,
                mask: 0x4000
            })
        ));
        assert!(matches!(
            s.matches[1],
            Match::Conntrack(ConntrackMatch {
                ctstate: Some(Neg { negated: true, .. })
            })
        ));
        assert!(s.proto.unwrap().negated);
        assert_eq!(
            s.statistic(),
            Some(&StatisticMatch::Random {
                stored: 1 << 30,
                invert: true
            })
        );
        assert_eq!(
            print::rule_spec(&s, None),
            "! -p udp -m mark ! --mark 0x4000/0x4000 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -m statistic --mode random ! --probability 0.50000000000 -j RETURN"
        );
    }

    #[test]
    fn ipv6_and_nat_ranges() {
        let s = spec("-d fd00::1/128 -p tcp -m tcp -j DNAT --to-destination [ff06::c1]:80");
        assert_eq!(
            s.target,
            Some(Target::Dnat {
                to: NatRange {
                    addrs: Some(("ff06::c1".parse().unwrap(), "ff06::c1".parse().unwrap())),
                    ports: Some((80, 80))
                },
                random: false,
                persistent: false,
            })
        );
        let s = spec("-j DNAT --to-destination 10.0.0.1-10.0.0.3:8000-8010");
        assert_eq!(
            print::rule_spec(&s, None),
            "-j DNAT --to-destination 10.0.0.1-10.0.0.3:8000-8010"
        );
        let s = spec("-j MASQUERADE --to-ports 1024-65535 --random-fully");
        assert_eq!(
            print::rule_spec(&s, None),
            "-j MASQUERADE --to-ports 1024-65535 --random-fully"
        );
    }

    #[test]
    fn unknown_modules_and_targets_are_kept_verbatim() {
        let s = spec(
            r#"-m set --match-set "my set" src -m hashlimit --hashlimit-above 5/sec -j TPROXY --on-port 1"#,
        );
        assert_eq!(s.matches.len(), 2);
        assert!(
            matches!(&s.matches[0], Match::Unknown { module, args } if module == "set" && args[1].text == "my set")
        );
        assert!(matches!(&s.target, Some(Target::Unknown { name, .. }) if name == "TPROXY"));
        assert_eq!(
            print::rule_spec(&s, None),
            r#"-m set --match-set "my set" src -m hashlimit --hashlimit-above 5/sec -j TPROXY --on-port 1"#
        );
    }

    #[test]
    fn restore_commands_insert_delete_and_counters() {
        let text = "*filter\n:INPUT ACCEPT [1:2]\n:X - [0:0]\n:Y - [0:0]\n-A INPUT -j X\n-I INPUT 1 -j Y\n[5:300] -A INPUT -s 1.1.1.1 -j DROP\n\
                    -A INPUT -s 2.2.2.2 -j DROP -c 7 700\n-D INPUT -j X\n-X X\n-P INPUT DROP\nCOMMIT\n";
        let rs = parse(text.as_bytes(), "t").unwrap();
        let t = rs.table(TableName::Filter).unwrap();
        let input = t.chain("INPUT").unwrap();
        assert_eq!(input.policy, Some(Policy::Drop));
        assert_eq!(
            input.counters,
            Counters {
                packets: 1,
                bytes: 2
            }
        );
        assert_eq!(input.rules.len(), 3);
        assert!(matches!(&input.rules[0].spec.target, Some(Target::Jump(c)) if &*c.name == "Y"));
        assert_eq!(
            input.rules[1].counters,
            Some(Counters {
                packets: 5,
                bytes: 300
            })
        );
        assert_eq!(
            input.rules[2].counters,
            Some(Counters {
                packets: 7,
                bytes: 700
            })
        );
        assert!(t.chain("X").is_none());
        let with = print::save(&rs, print::SaveOptions { counters: true });
        assert!(
            with.contains("[5:300] -A INPUT -s 1.1.1.1/32 -j DROP"),
            "{with}"
        );
    }
}
