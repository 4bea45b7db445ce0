//! The walkthrough embedded in the binary, used when no INPUT is given: four of the lab's real
//! recordings (`captures/01-keepalive`, `02-no-keepalive`, `03-three-replicas`,
//! `04-affinity-sourceip`: client captures, every node's eth0 capture and rules, cluster.toml)
//! and the guided tour over them (`tours/walkthrough.toml`), which reproduces the seed posts'
//! findings. `report` without inputs and `tui` without inputs show `03-three-replicas`.

use crate::capture::{Capture, CaptureError, CaptureOptions};
use crate::cluster::load as cluster_load;
use crate::journey::scenario::{CaptureInput, RulesInput, Scenario, ScenarioInputs};
use crate::journey::snapshot::{LoadProgress, Snapshot, SnapshotSource, WhatIfSettings};
use crate::journey::source::ScenarioSource;
use crate::journey::tour::{Tour, TourError};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Folder name of the default embedded recording (`report`/`tui` without inputs).
pub const EMBEDDED_NAME: &str = "03-three-replicas";

/// One embedded recording: its folder name and files.
#[derive(Debug)]
pub struct EmbeddedScenario {
    /// The folder name under `captures/`, e.g. `01-keepalive`.
    pub name: &'static str,
    /// Captures (client side first, then the nodes' eth0).
    pub captures: &'static [(&'static str, &'static [u8])],
    pub rules: &'static [(&'static str, &'static [u8])],
    pub cluster: (&'static str, &'static [u8]),
    /// The recording's README (what it shows, how it was made).
    pub readme: &'static str,
}

macro_rules! file {
    ($dir:literal, $f:literal) => {
        (
            $f,
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/captures/",
                $dir,
                "/",
                $f
            ))
            .as_slice(),
        )
    };
}

macro_rules! recording {
    ($dir:literal, [$($cap:literal),+]) => {
        EmbeddedScenario {
            name: $dir,
            captures: &[$(file!($dir, $cap)),+],
            rules: &[file!($dir, "node0.rules"), file!($dir, "node1.rules"), file!($dir, "node2.rules")],
            cluster: file!($dir, "cluster.toml"),
            readme: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/captures/", $dir, "/README.md")),
        }
    };
}

/// Every embedded recording, in tour order.
pub static SCENARIOS: [EmbeddedScenario; 4] = [
    recording!(
        "01-keepalive",
        [
            "client1-eth0.pcap",
            "node0-eth0.pcap",
            "node1-eth0.pcap",
            "node2-eth0.pcap"
        ]
    ),
    recording!(
        "02-no-keepalive",
        [
            "client1-eth0.pcap",
            "node0-eth0.pcap",
            "node1-eth0.pcap",
            "node2-eth0.pcap"
        ]
    ),
    recording!(
        "03-three-replicas",
        [
            "client1-eth0.pcap",
            "node0-eth0.pcap",
            "node1-eth0.pcap",
            "node2-eth0.pcap"
        ]
    ),
    recording!(
        "04-affinity-sourceip",
        [
            "client1-eth0.pcap",
            "client2-eth0.pcap",
            "node0-eth0.pcap",
            "node1-eth0.pcap",
            "node2-eth0.pcap"
        ]
    ),
];

/// The default recording's README.
pub const README: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/captures/03-three-replicas/README.md"
));

/// The guided tour over the embedded recordings (TOML, see [`Tour`]).
pub const TOUR: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tours/walkthrough.toml"
));

/// Something in the embedded bytes did not load (a build defect; tests guard against it).
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::LoadError),
    #[error(transparent)]
    Tour(#[from] TourError),
}

/// The embedded recording called `name`: the folder name, or its number (`2`, `02`), or a prefix
/// of the name (`02-no`).
#[must_use]
pub fn find(name: &str) -> Option<&'static EmbeddedScenario> {
    let name = name.trim().trim_end_matches('/');
    let name = name.rsplit('/').next().unwrap_or(name);
    if name.is_empty() {
        return None;
    }
    SCENARIOS.iter().find(|s| s.name == name).or_else(|| {
        let number = name.parse::<u32>().ok();
        SCENARIOS.iter().find(|s| {
            s.name.starts_with(name)
                || number.is_some_and(|n| {
                    s.name.split('-').next().and_then(|p| p.parse().ok()) == Some(n)
                })
        })
    })
}

impl EmbeddedScenario {
    /// This recording's inputs.
    pub fn inputs(&self, opts: CaptureOptions) -> Result<ScenarioInputs, EmbeddedError> {
        let mut si = ScenarioInputs {
            title: format!("{} (embedded walkthrough)", self.name),
            ..Default::default()
        };
        for (i, (name, bytes)) in self.captures.iter().enumerate() {
            let capture = Capture::from_bytes(i as u32, name, bytes, opts)?;
            for w in &capture.warnings {
                si.warnings.push(w.to_string());
            }
            si.captures.push(CaptureInput {
                capture,
                node: None,
                path: Some(PathBuf::from(name)),
            });
            si.inputs.push(format!("embedded:{}/{name}", self.name));
        }
        for (name, bytes) in self.rules {
            si.rules.push(RulesInput {
                source: name.to_string(),
                node: None,
                text: bytes.to_vec(),
            });
            si.inputs.push(format!("embedded:{}/{name}", self.name));
        }
        let (name, bytes) = self.cluster;
        si.cluster_sources
            .push(cluster_load::load_bytes(bytes, name, Path::new(""), None)?);
        si.inputs.push(format!("embedded:{}/{name}", self.name));
        Ok(si)
    }

