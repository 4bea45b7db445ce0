//! The walkthrough scenario embedded in the binary, used when no INPUT is given: the lab's real
//! recording `captures/03-three-replicas` (three replicas, the 1/3 → 1/2 → 1 `statistic` cascade
//! of seed post 2: client capture, every node's eth0 capture and rules, cluster.toml).

use crate::capture::{Capture, CaptureError, CaptureOptions};
use crate::cluster::load as cluster_load;
use crate::journey::scenario::{CaptureInput, RulesInput, Scenario, ScenarioInputs};
use std::path::{Path, PathBuf};

/// Folder name of the embedded recording.
pub const EMBEDDED_NAME: &str = "03-three-replicas";

macro_rules! recording {
    ($f:literal) => {
        ($f, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/captures/03-three-replicas/", $f)).as_slice())
    };
}

const CAPTURES: [(&str, &[u8]); 4] = [
    recording!("client1-eth0.pcap"),
    recording!("node0-eth0.pcap"),
    recording!("node1-eth0.pcap"),
    recording!("node2-eth0.pcap"),
];
const RULES: [(&str, &[u8]); 3] = [recording!("node0.rules"), recording!("node1.rules"), recording!("node2.rules")];
const CLUSTER: (&str, &[u8]) = recording!("cluster.toml");
/// The recording's README (what it shows, how it was made).
pub const README: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/captures/03-three-replicas/README.md"));

/// Something in the embedded bytes did not load (a build defect; tests guard against it).
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::LoadError),
}

/// The embedded scenario's inputs.
pub fn inputs(opts: CaptureOptions) -> Result<ScenarioInputs, EmbeddedError> {
    let mut si = ScenarioInputs { title: format!("{EMBEDDED_NAME} (embedded walkthrough)"), ..Default::default() };
    for (i, (name, bytes)) in CAPTURES.iter().enumerate() {
        let capture = Capture::from_bytes(i as u32, name, bytes, opts)?;
        for w in &capture.warnings {
            si.warnings.push(w.to_string());
        }
        si.captures.push(CaptureInput { capture, node: None, path: Some(PathBuf::from(name)) });
        si.inputs.push(format!("embedded:{name}"));
    }
    for (name, bytes) in RULES {
        si.rules.push(RulesInput { source: name.to_string(), node: None, text: bytes.to_vec() });
        si.inputs.push(format!("embedded:{name}"));
    }
    let (name, bytes) = CLUSTER;
    si.cluster_sources.push(cluster_load::load_bytes(bytes, name, Path::new(""), None)?);
    si.inputs.push(format!("embedded:{name}"));
    Ok(si)
}

/// The embedded scenario, assembled.
pub fn scenario(opts: CaptureOptions) -> Result<Scenario, EmbeddedError> {
    Ok(super::scenario::finish(inputs(opts)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_scenario_loads_cleanly() {
        let sc = scenario(CaptureOptions::default()).unwrap();
        assert_eq!(sc.captures.len(), 4);
        assert_eq!(sc.rules.len(), 3);
        assert!(sc.warnings.is_empty(), "{:?}", sc.warnings);
        assert!(sc.rules.iter().all(|r| r.node.is_some()));
        assert!(sc.captures.iter().all(|c| !matches!(c.owner, crate::journey::scenario::CaptureOwner::Unknown)));
    }
}
