//! Terminal UI: ratatui views, key bindings, the tokio event loop. Draws the journey model's
//! [`Snapshot`](crate::journey::snapshot::Snapshot); decides nothing about packets or rules itself.
//!
//! # Brief overview
//!
//! * [`app`] — the model ([`App`]), messages ([`Msg`]), effects ([`Effect`]) and `update` (TEA).
//! * [`render`] — the pure view, one module per widget, composed by [`render::view`].
//! * [`keys`] — key bindings as data (also the help text).
//! * [`replay`] — capture-time replay driven by an injected clock.
//! * [`runtime`] — the tokio current-thread loop: terminal events, signals, a replay timer and
//!   background snapshot loads; terminal set-up and restore (exit, panic, SIGTERM/SIGHUP).
//! * [`theme`] — 16-colour styles, `NO_COLOR`, and the evidence marks that work without colour:
//!   `●` observed, `◐` inferred, `∞` affinity (`recent` table), `?` modelled.

pub mod app;
pub mod keys;
pub mod render;
pub mod replay;
pub mod runtime;
pub mod text;
pub mod theme;

pub use app::{App, Effect, Msg};

use crate::journey::snapshot::{LoadProgress, SnapshotSource};

/// Carry out effects synchronously, on the caller's thread: a `Load` computes the snapshot at once
/// and feeds it back. For tests, benchmarks and headless use; the terminal UI uses
/// [`runtime::run`], which loads in the background. Returns true when the app asked to quit.
pub fn apply_effects_blocking(
    app: &mut App,
    effects: Vec<Effect>,
    source: &dyn SnapshotSource,
) -> bool {
    let mut queue = std::collections::VecDeque::from(effects);
    let mut quit = false;
    while let Some(effect) = queue.pop_front() {
        match effect {
            Effect::Load {
                generation,
                whatif,
                scenario,
            } => {
                let progress = LoadProgress::new();
                let snapshot =
                    Box::new(source.snapshot_in(scenario.as_deref(), &whatif, &progress));
                queue.extend(app.update(Msg::Loaded {
                    generation,
                    snapshot,
                }));
            }
            Effect::Filter {
                generation,
                query,
                snapshot,
            } => {
                let matches = app::filter_matches(&snapshot, &query);
                queue.extend(app.update(Msg::Filtered {
                    generation,
                    matches,
                }));
            }
            Effect::Quit => quit = true,
        }
    }
    quit
}
