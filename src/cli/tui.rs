//! `hoptrace tui`: the terminal UI over a [`SnapshotSource`]. The journey layer provides the source
//! for captures and scenario folders; a snapshot saved as JSON can be browsed with `--snapshot`.

use super::embedded;
use crate::capture::CaptureOptions;
use crate::journey::snapshot::{
    LoadProgress, Snapshot, SnapshotSource, StaticSource, WhatIfSettings,
};
use crate::journey::source::ScenarioSource;
use crate::journey::tour::Tour;
use crate::ui::runtime::{TuiOptions, run_terminal};
use anyhow::Context as _;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `hoptrace tui` (and `hoptrace tour`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TuiArgs {
    /// Captures, rules, cluster/kubectl files or scenario folders, as for `report`. None: the
    /// embedded walkthrough; one that is not a path but names an embedded recording (`01`…`04`,
    /// `02-no-keepalive`): that recording.
    pub inputs: Vec<String>,
    /// A capture (pcap/pcapng), optionally taken on NODE's primary interface.
    #[arg(long = "capture", value_name = "[NODE=]FILE")]
    pub captures: Vec<String>,
    /// An iptables-save file, optionally of NODE (without NODE: every node).
    #[arg(long = "rules", value_name = "[NODE=]FILE")]
    pub rules: Vec<String>,
    /// A cluster.toml or kubectl get nodes|pods output.
    #[arg(long = "cluster", value_name = "FILE")]
    pub clusters: Vec<String>,
    /// Seed of the modelled `statistic` draws.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Browse a snapshot saved as JSON (the journey model's `Snapshot`). What-if switches need the
    /// original inputs, so with a saved snapshot they only say so.
    #[arg(long, value_name = "FILE")]
    pub snapshot: Option<PathBuf>,
    /// A guided tour (TOML: title and [[step]]s) for the `t` key.
    #[arg(long, value_name = "FILE")]
    pub tour: Option<PathBuf>,
}

/// Read a saved snapshot; errors name the file, line and column.
pub fn load_snapshot(path: &std::path::Path) -> anyhow::Result<Snapshot> {
    let file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    serde_json::from_reader(std::io::BufReader::new(file)).map_err(|e| {
        anyhow::anyhow!(
            "{}:{}:{}: not a hoptrace snapshot: {e}",
            path.display(),
            e.line(),
            e.column()
        )
    })
}

/// Run the TUI on `source` until the user quits. `start_tour` opens the tour at step 1.
pub fn run_with_source(
    source: Arc<dyn SnapshotSource>,
    tour: Option<Tour>,
    start_tour: bool,
) -> anyhow::Result<ExitCode> {
    run_with_source_at(source, tour, start_tour.then_some(0))
}

/// Run the TUI on `source`, the tour open at `start_step` (0-based) when given.
pub fn run_with_source_at(
    source: Arc<dyn SnapshotSource>,
    tour: Option<Tour>,
    start_step: Option<usize>,
) -> anyhow::Result<ExitCode> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "the TUI needs a terminal on stdin and stdout; for text output use `hoptrace report`"
        );
    }
    let options = TuiOptions {
        start_tour: start_step.is_some(),
        start_step: start_step.filter(|&s| s > 0),
        tour,
    };
    run_terminal(source, options).context("terminal")?;
    Ok(ExitCode::from(super::EXIT_OK))
}

/// The embedded recording `args` ask for: `Some(None)` with no inputs at all, `Some(name)` for a
/// single INPUT that is not a path but names an embedded recording (`hoptrace tour 02`).
fn embedded_request(args: &TuiArgs) -> Option<Option<&'static str>> {
    if !(args.captures.is_empty() && args.rules.is_empty() && args.clusters.is_empty()) {
        return None;
    }
    match args.inputs.as_slice() {
        [] => Some(None),
        [one] if !std::path::Path::new(one).exists() => embedded::find(one).map(|s| Some(s.name)),
        _ => None,
    }
}

/// `hoptrace tui` / `hoptrace tour` with the arguments parsed.
pub fn run(args: TuiArgs, start_tour: bool) -> anyhow::Result<ExitCode> {
    let user_tour = args.tour.as_deref().map(Tour::load).transpose()?;
    if let Some(path) = &args.snapshot {
        let snapshot = load_snapshot(path)?;
        if let Some(t) = &user_tour {
            for w in t.check_against(&snapshot) {
                eprintln!("hoptrace: warning: {w}");
            }
        }
        if start_tour && user_tour.is_none() {
            anyhow::bail!("no tour: give --tour FILE");
        }
        return run_with_source(Arc::new(StaticSource::new(snapshot)), user_tour, start_tour);
    }
    if let Some(name) = embedded_request(&args) {
        let tour = match user_tour {
            Some(t) => t,
            None => embedded::tour()?,
        };
        let source =
            embedded::EmbeddedSource::new(args.seed, name.unwrap_or(embedded::EMBEDDED_NAME));
        // `hoptrace tour 02`: the tour from the first step on that recording.
        let start = start_tour.then(|| {
            name.and_then(|n| (0..tour.steps.len()).find(|&i| tour.scenario_at(i) == Some(n)))
                .unwrap_or(0)
        });
        return run_with_source_at(Arc::new(source), Some(tour), start);
    }
    // A scenario folder may carry its own tour (`tour.toml`).
    let tour = match user_tour {
        Some(t) => Some(t),
        None => match args.inputs.as_slice() {
            [dir] if std::path::Path::new(dir).join("tour.toml").is_file() => {
                Some(Tour::load(&std::path::Path::new(dir).join("tour.toml"))?)
            }
            _ => None,
        },
    };
    if start_tour && tour.is_none() {
        anyhow::bail!(
            "no tour for these inputs: give --tour FILE (or `hoptrace tour` for the embedded walkthrough)"
        );
    }
    // What can be checked at once is: a missing file is a usage error before the screen opens.
    for input in args
        .inputs
        .iter()
        .chain(&args.captures)
        .chain(&args.rules)
        .chain(&args.clusters)
    {
        let exists = |p: &str| p == "-" || std::path::Path::new(p).exists();
        // `NODE=FILE`, unless the whole text is a path.
        let path = match input.split_once('=') {
            Some((_, file)) if !exists(input) => file,
            _ => input.as_str(),
        };
        if !exists(path) {
            eprintln!("hoptrace: error: {path}: no such file or directory");
            return Ok(ExitCode::from(super::EXIT_UNUSABLE));
        }
    }
    run_with_source(Arc::new(LazyScenarioSource::new(args)), tour, start_tour)
}

