//! Guided tours: workshop walkthroughs as data. A tour is a TOML file of steps; each step has
//! narration, what to show (view, request, connection, chain, node, pane, filter) and optionally
//! one action (toggle sessionAffinity, set the ALB mode, go back to the recorded view, start the
//! replay). The UI shows the narration and applies the step; the user's keys keep working.
//!
//! ```toml
//! title = "Keep-alive, 3 replicas and sessionAffinity"
//!
//! [[step]]
//! title = "Keep-alive keeps one node"
//! narration = """
//! Ten requests on one TCP connection: same 5-tuple, same ALB bucket, same node."""
//! view = "connections"
//! connection = 1
//!
//! [[step]]
//! title = "What sessionAffinity changes"
//! narration = "Press a yourself, or watch: every client now sticks to one pod."
//! view = "requests"
//! request = 12
//! action = "affinity-on"
//! ```
//!
//! Unknown keys are errors (a typo must not silently drop a step's highlight).

use crate::journey::model::AlbMode;
use serde::Deserialize;
use std::path::Path;

/// A tour could not be read. Names the file and, when known, the line.
#[derive(Debug, thiserror::Error)]
pub enum TourError {
    #[error("{origin}: cannot read: {source}")]
    Io {
        origin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        origin: String,
        line: Option<usize>,
        message: String,
    },
}

/// Which view a step shows. Mirrors the TUI's views 1–4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TourView {
    Requests,
    Connections,
    Rules,
    Nodes,
}

/// Which pane of the view to highlight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TourPane {
    /// The table (requests, connections, rules, bars).
    List,
    /// The selected request's journey diagram.
    Diagram,
    /// The detail pane (packets, HTTP heads, chain walk).
    Detail,
}

/// What a step does besides showing something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TourAction {
    /// sessionAffinity ClientIP (what-if) for the selected request's service.
    AffinityOn,
    /// sessionAffinity None (what-if) for the selected request's service.
    AffinityOff,
    /// Set the ALB mode (what-if).
    AlbMode(AlbMode),
    /// Drop every what-if: back to what was recorded.
    Recorded,
    /// Start the replay from the first request.
    Replay,
}

impl TourAction {
    /// Parse `affinity-on`, `affinity-off`, `alb-mode=default|source-ip|source-ip-protocol`,
    /// `recorded`, `replay`.
    pub fn parse(text: &str) -> Result<Self, String> {
        Ok(match text.trim() {
            "affinity-on" => Self::AffinityOn,
            "affinity-off" => Self::AffinityOff,
            "recorded" => Self::Recorded,
            "replay" => Self::Replay,
            "alb-mode=default" => Self::AlbMode(AlbMode::Default),
            "alb-mode=source-ip" => Self::AlbMode(AlbMode::SourceIp),
            "alb-mode=source-ip-protocol" => Self::AlbMode(AlbMode::SourceIpProtocol),
            other => {
                return Err(format!(
                    "unknown action {other:?}; expected affinity-on, affinity-off, recorded, \
                     replay or alb-mode=default|source-ip|source-ip-protocol"
                ));
            }
        })
    }
}

/// One step of a tour.
#[derive(Debug, Clone, PartialEq)]
pub struct TourStep {
    pub title: String,
    /// Plain text; paragraphs separated by blank lines.
    pub narration: String,
    pub view: Option<TourView>,
    /// `RequestJourney::id` to select.
    pub request: Option<u64>,
    /// `ConnectionSummary::id` to select.
    pub connection: Option<u64>,
    /// Chain to open in the rules view.
    pub chain: Option<String>,
    /// Node to select (rules view: whose dump; nodes view: which bar).
    pub node: Option<String>,
    pub pane: Option<TourPane>,
    /// Filter text to apply (empty string clears the filter).
    pub filter: Option<String>,
    pub action: Option<TourAction>,
    /// The scenario this step (and the following ones, until another names one) shows, for a
    /// source holding several (the embedded walkthrough); `None`: the one already shown.
    pub scenario: Option<String>,
}

