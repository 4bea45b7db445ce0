//! The event loop: a tokio current-thread runtime selecting over terminal events, a replay timer,
//! finished background loads and termination signals. Everything outside the model lives here (the
//! one place effects are carried out), and all of it is injected into [`run`] so a test can drive
//! the whole app with scripted events on a paused clock and a `TestBackend`.

use crate::journey::snapshot::{LoadProgress, SnapshotSource};
use crate::ui::app::{App, Effect, Msg};
use crate::ui::render;
use crossterm::event::Event;
use futures::{Stream, StreamExt};
use ratatui::Terminal;
use ratatui::backend::Backend;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

/// How often the replay clock ticks (and the progress gauge refreshes).
pub const TICK: Duration = Duration::from_millis(50);

/// Run the app until it quits, the event stream ends or `shutdown` resolves (a signal).
///
/// `initial` are the effects `App::new` returned (the first load). The first frame is drawn before
/// anything is loaded. Returns the final model (tests inspect it).
pub async fn run<B, S, F>(
    terminal: &mut Terminal<B>,
    mut events: S,
    source: Arc<dyn SnapshotSource>,
    mut app: App,
    initial: Vec<Effect>,
    shutdown: F,
) -> io::Result<App>
where
    B: Backend,
    S: Stream<Item = io::Result<Event>> + Unpin,
    F: Future<Output = ()>,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let mut progress: Option<Arc<LoadProgress>> = None;
    let mut quit = apply(&initial, &source, &tx, &mut progress);
    let area = terminal.size().map_err(backend_err)?;
    app.update(Msg::Resize(area.width, area.height));
    draw(terminal, &app)?;

    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut last_tick = Instant::now();
    tokio::pin!(shutdown);
    while !quit {
        let mut redraw = true;
        let effects = tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(Event::Key(key))) => app.update(Msg::Key(key)),
                Some(Ok(Event::Resize(w, h))) => {
                    terminal.autoresize().map_err(backend_err)?;
                    app.update(Msg::Resize(w, h))
                }
                Some(Ok(_)) => { redraw = false; Vec::new() }
                // The terminal went away (SSH drop without a signal): leave.
                Some(Err(_)) | None => vec![Effect::Quit],
            },
            Some(msg) = rx.recv() => {
                if matches!(msg, Msg::Loaded { .. } | Msg::LoadFailed { .. }) {
                    progress = None;
                }
                app.update(msg)
            }
            now = ticker.tick() => {
                let dt = now.duration_since(last_tick);
                last_tick = now;
                redraw = app.replay.playing || app.pending.is_some();
                if let Some(p) = &progress {
                    let (phase, done, total) = p.read();
                    app.update(Msg::Progress { phase, done, total });
                }
                app.update(Msg::Tick(dt))
            }
            () = &mut shutdown => app.update(Msg::Signal),
        };
        quit = apply(&effects, &source, &tx, &mut progress);
        if redraw && !quit {
            draw(terminal, &app)?;
        }
    }
    Ok(app)
}

fn backend_err<E: std::fmt::Display>(e: E) -> io::Error {
    io::Error::other(e.to_string())
}

fn draw<B: Backend>(terminal: &mut Terminal<B>, app: &App) -> io::Result<()> {
    terminal
        .draw(|f| render::view(f, app))
        .map(|_| ())
        .map_err(backend_err)
}

/// The one place effects are carried out. Returns true on `Quit`.
fn apply(
    effects: &[Effect],
    source: &Arc<dyn SnapshotSource>,
    tx: &mpsc::UnboundedSender<Msg>,
    progress: &mut Option<Arc<LoadProgress>>,
) -> bool {
    let mut quit = false;
    for effect in effects {
        match effect {
            Effect::Load {
                generation,
                whatif,
                scenario,
            } => {
                let p = Arc::new(LoadProgress::new());
                *progress = Some(p.clone());
                let (source, whatif, scenario, tx, generation) = (
                    source.clone(),
                    whatif.clone(),
                    scenario.clone(),
                    tx.clone(),
                    *generation,
                );
                let task = tokio::task::spawn_blocking(move || {
                    source.snapshot_in(scenario.as_deref(), &whatif, &p)
                });
                tokio::spawn(async move {
                    let msg = match task.await {
                        Ok(snapshot) => Msg::Loaded {
                            generation,
                            snapshot: Box::new(snapshot),
                        },
                        Err(e) => Msg::LoadFailed {
                            generation,
                            error: if e.is_panic() {
                                "the model panicked (a bug: please report it)".into()
                            } else {
                                e.to_string()
                            },
                        },
                    };
                    let _ = tx.send(msg);
                });
            }
            Effect::Filter {
                generation,
                query,
                snapshot,
            } => {
                let (tx, generation, query, snapshot) =
                    (tx.clone(), *generation, query.clone(), snapshot.clone());
                let task = tokio::task::spawn_blocking(move || {
                    crate::ui::app::filter_matches(&snapshot, &query)
                });
                tokio::spawn(async move {
                    // A lost filter run leaves the old rows; the next query starts a new one.
                    if let Ok(matches) = task.await {
                        let _ = tx.send(Msg::Filtered {
                            generation,
                            matches,
                        });
                    }
                });
            }
            Effect::Quit => quit = true,
        }
    }
    quit
}

/// Restores the terminal when dropped, so every way out of [`run_terminal`] (return, `?`, panic
/// unwinding) leaves a sane terminal.
struct RestoreGuard;

impl Drop for RestoreGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Resolves on SIGTERM, SIGHUP (an SSH drop) or SIGINT.
async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut hup), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
            signal(SignalKind::interrupt()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = hup.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// What the terminal UI starts with besides its data source.
#[derive(Debug, Default)]
pub struct TuiOptions {
    /// A guided tour for the `t` key.
    pub tour: Option<crate::journey::tour::Tour>,
    /// Open the tour at step 1 once the data is loaded (`hoptrace tour`).
    pub start_tour: bool,
    /// Open the tour at this step (0-based) instead, on the scenario it shows.
    pub start_step: Option<usize>,
}

/// Take over the terminal (alternate screen, raw mode, panic hook that restores it), run the app
/// on a current-thread tokio runtime, and restore the terminal however it ends.
pub fn run_terminal(source: Arc<dyn SnapshotSource>, options: TuiOptions) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // ratatui::try_init installs a panic hook that restores the terminal before the panic message.
    let mut terminal = ratatui::try_init()?;
    let _guard = RestoreGuard;
    let theme = crate::ui::theme::Theme::from_env();
    let (mut app, mut initial) = App::new(source.name(), options.tour, theme);
    if let Some(step) = options.start_step {
        let at = app.start_tour_at(step);
        if !at.is_empty() {
            initial = at;
        }
    } else if options.start_tour {
        app.start_tour_when_loaded();
    }
    let result = rt.block_on(async {
        let signals = termination();
        let events = crossterm::event::EventStream::new();
        run(&mut terminal, events, source, app, initial, signals).await
    });
    // A load still running (a big capture being read) must not hold the exit: dropping the
    // runtime would wait for its blocking task; the process ends and takes it along instead.
    rt.shutdown_background();
    result?;
    Ok(())
}
