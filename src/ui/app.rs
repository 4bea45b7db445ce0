//! The UI's model and its update function (The Elm Architecture): [`App`] holds what is on screen,
//! [`Msg`] is everything that can happen (a key, a resize, a clock tick, a snapshot arriving),
//! [`App::update`] changes the model and returns [`Effect`]s — the only things the UI asks the
//! outside world to do (compute a snapshot, quit). The view (`render`) is a pure function of the
//! model. No terminal, no clock and no thread is touched here, so key sequences are tested as data.

use crate::journey::model::{AlbMode, RequestJourney};
use crate::journey::snapshot::{Snapshot, WhatIfSettings, alb_mode_name, time_micros};
use crate::journey::tour::{Tour, TourAction, TourPane, TourView};
use crate::ui::keys::{Action, View, action_for};
use crate::ui::replay::Replay;
use crate::ui::text;
use crate::ui::theme::Theme;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

/// Everything that can happen to the UI.
#[derive(Debug)]
pub enum Msg {
    Key(KeyEvent),
    /// The terminal is now this big (columns, rows).
    Resize(u16, u16),
    /// Wall-clock time passed (drives the replay); injected so tests control time.
    Tick(Duration),
    /// A snapshot computed for load request `generation`.
    Loaded {
        generation: u64,
        snapshot: Box<Snapshot>,
    },
    /// The load for `generation` failed (the model panicked or the task was lost).
    LoadFailed {
        generation: u64,
        error: String,
    },
    /// The matches of filter request `generation` (computed off the event loop).
    Filtered {
        generation: u64,
        matches: FilterMatches,
    },
    /// Progress of the load in flight: phase, units done, units total.
    Progress {
        phase: String,
        done: u64,
        total: u64,
    },
    /// SIGTERM/SIGHUP/SIGINT: leave cleanly.
    Signal,
}

/// What `update` asks the runtime to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Compute the snapshot for these settings (off the event loop) and send `Msg::Loaded`.
    Load {
        generation: u64,
        whatif: WhatIfSettings,
        /// Which of the source's scenarios (`None`: its default one).
        scenario: Option<String>,
    },
    /// Run [`filter_matches`] over a big snapshot (off the event loop) and send `Msg::Filtered`.
    Filter {
        generation: u64,
        query: String,
        snapshot: Arc<Snapshot>,
    },
    Quit,
}

/// Rows matching a filter query: indices into `Snapshot::requests` and `Snapshot::connections`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterMatches {
    pub requests: Vec<u32>,
    pub connections: Vec<u32>,
}

/// Which pane of the current view has the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pane {
    /// The table (requests, connections, rules of a chain, bars).
    #[default]
    Main,
    /// The second pane: journey diagram, a connection's requests, the chain list.
    Side,
}

/// The rows of a list after replay and filter: all of a prefix, or a subset of indices.
#[derive(Debug, Clone, Copy)]
pub enum RowView<'a> {
    Prefix(usize),
    Subset(&'a [u32]),
}

impl RowView<'_> {
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            RowView::Prefix(n) => *n,
            RowView::Subset(s) => s.len(),
        }
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Index into the snapshot's list of row `i` of this view.
    #[must_use]
    pub fn get(&self, i: usize) -> Option<usize> {
        match self {
            RowView::Prefix(n) => (i < *n).then_some(i),
            RowView::Subset(s) => s.get(i).map(|x| *x as usize),
        }
    }

    /// Row position of snapshot index `idx`, if visible.
    #[must_use]
    pub fn position(&self, idx: usize) -> Option<usize> {
        match self {
            RowView::Prefix(n) => (idx < *n).then_some(idx),
            RowView::Subset(s) => s.binary_search(&(idx as u32)).ok(),
        }
    }
}

/// The `/` filter: the text being typed, the query in force and the rows it matches.
#[derive(Debug, Default)]
pub struct FilterState {
    /// `Some` while the user is typing a query.
    pub editing: Option<String>,
    /// The query in force (lower case terms, all must match). Empty = no filter.
    pub query: String,
    requests: Option<Vec<u32>>,
    connections: Option<Vec<u32>>,
    generation: u64,
    /// A background filter run in flight (big snapshots); rows show the old result meanwhile.
    pub pending: Option<u64>,
}

/// Rules view state: which node's dump, which chain, which rule, and the jump stack.
#[derive(Debug, Default)]
pub struct RulesState {
    pub node: usize,
    /// Index into `App::chain_list()`.
    pub chain: usize,
    pub rule: usize,
    /// Chains jumped from (chain list index, rule), for Esc.
    pub stack: Vec<(usize, usize)>,
}

/// A tour being followed.
#[derive(Debug)]
pub struct TourState {
    pub tour: Tour,
    pub step: usize,
    pub shown: bool,
    pub started: bool,
    /// Start at step 1 as soon as the first snapshot arrives (`hoptrace tour`).
    pub start_when_loaded: bool,
    /// Apply the current step again once the scenario it switched to has loaded (steps taken
    /// while it loads land on the new data too).
    pub reapply: bool,
}

/// Requests at or above this count are filtered when Enter is pressed, not on every keystroke,
/// and off the event loop.
pub const LIVE_FILTER_LIMIT: usize = 200_000;

