//! UI frame-time benchmark with 1M requests (the FIXTURE scenario's 60 requests repeated; see
//! tests/common/fixture.rs). Prints numbers; no assertions.
//!
//! ```text
//! cargo bench --bench ui_frame
//! cargo bench --bench ui_frame -- --capture FILE   # first frame for a big capture, then exit
//! ```
//!
//! With `--capture FILE`: the first frame of `hoptrace tui FILE` (the source reads the capture
//! lazily, in the load task), the time until the journeys are loaded, and the first frame with
//! them, drawn through a `CrosstermBackend` into a sink.
//!
//! Measures, at 160×48 and 80×24, drawing into ratatui's TestBackend and into a CrosstermBackend
//! writing to a sink (the escape sequences a terminal would get):
//! * first frame (loading gauge, before any data) and the first frame with 1M requests loaded;
//! * key-to-frame latency for `j` (scroll one row), PgDn, `G`;
//! * the reference: the same list drawn the naive way, a ratatui `Table` built from every row.

#[path = "../tests/common/fixture.rs"]
mod fixture;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use hoptrace::journey::snapshot::Snapshot;
use hoptrace::ui::theme::Theme;
use hoptrace::ui::{App, Effect, Msg, render};
use ratatui::backend::{CrosstermBackend, TestBackend};
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Row, Table};
use ratatui::{Terminal, TerminalOptions, Viewport};
use std::time::{Duration, Instant};

const N: usize = 1_000_000;

fn stats(name: &str, mut d: Vec<Duration>) {
    d.sort();
    let mean = d.iter().sum::<Duration>() / d.len() as u32;
    let pct = |p: f64| d[((d.len() - 1) as f64 * p) as usize];
    println!(
        "{name:<58} n={:<5} mean {:>8.3} ms  p50 {:>8.3} ms  p99 {:>8.3} ms  max {:>8.3} ms",
        d.len(),
        mean.as_secs_f64() * 1e3,
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        d[d.len() - 1].as_secs_f64() * 1e3
    );
}

