//! Helpers shared by the UI integration tests.
#![allow(dead_code)]

pub mod fixture;
pub mod tmux;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use hoptrace::journey::tour::Tour;
use hoptrace::ui::theme::Theme;
use hoptrace::ui::{App, Msg, apply_effects_blocking, render};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// An app with the fixture loaded (and the fixture tour), no terminal.
pub fn app() -> App {
    let tour =
        Tour::from_toml_str(fixture::TOUR, "fixture_tour.toml").expect("fixture tour parses");
    let (mut app, effects) = App::new("FIXTURE scenario".into(), Some(tour), Theme::new(true));
    apply_effects_blocking(&mut app, effects, &fixture::FixtureSource);
    app
}

/// Feed keys written as a string: each char is a key, `<Enter>`, `<Esc>`, `<Tab>`, `<Down>`,
/// `<Up>`, `<PgDn>`, `<PgUp>`, `<Space>`, `<BS>` name the others.
pub fn keys(app: &mut App, script: &str) {
    keys_on(app, script, &fixture::FixtureSource);
}

/// [`keys`] with the effects carried out on `source`.
pub fn keys_on(
    app: &mut App,
    script: &str,
    source: &dyn hoptrace::journey::snapshot::SnapshotSource,
) {
    let mut rest = script;
    while !rest.is_empty() {
        let (code, len) = if rest.starts_with('<') {
            let end = rest.find('>').expect("closed <key>");
            let code = match &rest[1..end] {
                "Enter" => KeyCode::Enter,
                "Esc" => KeyCode::Esc,
                "Tab" => KeyCode::Tab,
                "Down" => KeyCode::Down,
                "Up" => KeyCode::Up,
                "PgDn" => KeyCode::PageDown,
                "PgUp" => KeyCode::PageUp,
                "Space" => KeyCode::Char(' '),
                "BS" => KeyCode::Backspace,
                "Left" => KeyCode::Left,
                "Right" => KeyCode::Right,
                other => panic!("unknown key <{other}>"),
            };
            (code, end + 1)
        } else {
            let c = rest.chars().next().unwrap();
            (KeyCode::Char(c), c.len_utf8())
        };
        let mods = if matches!(code, KeyCode::Char(c) if c.is_ascii_uppercase()) {
            KeyModifiers::SHIFT
        } else {
            KeyModifiers::NONE
        };
        let effects = app.update(Msg::Key(KeyEvent::new(code, mods)));
        apply_effects_blocking(app, effects, source);
        rest = &rest[len..];
    }
}

/// Draw the app on a `width`×`height` TestBackend and return the screen as plain text (cell
/// symbols only, no colours), trailing spaces trimmed.
pub fn screen(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| render::view(f, app)).unwrap();
    let buf = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..height {
        let mut line = String::new();
        for x in 0..width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A `TestBackend` that keeps every flushed frame as text (bandwhich's fake output), so tests of
/// the whole event loop can look at what the user saw over time.
pub struct RecordingBackend {
    pub inner: TestBackend,
    pub frames: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl RecordingBackend {
    pub fn new(width: u16, height: u16) -> Self {
        Self {
            inner: TestBackend::new(width, height),
            frames: Default::default(),
        }
    }
}

fn buffer_text(buf: &ratatui::buffer::Buffer) -> String {
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut line = String::new();
        for x in 0..buf.area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

impl ratatui::backend::Backend for RecordingBackend {
    type Error = <TestBackend as ratatui::backend::Backend>::Error;

    fn draw<'a, I>(&mut self, content: I) -> Result<(), Self::Error>
    where
        I: Iterator<Item = (u16, u16, &'a ratatui::buffer::Cell)>,
    {
        self.inner.draw(content)
    }
    fn hide_cursor(&mut self) -> Result<(), Self::Error> {
        self.inner.hide_cursor()
    }
    fn show_cursor(&mut self) -> Result<(), Self::Error> {
        self.inner.show_cursor()
    }
    fn get_cursor_position(&mut self) -> Result<ratatui::layout::Position, Self::Error> {
        self.inner.get_cursor_position()
    }
    fn set_cursor_position<P: Into<ratatui::layout::Position>>(
        &mut self,
        position: P,
    ) -> Result<(), Self::Error> {
        self.inner.set_cursor_position(position)
    }
    fn clear(&mut self) -> Result<(), Self::Error> {
        self.inner.clear()
    }
    fn clear_region(&mut self, clear_type: ratatui::backend::ClearType) -> Result<(), Self::Error> {
        self.inner.clear_region(clear_type)
    }
    fn size(&self) -> Result<ratatui::layout::Size, Self::Error> {
        self.inner.size()
    }
    fn window_size(&mut self) -> Result<ratatui::backend::WindowSize, Self::Error> {
        self.inner.window_size()
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        self.inner.flush()?;
        self.frames
            .lock()
            .unwrap()
            .push(buffer_text(self.inner.buffer()));
        Ok(())
    }
}