/// The model.
pub struct App {
    pub theme: Theme,
    pub source_name: String,
    /// What is drawn. Empty until the first snapshot arrives.
    pub snap: Arc<Snapshot>,
    /// The recorded (no what-if) snapshot, kept so toggling back is instant.
    recorded: Option<Arc<Snapshot>>,
    /// Capture time of each request in µs (parallel to `snap.requests`); `None` if unparsable.
    times: Vec<Option<i64>>,
    /// First-packet time of each connection in µs (parallel to `snap.connections`).
    conn_times: Vec<Option<i64>>,
    /// Distinct client connections among the requests (the journeys' connections), counted once
    /// per snapshot for the status line.
    pub client_connections: usize,
    /// The what-if settings asked for (the snapshot may still be computing).
    pub whatif: WhatIfSettings,
    /// Which of the source's scenarios is shown (`None`: its default); a tour step switches it.
    pub scenario: Option<String>,
    generation: u64,
    /// Load request in flight.
    pub pending: Option<u64>,
    /// True until the first snapshot arrived.
    pub loading: bool,
    /// Progress of the load in flight (phase, done, total).
    pub progress: Option<(String, u64, u64)>,
    pub view: View,
    pub focus: Pane,
    /// Selected row of the requests view (row position, not request index).
    pub req_sel: usize,
    pub conn_sel: usize,
    /// Selected request within the selected connection (connections view side pane).
    pub conn_req_sel: usize,
    pub rules: RulesState,
    /// Selected bar in the nodes view: nodes first, then pods.
    pub nodes_sel: usize,
    /// Detail pane open, with its scroll offset.
    pub detail: Option<u16>,
    pub diagram_scroll: u16,
    pub help: bool,
    /// Help overlay scroll offset.
    pub help_scroll: u16,
    pub filter: FilterState,
    pub replay: Replay,
    pub tour: Option<TourState>,
    /// One-line feedback for the last action (cleared by the next key).
    pub message: Option<String>,
    pub quit: bool,
    pub size: (u16, u16),
    /// From this many requests on, the filter runs on Enter and off the event loop
    /// (default [`LIVE_FILTER_LIMIT`]).
    pub live_filter_limit: usize,
    /// Scroll offsets and list heights the last frame used (written by the pure view, like
    /// ratatui's `TableState`), so paging moves by what the user saw.
    pub(crate) req_offset: Cell<usize>,
    pub(crate) conn_offset: Cell<usize>,
    pub(crate) rule_offset: Cell<usize>,
    pub(crate) chain_offset: Cell<usize>,
    pub(crate) list_height: Cell<usize>,
}

impl App {
    /// A model with no snapshot yet, and the effect that loads the recorded one.
    #[must_use]
    pub fn new(source_name: String, tour: Option<Tour>, theme: Theme) -> (Self, Vec<Effect>) {
        let mut app = Self {
            theme,
            source_name,
            snap: Arc::new(Snapshot::default()),
            recorded: None,
            times: Vec::new(),
            conn_times: Vec::new(),
            client_connections: 0,
            whatif: WhatIfSettings::default(),
            scenario: None,
            generation: 0,
            pending: None,
            loading: true,
            progress: None,
            view: View::Requests,
            focus: Pane::Main,
            req_sel: 0,
            conn_sel: 0,
            conn_req_sel: 0,
            rules: RulesState::default(),
            nodes_sel: 0,
            detail: None,
            diagram_scroll: 0,
            help: false,
            help_scroll: 0,
            filter: FilterState::default(),
            replay: Replay::default(),
            tour: tour.map(|tour| TourState {
                tour,
                step: 0,
                shown: false,
                started: false,
                start_when_loaded: false,
                reapply: false,
            }),
            message: None,
            quit: false,
            size: (80, 24),
            live_filter_limit: LIVE_FILTER_LIMIT,
            req_offset: Cell::new(0),
            conn_offset: Cell::new(0),
            rule_offset: Cell::new(0),
            chain_offset: Cell::new(0),
            list_height: Cell::new(10),
        };
        let effects = app.load(WhatIfSettings::default());
        (app, effects)
    }

    // ----- derived data the views read -------------------------------------------------------

