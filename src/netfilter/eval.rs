//! One evaluator, two modes.
//!
//! The walker ([`walk`]) takes a packet through the hooks in kernel order and records the path as
//! data. Everything that is random or stateful — `statistic` draws, `statistic --mode nth`
//! counters, `recent` tables — is asked of a [`WalkEnv`]:
//! * the exhaustive mode ([`super::trace()`]) answers every random question both ways, replaying the
//!   walk once per branch, and multiplies the exact probabilities (stored integer / 2^31);
//! * the stateful mode ([`super::stateful::NodeEvaluator`]) draws like the kernel and mutates the
//!   node's state.
//!
//! Hook order (netfilter priorities): PREROUTING raw → mangle → nat; routing (local or not);
//! INPUT mangle → filter → security → nat, or FORWARD mangle → filter → security; POSTROUTING
//! mangle → nat. A locally generated packet takes OUTPUT raw → mangle → nat → filter → security,
//! POSTROUTING, and for a local destination the loopback pass (PREROUTING raw/mangle, INPUT
//! mangle/filter/security). NAT chains run only for the first packet of a connection and only
//! once per manipulation (destination at PREROUTING/OUTPUT, source at POSTROUTING/INPUT).

use serde::Serialize;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use super::model::*;
use super::packet::{NodeContext, Origin, Packet};
use super::recent::{RecentEvent, masked};

/// A netfilter hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Hook {
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
}

impl Hook {
    pub fn chain(self) -> &'static str {
        match self {
            Hook::Prerouting => "PREROUTING",
            Hook::Input => "INPUT",
            Hook::Forward => "FORWARD",
            Hook::Output => "OUTPUT",
            Hook::Postrouting => "POSTROUTING",
        }
    }
}

/// Final fate of the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Accept,
    Drop,
    Reject,
    /// A rule the model cannot evaluate was reached (see [`Outcome::undecided`]).
    Undecided,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accept => "ACCEPT",
            Verdict::Drop => "DROP",
            Verdict::Reject => "REJECT",
            Verdict::Undecided => "UNDECIDED",
        }
    }
}

/// A rule, by position: 1-based `rule` within `chain`, as `iptables -L --line-numbers` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleAt {
    pub table: TableName,
    pub chain: Arc<str>,
    pub rule: u32,
}

/// What decided the verdict: a rule, or a built-in chain's policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum DecidedBy {
    Rule(RuleAt),
    Policy {
        table: TableName,
        chain: Arc<str>,
        policy: Policy,
    },
}

/// One rule tried on the way (or a policy applied).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathStep {
    pub hook: Hook,
    pub table: TableName,
    pub chain: Arc<str>,
    /// 1-based; 0 for the chain's policy.
    pub rule: u32,
    /// The rule as the file wrote it (`policy ACCEPT` for a policy step).
    pub text: Arc<str>,
    pub matched: bool,
    /// Why it did not match, e.g. "`! -s 10.0.0.0/8`: source 10.0.0.2 is inside".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why_not: Option<String>,
    /// What the matching rule did, e.g. "jump KUBE-SVC-…", "DNAT to 10.0.1.1:80", "mark 0x4000".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

/// The DNAT a connection got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnatResult {
    /// First address of the `--to-destination` range (the only one for kube-proxy).
    pub ip: IpAddr,
    /// Destination port after DNAT (unchanged when the rule gives none).
    pub port: u16,
    /// The full `--to-destination` text when it is a range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    /// The chain holding the DNAT rule (kube-proxy: KUBE-SEP-…).
    pub chain: Arc<str>,
    pub rule: RuleAt,
}

/// A MASQUERADE (or SNAT) that will rewrite the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceNat {
    pub rule: RuleAt,
    /// `MASQUERADE` (source = primary address of the outgoing interface) or `SNAT`.
    pub kind: &'static str,
    /// `SNAT --to-source` address, when SNAT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_source: Option<IpAddr>,
    pub to_ports: Option<(u16, u16)>,
    pub random: bool,
    /// Never keeps the source port; the port cannot be predicted.
    pub random_fully: bool,
}

/// A rule the model could not evaluate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Undecided {
    pub rule: RuleAt,
    pub text: Arc<str>,
    pub reason: String,
}

/// One `statistic` decision on the way.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StatisticDecision {
    pub rule_gid: u32,
    /// Stored integer (random mode).
    pub stored: u32,
    /// The 32-bit value drawn, when it was drawn (stateful mode).
    pub drawn: Option<u32>,
    pub matched: bool,
    /// Probability of this branch.
    pub probability: f64,
}

/// The fate of one packet along one branch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// Probability of this branch (1 in stateful mode).
    pub probability: f64,
    pub verdict: Verdict,
    pub decided_by: Option<DecidedBy>,
    pub dnat: Option<DnatResult>,
    pub source_nat: Option<SourceNat>,
    /// Packet mark and conntrack mark at the end.
    pub mark: u32,
    pub ct_mark: u32,
    /// Delivered to a local socket (INPUT) rather than forwarded.
    pub local_delivery: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undecided: Option<Undecided>,
    /// Recent tables whose `--rcheck`/`--update` matched (affinity hits), in order.
    pub recent_hits: Vec<Arc<str>>,
    /// Changes to recent tables (adds, refreshes, evictions, reaps).
    pub recent_events: Vec<RecentEvent>,
    pub statistic: Vec<StatisticDecision>,
    pub path: Vec<PathStep>,
}

