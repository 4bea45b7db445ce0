//! The sessionAffinity / ALB-mode what-if on the lab recordings.
//!
//! * 03-three-replicas with `--affinity on`: cloud-provider-azure switches the ALB to SourceIP,
//!   so every client reaches one node, whose `recent` tables keep it on one pod; the nodes are
//!   the SourceIP hash's.
//! * 04-affinity-sourceip with `--affinity off`: the ALB goes back to Default, so the nodes are
//!   the 5-tuple hash's, and connections that affinity pinned are drawn afresh.

use hoptrace::capture::CaptureOptions;
use hoptrace::cluster::{AlbMode, AlbModel, FlowKey};
use hoptrace::journey::run::{RunOptions, run, whatif_settings};
use hoptrace::journey::scenario::Scenario;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

fn scenario(name: &str) -> Scenario {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("captures")
        .join(name);
    hoptrace::cli::scenario::load(
        &[dir.display().to_string()],
        &[],
        &[],
        &[],
        CaptureOptions::default(),
    )
    .unwrap()
}

fn predicted(model: &AlbModel, r: &hoptrace::journey::model::RequestJourney) -> String {
    let key = FlowKey::tcp(r.client.ip, r.client.port, r.frontend.ip, r.frontend.port);
    model.decide(&key).unwrap().node.as_str().to_string()
}

#[test]
fn affinity_on_pins_every_client_to_one_pod_on_the_source_ip_node() {
    let sc = scenario("03-three-replicas");
    let w = whatif_settings(&sc, Some(true), None);
    assert_eq!(
        w.affinity.keys().collect::<Vec<_>>(),
        ["default/testapp:"],
        "only the Service the traffic reached"
    );
    for seed in [1, 2, 99] {
        let js = run(
            &sc,
            &RunOptions {
                seed,
                whatif: w.clone(),
                full_walk: false,
            },
        );
        let model = AlbModel::from_cluster(&sc.cluster)
            .unwrap()
            .with_mode(AlbMode::SourceIp);
        let mut pods: BTreeMap<IpAddr, BTreeSet<String>> = BTreeMap::new();
        for r in &js.requests {
            let wi = r.whatif.as_ref().expect("what-if on every request");
            assert_eq!(
                wi.node.as_deref(),
                Some(predicted(&model, r).as_str()),
                "request {}",
                r.id
            );
            pods.entry(r.client.ip)
                .or_default()
                .insert(wi.pod.clone().expect("pod"));
            let moved = wi.node != r.node || wi.pod != r.pod.as_ref().and_then(|p| p.name.clone());
            assert_eq!(wi.moved, moved);
        }
        for (client, p) in &pods {
            assert_eq!(p.len(), 1, "seed {seed}: client {client} reaches {p:?}");
        }
        let o = js.whatif.as_ref().unwrap();
        assert_eq!(o.alb_mode, Some(AlbMode::SourceIp));
        assert_eq!(o.requests_total, 30);
        assert_eq!(o.clients.len(), 1);
        assert_eq!(o.clients[0].pods.len(), 1);
        // The first connection's pod is the kernel's own draw, reused.
        assert_eq!(
            o.clients[0].pods[0],
            js.requests
                .iter()
                .find(|r| r.connection == 1)
                .unwrap()
                .pod
                .as_ref()
                .unwrap()
                .name
                .clone()
                .unwrap()
        );
    }
}

#[test]
fn affinity_off_follows_the_five_tuple_hash() {
    let sc = scenario("04-affinity-sourceip");
    let w = whatif_settings(&sc, Some(false), None);
    let js = run(
        &sc,
        &RunOptions {
            seed: 5,
            whatif: w,
            full_walk: false,
        },
    );
    let model = AlbModel::from_cluster(&sc.cluster)
        .unwrap()
        .with_mode(AlbMode::Default);
    let mut nodes = BTreeSet::new();
    for r in &js.requests {
        let wi = r.whatif.as_ref().unwrap();
        let p = predicted(&model, r);
        assert_eq!(wi.node.as_deref(), Some(p.as_str()), "request {}", r.id);
        nodes.insert(p);
    }
    assert!(
        nodes.len() > 1,
        "the 5-tuple hash spreads the connections: {nodes:?}"
    );
    assert_eq!(js.whatif.as_ref().unwrap().alb_mode, Some(AlbMode::Default));
}

#[test]
fn alb_mode_alone_moves_nodes_but_keeps_the_kernels_draws() {
    let sc = scenario("03-three-replicas");
    let w = whatif_settings(&sc, None, Some(AlbMode::SourceIp));
    let js = run(
        &sc,
        &RunOptions {
            seed: 3,
            whatif: w,
            full_walk: false,
        },
    );
    for r in &js.requests {
        // No affinity: every recorded endpoint was the cascade's draw, seen in a capture or
        // inferred, and is reused on whichever node the connection now enters.
        let wi = r.whatif.as_ref().unwrap();
        assert_eq!(
            wi.pod,
            r.pod.as_ref().and_then(|p| p.name.clone()),
            "request {}",
            r.id
        );
    }
}

#[test]
fn recorded_settings_change_nothing() {
    let sc = scenario("04-affinity-sourceip");
    let js = run(
        &sc,
        &RunOptions {
            seed: 1,
            ..Default::default()
        },
    );
    assert!(js.whatif.is_none());
    assert!(js.requests.iter().all(|r| r.whatif.is_none()));
    let on = run(
        &sc,
        &RunOptions {
            seed: 1,
            whatif: whatif_settings(&sc, Some(true), None),
            full_walk: false,
        },
    );
    // The Service already had ClientIP and the ALB SourceIP: nothing moves.
    assert_eq!(
        on.whatif.as_ref().unwrap().requests_moved,
        0,
        "{:?}",
        on.requests
            .iter()
            .filter(|r| r.whatif.as_ref().unwrap().moved)
            .map(|r| r.id)
            .collect::<Vec<_>>()
    );
}