/// A whole tour.
#[derive(Debug, Clone, PartialEq)]
pub struct Tour {
    pub title: String,
    pub steps: Vec<TourStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTour {
    title: String,
    #[serde(default)]
    step: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    title: String,
    narration: String,
    view: Option<TourView>,
    request: Option<u64>,
    connection: Option<u64>,
    chain: Option<String>,
    node: Option<String>,
    pane: Option<TourPane>,
    filter: Option<String>,
    action: Option<String>,
    scenario: Option<String>,
}

impl Tour {
    /// Parse a tour. `origin` names the file in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, TourError> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let raw: RawTour = toml::from_str(text).map_err(|e| TourError::Invalid {
            origin: origin.to_string(),
            line: e.span().map(|s| line_of(s.start)),
            message: e.message().to_string(),
        })?;
        let invalid = |message: String| TourError::Invalid {
            origin: origin.to_string(),
            line: None,
            message,
        };
        if raw.step.is_empty() {
            return Err(invalid("a tour needs at least one [[step]]".into()));
        }
        let mut steps = Vec::with_capacity(raw.step.len());
        for (i, s) in raw.step.into_iter().enumerate() {
            if s.narration.trim().is_empty() {
                return Err(invalid(format!(
                    "step {} ({:?}): narration is empty",
                    i + 1,
                    s.title
                )));
            }
            let action = s
                .action
                .as_deref()
                .map(TourAction::parse)
                .transpose()
                .map_err(|m| invalid(format!("step {} ({:?}): {m}", i + 1, s.title)))?;
            steps.push(TourStep {
                title: s.title,
                narration: s.narration,
                view: s.view,
                request: s.request,
                connection: s.connection,
                chain: s.chain,
                node: s.node,
                pane: s.pane,
                filter: s.filter,
                action,
                scenario: s.scenario,
            });
        }
        Ok(Self {
            title: raw.title,
            steps,
        })
    }

    /// Read and parse a tour file.
    pub fn load(path: &Path) -> Result<Self, TourError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TourError::Io {
            origin: origin.clone(),
            source,
        })?;
        Self::from_toml_str(&text, &origin)
    }

    /// The scenario in force at `step`: the last one a step up to it names.
    #[must_use]
    pub fn scenario_at(&self, step: usize) -> Option<&str> {
        self.steps
            .iter()
            .take(step + 1)
            .rev()
            .find_map(|s| s.scenario.as_deref())
    }

    /// Steps that refer to something the snapshot does not have (a request id, connection id,
    /// chain or node), as sentences. A tour written for another recording shows these as warnings.
    #[must_use]
    pub fn check_against(&self, snap: &crate::journey::snapshot::Snapshot) -> Vec<String> {
        self.check_steps(snap, |_| true)
    }

    /// [`Self::check_against`] for the steps shown on scenario `scenario` only (see
    /// [`Self::scenario_at`]).
    #[must_use]
    pub fn check_against_scenario(
        &self,
        snap: &crate::journey::snapshot::Snapshot,
        scenario: Option<&str>,
    ) -> Vec<String> {
        self.check_steps(snap, |i| self.scenario_at(i) == scenario)
    }

    fn check_steps(
        &self,
        snap: &crate::journey::snapshot::Snapshot,
        include: impl Fn(usize) -> bool,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for (i, s) in self.steps.iter().enumerate() {
            if !include(i) {
                continue;
            }
            let n = i + 1;
            if let Some(id) = s.request
                && !snap.requests.iter().any(|r| r.id == id)
            {
                out.push(format!("tour step {n}: no request #{id} in this scenario"));
            }
            if let Some(id) = s.connection
                && !snap.connections.iter().any(|c| c.id == id)
            {
                out.push(format!(
                    "tour step {n}: no connection #{id} in this scenario"
                ));
            }
            if let Some(chain) = &s.chain
                && !snap
                    .rules
                    .iter()
                    .flat_map(|r| &r.tables)
                    .flat_map(|t| &t.chains)
                    .any(|c| &c.name == chain)
            {
                out.push(format!("tour step {n}: no chain {chain} in the rules"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
title = "t"
[[step]]
title = "one"
narration = "hello"
view = "connections"
connection = 1

[[step]]
title = "two"
narration = "press a"
request = 3
pane = "diagram"
action = "alb-mode=source-ip"
"#;

    #[test]
    fn parses_steps() {
        let t = Tour::from_toml_str(GOOD, "good.toml").unwrap();
        assert_eq!(t.steps.len(), 2);
        assert_eq!(t.steps[0].view, Some(TourView::Connections));
        assert_eq!(
            t.steps[1].action,
            Some(TourAction::AlbMode(AlbMode::SourceIp))
        );
        assert_eq!(t.steps[1].pane, Some(TourPane::Diagram));
    }

    #[test]
    fn typo_is_an_error_with_line() {
        let bad = GOOD.replace("connection = 1", "conection = 1");
        let err = Tour::from_toml_str(&bad, "bad.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("bad.toml:"), "{err}");
        assert!(err.contains("conection"), "{err}");
    }

    #[test]
    fn unknown_action_and_empty_tour() {
        let bad = GOOD.replace("alb-mode=source-ip", "affinity-maybe");
        let err = Tour::from_toml_str(&bad, "x.toml").unwrap_err().to_string();
        assert!(
            err.contains("step 2") && err.contains("affinity-maybe"),
            "{err}"
        );
        let err = Tour::from_toml_str("title = \"x\"\n", "e.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least one"), "{err}");
    }

    #[test]
    fn check_against_names_missing_ids() {
        let t = Tour::from_toml_str(GOOD, "good.toml").unwrap();
        let warnings = t.check_against(&Default::default());
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }
}