    /// This recording, assembled.
    pub fn scenario(&self, opts: CaptureOptions) -> Result<Scenario, EmbeddedError> {
        Ok(super::scenario::finish(self.inputs(opts)?))
    }

    /// The first paragraph after the README's title: what the recording shows.
    #[must_use]
    pub fn description(&self) -> String {
        first_paragraph(self.readme)
    }
}

fn default_scenario() -> &'static EmbeddedScenario {
    find(EMBEDDED_NAME).expect("the default recording is embedded")
}

/// The default embedded scenario's inputs.
pub fn inputs(opts: CaptureOptions) -> Result<ScenarioInputs, EmbeddedError> {
    default_scenario().inputs(opts)
}

/// The default embedded scenario, assembled.
pub fn scenario(opts: CaptureOptions) -> Result<Scenario, EmbeddedError> {
    default_scenario().scenario(opts)
}

/// The embedded guided tour.
pub fn tour() -> Result<Tour, EmbeddedError> {
    Ok(Tour::from_toml_str(
        TOUR,
        "embedded:tours/walkthrough.toml",
    )?)
}

/// The first paragraph after a recording README's title.
#[must_use]
pub fn first_paragraph(readme: &str) -> String {
    readme
        .split("\n\n")
        .map(str::trim)
        .find(|p| !p.is_empty() && !p.starts_with('#'))
        .unwrap_or_default()
        .replace('\n', " ")
}

/// The TUI's source over every embedded recording: each is assembled on first use (off the event
/// loop, in the load task) and re-run for every what-if switch like any scenario folder.
pub struct EmbeddedSource {
    seed: u64,
    default: &'static str,
    sources: Vec<OnceLock<Result<ScenarioSource, String>>>,
}

impl EmbeddedSource {
    /// `default` names the recording shown when no tour step names one ([`find`] syntax).
    #[must_use]
    pub fn new(seed: u64, default: &str) -> Self {
        EmbeddedSource {
            seed,
            default: find(default).map_or(EMBEDDED_NAME, |s| s.name),
            sources: SCENARIOS.iter().map(|_| OnceLock::new()).collect(),
        }
    }

    fn source(&self, name: Option<&str>) -> (usize, &Result<ScenarioSource, String>) {
        let name = name.and_then(find).map_or(self.default, |s| s.name);
        let i = SCENARIOS.iter().position(|s| s.name == name).unwrap_or(0);
        let src = self.sources[i].get_or_init(|| {
            let sc = &SCENARIOS[i];
            let opts = CaptureOptions {
                keep_packets: true,
                ..Default::default()
            };
            sc.scenario(opts)
                .map(|s| ScenarioSource::new(s, self.seed).with_description(sc.description()))
                .map_err(|e| format!("embedded {}: {e}", sc.name))
        });
        (i, src)
    }
}

impl SnapshotSource for EmbeddedSource {
    fn name(&self) -> String {
        format!("{} (embedded walkthrough)", self.default)
    }

    fn snapshot(&self, whatif: &WhatIfSettings, progress: &LoadProgress) -> Snapshot {
        self.snapshot_in(None, whatif, progress)
    }

    fn scenarios(&self) -> Vec<String> {
        SCENARIOS.iter().map(|s| s.name.to_string()).collect()
    }

    fn snapshot_in(
        &self,
        scenario: Option<&str>,
        whatif: &WhatIfSettings,
        progress: &LoadProgress,
    ) -> Snapshot {
        match self.source(scenario) {
            (_, Ok(src)) => src.snapshot(whatif, progress),
            (i, Err(e)) => {
                let mut snap = Snapshot::default();
                snap.scenario.title = SCENARIOS[i].name.to_string();
                snap.warnings.push(e.clone());
                snap
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_scenario_loads_cleanly() {
        for s in &SCENARIOS {
            let sc = s.scenario(CaptureOptions::default()).unwrap();
            assert_eq!(sc.captures.len(), s.captures.len(), "{}", s.name);
            assert_eq!(sc.rules.len(), 3, "{}", s.name);
            assert!(sc.warnings.is_empty(), "{}: {:?}", s.name, sc.warnings);
            assert!(sc.rules.iter().all(|r| r.node.is_some()), "{}", s.name);
            assert!(
                sc.captures
                    .iter()
                    .all(|c| !matches!(c.owner, crate::journey::scenario::CaptureOwner::Unknown)),
                "{}",
                s.name
            );
        }
        assert_eq!(
            scenario(CaptureOptions::default()).unwrap().captures.len(),
            4
        );
    }

    #[test]
    fn scenarios_are_found_by_name_number_or_prefix() {
        assert_eq!(find("02-no-keepalive").unwrap().name, "02-no-keepalive");
        assert_eq!(find("2").unwrap().name, "02-no-keepalive");
        assert_eq!(find("04").unwrap().name, "04-affinity-sourceip");
        assert_eq!(find("captures/01-keepalive/").unwrap().name, "01-keepalive");
        assert!(find("05-nodeport").is_none());
        assert!(find("").is_none());
    }

    #[test]
    fn the_embedded_tour_parses_and_names_embedded_scenarios() {
        let t = tour().unwrap();
        assert!(t.steps.len() >= 8);
        for s in &t.steps {
            if let Some(name) = &s.scenario {
                assert!(find(name).is_some(), "{name}");
            }
        }
    }
}
