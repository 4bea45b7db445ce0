//! Colours and evidence marks. Only the 16 ANSI colours are used (they follow the user's terminal
//! palette), and every distinction the colours make is also made by a mark or a modifier, so the
//! screen reads the same with `NO_COLOR` or on a monochrome terminal.

use crate::journey::model::Evidence;
use ratatui::style::{Color, Modifier, Style};

/// The mark drawn next to every fact, by how it is known. Distinguishable without colour.
#[must_use]
pub fn evidence_mark(e: Evidence) -> &'static str {
    match e {
        Evidence::Observed => "●",
        Evidence::Inferred => "◐",
        Evidence::Affinity => "∞",
        Evidence::Modeled => "?",
    }
}

/// The word for an evidence kind, as the report prints it.
#[must_use]
pub fn evidence_word(e: Evidence) -> &'static str {
    match e {
        Evidence::Observed => "observed",
        Evidence::Inferred => "inferred",
        Evidence::Affinity => "affinity",
        Evidence::Modeled => "modelled",
    }
}

/// All styles the views use.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub color: bool,
    pub base: Style,
    pub title: Style,
    pub dim: Style,
    pub tab_active: Style,
    pub selected: Style,
    pub focus_border: Style,
    pub border: Style,
    pub moved: Style,
    pub warn: Style,
    pub observed: Style,
    pub inferred: Style,
    pub affinity: Style,
    pub modeled: Style,
    pub matched: Style,
    pub not_matched: Style,
    pub bar: Style,
    pub expected: Style,
    pub key: Style,
}

impl Theme {
    /// The theme for a terminal; `no_color` when `NO_COLOR` is set (any non-empty value).
    #[must_use]
    pub fn new(no_color: bool) -> Self {
        let plain = Style::default();
        let bold = plain.add_modifier(Modifier::BOLD);
        if no_color {
            return Self {
                color: false,
                base: plain,
                title: bold,
                dim: plain.add_modifier(Modifier::DIM),
                tab_active: plain.add_modifier(Modifier::REVERSED | Modifier::BOLD),
                selected: plain.add_modifier(Modifier::REVERSED),
                focus_border: bold,
                border: plain,
                moved: plain.add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
                warn: bold,
                observed: plain,
                inferred: plain,
                affinity: plain,
                modeled: plain,
                matched: bold,
                not_matched: plain.add_modifier(Modifier::DIM),
                bar: plain,
                expected: bold,
                key: bold,
            };
        }
        Self {
            color: true,
            base: plain,
            title: bold.fg(Color::Cyan),
            dim: plain.fg(Color::DarkGray),
            tab_active: plain
                .fg(Color::Black)
                .bg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
            selected: plain.add_modifier(Modifier::REVERSED),
            focus_border: plain.fg(Color::Cyan),
            border: plain.fg(Color::DarkGray),
            moved: bold.fg(Color::Yellow),
            warn: bold.fg(Color::Yellow),
            observed: plain.fg(Color::Green),
            inferred: plain.fg(Color::Cyan),
            affinity: plain.fg(Color::Magenta),
            modeled: plain.fg(Color::Yellow),
            matched: plain.fg(Color::Green),
            not_matched: plain.fg(Color::DarkGray),
            bar: plain.fg(Color::Blue),
            expected: bold.fg(Color::Red),
            key: bold.fg(Color::Cyan),
        }
    }

    /// Honour `NO_COLOR` (https://no-color.org: set and non-empty disables colour).
    #[must_use]
    pub fn from_env() -> Self {
        Self::new(std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()))
    }

    #[must_use]
    pub fn evidence(&self, e: Evidence) -> Style {
        match e {
            Evidence::Observed => self.observed,
            Evidence::Inferred => self.inferred,
            Evidence::Affinity => self.affinity,
            Evidence::Modeled => self.modeled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_distinct_without_colour() {
        let all = [
            Evidence::Observed,
            Evidence::Inferred,
            Evidence::Affinity,
            Evidence::Modeled,
        ];
        let marks: std::collections::BTreeSet<_> = all.iter().map(|e| evidence_mark(*e)).collect();
        assert_eq!(marks.len(), all.len());
        let t = Theme::new(true);
        assert!(!t.color);
        assert_eq!(t.observed.fg, None);
    }
}