    /// Rows of the requests view (replay cut-off, then filter).
    #[must_use]
    pub fn request_rows(&self) -> RowView<'_> {
        let cutoff = self.replay_visible();
        match &self.filter.requests {
            None => RowView::Prefix(cutoff),
            Some(v) => RowView::Subset(&v[..v.partition_point(|i| (*i as usize) < cutoff)]),
        }
    }

    /// Rows of the connections view.
    #[must_use]
    pub fn connection_rows(&self) -> RowView<'_> {
        // During a replay, connections appear with their first packet.
        let cutoff = match self.replay.cursor() {
            None => self.snap.connections.len(),
            Some(cursor) => self
                .conn_times
                .partition_point(|t| t.is_none_or(|t| t <= cursor)),
        };
        match &self.filter.connections {
            None => RowView::Prefix(cutoff),
            Some(v) => RowView::Subset(&v[..v.partition_point(|i| (*i as usize) < cutoff)]),
        }
    }

    /// How many requests the replay shows (all when not replaying).
    #[must_use]
    pub fn replay_visible(&self) -> usize {
        match self.replay.cursor() {
            None => self.snap.requests.len(),
            Some(cursor) => self
                .times
                .partition_point(|t| t.is_none_or(|t| t <= cursor)),
        }
    }

    /// The selected request, if any.
    #[must_use]
    pub fn selected_request(&self) -> Option<&RequestJourney> {
        self.request_rows()
            .get(self.req_sel)
            .and_then(|i| self.snap.requests.get(i))
    }

    /// The Service a request went to: its detail says so, or its path passes a Service's chain,
    /// or the scenario has exactly one Service.
    #[must_use]
    pub fn service_of(&self, r: &RequestJourney) -> Option<String> {
        if let Some(s) = self.snap.details.get(&r.id).and_then(|d| d.service.clone()) {
            return Some(s);
        }
        let by_path = self
            .snap
            .services
            .iter()
            .find(|s| r.path.iter().any(|p| p.chain == s.chain))
            .map(|s| s.name.clone());
        by_path.or_else(|| match self.snap.services.as_slice() {
            [only] => Some(only.name.clone()),
            _ => None,
        })
    }

    /// The chains of the selected node's dump as (table index, chain index), filtered by the
    /// filter query (a chain is kept when its name or one of its rules matches).
    #[must_use]
    pub fn chain_list(&self) -> Vec<(usize, usize)> {
        let Some(dump) = self.snap.rules.get(self.rules.node) else {
            return Vec::new();
        };
        let terms = self.filter_terms();
        let mut out = Vec::new();
        for (ti, t) in dump.tables.iter().enumerate() {
            for (ci, c) in t.chains.iter().enumerate() {
                let keep = terms.is_empty()
                    || matches_terms(&c.name.to_lowercase(), &terms)
                    || c.rules
                        .iter()
                        .any(|r| matches_terms(&r.text.to_lowercase(), &terms));
                if keep {
                    out.push((ti, ci));
                }
            }
        }
        out
    }

    /// The recorded ALB mode (from the first request that has an ALB decision).
    #[must_use]
    pub fn recorded_alb_mode(&self) -> AlbMode {
        let snap = self.recorded.as_ref().unwrap_or(&self.snap);
        snap.requests
            .iter()
            .find_map(|r| r.alb.as_ref().map(|a| a.mode))
            .unwrap_or_default()
    }

    fn filter_terms(&self) -> Vec<String> {
        self.filter
            .query
            .split_whitespace()
            .map(str::to_lowercase)
            .collect()
    }

    // ----- update ----------------------------------------------------------------------------

    /// Apply one message; returns what the runtime must do.
    pub fn update(&mut self, msg: Msg) -> Vec<Effect> {
        match msg {
            Msg::Key(key) => {
                if key.kind == KeyEventKind::Release {
                    return Vec::new();
                }
                self.on_key(key)
            }
            Msg::Resize(w, h) => {
                self.size = (w, h);
                Vec::new()
            }
            Msg::Tick(dt) => {
                let before = self.replay_visible();
                if let Some(done) = self.replay.tick(dt, self.last_time()) {
                    if done {
                        self.message = Some("replay finished: every request shown".into());
                    }
                    self.follow_replay(before);
                }
                Vec::new()
            }
            Msg::Loaded {
                generation,
                snapshot,
            } => {
                if self.pending != Some(generation) {
                    return Vec::new(); // a stale answer to an older what-if request
                }
                self.pending = None;
                self.loading = false;
                self.progress = None;
                let snap = Arc::new(*snapshot);
                if snap.whatif.settings.is_recorded() {
                    self.recorded = Some(snap.clone());
                }
                self.message = None;
                if snap.whatif.settings != self.whatif {
                    // The source could not apply the switches (e.g. a saved snapshot): say why and
                    // show the switches as they really are.
                    self.whatif = snap.whatif.settings.clone();
                    let why = snap
                        .warnings
                        .last()
                        .map(|w| crate::sanitize::escape_str(w))
                        .unwrap_or_default();
                    self.message = Some(format!("what-if not applied: {why}"));
                }
                let mut effects: Vec<Effect> = self.set_snapshot(snap).into_iter().collect();
                if let Some(t) = self.tour.as_mut()
                    && std::mem::take(&mut t.start_when_loaded)
                    && !t.started
                {
                    effects.extend(self.tour_key());
                } else if let Some(t) = self.tour.as_mut()
                    && std::mem::take(&mut t.reapply)
                {
                    let step = t.step;
                    effects.extend(self.apply_tour_step(step));
                }
                effects
            }
            Msg::LoadFailed { generation, error } => {
                if self.pending == Some(generation) {
                    self.pending = None;
                    self.progress = None;
                    self.message = Some(format!("could not compute the journeys: {error}"));
                    if self.loading {
                        self.loading = false;
                    } else {
                        // Keep showing what is on screen, and say so: the switches snap back.
                        self.whatif = self.snap.whatif.settings.clone();
                    }
                }
                Vec::new()
            }
            Msg::Filtered {
                generation,
                matches,
            } => {
                if self.filter.pending == Some(generation) {
                    self.filter.pending = None;
                    let keep_req = self.selected_request().map(|r| r.id);
                    let keep_conn = self.selected_connection().map(|c| c.id);
                    self.filter.requests = Some(matches.requests);
                    self.filter.connections = Some(matches.connections);
                    self.reselect(keep_req, keep_conn);
                    let n = self.request_rows().len();
                    self.message = Some(self.match_message(n));
                }
                Vec::new()
            }
            Msg::Progress { phase, done, total } => {
                self.progress = self.pending.is_some().then_some((phase, done, total));
                Vec::new()
            }
            Msg::Signal => {
                self.quit = true;
                vec![Effect::Quit]
            }
        }
    }

    fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            self.quit = true;
            return vec![Effect::Quit];
        }
        if self.filter.editing.is_some() {
            return self.on_filter_key(key);
        }
        let Some(action) = action_for(key, self.view) else {
            return Vec::new();
        };
        self.message = None;
        if self.help {
            // Movement keys scroll the help; any other key closes it and then acts.
            match action {
                Action::Down | Action::PageDown => {
                    self.help_scroll = self
                        .help_scroll
                        .saturating_add(if action == Action::Down { 1 } else { 10 })
                        .min(60);
                    return Vec::new();
                }
                Action::Up | Action::PageUp => {
                    self.help_scroll =
                        self.help_scroll
                            .saturating_sub(if action == Action::Up { 1 } else { 10 });
                    return Vec::new();
                }
                Action::Help | Action::Back | Action::Quit => {}
                _ => self.help = false,
            }
        }
        self.on_action(action)
    }

    fn on_filter_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let Some(text) = self.filter.editing.as_mut() else {
            return Vec::new();
        };
        match key.code {
            KeyCode::Esc => {
                self.filter.editing = None;
                self.set_filter(String::new());
            }
            KeyCode::Enter => {
                let q = self.filter.editing.take().unwrap_or_default();
                if let Some(effect) = self.filter_in_background(&q) {
                    return vec![effect];
                }
                self.set_filter(q);
                let n = self.request_rows().len();
                if !self.filter.query.is_empty() {
                    self.message = Some(self.match_message(n));
                }
            }
            KeyCode::Backspace => {
                text.pop();
                if self.snap.requests.len() < self.live_filter_limit {
                    let q = text.clone();
                    self.set_filter(q);
                }
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                if text.chars().count() < 200 {
                    text.push(c);
                }
                if self.snap.requests.len() < self.live_filter_limit {
                    let q = text.clone();
                    self.set_filter(q);
                }
            }
            _ => {}
        }
        Vec::new()
    }

    fn match_message(&self, n: usize) -> String {
        match self.view {
            View::Connections => format!(
                "filter: {} of {} connections match",
                self.connection_rows().len(),
                self.snap.connections.len()
            ),
            View::Rules => format!("filter: {} chains match", self.chain_list().len()),
            _ => format!("filter: {n} of {} requests match", self.snap.requests.len()),
        }
    }

    fn on_action(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::Quit => {
                self.quit = true;
                return vec![Effect::Quit];
            }
            Action::Help => {
                self.help = !self.help;
                self.help_scroll = 0;
            }
            Action::Back => self.back(),
            Action::View(v) => {
                if self.view != v {
                    // The rules view starts on its chain list; the others on their main list.
                    self.focus = if v == View::Rules {
                        Pane::Side
                    } else {
                        Pane::Main
                    };
                }
                self.view = v;
                self.detail = None;
            }
            Action::NextPane => {
                self.focus = match self.focus {
                    Pane::Main => Pane::Side,
                    Pane::Side => Pane::Main,
                };
            }
            Action::Up => self.move_by(-1),
            Action::Down => self.move_by(1),
            Action::PageUp => self.move_by(-(self.page() as isize)),
            Action::PageDown => self.move_by(self.page() as isize),
            Action::Top => self.move_by(isize::MIN / 2),
            Action::Bottom => self.move_by(isize::MAX / 2),
            Action::Left | Action::Right => {
                let n = self.snap.rules.len();
                if n > 1 {
                    let d = if action == Action::Right { 1 } else { n - 1 };
                    self.rules.node = (self.rules.node + d) % n;
                    self.rules.chain = 0;
                    self.rules.rule = 0;
                    self.rules.stack.clear();
                }
            }
            Action::Enter => return self.enter(),
            Action::Filter => {
                self.filter.editing = Some(self.filter.query.clone());
            }
            Action::NextMatch => self.next_match(1),
            Action::PrevMatch => self.next_match(-1),
            Action::ToggleAffinity => return self.toggle_affinity(),
            Action::CycleAlbMode => return self.cycle_alb_mode(),
            Action::PlayPause => {
                let first = self.first_time();
                if let Some(first) = first {
                    let before = self.replay_visible();
                    self.replay.play_pause(first);
                    self.follow_replay(before);
                } else {
                    self.message = Some("nothing to replay: no request has a capture time".into());
                }
            }
            Action::Faster => self.replay.faster(),
            Action::Slower => self.replay.slower(),
            Action::StepForward | Action::StepBack => {
                let before = self.replay_visible();
                if !self.replay.is_active() {
                    self.message =
                        Some("press Space to start the replay, then . and , step".into());
                } else if self.replay.playing {
                    self.message = Some("pause the replay (Space) to step".into());
                } else {
                    let target = if action == Action::StepForward {
                        self.times.get(before).copied().flatten()
                    } else if before >= 2 {
                        self.times.get(before - 2).copied().flatten()
                    } else {
                        self.first_time().map(|t| t - 1)
                    };
                    if let Some(t) = target {
                        self.replay.set_cursor(t);
                    }
                    self.follow_replay(before);
                }
            }
            Action::ResetReplay => {
                self.replay.stop();
                self.clamp();
            }
            Action::Tour => return self.tour_key(),
            Action::TourNext | Action::TourPrev => {
                let Some(t) = self.tour.as_mut() else {
                    self.message = Some("no tour for this scenario".into());
                    return Vec::new();
                };
                if !t.started {
                    return self.tour_key();
                }
                let last = t.tour.steps.len() - 1;
                let step = if action == Action::TourNext {
                    (t.step + 1).min(last)
                } else {
                    t.step.saturating_sub(1)
                };
                t.shown = true;
                if step == t.step {
                    self.message = Some(
                        if action == Action::TourNext {
                            "last tour step"
                        } else {
                            "first tour step"
                        }
                        .into(),
                    );
                    return Vec::new();
                }
                return self.apply_tour_step(step);
            }
        }
        Vec::new()
    }

    fn page(&self) -> usize {
        self.list_height.get().max(1)
    }

    fn back(&mut self) {
        if self.help {
            self.help = false;
        } else if self.detail.is_some() {
            self.detail = None;
        } else if self.view == View::Rules && !self.rules.stack.is_empty() {
            if let Some((chain, rule)) = self.rules.stack.pop() {
                self.rules.chain = chain;
                self.rules.rule = rule;
            }
        } else if !self.filter.query.is_empty() {
            self.set_filter(String::new());
            self.message = Some("filter cleared".into());
        } else if self.focus == Pane::Side {
            self.focus = Pane::Main;
        }
    }

    fn move_by(&mut self, delta: isize) {
        let step = |cur: usize, len: usize| -> usize {
            if len == 0 {
                return 0;
            }
            (cur as isize)
                .saturating_add(delta)
                .clamp(0, len as isize - 1) as usize
        };
        if let Some(scroll) = self.detail.as_mut() {
            *scroll = (i64::from(*scroll) + delta as i64).clamp(0, i64::from(u16::MAX)) as u16;
            return;
        }
        match (self.view, self.focus) {
            (View::Requests, Pane::Main) => {
                self.req_sel = step(self.req_sel, self.request_rows().len());
                self.diagram_scroll = 0;
            }
            (View::Requests, Pane::Side) => {
                self.diagram_scroll =
                    (i64::from(self.diagram_scroll) + delta as i64).clamp(0, 500) as u16;
            }
            (View::Connections, Pane::Main) => {
                self.conn_sel = step(self.conn_sel, self.connection_rows().len());
                self.conn_req_sel = 0;
            }
            (View::Connections, Pane::Side) => {
                let n = self.selected_connection().map_or(0, |c| c.requests.len());
                self.conn_req_sel = step(self.conn_req_sel, n);
            }
            (View::Rules, Pane::Side) => {
                self.rules.chain = step(self.rules.chain, self.chain_list().len());
                self.rules.rule = 0;
            }
            (View::Rules, Pane::Main) => {
                let n = self.selected_chain().map_or(0, |c| c.rules.len());
                self.rules.rule = step(self.rules.rule, n);
            }
            (View::Nodes, _) => {
                let n = self.snap.distribution.nodes.len() + self.snap.distribution.pods.len();
                self.nodes_sel = step(self.nodes_sel, n);
            }
        }
    }

    /// The selected connection, if any.
    #[must_use]
    pub fn selected_connection(&self) -> Option<&crate::journey::snapshot::ConnectionSummary> {
        self.connection_rows()
            .get(self.conn_sel)
            .and_then(|i| self.snap.connections.get(i))
    }

    /// The chain shown in the rules view, if any.
    #[must_use]
    pub fn selected_chain(&self) -> Option<&crate::journey::snapshot::ChainRules> {
        let (ti, ci) = *self.chain_list().get(self.rules.chain)?;
        self.snap
            .rules
            .get(self.rules.node)?
            .tables
            .get(ti)?
            .chains
            .get(ci)
    }

    fn enter(&mut self) -> Vec<Effect> {
        match self.view {
            View::Requests => {
                if self.selected_request().is_some() {
                    self.detail = if self.detail.is_some() { None } else { Some(0) };
                }
            }
            View::Connections => {
                let pick = if self.focus == Pane::Side {
                    self.conn_req_sel
                } else {
                    0
                };
                if let Some(id) = self
                    .selected_connection()
                    .and_then(|c| c.requests.get(pick).copied())
                {
                    self.view = View::Requests;
                    self.focus = Pane::Main;
                    self.select_request_id(id);
                }
            }
            View::Rules => {
                if self.focus == Pane::Side {
                    self.focus = Pane::Main;
                    return Vec::new();
                }
                let target = self
                    .selected_chain()
                    .and_then(|c| c.rules.get(self.rules.rule))
                    .and_then(|r| r.target.clone());
                match target {
                    Some(t) if self.jump_to_chain(&t, true) => {}
                    Some(t) => {
                        self.message = Some(format!(
                            "{} is a target, not a chain",
                            crate::sanitize::escape_str(&t)
                        ))
                    }
                    None => self.message = Some("this rule has no jump target".into()),
                }
            }
            View::Nodes => {}
        }
        Vec::new()
    }

    /// Show chain `name` of the current node (same table first). Returns false if there is none.
    fn jump_to_chain(&mut self, name: &str, push: bool) -> bool {
        let find = |app: &App| {
            let dump = app.snap.rules.get(app.rules.node)?;
            app.chain_list()
                .iter()
                .position(|(ti, ci)| dump.tables[*ti].chains[*ci].name == name)
        };
        let mut pos = find(self);
        if pos.is_none() && !self.filter.query.is_empty() {
            self.set_filter(String::new());
            pos = find(self);
        }
        let Some(pos) = pos else { return false };
        if push {
            self.rules.stack.push((self.rules.chain, self.rules.rule));
        }
        self.rules.chain = pos;
        self.rules.rule = 0;
        self.focus = Pane::Main;
        true
    }

    fn next_match(&mut self, dir: isize) {
        if self.filter.query.is_empty() {
            self.message = Some("no filter: press / to search".into());
            return;
        }
        let wrap = |cur: usize, len: usize| -> usize {
            if len == 0 {
                0
            } else {
                ((cur as isize + dir).rem_euclid(len as isize)) as usize
            }
        };
        match self.view {
            View::Requests | View::Nodes => {
                let n = self.request_rows().len();
                self.req_sel = wrap(self.req_sel, n);
                self.message = Some(format!("match {} of {n}", self.req_sel + 1));
            }
            View::Connections => {
                let n = self.connection_rows().len();
                self.conn_sel = wrap(self.conn_sel, n);
                self.message = Some(format!("match {} of {n}", self.conn_sel + 1));
            }
            View::Rules => {
                // Matching rules across the (filtered) chain list, in order.
                let terms = self.filter_terms();
                let Some(dump) = self.snap.rules.get(self.rules.node) else {
                    return;
                };
                let list = self.chain_list();
                let mut hits = Vec::new();
                for (pos, (ti, ci)) in list.iter().enumerate() {
                    for (ri, r) in dump.tables[*ti].chains[*ci].rules.iter().enumerate() {
                        if matches_terms(&r.text.to_lowercase(), &terms) {
                            hits.push((pos, ri));
                        }
                    }
                }
                if hits.is_empty() {
                    self.message = Some("no rule matches".into());
                    return;
                }
                let cur = (self.rules.chain, self.rules.rule);
                let idx = if dir > 0 {
                    hits.iter().position(|h| *h > cur).unwrap_or(0)
                } else {
                    hits.iter()
                        .rposition(|h| *h < cur)
                        .unwrap_or(hits.len() - 1)
                };
                (self.rules.chain, self.rules.rule) = hits[idx];
                self.focus = Pane::Main;
                self.message = Some(format!("rule match {} of {}", idx + 1, hits.len()));
            }
        }
    }

    /// Apply a filter query (empty clears), keeping the selection on the same request if visible.
    pub fn set_filter(&mut self, query: String) {
        let keep_req = self.selected_request().map(|r| r.id);
        let keep_conn = self.selected_connection().map(|c| c.id);
        self.filter.query = query.trim().to_string();
        self.recompute_filter();
        self.reselect(keep_req, keep_conn);
    }

    fn recompute_filter(&mut self) {
        // Any result still computing is for an older query or snapshot.
        self.filter.generation += 1;
        self.filter.pending = None;
        let terms = self.filter_terms();
        if terms.is_empty() {
            self.filter.requests = None;
            self.filter.connections = None;
            return;
        }
        let m = filter_matches(&self.snap, &self.filter.query);
        self.filter.requests = Some(m.requests);
        self.filter.connections = Some(m.connections);
        self.rules.chain = 0;
        self.rules.rule = 0;
        self.rules.stack.clear();
    }

    /// For big snapshots, a non-empty query is matched off the event loop: the query is set now,
    /// the rows follow with `Msg::Filtered`. `None` when the caller should filter at once.
    fn filter_in_background(&mut self, query: &str) -> Option<Effect> {
        if self.snap.requests.len() < self.live_filter_limit || query.trim().is_empty() {
            return None;
        }
        self.filter.query = query.trim().to_string();
        self.filter.generation += 1;
        self.filter.pending = Some(self.filter.generation);
        self.message = Some(format!("filtering {} requests…", self.snap.requests.len()));
        Some(Effect::Filter {
            generation: self.filter.generation,
            query: self.filter.query.clone(),
            snapshot: self.snap.clone(),
        })
    }

    /// Select request `id` in the requests view, clearing the filter or the replay if they hide it.
    pub fn select_request_id(&mut self, id: u64) -> bool {
        let Some(idx) = self.snap.requests.iter().position(|r| r.id == id) else {
            self.message = Some(format!("no request #{id}"));
            return false;
        };
        if self.request_rows().position(idx).is_none() && !self.filter.query.is_empty() {
            self.set_filter(String::new());
        }
        if self.request_rows().position(idx).is_none() && self.replay.is_active() {
            self.replay.stop();
        }
        if let Some(pos) = self.request_rows().position(idx) {
            self.req_sel = pos;
            self.diagram_scroll = 0;
            true
        } else {
            false
        }
    }

    /// Keep the selection on the same request/connection; when it is no longer shown (filtered
    /// out), go to the first row, i.e. the first match.
    fn reselect(&mut self, req: Option<u64>, conn: Option<u64>) {
        if let Some(id) = req {
            let pos = self
                .snap
                .requests
                .iter()
                .position(|r| r.id == id)
                .and_then(|idx| self.request_rows().position(idx));
            self.req_sel = pos.unwrap_or(0);
        }
        if let Some(id) = conn {
            let pos = self
                .snap
                .connections
                .iter()
                .position(|c| c.id == id)
                .and_then(|idx| self.connection_rows().position(idx));
            self.conn_sel = pos.unwrap_or(0);
        }
        self.clamp();
    }

    fn clamp(&mut self) {
        let clamp = |v: &mut usize, len: usize| *v = (*v).min(len.saturating_sub(1));
        let n = self.request_rows().len();
        clamp(&mut self.req_sel, n);
        let n = self.connection_rows().len();
        clamp(&mut self.conn_sel, n);
        let n = self.chain_list().len();
        clamp(&mut self.rules.chain, n);
        let n = self.snap.rules.len();
        clamp(&mut self.rules.node, n);
        let n = self.snap.distribution.nodes.len() + self.snap.distribution.pods.len();
        clamp(&mut self.nodes_sel, n);
    }

    /// Show `snap`, keeping the selection. A big snapshot with a filter in force is re-filtered
    /// off the event loop: the returned effect does it.
    fn set_snapshot(&mut self, snap: Arc<Snapshot>) -> Option<Effect> {
        let keep_req = self.selected_request().map(|r| r.id);
        let keep_conn = self.selected_connection().map(|c| c.id);
        self.times = snap.requests.iter().map(|r| time_micros(&r.time)).collect();
        self.conn_times = snap
            .connections
            .iter()
            .map(|c| time_micros(&c.first))
            .collect();
        let mut conns: Vec<u64> = snap.requests.iter().map(|r| r.connection).collect();
        conns.sort_unstable();
        conns.dedup();
        self.client_connections = conns.len();
        self.snap = snap;
        let query = self.filter.query.clone();
        let background = if self.snap.requests.len() >= self.live_filter_limit && !query.is_empty()
        {
            // Until the matches arrive, show every row rather than indices into the old snapshot.
            self.filter.requests = None;
            self.filter.connections = None;
            self.filter_in_background(&query)
        } else {
            self.recompute_filter_keep_rules();
            None
        };
        self.reselect(keep_req, keep_conn);
        background
    }

    fn recompute_filter_keep_rules(&mut self) {
        let saved = (
            self.rules.chain,
            self.rules.rule,
            std::mem::take(&mut self.rules.stack),
        );
        self.recompute_filter();
        (self.rules.chain, self.rules.rule, self.rules.stack) = saved;
    }

    fn first_time(&self) -> Option<i64> {
        self.times.iter().flatten().next().copied()
    }

    fn last_time(&self) -> Option<i64> {
        self.times.iter().rev().flatten().next().copied()
    }

    /// Keep the newest request selected while the replay adds rows, if it was selected before.
    fn follow_replay(&mut self, before: usize) {
        let rows = self.request_rows().len();
        let prev_rows = match &self.filter.requests {
            None => before,
            Some(v) => v.partition_point(|i| (*i as usize) < before),
        };
        if self.req_sel + 1 >= prev_rows || rows < prev_rows {
            self.req_sel = rows.saturating_sub(1);
        }
        self.clamp();
    }

    // ----- what-if -----------------------------------------------------------------------------

    fn load(&mut self, whatif: WhatIfSettings) -> Vec<Effect> {
        self.whatif = whatif.clone();
        if whatif.is_recorded()
            && let Some(rec) = self.recorded.clone()
        {
            self.pending = None;
            return self.set_snapshot(rec).into_iter().collect();
        }
        self.generation += 1;
        self.pending = Some(self.generation);
        vec![Effect::Load {
            generation: self.generation,
            whatif,
            scenario: self.scenario.clone(),
        }]
    }

    fn toggle_affinity(&mut self) -> Vec<Effect> {
        if self.loading {
            self.message = Some("still loading".into());
            return Vec::new();
        }
        let Some(r) = self.selected_request() else {
            self.message = Some("select a request first: the switch applies to its Service".into());
            return Vec::new();
        };
        let Some(service) = self.service_of(r) else {
            self.message = Some("no Service identified for this request".into());
            return Vec::new();
        };
        let recorded = self
            .snap
            .services
            .iter()
            .find(|s| s.name == service)
            .is_some_and(|s| s.session_affinity);
        let current = self
            .whatif
            .affinity
            .get(&service)
            .copied()
            .unwrap_or(recorded);
        let mut next = self.whatif.clone();
        if current != recorded {
            next.affinity.remove(&service);
        } else {
            next.affinity.insert(service, !current);
        }
        self.load(next)
    }

    fn cycle_alb_mode(&mut self) -> Vec<Effect> {
        if self.loading {
            self.message = Some("still loading".into());
            return Vec::new();
        }
        const ORDER: [AlbMode; 3] = [
            AlbMode::Default,
            AlbMode::SourceIp,
            AlbMode::SourceIpProtocol,
        ];
        let recorded = self.recorded_alb_mode();
        let current = self.whatif.alb_mode.unwrap_or(recorded);
        let pos = ORDER.iter().position(|m| *m == current).unwrap_or(0);
        let next_mode = ORDER[(pos + 1) % ORDER.len()];
        let mut next = self.whatif.clone();
        next.alb_mode = (next_mode != recorded).then_some(next_mode);
        if next.alb_mode.is_none() {
            self.message = Some(format!(
                "ALB mode {} (as recorded)",
                alb_mode_name(next_mode)
            ));
        }
        self.load(next)
    }

    // ----- tour --------------------------------------------------------------------------------

    /// Open the tour at its first step once the data is there (`hoptrace tour`).
    pub fn start_tour_when_loaded(&mut self) {
        if let Some(t) = self.tour.as_mut() {
            t.start_when_loaded = true;
        }
    }

    /// Open the tour at `step` (0-based, clamped) as soon as its scenario is loaded; returns the
    /// load to carry out instead of the initial one (`hoptrace tour SCENARIO`).
    pub fn start_tour_at(&mut self, step: usize) -> Vec<Effect> {
        let Some(t) = self.tour.as_mut() else {
            return Vec::new();
        };
        let step = step.min(t.tour.steps.len().saturating_sub(1));
        t.started = true;
        t.shown = true;
        t.step = step;
        t.reapply = true;
        self.scenario = t.tour.scenario_at(step).map(str::to_string);
        self.recorded = None;
        self.generation += 1;
        self.pending = Some(self.generation);
        vec![Effect::Load {
            generation: self.generation,
            whatif: WhatIfSettings::default(),
            scenario: self.scenario.clone(),
        }]
    }

    fn tour_key(&mut self) -> Vec<Effect> {
        let Some(t) = self.tour.as_mut() else {
            self.message = Some("no tour for this scenario".into());
            return Vec::new();
        };
        if !t.started {
            t.started = true;
            t.shown = true;
            return self.apply_tour_step(0);
        }
        t.shown = !t.shown;
        Vec::new()
    }

    fn apply_tour_step(&mut self, step: usize) -> Vec<Effect> {
        let Some(t) = self.tour.as_mut() else {
            return Vec::new();
        };
        t.step = step;
        let s = t.tour.steps[step].clone();
        // A step on another scenario: load it first, then apply the step to it.
        if let Some(want) = t.tour.scenario_at(step).map(str::to_string)
            && self.scenario.as_deref() != Some(want.as_str())
        {
            t.reapply = true;
            self.scenario = Some(want);
            self.recorded = None;
            self.whatif = WhatIfSettings::default();
            self.help = false;
            self.detail = None;
            self.replay.stop();
            self.set_filter(String::new());
            self.req_sel = 0;
            self.conn_sel = 0;
            self.conn_req_sel = 0;
            self.nodes_sel = 0;
            self.rules = RulesState::default();
            self.generation += 1;
            self.pending = Some(self.generation);
            return vec![Effect::Load {
                generation: self.generation,
                whatif: WhatIfSettings::default(),
                scenario: self.scenario.clone(),
            }];
        }
        // The what-if state at a step is the steps' actions up to it, from the recorded view, so
        // going back and forth is repeatable (the tour owns the switches while it is stepped).
        // Only the steps on this step's scenario count: another recording starts as recorded.
        let here = t.tour.scenario_at(step);
        let actions: Vec<TourAction> = t.tour.steps[..=step]
            .iter()
            .enumerate()
            .filter(|(i, _)| t.tour.scenario_at(*i) == here)
            .filter_map(|(_, s)| s.action)
            .collect();
        self.help = false;
        self.detail = None;
        if let Some(f) = &s.filter {
            self.set_filter(f.trim().to_string());
        }
        if let Some(v) = s.view {
            self.view = match v {
                TourView::Requests => View::Requests,
                TourView::Connections => View::Connections,
                TourView::Rules => View::Rules,
                TourView::Nodes => View::Nodes,
            };
            self.focus = Pane::Main;
        }
        if let Some(id) = s.request {
            self.select_request_id(id);
        }
        if let Some(id) = s.connection
            && let Some(idx) = self.snap.connections.iter().position(|c| c.id == id)
        {
            if self.connection_rows().position(idx).is_none() {
                self.set_filter(String::new());
            }
            if let Some(pos) = self.connection_rows().position(idx) {
                self.conn_sel = pos;
            }
        }
        if let Some(node) = &s.node {
            if let Some(i) = self.snap.rules.iter().position(|r| &r.node == node) {
                self.rules.node = i;
            }
            let d = &self.snap.distribution;
            if let Some(i) = d.nodes.iter().position(|n| &n.name == node) {
                self.nodes_sel = i;
            } else if let Some(i) = d.pods.iter().position(|p| &p.name == node) {
                self.nodes_sel = d.nodes.len() + i;
            }
        }
        if let Some(chain) = &s.chain {
            self.rules.stack.clear();
            self.jump_to_chain(chain, false);
        }
        match s.pane {
            Some(TourPane::Detail) => self.detail = Some(0),
            Some(TourPane::Diagram) => self.focus = Pane::Side,
            Some(TourPane::List) => self.focus = Pane::Main,
            None => {}
        }
        // Tours that never touch the switches leave the user's what-if alone.
        if !self.tour.as_ref().is_some_and(|t| {
            t.tour
                .steps
                .iter()
                .any(|s| s.action.is_some_and(|a| a != TourAction::Replay))
        }) {
            return self.tour_replay(&s);
        }
        let mut next = WhatIfSettings::default();
        let service = self.selected_request().and_then(|r| self.service_of(r));
        for a in actions {
            match a {
                TourAction::AffinityOn | TourAction::AffinityOff => {
                    if let Some(svc) = &service {
                        let on = a == TourAction::AffinityOn;
                        let recorded = self
                            .snap
                            .services
                            .iter()
                            .find(|x| &x.name == svc)
                            .is_some_and(|x| x.session_affinity);
                        if on == recorded {
                            next.affinity.remove(svc);
                        } else {
                            next.affinity.insert(svc.clone(), on);
                        }
                    }
                }
                TourAction::AlbMode(m) => {
                    next.alb_mode = (m != self.recorded_alb_mode()).then_some(m);
                }
                TourAction::Recorded => next = WhatIfSettings::default(),
                TourAction::Replay => {}
            }
        }
        let mut effects = self.tour_replay(&s);
        if next != self.whatif {
            effects.extend(self.load(next));
        }
        effects
    }

    fn tour_replay(&mut self, s: &crate::journey::tour::TourStep) -> Vec<Effect> {
        if s.action == Some(TourAction::Replay)
            && let Some(first) = self.first_time()
        {
            self.replay.stop();
            self.replay.play_pause(first);
            self.follow_replay(self.snap.requests.len());
        }
        Vec::new()
    }
}