fn key(c: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

fn loaded_app(snapshot: Snapshot) -> (App, Duration) {
    let (mut app, effects) = App::new("bench".into(), None, Theme::new(false));
    let Effect::Load { generation, .. } = effects[0].clone() else {
        unreachable!()
    };
    let t = Instant::now();
    app.update(Msg::Loaded {
        generation,
        snapshot: Box::new(snapshot),
    });
    (app, t.elapsed())
}

fn bench_keys<B: ratatui::backend::Backend>(
    label: &str,
    terminal: &mut Terminal<B>,
    app: &mut App,
) {
    let mut run = |what: &str, code: KeyCode, n: usize, reset: bool| {
        let mut d = Vec::with_capacity(n);
        for _ in 0..n {
            if reset {
                app.update(key(KeyCode::Char('g')));
                let _ = terminal.draw(|f| render::view(f, app));
            }
            let t = Instant::now();
            app.update(key(code));
            let _ = terminal.draw(|f| render::view(f, app));
            d.push(t.elapsed());
        }
        stats(&format!("{label} key→frame {what}"), d);
    };
    run("j (one row)", KeyCode::Char('j'), 2000, false);
    run("PgDn", KeyCode::PageDown, 500, false);
    run("G (to request 1,000,000)", KeyCode::Char('G'), 50, true);
}

/// `hoptrace tui FILE` as the binary runs it, minus the terminal: the source, the app, frames.
fn capture_first_frame(path: &str) {
    use hoptrace::cli::tui::{LazyScenarioSource, TuiArgs};
    use hoptrace::journey::snapshot::{LoadProgress, SnapshotSource, WhatIfSettings};
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    println!(
        "-- capture {path} ({:.2} GiB), 160x48, Crossterm→sink",
        size as f64 / (1u64 << 30) as f64
    );
    let mut sink = Terminal::with_options(
        CrosstermBackend::new(std::io::sink()),
        TerminalOptions {
            viewport: Viewport::Fixed(Rect::new(0, 0, 160, 48)),
        },
    )
    .unwrap();
    let t = Instant::now();
    let source = LazyScenarioSource::new(TuiArgs {
        inputs: vec![path.to_string()],
        seed: 1,
        ..Default::default()
    });
    let (mut app, effects) = App::new(source.name(), None, Theme::new(false));
    sink.draw(|f| render::view(f, &app)).unwrap();
    stats(
        "first frame (loading gauge; the capture is read in the background)",
        vec![t.elapsed()],
    );
    let Effect::Load {
        generation,
        whatif,
        scenario,
    } = effects[0].clone()
    else {
        panic!("the app asks for the recorded snapshot first")
    };
    assert_eq!(whatif, WhatIfSettings::default());
    // On another thread, as the runtime's `spawn_blocking` load task does (its allocations and
    // frees are not the UI thread's).
    let source = std::sync::Arc::new(source);
    let snapshot = {
        let source = source.clone();
        std::thread::spawn(move || {
            source.snapshot_in(scenario.as_deref(), &whatif, &LoadProgress::new())
        })
        .join()
        .expect("the load task")
    };
    let loaded = t.elapsed();
    println!(
        "loaded: {} requests, {} connections, {} warnings",
        snapshot.requests.len(),
        snapshot.connections.len(),
        snapshot.warnings.len()
    );
    stats(
        "capture read + journeys computed (background task)",
        vec![loaded],
    );
    let _ = app.update(Msg::Loaded {
        generation,
        snapshot: Box::new(snapshot),
    });
    let t2 = Instant::now();
    sink.draw(|f| render::view(f, &app)).unwrap();
    stats("first frame with the journeys", vec![t2.elapsed()]);
    let mut d = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let _ = app.update(key(KeyCode::Char('j')));
        sink.draw(|f| render::view(f, &app)).unwrap();
        d.push(t.elapsed());
    }
    stats("key→frame `j` with the journeys", d);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--capture") {
        let path = args.get(i + 1).expect("--capture FILE");
        capture_first_frame(path);
        return;
    }
    let t = Instant::now();
    let snap = fixture::scaled(N);
    println!(
        "built {} fixture requests in {:.2} s (not part of the UI)",
        snap.requests.len(),
        t.elapsed().as_secs_f64()
    );

    for (w, h) in [(160u16, 48u16), (80, 24)] {
        println!("-- {w}x{h}");
        // First frame: before any data arrives (what the user sees at once).
        let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
        let t = Instant::now();
        let (app0, _) = App::new("bench".into(), None, Theme::new(false));
        terminal.draw(|f| render::view(f, &app0)).unwrap();
        stats(
            "first frame (loading gauge, no data yet)",
            vec![t.elapsed()],
        );

        let (mut app, load) = loaded_app(snap.clone());
        stats(
            "1M-request snapshot handed to the UI (index times)",
            vec![load],
        );
        let t = Instant::now();
        terminal.draw(|f| render::view(f, &app)).unwrap();
        stats("first frame with 1M requests", vec![t.elapsed()]);
        bench_keys("TestBackend", &mut terminal, &mut app);

        let mut sink = Terminal::with_options(
            CrosstermBackend::new(std::io::sink()),
            TerminalOptions {
                viewport: Viewport::Fixed(Rect::new(0, 0, w, h)),
            },
        )
        .unwrap();
        drop(app);
        let (mut app, _) = loaded_app(snap.clone());
        bench_keys("Crossterm→sink", &mut sink, &mut app);
        drop(app);

        // Filter over 1M requests (applied on Enter above 200k requests).
        let (mut app, _) = loaded_app(snap.clone());
        let t = Instant::now();
        app.set_filter("52.168".into());
        terminal.draw(|f| render::view(f, &app)).unwrap();
        stats(
            &format!(
                "filter \"52.168\" over 1M ({} match) + frame",
                app.request_rows().len()
            ),
            vec![t.elapsed()],
        );
        drop(app);

        // Reference: the naive list, a Table of every row rebuilt per frame.
        let mut d = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            terminal
                .draw(|f| {
                    let rows = snap.requests.iter().map(|r| {
                        Row::new(vec![
                            r.id.to_string(),
                            r.time.clone(),
                            r.client.ip.to_string(),
                            r.node.clone().unwrap_or_default(),
                        ])
                    });
                    let table = Table::new(
                        rows,
                        [
                            Constraint::Length(8),
                            Constraint::Length(28),
                            Constraint::Length(16),
                            Constraint::Length(8),
                        ],
                    );
                    f.render_widget(table, f.area());
                })
                .unwrap();
            d.push(t.elapsed());
        }
        stats("reference: naive Table of all 1M rows, one frame", d);
    }
}
