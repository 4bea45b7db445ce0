//! A reusable tmux harness for end-to-end tests of a real terminal program: a private tmux server,
//! a shell with a known prompt in a fixed-size window, keys in, plain-text screens out. Tests call
//! [`Tmux::start`] and skip cleanly (printing why) when tmux is not installed.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub const PROMPT: &str = "PROMPT$ ";

pub struct Tmux {
    socket: String,
    /// The server's socket file, removed on drop (kill-server can leave it behind).
    socket_path: Option<String>,
}

impl Tmux {
    /// A new private server with one window `width`×`height` running a plain bash in `dir`.
    /// `None` (after printing "skipped: …") when tmux or bash is missing.
    pub fn start(name: &str, width: u16, height: u16, dir: &Path) -> Option<Self> {
        for tool in ["tmux", "bash"] {
            if Command::new(tool).arg("-V").output().is_err()
                && Command::new(tool).arg("--version").output().is_err()
            {
                println!("skipped: {tool} is not installed (.ci/run installs tmux)");
                return None;
            }
        }
        let mut t = Self {
            socket: format!("hoptrace-{name}-{}", std::process::id()),
            socket_path: None,
        };
        let _ = t.tmux(&["kill-server"]);
        let size = (width.to_string(), height.to_string());
        t.tmux(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "S",
            "-x",
            &size.0,
            "-y",
            &size.1,
            "-c",
            &dir.display().to_string(),
            "env -i PATH=/usr/bin:/bin TERM=xterm-256color HOME=/tmp bash --norc --noprofile",
        ])
        .expect("tmux new-session");
        t.tmux(&["set-option", "-t", "S", "remain-on-exit", "on"])
            .expect("tmux set-option");
        t.socket_path = Some(t.format("#{socket_path}"));
        t.send_line(&format!("PS1='{PROMPT}'; clear"));
        // capture-pane drops trailing spaces, so look for the prompt without its space.
        t.wait_for(PROMPT.trim_end(), Duration::from_secs(5));
        Some(t)
    }

    fn tmux(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Type a line into the shell and press Enter.
    pub fn send_line(&self, line: &str) {
        self.tmux(&["send-keys", "-t", "S", "-l", line])
            .expect("send-keys");
        self.tmux(&["send-keys", "-t", "S", "Enter"])
            .expect("send-keys Enter");
    }

    /// Press keys, in tmux's key names (`j`, `Enter`, `Escape`, `Tab`, `Space`, `C-c`, `/`).
    pub fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.tmux(&["send-keys", "-t", "S", k]).expect("send-keys");
        }
    }

    /// Type literal text.
    pub fn text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "S", "-l", text])
            .expect("send-keys -l");
    }

    /// The visible screen as plain text.
    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "S"])
            .expect("capture-pane")
    }

    /// A tmux format value, e.g. `#{alternate_on}`, `#{pane_pid}`.
    pub fn format(&self, fmt: &str) -> String {
        self.tmux(&["display-message", "-p", "-t", "S", fmt])
            .expect("display-message")
            .trim()
            .to_string()
    }

    /// Wait until the screen shows `text`; panics with the screen after `timeout`.
    pub fn wait_for(&self, text: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if s.contains(text) {
                return s;
            }
            if start.elapsed() > timeout {
                panic!("screen never showed {text:?}; it shows:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until the screen no longer shows `text`.
    pub fn wait_gone(&self, text: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if !s.contains(text) {
                return s;
            }
            if start.elapsed() > timeout {
                panic!("screen still shows {text:?}:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn resize(&self, width: u16, height: u16) {
        self.tmux(&[
            "resize-window",
            "-t",
            "S",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
        ])
        .expect("resize-window");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
        if let Some(path) = &self.socket_path {
            let _ = std::fs::remove_file(path);
        }
    }
}