/// The rows matching `query` (whitespace-separated terms, all must appear, case-insensitive) in
/// the text the filter searches. Pure; runs on any thread.
#[must_use]
pub fn filter_matches(snap: &Snapshot, query: &str) -> FilterMatches {
    let terms: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
    // One reused buffer: a million requests are searched without a million allocations.
    let mut buf = String::with_capacity(256);
    let requests = snap
        .requests
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            request_search_text(r, &mut buf);
            matches_terms(&buf, &terms)
        })
        .map(|(i, _)| i as u32)
        .collect();
    let connections = snap
        .connections
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            let text = format!(
                "{} {} {} {} {} {:?}",
                text::endpoint(&c.client),
                text::endpoint(&c.server),
                c.capture,
                c.node.as_deref().unwrap_or(""),
                c.protocol,
                c.state
            )
            .to_lowercase();
            matches_terms(&text, &terms)
        })
        .map(|(i, _)| i as u32)
        .collect();
    FilterMatches {
        requests,
        connections,
    }
}

/// Case-insensitive AND of `terms` (already lower case) over `text` (already lower case).
fn matches_terms(text: &str, terms: &[String]) -> bool {
    terms.iter().all(|t| text.contains(t.as_str()))
}

/// What the filter searches in a request, written into `s` (cleared first), lower case:
/// addresses and ports, method, target, host, status, nodes, pod, chains, capture, evidence.
fn request_search_text(r: &RequestJourney, s: &mut String) {
    use std::fmt::Write as _;
    s.clear();
    let _ = write!(
        s,
        "#{} {}:{} {}:{} ",
        r.id, r.client.ip, r.client.port, r.frontend.ip, r.frontend.port
    );
    for part in [
        r.method.as_str(),
        r.target.as_str(),
        r.host.as_deref().unwrap_or(""),
        r.capture.as_str(),
    ] {
        s.push_str(part);
        s.push(' ');
    }
    if let Some(st) = r.status {
        let _ = write!(s, "{st} ");
    }
    for n in [
        r.node.as_deref(),
        r.alb.as_ref().and_then(|a| a.observed_node.as_deref()),
    ]
    .into_iter()
    .flatten()
    {
        s.push_str(n);
        s.push(' ');
    }
    if let Some(p) = &r.pod {
        let _ = write!(
            s,
            "{} {} {} ",
            p.name.as_deref().unwrap_or(""),
            p.ip,
            p.node.as_deref().unwrap_or("")
        );
    }
    if let Some(e) = &r.endpoint {
        let _ = write!(
            s,
            "{}:{} {} {} ",
            e.ip,
            e.port,
            e.chain,
            crate::ui::theme::evidence_word(e.evidence)
        );
    }
    for p in &r.path {
        s.push_str(&p.chain);
        s.push(' ');
    }
    if let Some(m) = &r.masquerade {
        let _ = write!(s, "{}:{} ", m.ip, m.port);
    }
    if let Some(w) = &r.whatif {
        let _ = write!(
            s,
            "{} {} ",
            w.node.as_deref().unwrap_or(""),
            w.pod.as_deref().unwrap_or("")
        );
        if w.moved {
            s.push_str("moved");
        }
    }
    if s.is_ascii() {
        s.make_ascii_lowercase();
    } else {
        *s = s.to_lowercase();
    }
}
