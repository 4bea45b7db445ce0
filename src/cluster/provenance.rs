//! Where each cluster fact came from: stated in an input file (which one, which line), inferred
//! (and why), or a documented default. The UI and the report mark inferred facts from this.

use serde::Serialize;
use std::fmt;

/// Which kind of input stated a fact. The order is the merge precedence: when two sources
/// disagree, the later variant here wins (a hand-written cluster.toml beats kubectl output,
/// which beats what a routing table implies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// A routing table: `route -n` or `ip route` output.
    RouteN,
    /// `kubectl get … -o json`.
    KubectlJson,
    /// `kubectl get … -o wide` text table.
    KubectlText,
    /// A command-line assignment such as `NODE=FILE`.
    CommandLine,
    /// `cluster.toml`.
    ClusterToml,
}

impl SourceKind {
    pub fn describe(self) -> &'static str {
        match self {
            SourceKind::RouteN => "routing table",
            SourceKind::KubectlJson => "kubectl -o json",
            SourceKind::KubectlText => "kubectl -o wide",
            SourceKind::CommandLine => "command line",
            SourceKind::ClusterToml => "cluster.toml",
        }
    }
}

/// A place in an input file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct SourceRef {
    pub kind: SourceKind,
    /// File name as the user gave it (display form, already escaped when printed).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<u32>,
}

impl fmt::Display for SourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", crate::sanitize::escape_str(&self.file))?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        Ok(())
    }
}

/// How a fact was established.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Provenance {
    /// Stated in an input.
    Given { source: SourceRef },
    /// Deduced from other facts; `reason` says how, in words a user can check.
    Inferred { reason: String },
    /// Neither given nor inferable: a documented default.
    Default { reason: String },
}

impl Provenance {
    pub fn given(kind: SourceKind, file: impl Into<String>, line: Option<u32>) -> Self {
        Provenance::Given {
            source: SourceRef {
                kind,
                file: file.into(),
                line,
            },
        }
    }
    pub fn inferred(reason: impl Into<String>) -> Self {
        Provenance::Inferred {
            reason: reason.into(),
        }
    }
    pub fn default(reason: impl Into<String>) -> Self {
        Provenance::Default {
            reason: reason.into(),
        }
    }
    pub fn is_given(&self) -> bool {
        matches!(self, Provenance::Given { .. })
    }
    pub fn is_inferred(&self) -> bool {
        matches!(self, Provenance::Inferred { .. })
    }
    /// Merge precedence: higher wins. Given facts rank by [`SourceKind`], above anything
    /// inferred, which ranks above defaults.
    pub fn rank(&self) -> u8 {
        match self {
            Provenance::Default { .. } => 0,
            Provenance::Inferred { .. } => 1,
            Provenance::Given { source } => 2 + source.kind as u8,
        }
    }
}

impl fmt::Display for Provenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Provenance::Given { source } => write!(f, "{} ({})", source, source.kind.describe()),
            // Reasons quote input text (file names, node names): escape like everything else.
            Provenance::Inferred { reason } => {
                write!(f, "inferred: {}", crate::sanitize::escape_str(reason))
            }
            Provenance::Default { reason } => {
                write!(f, "default: {}", crate::sanitize::escape_str(reason))
            }
        }
    }
}

/// A value with its provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fact<T> {
    pub value: T,
    pub provenance: Provenance,
}

impl<T> Fact<T> {
    pub fn new(value: T, provenance: Provenance) -> Self {
        Self { value, provenance }
    }
    pub fn inferred(value: T, reason: impl Into<String>) -> Self {
        Self {
            value,
            provenance: Provenance::inferred(reason),
        }
    }
    pub fn default(value: T, reason: impl Into<String>) -> Self {
        Self {
            value,
            provenance: Provenance::default(reason),
        }
    }
    pub fn is_inferred(&self) -> bool {
        self.provenance.is_inferred()
    }
    pub fn is_given(&self) -> bool {
        self.provenance.is_given()
    }
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Fact<U> {
        Fact {
            value: f(self.value),
            provenance: self.provenance,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_display() {
        let toml = Provenance::given(SourceKind::ClusterToml, "cluster.toml", Some(7));
        let kube = Provenance::given(SourceKind::KubectlText, "nodes.txt", Some(2));
        let route = Provenance::given(SourceKind::RouteN, "route.txt", None);
        let inf = Provenance::inferred("x");
        let def = Provenance::default("y");
        assert!(toml.rank() > kube.rank() && kube.rank() > route.rank());
        assert!(route.rank() > inf.rank() && inf.rank() > def.rank());
        assert_eq!(toml.to_string(), "cluster.toml:7 (cluster.toml)");
        assert_eq!(inf.to_string(), "inferred: x");
        let j = serde_json::to_value(Fact::inferred(3, "because")).unwrap();
        assert_eq!(j["provenance"]["kind"], "inferred");
        assert_eq!(j["provenance"]["reason"], "because");
    }

    #[test]
    fn file_names_are_escaped_when_displayed() {
        let p = Provenance::given(SourceKind::RouteN, "evil\x1b[2J.txt", Some(1));
        assert!(!p.to_string().contains('\x1b'));
    }
}
