//! `report`'s journeys against every lab recording's ground truth (`captures/*/truth.json`, from
//! conntrack, nftrace and the pods' logs — never from the pcaps): for every connection, the
//! observed ingress node, the ALB bucket and node (jhash), the endpoint and pod, the SNAT source,
//! crossed node/zone, the nat PREROUTING chain path, and one record per request. 100% agreement.
//! Evidence never claims `observed` where no capture can show it (a local endpoint on a node
//! whose only capture is eth0).

use hoptrace::capture::CaptureOptions;
use hoptrace::journey::model::{Evidence, RequestJourney};
use hoptrace::journey::run::{RunOptions, run};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
struct Truth {
    scenario: String,
    connections: Vec<Conn>,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
struct Ep {
    ip: String,
    port: u16,
}

#[derive(Debug, Deserialize)]
struct Alb {
    bucket: u32,
    node: String,
}

#[derive(Debug, Deserialize)]
struct Step {
    table: String,
    chain: String,
    rule: u32,
}

#[derive(Debug, Deserialize)]
struct TruthEndpoint {
    ip: String,
    port: u16,
    chain: String,
}

#[derive(Debug, Deserialize)]
struct TruthPod {
    name: String,
}

#[derive(Debug, Deserialize)]
struct Req {
    count: usize,
}

#[derive(Debug, Deserialize)]
struct Conn {
    id: u32,
    client: Ep,
    frontend: Ep,
    ingress_node: String,
    alb: Option<Alb>,
    chain_path: Vec<Step>,
    endpoint: TruthEndpoint,
    pod: TruthPod,
    snat: Option<Ep>,
    crossed_node: bool,
    crossed_zone: bool,
    requests: Vec<Req>,
}

fn scenarios() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("captures/ is committed")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("truth.json").is_file())
        .collect();
    v.sort();
    v
}

fn load(dir: &Path) -> hoptrace::journey::scenario::Scenario {
    let arg = dir.display().to_string();
    hoptrace::cli::scenario::load(&[arg], &[], &[], &[], CaptureOptions::default())
        .expect("scenario loads")
}

/// nat PREROUTING part of the lab's chain path: the nat steps before the first filter step.
fn nat_prerouting(steps: &[Step]) -> Vec<(String, u32)> {
    steps
        .iter()
        .take_while(|s| s.table == "nat")
        .map(|s| (s.chain.clone(), s.rule))
        .collect()
}

#[test]
fn journeys_agree_with_every_truth_json() {
    let dirs = scenarios();
    assert!(
        dirs.len() >= 7,
        "expected the seven lab recordings, found {}",
        dirs.len()
    );
    let mut checked = 0;
    for dir in dirs {
        let truth: Truth =
            serde_json::from_slice(&std::fs::read(dir.join("truth.json")).unwrap()).unwrap();
        let sc = load(&dir);
        let js = run(
            &sc,
            &RunOptions {
                seed: 1,
                ..Default::default()
            },
        );
        let mut by_client: BTreeMap<(String, u16), Vec<&RequestJourney>> = BTreeMap::new();
        for r in &js.requests {
            by_client
                .entry((r.client.ip.to_string(), r.client.port))
                .or_default()
                .push(r);
        }
        let total: usize = truth
            .connections
            .iter()
            .map(|c| c.requests.iter().map(|r| r.count).sum::<usize>())
            .sum();
        assert_eq!(
            js.requests.len(),
            total,
            "{}: one record per request",
            truth.scenario
        );
        for c in &truth.connections {
            let ctx = format!(
                "{} connection {} ({}:{})",
                truth.scenario, c.id, c.client.ip, c.client.port
            );
            let recs = by_client
                .get(&(c.client.ip.clone(), c.client.port))
                .unwrap_or_else(|| panic!("{ctx}: no record"));
            let n: usize = c.requests.iter().map(|r| r.count).sum();
            assert_eq!(recs.len(), n, "{ctx}: requests");
            for r in recs {
                assert_eq!(
                    (r.frontend.ip.to_string(), r.frontend.port),
                    (c.frontend.ip.clone(), c.frontend.port),
                    "{ctx}: frontend"
                );
                assert_eq!(
                    r.node.as_deref(),
                    Some(c.ingress_node.as_str()),
                    "{ctx}: ingress node"
                );
                match (&c.alb, &r.alb) {
                    (Some(t), Some(a)) => {
                        assert_eq!(
                            a.observed_node.as_deref(),
                            Some(c.ingress_node.as_str()),
                            "{ctx}: observed node"
                        );
                        assert_eq!(a.bucket, Some(t.bucket), "{ctx}: ALB bucket");
                        assert_eq!(
                            a.predicted_node.as_deref(),
                            Some(t.node.as_str()),
                            "{ctx}: ALB node"
                        );
                    }
                    (None, None) => {}
                    (t, a) => panic!("{ctx}: ALB truth {t:?} vs report {a:?}"),
                }
                let ep = r.endpoint.as_ref().unwrap_or_else(|| {
                    panic!("{ctx}: no endpoint (candidates {:?})", r.candidates)
                });
                assert_eq!(
                    (ep.ip.to_string(), ep.port),
                    (c.endpoint.ip.clone(), c.endpoint.port),
                    "{ctx}: endpoint"
                );
                assert_eq!(ep.chain, c.endpoint.chain, "{ctx}: endpoint chain");
                let pod = r.pod.as_ref().expect("pod");
                assert_eq!(pod.name.as_deref(), Some(c.pod.name.as_str()), "{ctx}: pod");
                assert_eq!(
                    r.masquerade.map(|m| m.ip.to_string()),
                    c.snat.as_ref().map(|s| s.ip.clone()),
                    "{ctx}: SNAT source"
                );
                assert_eq!(r.crossed_node, Some(c.crossed_node), "{ctx}: crossed node");
                assert_eq!(r.crossed_zone, Some(c.crossed_zone), "{ctx}: crossed zone");
                let path: Vec<(String, u32)> =
                    r.path.iter().map(|s| (s.chain.clone(), s.rule)).collect();
                assert_eq!(
                    path,
                    nat_prerouting(&c.chain_path),
                    "{ctx}: nat PREROUTING path"
                );
                assert!(r.path.iter().all(|s| s.table == "nat"));
                // Only eth0 captures: a local endpoint's post-DNAT packets go over cbr0, which
                // nobody captured, so it cannot be observed.
                if !c.crossed_node {
                    assert_ne!(
                        ep.evidence,
                        Evidence::Observed,
                        "{ctx}: a local endpoint cannot be observed on eth0"
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 400);
}

#[test]
fn reports_are_deterministic() {
    for dir in scenarios() {
        let sc = load(&dir);
        let a = run(
            &sc,
            &RunOptions {
                seed: 7,
                ..Default::default()
            },
        );
        let b = run(
            &sc,
            &RunOptions {
                seed: 7,
                ..Default::default()
            },
        );
        assert_eq!(a.requests, b.requests, "{}", dir.display());
    }
}
