//! The TUI's source for captures, rules, cluster files and scenario folders (or the embedded
//! walkthrough): a [`ScenarioSource`] that re-runs the journey model for every what-if switch.

use crate::capture::CaptureOptions;
use crate::journey::source::ScenarioSource;

/// Load the inputs (the embedded walkthrough when there are none) with every packet kept, for
/// the TUI's packet lists.
pub fn scenario_source(inputs: &[String], seed: u64) -> Result<ScenarioSource, String> {
    let opts = CaptureOptions {
        keep_packets: true,
        ..Default::default()
    };
    if inputs.is_empty() {
        let sc = super::embedded::scenario(opts).map_err(|e| e.to_string())?;
        return Ok(
            ScenarioSource::new(sc, seed).with_description(description(super::embedded::README))
        );
    }
    let sc = super::scenario::load(inputs, &[], &[], &[], opts).map_err(|e| e.to_string())?;
    Ok(ScenarioSource::new(sc, seed))
}

/// The first paragraph after a recording README's title.
fn description(readme: &str) -> String {
    readme
        .split("\n\n")
        .map(str::trim)
        .find(|p| !p.is_empty() && !p.starts_with('#'))
        .unwrap_or_default()
        .replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journey::snapshot::{LoadProgress, SnapshotSource, WhatIfSettings};

    #[test]
    fn embedded_source_serves_the_walkthrough() {
        let src = scenario_source(&[], 1).unwrap();
        let snap = src.snapshot(&WhatIfSettings::default(), &LoadProgress::new());
        assert_eq!(snap.requests.len(), 30);
        assert!(
            snap.scenario.description.contains("cascade"),
            "{}",
            snap.scenario.description
        );
        assert!(snap.details.values().all(|d| !d.packets.is_empty()));
    }
}
