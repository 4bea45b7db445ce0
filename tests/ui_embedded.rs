//! The REAL embedded walkthrough (captures/01-04, compiled into the binary): plain-text snapshots
//! (insta) of every view at 80×24 and 160×48, the tour's steps checked against the recordings,
//! and the narration's claims checked against the journeys the model computes from them.
//! Accept snapshot changes with `INSTA_UPDATE=always cargo test --test ui_embedded` and read the
//! .snap files.

mod common;

use common::{keys_on, screen};
use hoptrace::cli::embedded::{self, EmbeddedSource};
use hoptrace::journey::model::Evidence;
use hoptrace::journey::snapshot::{LoadProgress, Snapshot, SnapshotSource, WhatIfSettings};
use hoptrace::ui::theme::Theme;
use hoptrace::ui::{App, apply_effects_blocking};
use std::sync::OnceLock;

/// One source for every test of this binary: each recording is assembled once.
fn source() -> &'static EmbeddedSource {
    static SOURCE: OnceLock<EmbeddedSource> = OnceLock::new();
    SOURCE.get_or_init(|| EmbeddedSource::new(1, embedded::EMBEDDED_NAME))
}

fn snapshot(scenario: &str, whatif: &WhatIfSettings) -> Snapshot {
    source().snapshot_in(Some(scenario), whatif, &LoadProgress::new())
}

/// The app as `hoptrace tui` opens it: 03-three-replicas, the embedded tour on `t`.
fn app() -> App {
    let tour = embedded::tour().expect("the embedded tour parses");
    let (mut app, effects) = App::new(source().name(), Some(tour), Theme::new(true));
    apply_effects_blocking(&mut app, effects, source());
    app
}

fn check(name: &str, script: &str) {
    let mut a = app();
    keys_on(&mut a, script, source());
    for (w, h) in [(80u16, 24u16), (160, 48)] {
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), screen(&a, w, h));
    }
}

macro_rules! view_test {
    ($name:ident, $script:expr) => {
        #[test]
        fn $name() {
            check(stringify!($name), $script);
        }
    };
}

// 03-three-replicas, request 1 (node0 → cq567 on node2) and its diagram.
view_test!(real_requests_journey, "");
// The whole diagram with the pane focused: hook/table groups, ◐ under the observed DNAT.
view_test!(real_requests_diagram_focused, "<Tab>");
// A request whose DNAT no capture shows (entered the pod's node): inferred.
view_test!(real_requests_inferred, "j");
view_test!(real_detail, "<Enter>");
view_test!(real_detail_rules, "<Enter><PgDn><PgDn>");
view_test!(real_connections, "2");
view_test!(real_rules, "3");
view_test!(real_rules_svc_chain, "3jjjjjjjjjjjjjjjjjjjjjjjj");
view_test!(real_nodes, "4");
view_test!(real_help, "?");
view_test!(real_filter, "/rgm5l<Enter>");
// `a`: sessionAffinity ClientIP (what-if) on 03: the highlight and the status line.
view_test!(real_whatif_affinity, "a");
view_test!(real_whatif_back, "aa");
// The tour: step 1 (01-keepalive), the cascade on 03, the recorded affinity on 04.
view_test!(real_tour_step_1, "t");
view_test!(real_tour_step_cascade, "t]]]]]");
view_test!(real_tour_step_whatif, "t]]]]]]]]");
view_test!(real_tour_step_affinity_recorded, "t]]]]]]]]]]");

/// Every step names things its recording has (request and connection ids, chains, nodes).
#[test]
fn tour_steps_match_the_recordings() {
    let tour = embedded::tour().unwrap();
    for sc in &embedded::SCENARIOS {
        let snap = snapshot(sc.name, &WhatIfSettings::default());
        let problems = tour.check_against_scenario(&snap, Some(sc.name));
        assert!(problems.is_empty(), "{}: {problems:?}", sc.name);
    }
    assert!(
        tour.scenario_at(0).is_some(),
        "the first step names its recording"
    );
}

fn pod(r: &hoptrace::journey::model::RequestJourney) -> &str {
    r.pod.as_ref().and_then(|p| p.name.as_deref()).unwrap_or("")
}

fn count<'a>(items: impl Iterator<Item = &'a str>, want: &str) -> usize {
    items.filter(|s| *s == want).count()
}

