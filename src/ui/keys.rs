//! Key bindings as data: one table maps keys to [`Action`]s and carries the help text, so `?` shows
//! exactly what the keys do, per view. The keys of `shared/interface.md` are all here; a test checks
//! that no key is bound twice in the same view.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// The four views (keys `1`–`4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum View {
    #[default]
    Requests,
    Connections,
    Rules,
    Nodes,
}

impl View {
    pub const ALL: [View; 4] = [View::Requests, View::Connections, View::Rules, View::Nodes];

    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            View::Requests => "Requests",
            View::Connections => "Connections",
            View::Rules => "Rules",
            View::Nodes => "Nodes/pods",
        }
    }
}

/// What a key asks for. Interpreted by `App::update`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Up,
    Down,
    Top,
    Bottom,
    PageUp,
    PageDown,
    Left,
    Right,
    Enter,
    Back,
    NextPane,
    View(View),
    ToggleAffinity,
    CycleAlbMode,
    Filter,
    NextMatch,
    PrevMatch,
    PlayPause,
    Faster,
    Slower,
    StepForward,
    StepBack,
    ResetReplay,
    Tour,
    TourNext,
    TourPrev,
    Help,
    Quit,
}

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Everywhere,
    Only(&'static [View]),
}

impl Scope {
    #[must_use]
    pub fn includes(self, view: View) -> bool {
        match self {
            Scope::Everywhere => true,
            Scope::Only(views) => views.contains(&view),
        }
    }
}

/// One binding: the keys, what they do, and how help describes them.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub keys: &'static [(KeyCode, KeyModifiers)],
    pub action: Action,
    /// How the keys are written in help, e.g. `j/↓`.
    pub label: &'static str,
    pub help: &'static str,
    pub scope: Scope,
}

const NONE: KeyModifiers = KeyModifiers::NONE;
const SHIFT: KeyModifiers = KeyModifiers::SHIFT;

macro_rules! b {
    ($keys:expr, $action:expr, $label:expr, $help:expr) => {
        Binding {
            keys: $keys,
            action: $action,
            label: $label,
            help: $help,
            scope: Scope::Everywhere,
        }
    };
    ($keys:expr, $action:expr, $label:expr, $help:expr, $views:expr) => {
        Binding {
            keys: $keys,
            action: $action,
            label: $label,
            help: $help,
            scope: Scope::Only($views),
        }
    };
}

const REQ: &[View] = &[View::Requests];
const RULES: &[View] = &[View::Rules];
const LISTS: &[View] = &[View::Requests, View::Connections, View::Rules];

/// Every binding, in the order help lists them.
pub const BINDINGS: &[Binding] = &[
    b!(
        &[(KeyCode::Char('j'), NONE), (KeyCode::Down, NONE)],
        Action::Down,
        "j/↓",
        "move down"
    ),
    b!(
        &[(KeyCode::Char('k'), NONE), (KeyCode::Up, NONE)],
        Action::Up,
        "k/↑",
        "move up"
    ),
    b!(
        &[(KeyCode::Char('g'), NONE), (KeyCode::Home, NONE)],
        Action::Top,
        "g/Home",
        "top"
    ),
    b!(
        &[
            (KeyCode::Char('G'), SHIFT),
            (KeyCode::Char('G'), NONE),
            (KeyCode::End, NONE)
        ],
        Action::Bottom,
        "G/End",
        "bottom"
    ),
    b!(
        &[
            (KeyCode::PageUp, NONE),
            (KeyCode::Char('b'), KeyModifiers::CONTROL)
        ],
        Action::PageUp,
        "PgUp",
        "page up"
    ),
    b!(
        &[
            (KeyCode::PageDown, NONE),
            (KeyCode::Char('f'), KeyModifiers::CONTROL)
        ],
        Action::PageDown,
        "PgDn",
        "page down"
    ),
    b!(
        &[(KeyCode::Char('h'), NONE), (KeyCode::Left, NONE)],
        Action::Left,
        "h/←",
        "previous node's rules",
        RULES
    ),
    b!(
        &[(KeyCode::Char('l'), NONE), (KeyCode::Right, NONE)],
        Action::Right,
        "l/→",
        "next node's rules",
        RULES
    ),
    b!(
        &[(KeyCode::Enter, NONE)],
        Action::Enter,
        "Enter",
        "detail: packets, HTTP, every rule checked and why",
        REQ
    ),
    b!(
        &[(KeyCode::Enter, NONE)],
        Action::Enter,
        "Enter",
        "show the connection's first request",
        &[View::Connections]
    ),
    b!(
        &[(KeyCode::Enter, NONE)],
        Action::Enter,
        "Enter",
        "jump into the chain the rule targets",
        RULES
    ),
    b!(
        &[(KeyCode::Esc, NONE)],
        Action::Back,
        "Esc",
        "back: close detail/help, clear filter, leave chain"
    ),
    b!(
        &[(KeyCode::Tab, NONE)],
        Action::NextPane,
        "Tab",
        "next pane"
    ),
    b!(
        &[(KeyCode::Char('1'), NONE)],
        Action::View(View::Requests),
        "1",
        "requests + journey diagram"
    ),
    b!(
        &[(KeyCode::Char('2'), NONE)],
        Action::View(View::Connections),
        "2",
        "connections (keep-alive)"
    ),
    b!(
        &[(KeyCode::Char('3'), NONE)],
        Action::View(View::Rules),
        "3",
        "rules (chain browser)"
    ),
    b!(
        &[(KeyCode::Char('4'), NONE)],
        Action::View(View::Nodes),
        "4",
        "nodes/pods: shares, p-value"
    ),
    b!(
        &[(KeyCode::Char('a'), NONE)],
        Action::ToggleAffinity,
        "a",
        "what-if: toggle sessionAffinity of the selected request's Service"
    ),
    b!(
        &[(KeyCode::Char('m'), NONE)],
        Action::CycleAlbMode,
        "m",
        "what-if: cycle the ALB mode (default → source-ip → source-ip-protocol)"
    ),
    b!(
        &[(KeyCode::Char('/'), NONE)],
        Action::Filter,
        "/",
        "filter by IP, port, pod, node, chain, method or path",
        LISTS
    ),
    b!(
        &[(KeyCode::Char('n'), NONE)],
        Action::NextMatch,
        "n",
        "next match",
        LISTS
    ),
    b!(
        &[(KeyCode::Char('N'), SHIFT), (KeyCode::Char('N'), NONE)],
        Action::PrevMatch,
        "N",
        "previous match",
        LISTS
    ),
    b!(
        &[(KeyCode::Char(' '), NONE)],
        Action::PlayPause,
        "Space",
        "replay in capture time: play/pause"
    ),
    b!(
        &[
            (KeyCode::Char('+'), NONE),
            (KeyCode::Char('+'), SHIFT),
            (KeyCode::Char('='), NONE)
        ],
        Action::Faster,
        "+",
        "replay faster (up to 1000×)"
    ),
    b!(
        &[(KeyCode::Char('-'), NONE)],
        Action::Slower,
        "-",
        "replay slower (down to 1×)"
    ),
    b!(
        &[(KeyCode::Char('.'), NONE)],
        Action::StepForward,
        ".",
        "replay: next request (paused)"
    ),
    b!(
        &[(KeyCode::Char(','), NONE)],
        Action::StepBack,
        ",",
        "replay: previous request (paused)"
    ),
    b!(
        &[(KeyCode::Char('r'), NONE)],
        Action::ResetReplay,
        "r",
        "leave replay: show every request"
    ),
    b!(
        &[(KeyCode::Char('t'), NONE)],
        Action::Tour,
        "t",
        "guided tour: start / hide / show"
    ),
    b!(
        &[(KeyCode::Char(']'), NONE)],
        Action::TourNext,
        "]",
        "tour: next step"
    ),
    b!(
        &[(KeyCode::Char('['), NONE)],
        Action::TourPrev,
        "[",
        "tour: previous step"
    ),
    b!(
        &[(KeyCode::Char('?'), NONE), (KeyCode::Char('?'), SHIFT)],
        Action::Help,
        "?",
        "this help"
    ),
    b!(
        &[
            (KeyCode::Char('q'), NONE),
            (KeyCode::Char('c'), KeyModifiers::CONTROL)
        ],
        Action::Quit,
        "q",
        "quit"
    ),
];