impl Outcome {
    /// Accepted, probability 1, nothing decided yet (also a reused conntrack binding's start).
    pub(crate) fn new() -> Outcome {
        Outcome {
            probability: 1.0,
            verdict: Verdict::Accept,
            decided_by: None,
            dnat: None,
            source_nat: None,
            mark: 0,
            ct_mark: 0,
            local_delivery: false,
            undecided: None,
            recent_hits: Vec::new(),
            recent_events: Vec::new(),
            statistic: Vec::new(),
            path: Vec::new(),
        }
    }

    /// MASQUERADE or SNAT will rewrite the source.
    pub fn masquerade(&self) -> bool {
        self.source_nat.is_some()
    }
}

/// Answers the walker's questions about randomness and state.
pub trait WalkEnv {
    /// `statistic --mode random`: does the rule match? Also returns the value drawn (if any) and
    /// the probability of the answer given.
    fn random(&mut self, gid: u32, stored: u32, invert: bool) -> (bool, Option<u32>, f64);
    /// `statistic --mode nth`.
    fn nth(&mut self, gid: u32, every: u32, packet: u32, invert: bool) -> (bool, f64);
    /// `recent`: `addr` is masked already.
    fn recent(
        &mut self,
        m: &RecentMatch,
        addr: IpAddr,
        ttl: u8,
        events: &mut Vec<RecentEvent>,
    ) -> bool;
}

/// Probability that a `statistic --mode random` rule matches, `!` applied.
pub(crate) fn random_match_probability(stored: u32, invert: bool) -> f64 {
    let q = StatisticMatch::probability_of(stored);
    if invert { 1.0 - q } else { q }
}

/// A decision that is not a fork: `Some(answer)` when the probability is 0 or 1 (such
/// decisions are never branched on nor scripted), `None` for a true fork.
pub(crate) fn certain(p_match: f64) -> Option<bool> {
    if p_match <= 0.0 {
        Some(false)
    } else if p_match >= 1.0 {
        Some(true)
    } else {
        None
    }
}

/// Options of one walk.
#[derive(Debug, Clone, Copy)]
pub struct WalkOptions {
    /// Record every rule tried (the path). Off for bulk replay.
    pub record_path: bool,
}

enum Flow {
    Continue,
    Accept,
    Drop,
    Reject,
    Undecided,
}

/// What happens after a rule matched.
enum Act {
    /// Go on with the next rule.
    Continue,
    /// Leave the chain with this result.
    Return(Flow),
    /// `-g`: continue in another chain, returning to this chain's caller.
    Goto(usize),
}

enum MatchResult {
    Yes,
    No(String),
    Undecided(String),
}

struct Walker<'a, E: WalkEnv> {
    /// The rule set's tables by [`TableName`] (looked up once per packet, not once per hook).
    tables: [Option<&'a Table>; 5],
    ctx: &'a NodeContext,
    env: &'a mut E,
    record: bool,
    hook: Hook,
    src: IpAddr,
    dst: IpAddr,
    sport: Option<u16>,
    dport: u16,
    proto: Protocol,
    /// `proto.number()`, for the compact rules.
    proto_number: u8,
    ttl: u8,
    tcp_flags: u8,
    in_iface: Option<&'a str>,
    out_iface: Option<&'a str>,
    ct_dnat: bool,
    ct_snat: bool,
    untracked: bool,
    out: Outcome,
    /// Last decision of a filter chain: (rule that accepted) or policy.
    filter_decision: Option<DecidedBy>,
    last_policy: Option<DecidedBy>,
    /// `Rule::gid` of the rule being matched (keys per-rule state).
    current_gid: u32,
    /// Sent by a local process (OUTPUT path).
    local_origin: bool,
}

/// Walk a packet through the node's hooks.
pub fn walk<E: WalkEnv>(
    rs: &Ruleset,
    ctx: &NodeContext,
    pkt: &Packet,
    env: &mut E,
    opts: WalkOptions,
) -> Outcome {
    let mut tables = [None; 5];
    for t in &rs.tables {
        tables[t.name as usize].get_or_insert(t);
    }
    let mut w = Walker {
        tables,
        ctx,
        env,
        record: opts.record_path,
        hook: Hook::Prerouting,
        src: pkt.src,
        dst: pkt.dst,
        sport: pkt.src_port,
        dport: pkt.dst_port,
        proto: pkt.proto,
        proto_number: pkt.proto.number(),
        ttl: pkt.ttl,
        tcp_flags: pkt.tcp_flags,
        in_iface: pkt.in_iface.as_deref(),
        out_iface: pkt.out_iface.as_deref(),
        ct_dnat: false,
        ct_snat: false,
        untracked: false,
        out: Outcome::new(),
        filter_decision: None,
        last_policy: None,
        current_gid: 0,
        local_origin: false,
    };
    let local_origin = match pkt.origin {
        Origin::Local => true,
        Origin::Incoming => false,
        Origin::Auto => ctx.is_local(&pkt.src) && pkt.in_iface.as_deref().is_none_or(|i| i == "lo"),
    };
    use TableName::*;
    w.local_origin = local_origin;
    let finished = if local_origin {
        w.in_iface = None;
        w.hook(Hook::Output, &[Raw, Mangle, Nat, Filter, Security])
            && w.hook(Hook::Postrouting, &[Mangle, Nat])
            && {
                let to_self = ctx.is_local(&w.dst);
                if to_self {
                    w.in_iface = Some("lo");
                    w.out_iface = Some("lo");
                    w.out.local_delivery = true;
                    // Loopback pass: the NAT manipulations are done already.
                    w.hook(Hook::Prerouting, &[Raw, Mangle])
                        && w.hook(Hook::Input, &[Mangle, Filter, Security])
                } else {
                    true
                }
            }
    } else {
        w.hook(Hook::Prerouting, &[Raw, Mangle, Nat]) && {
            if ctx.is_local(&w.dst) {
                w.out.local_delivery = true;
                w.hook(Hook::Input, &[Mangle, Filter, Security, Nat])
            } else {
                w.hook(Hook::Forward, &[Mangle, Filter, Security])
                    && w.hook(Hook::Postrouting, &[Mangle, Nat])
            }
        }
    };
    if finished {
        w.out.verdict = Verdict::Accept;
        w.out.decided_by = w.filter_decision.take().or(w.last_policy.take());
    }
    w.out
}