/// The narration's numbers, from the journeys of the real recordings.
#[test]
fn tour_claims_hold_on_the_recordings() {
    let rec = WhatIfSettings::default();
    // 01: keep-alive: one connection, 10 requests, all via node2 to x7427 on node1, SNAT node2.
    let s = snapshot("01-keepalive", &rec);
    assert_eq!(s.requests.len(), 10);
    assert!(
        s.requests
            .iter()
            .all(|r| r.connection == s.requests[0].connection)
    );
    assert!(
        s.requests
            .iter()
            .all(|r| r.node.as_deref() == Some("node2"))
    );
    assert!(
        s.requests
            .iter()
            .all(|r| pod(r) == "testapp-6f7947bc4b-x7427")
    );
    let r1 = &s.requests[0];
    assert_eq!(r1.alb.as_ref().unwrap().bucket, Some(2));
    assert_eq!(r1.masquerade.as_ref().unwrap().ip.to_string(), "10.220.1.6");
    assert_eq!((r1.crossed_node, r1.crossed_zone), (Some(true), Some(true)));

    // 02: no keep-alive: 10 connections spread 2/4/4; SNAT to the ingress node's address.
    let s = snapshot("02-no-keepalive", &rec);
    let nodes: Vec<&str> = s
        .requests
        .iter()
        .filter_map(|r| r.node.as_deref())
        .collect();
    assert_eq!(
        [
            count(nodes.iter().copied(), "node0"),
            count(nodes.iter().copied(), "node1"),
            count(nodes.iter().copied(), "node2")
        ],
        [2, 4, 4]
    );
    assert!(
        s.distribution
            .node_p_value
            .is_some_and(|p| (p - 0.67).abs() < 0.005)
    );
    let by_id = |s: &Snapshot, id: u64| s.requests.iter().find(|r| r.id == id).unwrap().clone();
    let r6 = by_id(&s, 6);
    assert_eq!(r6.node.as_deref(), Some("node0"));
    assert_eq!(r6.masquerade.unwrap().ip.to_string(), "10.220.1.4");
    let r5 = by_id(&s, 5);
    assert_eq!(r5.node.as_deref(), Some("node1"));
    assert_eq!(r5.endpoint.as_ref().unwrap().evidence, Evidence::Inferred);
    assert_eq!(r5.masquerade.unwrap().ip.to_string(), "10.100.2.1");

    // 03: the cascade: pods 9/7/14, #1 via node0, KUBE-SVC rule 2, observed, to cq567.
    let s = snapshot("03-three-replicas", &rec);
    let pods: Vec<&str> = s.requests.iter().map(pod).collect();
    assert_eq!(count(pods.iter().copied(), "testapp-6f7947bc4b-rgm5l"), 9);
    assert_eq!(count(pods.iter().copied(), "testapp-6f7947bc4b-cq567"), 7);
    assert_eq!(count(pods.iter().copied(), "testapp-6f7947bc4b-x7427"), 14);
    assert!(
        s.distribution
            .pod_p_value
            .is_some_and(|p| (p - 0.27).abs() < 0.005)
    );
    let r1 = by_id(&s, 1);
    assert_eq!(r1.node.as_deref(), Some("node0"));
    assert_eq!(pod(&r1), "testapp-6f7947bc4b-cq567");
    assert!(
        r1.path
            .iter()
            .any(|p| p.chain == "KUBE-SVC-K4VUERBNKSOP4S25" && p.rule == 2)
    );
    assert_eq!(r1.endpoint.as_ref().unwrap().evidence, Evidence::Observed);
    // Under the observed DNAT, the statistic steps are inferred, not modelled.
    let walk = &s.details[&1].chain_walk;
    assert!(
        walk.iter()
            .filter(|w| w.probability.is_some())
            .all(|w| w.evidence == Evidence::Inferred),
        "{walk:?}"
    );
    assert_eq!(
        s.requests
            .iter()
            .filter(|r| r.crossed_node == Some(true))
            .count(),
        20
    );
    assert_eq!(
        s.requests
            .iter()
            .filter(|r| r.crossed_zone == Some(true))
            .count(),
        14
    );

    // 03 what-if sessionAffinity ClientIP: ALB SourceIP, the one client on node1 → cq567.
    let svc = s.details[&1].service.clone().expect("request 1's Service");
    assert_eq!(svc, "default/testapp:");
    let mut on = WhatIfSettings::default();
    on.affinity.insert(svc, true);
    let w = snapshot("03-three-replicas", &on);
    let sum = w.whatif.summary.as_ref().unwrap();
    assert_eq!((sum.requests_moved, sum.requests_total), (30, 30));
    assert_eq!(sum.clients.len(), 1);
    assert_eq!(sum.clients[0].pods, ["testapp-6f7947bc4b-cq567"]);
    assert_eq!(sum.clients[0].nodes, ["node1"]);

    // 04: recorded affinity: client1 → node1 (20), client2 → node2 (4), all x7427; first
    // connections by the cascade (rule 6), later ones by `recent --rcheck` (rule 3).
    let s = snapshot("04-affinity-sourceip", &rec);
    let nodes: Vec<&str> = s
        .requests
        .iter()
        .filter_map(|r| r.node.as_deref())
        .collect();
    assert_eq!(
        (
            count(nodes.iter().copied(), "node1"),
            count(nodes.iter().copied(), "node2")
        ),
        (20, 4)
    );
    assert!(
        s.requests
            .iter()
            .all(|r| pod(r) == "testapp-6f7947bc4b-x7427")
    );
    assert!(
        s.distribution.node_p_value.is_some_and(|p| p < 0.0005),
        "{:?}",
        s.distribution.node_p_value
    );
    assert!(
        s.distribution.pod_p_value.is_some_and(|p| p < 0.0005),
        "{:?}",
        s.distribution.pod_p_value
    );
    let svc_rule = |r: &hoptrace::journey::model::RequestJourney| {
        r.path
            .iter()
            .find(|p| p.chain == "KUBE-SVC-K4VUERBNKSOP4S25")
            .map(|p| p.rule)
    };
    for (id, rule) in [(1, 6), (2, 3), (21, 6), (22, 3), (23, 3), (24, 3)] {
        assert_eq!(svc_rule(&by_id(&s, id)), Some(rule), "request {id}");
    }
    assert_eq!(by_id(&s, 21).client.ip.to_string(), "71.246.222.40");
    // #2's endpoint is known (inferred: the pod is on the ingress node); the `recent --rcheck`
    // rule that decided it carries the affinity mark.
    let walk = &s.details[&2].chain_walk;
    assert!(
        walk.iter().any(|w| w.chain == "KUBE-SVC-K4VUERBNKSOP4S25"
            && w.rule == 3
            && w.evidence == Evidence::Affinity),
        "{walk:?}"
    );
}

