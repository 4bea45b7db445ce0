//! The whole event loop (`ui::runtime::run`) driven like bandwhich's replay tests: scripted
//! terminal events, a paused tokio clock, and every frame recorded from a TestBackend. FIXTURE
//! data (tests/common/fixture.rs, hand-written).

mod common;

use common::{RecordingBackend, app, fixture, keys};
use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use futures::channel::mpsc;
use hoptrace::journey::snapshot::{LoadProgress, Snapshot, SnapshotSource, WhatIfSettings};
use hoptrace::ui::runtime::run;
use hoptrace::ui::theme::Theme;
use hoptrace::ui::{App, Msg};
use ratatui::Terminal;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn replay_advances_only_with_injected_time() {
    let mut a = app();
    keys(&mut a, "<Space>");
    assert_eq!(a.replay_visible(), 1, "the first request appears at once");
    a.update(Msg::Tick(Duration::from_millis(100)));
    assert_eq!(
        a.replay_visible(),
        2,
        "request 2 came 80 ms after request 1"
    );
    keys(&mut a, "<Space>");
    a.update(Msg::Tick(Duration::from_secs(60)));
    assert_eq!(
        a.replay_visible(),
        2,
        "paused: time does not move the replay"
    );
    keys(&mut a, "...");
    assert_eq!(a.replay_visible(), 5, "stepping while paused");
    keys(&mut a, ",");
    assert_eq!(a.replay_visible(), 4);
    assert_eq!(
        a.selected_request().unwrap().id,
        4,
        "the newest request stays selected"
    );
    keys(&mut a, "+++<Space>"); // 10×
    assert_eq!(a.replay.speed(), 10);
    a.update(Msg::Tick(Duration::from_millis(800))); // 8 s of capture time, from request 4
    assert_eq!(
        a.replay_visible(),
        14,
        "requests up to 10:06:28.05 are shown"
    );
    assert_eq!(
        a.connection_rows().len(),
        5,
        "connections appear with their first packet"
    );
    for _ in 0..20 {
        keys(&mut a, "+");
    }
    assert_eq!(a.replay.speed(), 1000, "1000× at most");
    a.update(Msg::Tick(Duration::from_secs(1)));
    assert_eq!(a.replay_visible(), 60);
    assert!(!a.replay.playing, "the replay stops at the end");
    assert_eq!(
        a.message.as_deref(),
        Some("replay finished: every request shown")
    );
    keys(&mut a, "r");
    assert!(!a.replay.is_active());
    assert_eq!(a.connection_rows().len(), 51);
}

fn key(c: char) -> io::Result<Event> {
    Ok(Event::Key(KeyEvent::new(
        KeyCode::Char(c),
        KeyModifiers::NONE,
    )))
}

/// The first frame drawn after frame number `after` that shows `text`.
async fn wait_for_after(frames: &Arc<Mutex<Vec<String>>>, after: usize, text: &str) -> String {
    for _ in 0..2000 {
        if let Some(f) = frames
            .lock()
            .unwrap()
            .iter()
            .skip(after)
            .find(|f| f.contains(text))
        {
            return f.clone();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!(
        "no frame shows {text:?}; last frame:\n{}",
        frames.lock().unwrap().last().cloned().unwrap_or_default()
    );
}

async fn wait_for(frames: &Arc<Mutex<Vec<String>>>, text: &str) -> String {
    wait_for_after(frames, 0, text).await
}

fn count(frames: &Arc<Mutex<Vec<String>>>) -> usize {
    frames.lock().unwrap().len()
}

#[tokio::test(start_paused = true)]
async fn replay_through_the_event_loop_on_a_paused_clock() {
    let backend = RecordingBackend::new(100, 30);
    let frames = backend.frames.clone();
    let mut terminal = Terminal::new(backend).unwrap();
    let (tx, rx) = mpsc::unbounded();
    let (app, initial) = App::new("FIXTURE".into(), None, Theme::new(true));
    let source: Arc<dyn SnapshotSource> = Arc::new(fixture::FixtureSource);
    let script = async move {
        wait_for(&frames, "Requests 60").await;
        tx.unbounded_send(key(' ')).unwrap();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        tx.unbounded_send(key(' ')).unwrap();
        let paused = wait_for(&frames, "⏸").await;
        assert!(paused.contains("⏸ 1× 10:06:21.0"), "{paused}");
        assert!(
            paused.contains(" 10/60"),
            "after 1 s at 1×, the 10 keep-alive requests:\n{paused}"
        );
        tx.unbounded_send(key('+')).unwrap();
        tx.unbounded_send(key(' ')).unwrap();
        tokio::time::sleep(Duration::from_millis(3250)).await; // 6.5 s of capture time at 2×
        let n = count(&frames);
        tx.unbounded_send(key(' ')).unwrap();
        let paused = wait_for_after(&frames, n, "⏸ 2×").await;
        assert!(
            paused.contains(" 12/60"),
            "after 6.5 s more at 2×, 2 of the next requests:\n{paused}"
        );
        tx.unbounded_send(key('.')).unwrap();
        wait_for(&frames, " 13/60").await;
        tx.unbounded_send(key('q')).unwrap();
        frames
    };
    let (result, frames) = tokio::join!(
        run(
            &mut terminal,
            rx,
            source,
            app,
            initial,
            std::future::pending()
        ),
        script
    );
    let app = result.unwrap();
    assert!(app.quit);
    assert_eq!(app.replay_visible(), 13);
    assert!(frames.lock().unwrap().len() > 10);
}

/// A source that reports progress and then waits until the test lets it finish.
struct GatedSource {
    gate: Mutex<std::sync::mpsc::Receiver<()>>,
}

impl SnapshotSource for GatedSource {
    fn name(&self) -> String {
        "big-capture.pcapng".into()
    }
    fn snapshot(&self, whatif: &WhatIfSettings, progress: &LoadProgress) -> Snapshot {
        progress.begin("reading big-capture.pcapng", 10);
        progress.advance(3);
        let _ = self
            .gate
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(10));
        fixture::with_whatif(whatif)
    }
}

// Real time here: a paused clock does not advance while a blocking load runs, so the progress
// gauge (redrawn by the timer) would never show.
#[tokio::test]
async fn first_frame_at_once_with_progress_then_data_and_signal_quits() {
    let backend = RecordingBackend::new(80, 24);
    let frames = backend.frames.clone();
    let mut terminal = Terminal::new(backend).unwrap();
    let (_tx, rx) = mpsc::unbounded::<io::Result<Event>>();
    let (open, gate) = std::sync::mpsc::channel();
    let source: Arc<dyn SnapshotSource> = Arc::new(GatedSource {
        gate: Mutex::new(gate),
    });
    let (app, initial) = App::new(source.name(), None, Theme::new(true));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let script = async move {
        let first = wait_for(&frames, "Loading").await;
        assert!(first.contains("Reading big-capture.pcapng"), "{first}");
        let gauge = wait_for(&frames, "30% (3 of 10)").await;
        assert!(gauge.contains("reading big-capture.pcapng"), "{gauge}");
        open.send(()).unwrap();
        wait_for(&frames, "Requests 60").await;
        stop_tx.send(()).unwrap(); // as SIGTERM / SIGHUP would
        frames
    };
    let shutdown = async move {
        let _ = stop_rx.await;
    };
    let (result, frames) = tokio::join!(
        run(&mut terminal, rx, source, app, initial, shutdown),
        script
    );
    assert!(result.unwrap().quit);
    let frames = frames.lock().unwrap();
    assert!(
        frames[0].contains("Loading"),
        "the very first frame is drawn before any data:\n{}",
        frames[0]
    );
}