impl<'a, E: WalkEnv> Walker<'a, E> {
    /// Run the tables of one hook; `false` when the packet's fate is sealed (DROP, REJECT,
    /// undecided).
    fn hook(&mut self, hook: Hook, tables: &[TableName]) -> bool {
        self.hook = hook;
        for &tn in tables {
            if tn == TableName::Nat && self.untracked {
                continue;
            }
            let Some(table) = self.tables[tn as usize] else {
                continue;
            };
            let Some(cid) = table.hook_chain(hook as usize) else {
                continue;
            };
            match self.run_chain(table, cid, 0) {
                Flow::Accept => {}
                Flow::Continue => {
                    let chain = &table.chains[cid];
                    let policy = chain.policy.unwrap_or(Policy::Accept);
                    let by = DecidedBy::Policy {
                        table: tn,
                        chain: chain.name.clone(),
                        policy,
                    };
                    if self.record {
                        self.out.path.push(PathStep {
                            hook,
                            table: tn,
                            chain: chain.name.clone(),
                            rule: 0,
                            text: format!("policy {}", policy.as_str()).into(),
                            matched: true,
                            why_not: None,
                            action: None,
                        });
                    }
                    if policy == Policy::Drop {
                        self.out.verdict = Verdict::Drop;
                        self.out.decided_by = Some(by);
                        return false;
                    }
                    if tn == TableName::Filter {
                        self.filter_decision = Some(by.clone());
                    }
                    self.last_policy = Some(by);
                }
                Flow::Drop => {
                    self.out.verdict = Verdict::Drop;
                    return false;
                }
                Flow::Reject => {
                    self.out.verdict = Verdict::Reject;
                    return false;
                }
                Flow::Undecided => {
                    self.out.verdict = Verdict::Undecided;
                    return false;
                }
            }
        }
        true
    }

    /// A `statistic --mode random` decision, asked of the environment and recorded: (matched,
    /// value drawn).
    fn draw(&mut self, gid: u32, stored: u32, invert: bool) -> (bool, Option<u32>) {
        let (hit, drawn, p) = self.env.random(gid, stored, invert);
        self.out.probability *= p;
        self.out.statistic.push(StatisticDecision {
            rule_gid: gid,
            stored,
            drawn,
            matched: hit,
            probability: p,
        });
        (hit, drawn)
    }

    /// The connection's destination is rewritten (DNAT or REDIRECT).
    fn apply_dnat(&mut self, dnat: DnatResult) {
        self.dst = dnat.ip;
        self.dport = dnat.port;
        self.ct_dnat = true;
        self.out.dnat = Some(dnat);
    }

    /// A DNAT/REDIRECT rule acted: record the step, rewrite the destination, stop the chain
    /// walk (a NAT target is terminal).
    fn rewrite_destination(
        &mut self,
        table: &Table,
        cid: usize,
        ri: usize,
        (ip, port, range): (IpAddr, u16, Option<String>),
        action: std::fmt::Arguments<'_>,
    ) -> Act {
        self.took(table, cid, ri, action);
        self.apply_dnat(DnatResult {
            ip,
            port,
            range,
            chain: table.chains[cid].name.clone(),
            rule: self.at(table, cid, ri),
        });
        Act::Return(Flow::Accept)
    }

    /// A NAT target used outside the table/hooks where the kernel allows it cannot be decided.
    fn nat_target_misplaced(
        &mut self,
        table: &Table,
        cid: usize,
        ri: usize,
        target: &str,
        hooks: &[Hook],
    ) -> Option<Act> {
        if table.name == TableName::Nat && hooks.contains(&self.hook) {
            return None;
        }
        let allowed: Vec<&str> = hooks.iter().map(|h| h.chain()).collect();
        let reason = format!("{target} outside nat {}", allowed.join("/"));
        Some(Act::Return(self.undecided(table, cid, ri, reason)))
    }

    /// Record a matching rule and what it did.
    fn took(&mut self, table: &Table, cid: usize, ri: usize, action: std::fmt::Arguments<'_>) {
        self.step(table, cid, ri, true, None, Some(action));
    }

    fn at(&self, table: &Table, cid: usize, ri: usize) -> RuleAt {
        RuleAt {
            table: table.name,
            chain: table.chains[cid].name.clone(),
            rule: ri as u32 + 1,
        }
    }

