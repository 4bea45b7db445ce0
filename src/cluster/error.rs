//! Diagnostics for cluster inputs: every message names the file and, when known, the line,
//! column and key (a TOML key path such as `nodes[1].ip`, or a JSON path such as
//! `items[3].status.podIP`).

use serde::Serialize;
use std::fmt;

/// How much a diagnostic matters. Warnings make the CLI exit with 1; notes do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Expected, harmless (a Pending pod without an IP).
    Note,
    /// The user should read it: a conflict, a skipped row, an ignored key.
    Warning,
}

/// A located message about an input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub key: Option<String>,
    pub message: String,
}

impl Diagnostic {
    pub fn warning(file: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            file: file.into(),
            line: None,
            column: None,
            key: None,
            message: message.into(),
        }
    }
    pub fn note(file: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Note,
            ..Self::warning(file, message)
        }
    }
    #[must_use]
    pub fn at_line(mut self, line: Option<u32>) -> Self {
        self.line = line;
        self
    }
    #[must_use]
    pub fn at_column(mut self, column: Option<u32>) -> Self {
        self.column = column;
        self
    }
    #[must_use]
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    /// `file:line:column: key: message`, leaving out what is unknown. File names and keys come
    /// from untrusted input and are escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::sanitize::escape_str;
        write!(f, "{}", escape_str(&self.file))?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        if let Some(k) = &self.key {
            write!(f, ": {}", escape_str(k))?;
        }
        write!(f, ": {}", escape_str(&self.message))
    }
}

/// What went wrong, for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoadErrorKind {
    /// Could not read the file.
    Io,
    /// Larger than we are willing to load.
    TooLarge,
    /// Not UTF-8 text.
    NotText,
    /// Content matches none of the cluster formats.
    NotRecognised,
    /// TOML or JSON syntax error.
    Syntax,
    /// A value of the wrong type or out of range.
    InvalidValue,
    /// A required key or column is absent.
    Missing,
    /// Two entries claim the same identity (e.g. two nodes with one name in cluster.toml).
    Duplicate,
}

/// A fatal problem with one cluster input. Row-level problems in tables are not fatal: they
/// become warnings and the valid rows are kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{diagnostic}")]
pub struct LoadError {
    pub kind: LoadErrorKind,
    pub diagnostic: Diagnostic,
}

impl LoadError {
    pub fn new(kind: LoadErrorKind, diagnostic: Diagnostic) -> Self {
        Self { kind, diagnostic }
    }
    pub fn line(&self) -> Option<u32> {
        self.diagnostic.line
    }
    pub fn key(&self) -> Option<&str> {
        self.diagnostic.key.as_deref()
    }
}

/// Maps byte offsets to 1-based (line, column), columns counted in characters.
#[derive(Debug, Clone)]
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { starts }
    }

    pub(crate) fn line_col(&self, text: &str, offset: usize) -> (u32, u32) {
        let offset = offset.min(text.len());
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts[line - 1];
        let col = text.get(start..offset).map_or(1, |s| s.chars().count() + 1);
        (
            u32::try_from(line).unwrap_or(u32::MAX),
            u32::try_from(col).unwrap_or(u32::MAX),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_leaves_out_unknown_parts() {
        let d = Diagnostic::warning("c.toml", "bad")
            .at_line(Some(3))
            .at_column(Some(7))
            .with_key("nodes[0].ip");
        assert_eq!(d.to_string(), "c.toml:3:7: nodes[0].ip: bad");
        assert_eq!(Diagnostic::warning("x", "m").to_string(), "x: m");
    }

    #[test]
    fn line_index() {
        let t = "ab\ncdé\n\nx";
        let li = LineIndex::new(t);
        assert_eq!(li.line_col(t, 0), (1, 1));
        assert_eq!(li.line_col(t, 3), (2, 1));
        assert_eq!(li.line_col(t, 7), (2, 4));
        assert_eq!(li.line_col(t, 9), (4, 1));
        assert_eq!(li.line_col(t, 999), (4, 2));
    }
}