/// The inputs' scenario, read on the first snapshot request, off the event loop: the first frame
/// (with the loading gauge) appears at once, however big the captures are. A read error becomes
/// the snapshot's warning (shown on the status line), the rest of the UI stays usable.
pub struct LazyScenarioSource {
    args: TuiArgs,
    name: String,
    source: std::sync::OnceLock<Result<ScenarioSource, String>>,
}

impl LazyScenarioSource {
    #[must_use]
    pub fn new(args: TuiArgs) -> Self {
        let name = args
            .inputs
            .iter()
            .chain(&args.captures)
            .next()
            .map(|i| {
                crate::sanitize::escape_str(i.trim_end_matches('/').rsplit('/').next().unwrap_or(i))
            })
            .unwrap_or_else(|| "inputs".into());
        Self {
            args,
            name,
            source: std::sync::OnceLock::new(),
        }
    }

    fn load(&self) -> Result<ScenarioSource, String> {
        let a = &self.args;
        let opts = CaptureOptions {
            keep_packets: true,
            ..Default::default()
        };
        let sc = super::scenario::load(&a.inputs, &a.captures, &a.rules, &a.clusters, opts)
            .map_err(|e| e.to_string())?;
        Ok(ScenarioSource::new(sc, a.seed))
    }
}

impl SnapshotSource for LazyScenarioSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn snapshot(&self, whatif: &WhatIfSettings, progress: &LoadProgress) -> Snapshot {
        if self.source.get().is_none() {
            progress.begin("reading the captures", 1);
        }
        match self.source.get_or_init(|| self.load()) {
            Ok(src) => src.snapshot(whatif, progress),
            Err(e) => {
                let mut snap = Snapshot::default();
                snap.scenario.title = self.name.clone();
                snap.whatif.settings = whatif.clone();
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
    fn snapshot_errors_name_file_and_line() {
        let dir = std::env::temp_dir().join(format!("hoptrace-tui-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.json");
        std::fs::write(&bad, "{\n  \"requests\": 5\n}").unwrap();
        let err = load_snapshot(&bad).unwrap_err().to_string();
        assert!(
            err.contains("bad.json:3:") && err.contains("expected a sequence"),
            "{err}"
        );
        let good = dir.join("good.json");
        std::fs::write(&good, serde_json::to_string(&Snapshot::default()).unwrap()).unwrap();
        assert_eq!(load_snapshot(&good).unwrap(), Snapshot::default());
        assert!(
            load_snapshot(&dir.join("missing.json"))
                .unwrap_err()
                .to_string()
                .contains("missing.json: cannot open")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn embedded_recordings_are_named_unless_a_path_exists() {
        let args = |inputs: &[&str]| TuiArgs {
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        assert_eq!(embedded_request(&args(&[])), Some(None));
        assert_eq!(
            embedded_request(&args(&["02"])),
            Some(Some("02-no-keepalive"))
        );
        assert_eq!(
            embedded_request(&args(&["04-affinity-sourceip"])),
            Some(Some("04-affinity-sourceip"))
        );
        assert_eq!(embedded_request(&args(&["captures/nothing-here"])), None);
        assert_eq!(embedded_request(&args(&["01", "02"])), None);
        let with_flag = TuiArgs {
            captures: vec!["x.pcap".into()],
            ..Default::default()
        };
        assert_eq!(embedded_request(&with_flag), None);
    }

    #[test]
    fn a_lazy_source_that_cannot_read_says_why_in_the_snapshot() {
        let dir = std::env::temp_dir().join(format!("hoptrace-tui-lazy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.pcap");
        std::fs::write(&bad, b"\xd4\xc3\xb2\xa1 truncated").unwrap();
        let src = LazyScenarioSource::new(TuiArgs {
            inputs: vec![bad.display().to_string()],
            ..Default::default()
        });
        assert_eq!(src.name(), "bad.pcap");
        let snap = src.snapshot(&WhatIfSettings::default(), &LoadProgress::new());
        assert!(snap.requests.is_empty());
        assert!(
            snap.warnings.iter().any(|w| w.contains("bad.pcap")),
            "{:?}",
            snap.warnings
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