    fn step(
        &mut self,
        table: &Table,
        cid: usize,
        ri: usize,
        matched: bool,
        why_not: Option<String>,
        action: Option<std::fmt::Arguments<'_>>,
    ) {
        if self.record {
            let action = action.map(|a| a.to_string());
            let chain = &table.chains[cid];
            self.out.path.push(PathStep {
                hook: self.hook,
                table: table.name,
                chain: chain.name.clone(),
                rule: ri as u32 + 1,
                text: chain.rules[ri].text.clone(),
                matched,
                why_not,
                action,
            });
        }
    }

    fn undecided(&mut self, table: &Table, cid: usize, ri: usize, reason: String) -> Flow {
        let rule = &table.chains[cid].rules[ri];
        self.out.undecided = Some(Undecided {
            rule: self.at(table, cid, ri),
            text: rule.text.clone(),
            reason: reason.clone(),
        });
        self.out.decided_by = Some(DecidedBy::Rule(self.at(table, cid, ri)));
        self.step(
            table,
            cid,
            ri,
            false,
            Some(format!("cannot decide: {reason}")),
            None,
        );
        Flow::Undecided
    }

    fn run_chain(&mut self, table: &'a Table, mut cid: usize, depth: u32) -> Flow {
        if depth > 64 {
            // Loops are refused at link time; this only bounds pathological nesting.
            return Flow::Undecided;
        }
        'chain: loop {
            // Bulk replay reads the compact copy of the table; the full chain is only touched
            // for slow rules, full targets and recorded paths.
            let fast = if self.record {
                None
            } else {
                table.fast.chains.get(cid)
            };
            let (len, indexed) = match fast {
                Some(fc) => (fc.len as usize, fc.indexed),
                None => (
                    table.chains[cid].rules.len(),
                    table.chains[cid].index.is_some(),
                ),
            };
            let mut cands = if indexed {
                table.chains[cid]
                    .index
                    .as_ref()
                    .map(|ix| ix.candidates(self.dst, Some(self.dport)))
            } else {
                None
            };
            let mut next: u32 = 0;
            loop {
                let ri = match &mut cands {
                    Some(c) => match c.next_from(next) {
                        Some(x) => x as usize,
                        None => break,
                    },
                    None if (next as usize) < len => next as usize,
                    None => break,
                };
                next = ri as u32 + 1;
                if let Some(fc) = fast
                    && cands.is_none()
                    && ri as u32 >= fc.cascade_from
                {
                    return self.run_cascade(table, fc, ri as u32, depth);
                }
                if let Some(fc) = fast
                    && let Some(fr) = table.fast.rules.get(fc.start as usize + ri)
                    && !fr.is_slow()
                    && let Some(hit) = fr.matches(
                        &super::fast::FastPacket {
                            src: self.src,
                            dst: self.dst,
                            proto: self.proto_number,
                            sport: self.sport,
                            dport: self.dport,
                            mark: self.out.mark,
                        },
                        || self.ctstate_bits(true),
                    )
                {
                    if !hit {
                        continue;
                    }
                    if fr.flags & super::fast::HAS_STAT != 0 {
                        let invert = fr.flags & super::fast::STAT_INV != 0;
                        if !self.draw(fr.gid, fr.stored, invert).0 {
                            continue;
                        }
                    }
                    match fr.target {
                        super::fast::FastTarget::None => continue,
                        super::fast::FastTarget::Jump(id) => {
                            match self.run_chain(table, id as usize, depth + 1) {
                                Flow::Continue => continue,
                                other => return other,
                            }
                        }
                        super::fast::FastTarget::Return => return Flow::Continue,
                        super::fast::FastTarget::Mark { value, mask } => {
                            self.out.mark = (self.out.mark & !mask) ^ value;
                            continue;
                        }
                        super::fast::FastTarget::Dnat { ip, port }
                            if matches!(self.hook, Hook::Prerouting | Hook::Output) =>
                        {
                            self.apply_dnat(DnatResult {
                                ip: IpAddr::V4(ip.into()),
                                port: port.unwrap_or(self.dport),
                                range: None,
                                chain: fc.name.clone(),
                                rule: RuleAt {
                                    table: table.name,
                                    chain: fc.name.clone(),
                                    rule: ri as u32 + 1,
                                },
                            });
                            return Flow::Accept;
                        }
                        _ => {
                            self.current_gid = fr.gid;
                            match self.act(table, cid, ri, depth) {
                                Act::Continue => continue,
                                Act::Return(flow) => return flow,
                                Act::Goto(id) => {
                                    cid = id;
                                    continue 'chain;
                                }
                            }
                        }
                    }
                }
                let chain = &table.chains[cid];
                let rule = &chain.rules[ri];
                self.current_gid = rule.gid;
                match self.matches(table, rule) {
                    MatchResult::No(why) => {
                        self.step(table, cid, ri, false, Some(why), None);
                        continue;
                    }
                    MatchResult::Undecided(why) => return self.undecided(table, cid, ri, why),
                    MatchResult::Yes => {}
                }
                match self.act(table, cid, ri, depth) {
                    Act::Continue => continue,
                    Act::Return(flow) => return flow,
                    Act::Goto(id) => {
                        cid = id;
                        continue 'chain;
                    }
                }
            }
            return Flow::Continue;
        }
    }

    /// The draw-and-jump tail of a chain from rule `ri` (see [`super::fast::CascadeStep`]):
    /// exactly what the compact rules would do, read from a denser array.
    fn run_cascade(
        &mut self,
        table: &'a Table,
        fc: &super::fast::FastChain,
        ri: u32,
        depth: u32,
    ) -> Flow {
        let from = (fc.cascade_start + ri - fc.cascade_from) as usize;
        let to = (fc.cascade_start + fc.len - fc.cascade_from) as usize;
        for step in table.fast.cascade.get(from..to).unwrap_or(&[]) {
            if step.stored != u32::MAX && !self.draw(step.gid, step.stored, step.invert).0 {
                continue;
            }
            match self.run_chain(table, step.target as usize, depth + 1) {
                Flow::Continue => {}
                other => return other,
            }
        }
        Flow::Continue
    }

    /// What a matching rule's target does.
    fn act(&mut self, table: &'a Table, cid: usize, ri: usize, depth: u32) -> Act {
        let chain = &table.chains[cid];
        let rule = &chain.rules[ri];
        let Some(target) = &rule.spec.target else {
            self.took(table, cid, ri, format_args!("no target: counted only"));
            return Act::Continue;
        };
        match target {
            Target::Accept | Target::Drop | Target::Reject { .. } => {
                let (flow, word) = match target {
                    Target::Accept => (Flow::Accept, "ACCEPT"),
                    Target::Drop => (Flow::Drop, "DROP"),
                    _ => (Flow::Reject, "REJECT"),
                };
                self.took(table, cid, ri, format_args!("{word}"));
                let by = DecidedBy::Rule(self.at(table, cid, ri));
                if matches!(flow, Flow::Accept) {
                    if table.name == TableName::Filter {
                        self.filter_decision = Some(by);
                    }
                } else {
                    self.out.decided_by = Some(by);
                }
                return Act::Return(flow);
            }
            Target::Return => {
                self.took(table, cid, ri, format_args!("RETURN"));
                return Act::Return(Flow::Continue);
            }
            Target::Jump(c) | Target::Goto(c) => {
                let Some(id) = c.id else {
                    return Act::Return(self.undecided(
                        table,
                        cid,
                        ri,
                        format!("jump to chain {} which the file does not declare", c.name),
                    ));
                };
                let goto = matches!(target, Target::Goto(_));
                self.took(
                    table,
                    cid,
                    ri,
                    format_args!("{} {}", if goto { "goto" } else { "jump" }, c.name),
                );
                if goto {
                    return Act::Goto(id);
                }
                match self.run_chain(table, id, depth + 1) {
                    Flow::Continue => return Act::Continue,
                    other => return Act::Return(other),
                }
            }
            Target::Dnat { to, .. } => {
                if let Some(act) = self.nat_target_misplaced(
                    table,
                    cid,
                    ri,
                    "DNAT",
                    &[Hook::Prerouting, Hook::Output],
                ) {
                    return act;
                }
                let ip = to.addrs.map(|(a, _)| a).unwrap_or(self.dst);
                let port = to.ports.map(|(p, _)| p).unwrap_or(self.dport);
                let range = (to.addrs.is_some_and(|(a, b)| a != b)
                    || to.ports.is_some_and(|(p, q)| p != q))
                .then(|| {
                    let mut s = String::new();
                    if let Some((a, b)) = to.addrs {
                        let _ = write!(s, "{a}-{b}");
                    }
                    if let Some((p, q)) = to.ports {
                        let _ = write!(s, ":{p}-{q}");
                    }
                    s
                });
                return self.rewrite_destination(
                    table,
                    cid,
                    ri,
                    (ip, port, range),
                    format_args!("DNAT to {}", SockText(ip, port)),
                );
            }
            Target::Redirect { to_ports, .. } => {
                if let Some(act) = self.nat_target_misplaced(
                    table,
                    cid,
                    ri,
                    "REDIRECT",
                    &[Hook::Prerouting, Hook::Output],
                ) {
                    return act;
                }
                // REDIRECT sends to the node itself: loopback for locally generated traffic,
                // else the primary address of the input interface (unknown to us: the
                // destination is kept, which is one of the node's addresses for traffic that
                // kube-proxy redirects).
                let ip = match (self.hook, self.dst) {
                    (Hook::Output, IpAddr::V4(_)) => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                    (Hook::Output, IpAddr::V6(_)) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
                    _ => self.dst,
                };
                let port = to_ports.map(|(p, _)| p).unwrap_or(self.dport);
                // The destination really is rewritten: the routing decision and the loopback
                // pass that follow must see 127.0.0.1, as the kernel's do.
                return self.rewrite_destination(
                    table,
                    cid,
                    ri,
                    (ip, port, None),
                    format_args!("REDIRECT to local port {port}"),
                );
            }
            Target::Masquerade {
                to_ports,
                random,
                random_fully,
            } => {
                if let Some(act) =
                    self.nat_target_misplaced(table, cid, ri, "MASQUERADE", &[Hook::Postrouting])
                {
                    return act;
                }
                self.took(
                    table,
                    cid,
                    ri,
                    format_args!(
                        "MASQUERADE{}",
                        if *random_fully { " --random-fully" } else { "" }
                    ),
                );
                self.out.source_nat = Some(SourceNat {
                    rule: self.at(table, cid, ri),
                    kind: "MASQUERADE",
                    to_source: None,
                    to_ports: *to_ports,
                    random: *random,
                    random_fully: *random_fully,
                });
                self.ct_snat = true;
                return Act::Return(Flow::Accept);
            }
            Target::Snat {
                to,
                random,
                random_fully,
                ..
            } => {
                if let Some(act) = self.nat_target_misplaced(
                    table,
                    cid,
                    ri,
                    "SNAT",
                    &[Hook::Postrouting, Hook::Input],
                ) {
                    return act;
                }
                let ip = to.addrs.map(|(a, _)| a);
                self.took(
                    table,
                    cid,
                    ri,
                    format_args!("SNAT to {}", ip.map(|i| i.to_string()).unwrap_or_default()),
                );
                self.out.source_nat = Some(SourceNat {
                    rule: self.at(table, cid, ri),
                    kind: "SNAT",
                    to_source: ip,
                    to_ports: to.ports,
                    random: *random,
                    random_fully: *random_fully,
                });
                self.ct_snat = true;
                return Act::Return(Flow::Accept);
            }
            Target::Mark { value, mask } => {
                self.out.mark = (self.out.mark & !mask) ^ value;
                let m = self.out.mark;
                self.took(table, cid, ri, format_args!("mark := 0x{m:x}"));
            }
            Target::Connmark(op) => {
                match *op {
                    ConnmarkOp::SetXmark { value, mask } => {
                        self.out.ct_mark = (self.out.ct_mark & !mask) ^ value
                    }
                    ConnmarkOp::Save { nfmask, ctmask } => {
                        self.out.ct_mark = (self.out.ct_mark & !ctmask) ^ (self.out.mark & nfmask)
                    }
                    ConnmarkOp::Restore { nfmask, ctmask } => {
                        self.out.mark = (self.out.mark & !nfmask) ^ (self.out.ct_mark & ctmask)
                    }
                }
                let (m, c) = (self.out.mark, self.out.ct_mark);
                self.took(table, cid, ri, format_args!("mark 0x{m:x}, ctmark 0x{c:x}"));
            }
            Target::Log { name, .. } => {
                self.took(table, cid, ri, format_args!("{name} (continues)"));
            }
            Target::Notrack { .. } => {
                if table.name == TableName::Raw {
                    self.untracked = true;
                }
                self.took(
                    table,
                    cid,
                    ri,
                    format_args!("untracked: no conntrack, no NAT"),
                );
            }
            Target::Unknown { name, .. } => {
                return Act::Return(self.undecided(
                    table,
                    cid,
                    ri,
                    format!("target {name} is not modelled"),
                ));
            }
        }

        Act::Continue
    }

    fn matches(&mut self, table: &Table, rule: &Rule) -> MatchResult {
        let s = &rule.spec;
        if let Some(p) = &s.proto
            && (p.value == self.proto) == p.negated
        {
            return MatchResult::No(self.why(format_args!(
                "`{}-p {}`: protocol is {}",
                if p.negated { "! " } else { "" },
                p.value,
                self.proto
            )));
        }
        if let Some(n) = &s.src
            && let Some(why) = net_mismatch("-s", "source", n, &self.src, self.record)
        {
            return MatchResult::No(why);
        }
        if let Some(n) = &s.dst
            && let Some(why) = net_mismatch("-d", "destination", n, &self.dst, self.record)
        {
            return MatchResult::No(why);
        }
        // A locally generated packet has no input interface: `-i X` cannot match it.
        let no_input = matches!(self.hook, Hook::Output | Hook::Postrouting);
        if let Some(i) = &s.in_iface
            && let Some(r) = self.iface_mismatch("-i", "input", i, self.in_iface, no_input)
        {
            return r;
        }
        if let Some(o) = &s.out_iface
            && let Some(r) = self.iface_mismatch("-o", "output", o, self.out_iface, false)
        {
            return r;
        }
        if let Some(negated) = s.fragment
            && !negated
        {
            return MatchResult::No(
                self.why(format_args!("`-f`: a first packet is not a later fragment")),
            );
        }
        for m in &s.matches {
            match self.module(table, m) {
                MatchResult::Yes => {}
                other => return other,
            }
        }
        MatchResult::Yes
    }

    /// `-i`/`-o` against the packet's interface; `None` when it fits. `absent` says the packet
    /// has no such interface at all (rather than an unknown one).
    fn iface_mismatch(
        &self,
        flag: &str,
        what: &str,
        want: &Neg<Iface>,
        have: Option<&str>,
        absent: bool,
    ) -> Option<MatchResult> {
        match have {
            Some(name) if want.value.matches(name) == want.negated => {
                Some(MatchResult::No(self.why(format_args!(
                    "`{}{flag} {}`: {what} interface is {name}",
                    neg(want.negated),
                    want.value.0
                ))))
            }
            Some(_) => None,
            None if absent => (!want.negated).then(|| {
                MatchResult::No(self.why(format_args!(
                    "`{flag}`: locally generated packet has no {what} interface"
                )))
            }),
            None => Some(MatchResult::Undecided(format!(
                "`{flag} {}`: the packet's {what} interface is not known",
                want.value.0
            ))),
        }
    }

    fn ctstate_bits(&self, with_nat: bool) -> u8 {
        if self.untracked {
            return ct_states::UNTRACKED;
        }
        let mut b = ct_states::NEW;
        if with_nat && self.ct_dnat {
            b |= ct_states::DNAT;
        }
        if with_nat && self.ct_snat {
            b |= ct_states::SNAT;
        }
        b
    }

    fn addr_type(&self, a: &IpAddr) -> u16 {
        if self.ctx.is_local(a) {
            addr_types::LOCAL
        } else if a.is_multicast() {
            addr_types::MULTICAST
        } else if matches!(a, IpAddr::V4(v) if v.is_broadcast()) {
            addr_types::BROADCAST
        } else {
            addr_types::UNICAST
        }
    }

    fn module(&mut self, _table: &Table, m: &Match) -> MatchResult {
        use MatchResult::*;
        match m {
            Match::Comment(_) | Match::Nfacct(_) => Yes,
            Match::Tcp(t) => {
                if self.proto != Protocol::Tcp {
                    return No(self.why(format_args!("`-m tcp`: protocol is {}", self.proto)));
                }
                if let r @ (No(_) | Undecided(_)) = self.ports(&t.ports) {
                    return r;
                }
                if let Some(f) = &t.flags
                    && ((self.tcp_flags & f.value.mask) == f.value.comp) == f.negated
                {
                    return No(self.why(format_args!(
                        "`--tcp-flags`: packet flags 0x{:02x} do not fit",
                        self.tcp_flags
                    )));
                }
                if t.option.is_some() {
                    return Undecided("`--tcp-option`: TCP options are not modelled".into());
                }
                Yes
            }
            Match::Udp(p) | Match::Sctp(p) => {
                let want = if matches!(m, Match::Udp(_)) {
                    Protocol::Udp
                } else {
                    Protocol::Sctp
                };
                if self.proto != want {
                    return No(self.why(format_args!("`-m {want}`: protocol is {}", self.proto)));
                }
                self.ports(p)
            }
            Match::Multiport(mp) => {
                if !matches!(self.proto, Protocol::Tcp | Protocol::Udp | Protocol::Sctp) {
                    return No(self.why(format_args!("`-m multiport`: protocol is {}", self.proto)));
                }
                let dport_in = mp.ports.iter().any(|r| r.contains(self.dport));
                let sport_in = self.sport.map(|sp| mp.ports.iter().any(|r| r.contains(sp)));
                let hit = match mp.which {
                    MultiportKind::Destination => dport_in,
                    MultiportKind::Source => match sport_in {
                        Some(h) => h,
                        None => {
                            return Undecided("`--sports`: the source port is not known".into());
                        }
                    },
                    MultiportKind::Either => match (dport_in, sport_in) {
                        (true, _) | (_, Some(true)) => true,
                        (false, Some(false)) => false,
                        (false, None) => {
                            return Undecided("`--ports`: the source port is not known".into());
                        }
                    },
                };
                if hit == mp.negated {
                    No(self.why(format_args!(
                        "`{}multiport`: ports do not fit",
                        neg(mp.negated)
                    )))
                } else {
                    Yes
                }
            }
            Match::Statistic(StatisticMatch::Random { stored, invert }) => {
                let (hit, drawn) = self.draw(self.current_gid, *stored, *invert);
                if hit {
                    Yes
                } else {
                    No(self.why(format_args!(
                        "`statistic --probability {:.11}`: {}",
                        StatisticMatch::probability_of(*stored),
                        DrawnText(drawn, *stored)
                    )))
                }
            }
            Match::Statistic(StatisticMatch::Nth {
                every,
                packet,
                invert,
            }) => {
                let gid = self.current_gid;
                let (hit, p) = self.env.nth(gid, *every, *packet, *invert);
                self.out.probability *= p;
                if hit {
                    Yes
                } else {
                    No(self.why(format_args!(
                        "`statistic --every {every} --packet {packet}`: not this packet"
                    )))
                }
            }
            Match::Recent(r) => {
                let addr = masked(if r.rdest { self.dst } else { self.src }, r.mask);
                // The kernel adds 1 to the TTL of packets on an output path that no local socket
                // sent (forwarded ones), to compare the TTL as it was before forwarding.
                let forwarded = matches!(self.hook, Hook::Forward)
                    || (self.hook == Hook::Postrouting && !self.local_origin);
                let ttl = if forwarded {
                    self.ttl.saturating_add(1)
                } else {
                    self.ttl
                };
                let hit = self.env.recent(r, addr, ttl, &mut self.out.recent_events);
                if hit && matches!(r.op, RecentOp::Rcheck | RecentOp::Update) && !r.invert {
                    self.out.recent_hits.push(r.name.clone());
                }
                if hit {
                    Yes
                } else {
                    No(self.why(format_args!(
                        "`recent --{} --name {}`: {} not in the list{}",
                        r.op.as_str(),
                        r.name,
                        addr,
                        WithinText(r.seconds)
                    )))
                }
            }
            Match::Mark(mk) | Match::Connmark(mk) => {
                let (v, what) = if matches!(m, Match::Mark(_)) {
                    (self.out.mark, "mark")
                } else {
                    (self.out.ct_mark, "ctmark")
                };
                if ((v & mk.mask) == mk.value) == mk.negated {
                    No(self.why(format_args!(
                        "`{}--mark 0x{:x}/0x{:x}`: {what} is 0x{v:x}",
                        neg(mk.negated),
                        mk.value,
                        mk.mask
                    )))
                } else {
                    Yes
                }
            }
            Match::Addrtype(a) => {
                if a.limit_iface_in || a.limit_iface_out {
                    return Undecided(
                        "`--limit-iface-in/out`: per-interface address types are not modelled"
                            .into(),
                    );
                }
                for (sel, addr, what) in [
                    (&a.src, self.src, "--src-type"),
                    (&a.dst, self.dst, "--dst-type"),
                ] {
                    if let Some(t) = sel {
                        let ty = self.addr_type(&addr);
                        if ((t.value & ty) != 0) == t.negated {
                            let name = addr_types::NAMES[ty.trailing_zeros() as usize];
                            return No(self.why(format_args!(
                                "`{}{what}`: {addr} is {name}",
                                neg(t.negated)
                            )));
                        }
                    }
                }
                Yes
            }
            Match::Conntrack(c) => match &c.ctstate {
                Some(st) => {
                    let bits = self.ctstate_bits(true);
                    if ((bits & st.value) != 0) == st.negated {
                        if !self.record {
                            return No(String::new());
                        }
                        let mut have = String::new();
                        for (n, b) in ct_states::NAMES {
                            if bits & b != 0 {
                                if !have.is_empty() {
                                    have.push(',');
                                }
                                have.push_str(n);
                            }
                        }
                        No(self.why(format_args!(
                            "`{}--ctstate`: connection state is {have}",
                            neg(st.negated)
                        )))
                    } else {
                        Yes
                    }
                }
                None => Yes,
            },
            Match::State(st) => {
                let bits = self.ctstate_bits(false);
                if ((bits & st.value) != 0) == st.negated {
                    No(self.why(format_args!(
                        "`{}--state`: connection state is NEW",
                        neg(st.negated)
                    )))
                } else {
                    Yes
                }
            }
            Match::Physdev(p) => {
                let bridged = self.ctx.bridged;
                for (want, what) in [
                    (p.is_in, "--physdev-is-in"),
                    (p.is_out, "--physdev-is-out"),
                    (p.is_bridged, "--physdev-is-bridged"),
                ] {
                    if let Some(w) = want
                        && w != bridged
                    {
                        return No(self.why(format_args!(
                            "`{}{what}`: the node is modelled as {}bridged",
                            neg(!w),
                            if bridged { "" } else { "not " }
                        )));
                    }
                }
                Yes
            }
            Match::Unknown { module, .. } => Undecided(format!(
                "match `-m {module}` (or one of its options) is not modelled"
            )),
        }
    }

    fn ports(&self, p: &PortsMatch) -> MatchResult {
        if let Some(d) = &p.dport
            && d.value.contains(self.dport) == d.negated
        {
            return MatchResult::No(self.why(format_args!(
                "`{}--dport {}`: destination port is {}",
                neg(d.negated),
                d.value,
                self.dport
            )));
        }
        if let Some(s) = &p.sport {
            match self.sport {
                Some(sp) if s.value.contains(sp) == s.negated => {
                    return MatchResult::No(self.why(format_args!(
                        "`{}--sport {}`: source port is {sp}",
                        neg(s.negated),
                        s.value
                    )));
                }
                Some(_) => {}
                None => {
                    return MatchResult::Undecided(format!(
                        "`--sport {}`: the source port is not known",
                        s.value
                    ));
                }
            }
        }
        MatchResult::Yes
    }
}

