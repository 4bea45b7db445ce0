//! Replay in capture time: a cursor over the requests' timestamps that advances by the wall-clock
//! time the runtime reports (`Msg::Tick`) times the speed. Pure state; the clock is injected.

use std::time::Duration;

/// Replay speeds, in capture seconds per wall-clock second.
pub const SPEEDS: [u32; 10] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];

/// The replay state. Inactive = every request is shown.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    active: bool,
    pub playing: bool,
    speed: usize,
    /// Capture time (µs since the epoch) up to which requests are shown.
    cursor: i64,
}

impl Replay {
    #[must_use]
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The cut-off time when replaying.
    #[must_use]
    pub fn cursor(&self) -> Option<i64> {
        self.active.then_some(self.cursor)
    }

    #[must_use]
    pub fn speed(&self) -> u32 {
        SPEEDS[self.speed]
    }

    /// Space: start from the first request (`first`, µs), or pause/resume.
    pub fn play_pause(&mut self, first: i64) {
        if self.active {
            self.playing = !self.playing;
        } else {
            self.active = true;
            self.playing = true;
            self.cursor = first;
        }
    }

    pub fn faster(&mut self) {
        self.speed = (self.speed + 1).min(SPEEDS.len() - 1);
    }

    pub fn slower(&mut self) {
        self.speed = self.speed.saturating_sub(1);
    }

    /// Move the cursor (stepping while paused).
    pub fn set_cursor(&mut self, t: i64) {
        self.cursor = t;
    }

    /// Leave replay mode: everything is shown again.
    pub fn stop(&mut self) {
        *self = Self {
            speed: self.speed,
            ..Self::default()
        };
    }

    /// Advance by `dt` of wall-clock time. `None` when not playing (nothing changed); otherwise
    /// `Some(finished)`, where finished means the cursor passed `last` and playing stopped.
    pub fn tick(&mut self, dt: Duration, last: Option<i64>) -> Option<bool> {
        if !self.playing {
            return None;
        }
        let step = i64::try_from(dt.as_micros())
            .unwrap_or(i64::MAX)
            .saturating_mul(i64::from(self.speed()));
        self.cursor = self.cursor.saturating_add(step);
        if last.is_none_or(|last| self.cursor >= last) {
            self.playing = false;
            return Some(true);
        }
        Some(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_bounds_and_ticks() {
        let mut r = Replay::default();
        assert_eq!(r.cursor(), None);
        assert_eq!(r.tick(Duration::from_secs(1), Some(10)), None);
        r.play_pause(0);
        assert_eq!(r.cursor(), Some(0));
        for _ in 0..20 {
            r.slower();
        }
        assert_eq!(r.speed(), 1);
        r.faster();
        assert_eq!(r.speed(), 2);
        assert_eq!(
            r.tick(Duration::from_millis(100), Some(1_000_000)),
            Some(false)
        );
        assert_eq!(r.cursor(), Some(200_000));
        for _ in 0..20 {
            r.faster();
        }
        assert_eq!(r.speed(), 1000);
        assert_eq!(
            r.tick(Duration::from_millis(100), Some(1_000_000)),
            Some(true)
        );
        assert!(!r.playing);
        r.stop();
        assert_eq!(r.cursor(), None);
        assert_eq!(r.speed(), 1000, "speed survives a stop");
    }
}
