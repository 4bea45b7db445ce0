//! Command-line inputs → one journey [`Scenario`]: captures, rules per node, cluster.toml (with
//! its `[[clients]]`), kubectl output and `route -n` dumps, each recognised by content. A
//! directory contributes every recognisable file; its documentation (`*.md`, the lab's
//! `truth.json`) is skipped quietly, anything else unrecognised with a warning.

use super::inputs::{self, InputSource};
use crate::capture::CaptureOptions;
use crate::cluster::load::{self as cluster_load, ClusterInputKind};
use crate::journey::run::sightings;
use crate::journey::scenario::{CaptureInput, RulesInput, Scenario, ScenarioInputs};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The input cannot be used at all (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error(transparent)]
    Input(#[from] inputs::InputError),
    #[error(transparent)]
    Capture(#[from] crate::capture::CaptureError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::LoadError),
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

/// Rules and cluster files larger than this are refused (a rules dump of 100k Services is ~60 MB).
const MAX_TEXT_INPUT: u64 = 512 * 1024 * 1024;

fn read_text(path: &Path) -> Result<Vec<u8>, ScenarioError> {
    let io = |e| ScenarioError::Io {
        file: path.display().to_string(),
        source: e,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut v = Vec::new();
    f.take(MAX_TEXT_INPUT + 1).read_to_end(&mut v).map_err(io)?;
    if v.len() as u64 > MAX_TEXT_INPUT {
        return Err(ScenarioError::Io {
            file: path.display().to_string(),
            source: std::io::Error::other(format!("larger than the {MAX_TEXT_INPUT}-byte limit")),
        });
    }
    Ok(v)
}

fn is_documentation(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".md") || name == "truth.json"
}

fn with_node(node: &Option<String>, p: &Path) -> String {
    match node {
        Some(n) => format!("{n}={}", p.display()),
        None => p.display().to_string(),
    }
}

/// Load every input into a scenario. `title` defaults to the first input's name.
pub fn load(
    positional: &[String],
    captures: &[String],
    rules: &[String],
    clusters: &[String],
    opts: CaptureOptions,
) -> Result<Scenario, ScenarioError> {
    let mut expanded: Vec<String> = Vec::new();
    let mut routes: Vec<(Option<String>, PathBuf)> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    for arg in positional {
        let (node, file) = inputs::split_node(arg);
        let path = Path::new(file);
        if file != "-" && path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| ScenarioError::Io {
                    file: file.to_string(),
                    source: e,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for p in entries {
                let hidden = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'));
                if hidden || !p.is_file() {
                    continue;
                }
                let h = match super::inputs::read_head(&p) {
                    Ok(h) => h,
                    Err(e) => {
                        warnings.push(format!("{}: skipped, cannot read it ({e})", p.display()));
                        continue;
                    }
                };
                match inputs::classify_content(&h) {
                    Ok(_) => expanded.push(with_node(&node, &p)),
                    Err(why) => {
                        if cluster_load::sniff(&h) == Some(ClusterInputKind::RouteN) {
                            routes.push((node.clone(), p));
                        } else if !is_documentation(&p) {
                            warnings.push(format!(
                                "{}: skipped, not a recognised input ({why})",
                                p.display()
                            ));
                        }
                    }
                }
            }
            continue;
        }
        if file != "-"
            && path.is_file()
            && let Ok(h) = super::inputs::read_head(path)
            && inputs::classify_content(&h).is_err()
            && cluster_load::sniff(&h) == Some(ClusterInputKind::RouteN)
        {
            routes.push((node, path.to_path_buf()));
            continue;
        }
        expanded.push(arg.clone());
    }
    let classified = inputs::classify(&expanded, captures, rules, clusters)?;
    warnings.extend(classified.warnings.iter().cloned());
    let loaded = inputs::load_captures(&classified, opts)?;

    let mut si = ScenarioInputs {
        warnings,
        ..Default::default()
    };
    for input in classified.captures.iter() {
        si.inputs.push(input.source.display_name());
    }
    for lc in loaded {
        for w in &lc.capture.warnings {
            si.warnings.push(w.to_string());
        }
        let path = (lc.capture.name != "-").then(|| PathBuf::from(&lc.capture.name));
        si.captures.push(CaptureInput {
            capture: lc.capture,
            node: lc.node,
            path,
        });
    }
    for r in &classified.rules {
        let InputSource::File(p) = &r.source else {
            continue;
        };
        si.inputs.push(p.display().to_string());
        si.rules.push(RulesInput {
            source: p.display().to_string(),
            node: r.node.clone(),
            text: read_text(p)?,
        });
    }
    for c in &classified.clusters {
        let InputSource::File(p) = &c.source else {
            continue;
        };
        si.inputs.push(p.display().to_string());
        si.cluster_sources.push(cluster_load::load_path(p, None)?);
    }
    for k in &classified.kubectl {
        let InputSource::File(p) = &k.source else {
            continue;
        };
        si.inputs.push(p.display().to_string());
        si.cluster_sources
            .push(cluster_load::load_path(p, k.node.as_deref())?);
    }
    for (node, p) in &routes {
        si.inputs.push(p.display().to_string());
        si.cluster_sources
            .push(cluster_load::load_path(p, node.as_deref())?);
    }
    si.title = positional
        .first()
        .or(captures.first())
        .map(|s| {
            let p = Path::new(inputs::split_node(s).1);
            p.file_name()
                .map_or_else(|| s.clone(), |n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "hoptrace".into());
    Ok(finish(si))
}

/// Assemble and run the inferences that need stitched flows.
pub fn finish(si: ScenarioInputs) -> Scenario {
    let mut sc = Scenario::assemble(si);
    let (masq, placements) = sightings(&sc);
    sc.infer_from_flows(&masq, &placements);
    sc
}