/// The action a key asks for in `view`, if any.
#[must_use]
pub fn action_for(key: KeyEvent, view: View) -> Option<Action> {
    // Terminals disagree on whether a shifted character carries SHIFT; compare without it for
    // characters.
    let mods = match key.code {
        KeyCode::Char(_) => key.modifiers - KeyModifiers::SHIFT,
        _ => key.modifiers,
    };
    BINDINGS
        .iter()
        .filter(|b| b.scope.includes(view))
        .find(|b| {
            b.keys.iter().any(|(code, m)| {
                let m = match code {
                    KeyCode::Char(_) => *m - KeyModifiers::SHIFT,
                    _ => *m,
                };
                *code == key.code && m == mods
            })
        })
        .map(|b| b.action)
}

/// The bindings help shows for `view`.
pub fn help_for(view: View) -> impl Iterator<Item = &'static Binding> {
    BINDINGS.iter().filter(move |b| b.scope.includes(view))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_is_bound_twice_in_a_view() {
        for view in View::ALL {
            let mut seen = std::collections::HashMap::new();
            for b in help_for(view) {
                for (code, m) in b.keys {
                    let m = if matches!(code, KeyCode::Char(_)) {
                        *m - KeyModifiers::SHIFT
                    } else {
                        *m
                    };
                    if let Some(prev) = seen.insert((*code, m), b.action) {
                        assert_eq!(prev, b.action, "{code:?} bound twice in {view:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn interface_keys_are_bound() {
        let k = |c| KeyEvent::new(c, KeyModifiers::NONE);
        let v = View::Requests;
        assert_eq!(action_for(k(KeyCode::Char('j')), v), Some(Action::Down));
        assert_eq!(action_for(k(KeyCode::Down), v), Some(Action::Down));
        assert_eq!(
            action_for(KeyEvent::new(KeyCode::Char('G'), KeyModifiers::SHIFT), v),
            Some(Action::Bottom)
        );
        assert_eq!(
            action_for(KeyEvent::new(KeyCode::Char('N'), KeyModifiers::SHIFT), v),
            Some(Action::PrevMatch)
        );
        assert_eq!(
            action_for(k(KeyCode::Char('4')), v),
            Some(Action::View(View::Nodes))
        );
        assert_eq!(
            action_for(k(KeyCode::Char(' ')), v),
            Some(Action::PlayPause)
        );
        assert_eq!(action_for(k(KeyCode::Char('x')), v), None);
        assert_eq!(action_for(k(KeyCode::Char('l')), v), None);
        assert_eq!(
            action_for(k(KeyCode::Char('l')), View::Rules),
            Some(Action::Right)
        );
    }
}
