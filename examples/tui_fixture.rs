//! FIXTURE DEMO: the TUI on the hand-written fixture scenario of the UI tests
//! (tests/common/fixture.rs — not a recording, not computed by hoptrace's model). It exists so
//! the UI can be tried and tested end to end (tests/ui_tmux.rs) before the journey layer serves
//! real data.
//!
//! ```text
//! cargo run --example tui_fixture                 # the TUI
//! cargo run --example tui_fixture -- --tour       # … with the fixture tour open
//! cargo run --example tui_fixture -- --dump-snapshot fixture.json   # for `hoptrace tui --snapshot`
//! cargo run --example tui_fixture -- --panic      # panics inside the TUI (restore test)
//! ```

#[path = "../tests/common/fixture.rs"]
mod fixture;

use hoptrace::journey::snapshot::{LoadProgress, Snapshot, SnapshotSource, WhatIfSettings};
use hoptrace::journey::tour::Tour;
use hoptrace::ui::runtime::{TuiOptions, run_terminal};
use std::process::ExitCode;
use std::sync::Arc;

/// Panics as soon as the TUI asks for its name: the terminal is then in raw mode on the alternate
/// screen, which is what the panic hook must undo.
struct PanickingSource;

impl SnapshotSource for PanickingSource {
    fn name(&self) -> String {
        panic!("tui_fixture --panic: deliberate panic inside the TUI");
    }
    fn snapshot(&self, _: &WhatIfSettings, _: &LoadProgress) -> Snapshot {
        Snapshot::default()
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(pos) = args.iter().position(|a| a == "--dump-snapshot") {
        let Some(path) = args.get(pos + 1) else {
            eprintln!("tui_fixture: --dump-snapshot needs a file name");
            return ExitCode::from(2);
        };
        let json = serde_json::to_string_pretty(&fixture::with_whatif(&WhatIfSettings::default()))
            .expect("snapshot serialises");
        if let Err(e) = std::fs::write(path, json) {
            eprintln!("tui_fixture: {path}: {e}");
            return ExitCode::from(2);
        }
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "--panic") {
        let _ = run_terminal(Arc::new(PanickingSource), TuiOptions::default());
        return ExitCode::SUCCESS;
    }
    let tour =
        Tour::from_toml_str(fixture::TOUR, "fixture_tour.toml").expect("the fixture tour parses");
    let options = TuiOptions {
        tour: Some(tour),
        start_tour: args.iter().any(|a| a == "--tour"),
        start_step: None,
    };
    match run_terminal(Arc::new(fixture::FixtureSource), options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tui_fixture: {e}");
            ExitCode::from(2)
        }
    }
}