impl<E: WalkEnv> Walker<'_, E> {
    /// A mismatch reason, formatted only when the path is recorded (bulk replay must not pay
    /// for text nobody reads).
    fn why(&self, args: std::fmt::Arguments<'_>) -> String {
        if self.record {
            args.to_string()
        } else {
            String::new()
        }
    }
}

/// `ip:port` (IPv6 in brackets), formatted lazily.
struct SockText(IpAddr, u16);

impl std::fmt::Display for SockText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.1),
            IpAddr::V4(a) => write!(f, "{a}:{}", self.1),
        }
    }
}

/// "drawn X ≥ stored" or "this branch: not taken", formatted lazily.
struct DrawnText(Option<u32>, u32);

impl std::fmt::Display for DrawnText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(r) => write!(f, "drawn {} ≥ {}", r & 0x7FFF_FFFF, self.1),
            None => f.write_str("this branch: not taken"),
        }
    }
}

/// " within S s", formatted lazily.
struct WithinText(Option<u32>);

impl std::fmt::Display for WithinText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(s) => write!(f, " within {s} s"),
            None => Ok(()),
        }
    }
}

fn neg(n: bool) -> &'static str {
    if n { "! " } else { "" }
}

fn net_mismatch(
    flag: &str,
    what: &str,
    n: &Neg<ipnet::IpNet>,
    addr: &IpAddr,
    explain: bool,
) -> Option<String> {
    let inside = n.value.contains(addr);
    if inside != n.negated {
        return None;
    }
    if !explain {
        return Some(String::new());
    }
    let shown = if n.value.prefix_len() == n.value.max_prefix_len() {
        n.value.addr().to_string()
    } else {
        n.value.to_string()
    };
    Some(if n.value.prefix_len() == n.value.max_prefix_len() {
        format!("`{}{flag} {shown}`: {what} is {addr}", neg(n.negated))
    } else {
        format!(
            "`{}{flag} {shown}`: {what} {addr} is {}",
            neg(n.negated),
            if inside { "inside" } else { "outside" }
        )
    })
}

/// `ip:port`, IPv6 in brackets.
pub fn fmt_sock(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V6(a) => format!("[{a}]:{port}"),
        IpAddr::V4(a) => format!("{a}:{port}"),
    }
}