/// Stepping the tour switches recordings and what-ifs both ways: forward onto 04, back onto 03
/// with the affinity what-if of step 9, back again to the recorded 03; keys keep working.
#[test]
fn tour_steps_switch_recordings_both_ways() {
    let mut a = app();
    keys_on(&mut a, "t", source());
    assert_eq!(a.snap.requests.len(), 10, "step 1 is 01-keepalive");
    keys_on(&mut a, "]]]]]]]]]", source());
    assert_eq!(a.snap.requests.len(), 24, "step 10 is 04-affinity-sourceip");
    assert!(
        a.snap.whatif.settings.is_recorded(),
        "a new recording starts as recorded"
    );
    keys_on(&mut a, "[", source());
    assert_eq!(a.snap.requests.len(), 30);
    assert!(
        !a.snap.whatif.settings.is_recorded(),
        "step 9's affinity what-if is back"
    );
    keys_on(&mut a, "[", source());
    assert!(
        a.snap.whatif.settings.is_recorded(),
        "step 8 is the recorded 03"
    );
    // Normal keys still work while the tour is shown.
    keys_on(&mut a, "1jj", source());
    assert_eq!(a.selected_request().map(|r| r.id), Some(3));
}

/// A step taken while the previous step's recording is still loading is not lost: when the load
/// arrives, the step the user is on is applied to it.
#[test]
fn tour_keys_during_a_recording_switch_are_kept() {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use hoptrace::ui::Msg;
    let mut a = app();
    keys_on(&mut a, "t]", source()); // step 2, on 01-keepalive
    let key = |c| Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    let switching = a.update(key(']')); // step 3: 02-no-keepalive starts loading
    assert!(!switching.is_empty());
    let more = a.update(key(']')); // step 4 while it loads
    apply_effects_blocking(
        &mut a,
        switching.into_iter().chain(more).collect(),
        source(),
    );
    let t = a.tour.as_ref().unwrap();
    assert_eq!(t.step, 3, "still on step 4");
    assert_eq!(a.snap.requests.len(), 10);
    assert_eq!(
        a.selected_request().map(|r| r.id),
        Some(6),
        "step 4 selects request 6 of 02"
    );
}
