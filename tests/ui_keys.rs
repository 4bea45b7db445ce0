//! Key-sequence state tests: the model driven by keys, no terminal. FIXTURE data
//! (tests/common/fixture.rs, hand-written).

mod common;

use common::{app, fixture, keys};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use hoptrace::journey::model::AlbMode;
use hoptrace::journey::snapshot::WhatIfSettings;
use hoptrace::ui::app::{Effect, Msg, Pane};
use hoptrace::ui::keys::View;
use hoptrace::ui::theme::Theme;
use hoptrace::ui::{App, apply_effects_blocking};

fn selected_id(a: &App) -> u64 {
    a.selected_request().expect("a request is selected").id
}

#[test]
fn moving_stays_in_bounds() {
    let mut a = app();
    keys(&mut a, "kkk");
    assert_eq!(selected_id(&a), 1);
    keys(&mut a, "jj<Down>");
    assert_eq!(selected_id(&a), 4);
    keys(&mut a, "G");
    assert_eq!(selected_id(&a), 60);
    keys(&mut a, "jjj");
    assert_eq!(selected_id(&a), 60);
    keys(&mut a, "g<PgDn>");
    assert!(selected_id(&a) > 1, "PgDn moves by a page");
    keys(&mut a, "<PgUp><PgUp>");
    assert_eq!(selected_id(&a), 1);
}

#[test]
fn views_detail_help_and_back() {
    let mut a = app();
    keys(&mut a, "<Enter>");
    assert_eq!(a.detail, Some(0));
    keys(&mut a, "jj");
    assert_eq!(a.detail, Some(2), "j scrolls the detail");
    assert_eq!(selected_id(&a), 1, "…and does not move the selection");
    keys(&mut a, "<Esc>");
    assert_eq!(a.detail, None);
    keys(&mut a, "2");
    assert_eq!(a.view, View::Connections);
    keys(&mut a, "3");
    assert_eq!(
        (a.view, a.focus),
        (View::Rules, Pane::Side),
        "rules open on the chain list"
    );
    keys(&mut a, "4?");
    assert!(a.help);
    keys(&mut a, "j");
    assert!(a.help, "j scrolls help");
    assert_eq!(a.help_scroll, 1);
    keys(&mut a, "<Esc>");
    assert!(!a.help);
    keys(&mut a, "?1");
    assert!(!a.help, "another key closes help and acts");
    assert_eq!(a.view, View::Requests);
}

#[test]
fn affinity_whatif_and_back_restores_recorded() {
    let mut a = app();
    let recorded = a.snap.clone();
    keys(&mut a, "jjjjjjjjjjj"); // request 12
    keys(&mut a, "a");
    assert_eq!(a.whatif.affinity.get(fixture::SERVICE), Some(&true));
    assert_eq!(selected_id(&a), 12, "selection kept across the reload");
    let sum = a.snap.whatif.summary.as_ref().expect("what-if summary");
    assert_eq!(sum.requests_total, 60);
    assert!(sum.requests_moved > 0);
    assert!(a.snap.requests.iter().all(|r| r.whatif.is_some()));
    let status = hoptrace::ui::render::status::whatif_summary(&a);
    assert!(
        status.starts_with("sessionAffinity ClientIP (what-if): "),
        "{status}"
    );
    assert!(
        status.contains("71.246.222.12 → testapp-…-zp4ns only"),
        "{status}"
    );
    keys(&mut a, "a");
    assert!(a.whatif.is_recorded());
    assert!(
        std::sync::Arc::ptr_eq(&a.snap, &recorded),
        "toggling back shows the recorded snapshot itself"
    );
    assert_eq!(selected_id(&a), 12);
}

#[test]
fn alb_mode_cycles_through_modes_back_to_recorded() {
    let mut a = app();
    let mut seen = Vec::new();
    for _ in 0..3 {
        keys(&mut a, "m");
        seen.push(a.whatif.alb_mode);
    }
    assert_eq!(
        seen,
        vec![
            Some(AlbMode::SourceIp),
            Some(AlbMode::SourceIpProtocol),
            None
        ]
    );
    assert!(a.snap.whatif.settings.is_recorded());
}

#[test]
fn filter_narrows_and_n_cycles_and_esc_clears() {
    let mut a = app();
    keys(&mut a, "/52.168");
    assert_eq!(a.request_rows().len(), 10, "live while typing");
    keys(&mut a, "<Enter>");
    assert_eq!(a.filter.query, "52.168");
    assert_eq!(selected_id(&a), 51);
    keys(&mut a, "n");
    assert_eq!(selected_id(&a), 52);
    keys(&mut a, "NN");
    assert_eq!(selected_id(&a), 60, "N wraps to the last match");
    keys(&mut a, "<Esc>");
    assert_eq!(a.request_rows().len(), 60);
    assert_eq!(
        selected_id(&a),
        60,
        "selection kept when the filter is cleared"
    );

    // Terms are ANDed; pods, nodes, chains and paths are searchable.
    keys(&mut a, "/zp4ns node1<Enter>");
    let ids: Vec<u64> = (0..a.request_rows().len())
        .map(|i| a.snap.requests[a.request_rows().get(i).unwrap()].id)
        .collect();
    assert!(!ids.is_empty());
    for id in &ids {
        let r = &a.snap.requests[*id as usize - 1];
        assert_eq!(r.node.as_deref(), Some("node1"));
        assert!(
            r.pod
                .as_ref()
                .unwrap()
                .name
                .as_deref()
                .unwrap()
                .ends_with("zp4ns")
        );
    }
    keys(&mut a, "<Esc>/KUBE-SEP-STQ7<Enter>");
    assert!(!a.request_rows().is_empty() && a.request_rows().len() < 60);
    keys(&mut a, "<Esc>/admin<Enter>");
    assert_eq!(a.request_rows().len(), 1);
    assert_eq!(selected_id(&a), 57);
    keys(&mut a, "<Esc>/no-such-thing<Enter>");
    assert_eq!(a.request_rows().len(), 0);
    assert!(a.selected_request().is_none());
    keys(&mut a, "<Esc>");
}

#[test]
fn typing_in_the_filter_does_not_trigger_keys() {
    let mut a = app();
    keys(&mut a, "/qa2m");
    assert!(!a.quit);
    assert!(a.whatif.is_recorded());
    assert_eq!(a.view, View::Requests);
    assert_eq!(a.filter.editing.as_deref(), Some("qa2m"));
    keys(&mut a, "<BS><BS>");
    assert_eq!(a.filter.editing.as_deref(), Some("qa"));
    keys(&mut a, "<Esc>");
    assert_eq!(a.filter.editing, None);
    assert_eq!(a.filter.query, "");
}

#[test]
fn rules_jump_into_chain_and_back() {
    let mut a = app();
    keys(&mut a, "3jjjj<Enter>"); // KUBE-SERVICES, rules pane
    assert_eq!(a.selected_chain().unwrap().name, "KUBE-SERVICES");
    keys(&mut a, "jjjj<Enter>"); // rule 5 → KUBE-FW-…
    assert_eq!(a.selected_chain().unwrap().name, fixture::FW_CHAIN);
    keys(&mut a, "j<Enter>"); // rule 2 → KUBE-SVC-…
    assert_eq!(a.selected_chain().unwrap().name, fixture::SVC_CHAIN);
    assert_eq!(a.rules.stack.len(), 2);
    keys(&mut a, "<Esc>");
    assert_eq!(a.selected_chain().unwrap().name, fixture::FW_CHAIN);
    assert_eq!(a.rules.rule, 1, "back on the rule we jumped from");
    keys(&mut a, "<Esc>");
    assert_eq!(a.selected_chain().unwrap().name, "KUBE-SERVICES");
    keys(&mut a, "l");
    assert_eq!(a.snap.rules[a.rules.node].node, "node1");
    // A built-in target is not a chain: a message, no jump.
    keys(&mut a, "<Tab>");
    let before = a.rules.stack.len();
    keys(&mut a, "3"); // still rules view
    assert_eq!(a.rules.stack.len(), before);
}

#[test]
fn rules_filter_and_n_jump_between_matching_rules() {
    let mut a = app();
    keys(&mut a, "3/probability<Enter>");
    let names: Vec<String> = a
        .chain_list()
        .iter()
        .map(|(t, c)| a.snap.rules[0].tables[*t].chains[*c].name.clone())
        .collect();
    assert_eq!(names, vec![fixture::SVC_CHAIN.to_string()]);
    keys(&mut a, "n");
    assert_eq!((a.rules.chain, a.rules.rule), (0, 1));
    keys(&mut a, "n");
    assert_eq!((a.rules.chain, a.rules.rule), (0, 0), "wraps");
}

#[test]
fn connection_enter_opens_its_request() {
    let mut a = app();
    keys(&mut a, "2<Tab>jjj<Enter>");
    assert_eq!(a.view, View::Requests);
    assert_eq!(
        selected_id(&a),
        4,
        "4th request of the keep-alive connection"
    );
    keys(&mut a, "2j<Enter>");
    assert_eq!(selected_id(&a), 11);
}

#[test]
fn tour_steps_apply_and_never_block_keys() {
    let mut a = app();
    keys(&mut a, "t");
    let step = |a: &App| a.tour.as_ref().unwrap().step;
    assert_eq!(step(&a), 0);
    assert!(a.tour.as_ref().unwrap().shown);
    keys(&mut a, "]");
    assert_eq!((step(&a), a.view), (1, View::Connections));
    keys(&mut a, "j");
    assert_eq!(a.conn_sel, 1, "normal keys work with the tour shown");
    keys(&mut a, "]]]]]");
    assert_eq!(step(&a), 6);
    assert_eq!(
        a.whatif.affinity.get(fixture::SERVICE),
        Some(&true),
        "step 7 turns affinity on"
    );
    keys(&mut a, "[");
    assert!(
        a.whatif.is_recorded(),
        "going back undoes the step's action"
    );
    assert_eq!(a.detail, Some(0), "step 6 opens the detail");
    keys(&mut a, "]]");
    assert!(
        a.whatif.is_recorded(),
        "the last step goes back to the recorded view"
    );
    keys(&mut a, "]");
    assert_eq!(a.message.as_deref(), Some("last tour step"));
    keys(&mut a, "t");
    assert!(!a.tour.as_ref().unwrap().shown);
    keys(&mut a, "t");
    assert_eq!(step(&a), 7, "showing again keeps the step");
}

#[test]
fn stale_loads_are_ignored_and_failures_reported() {
    let (mut a, effects) = App::new("x".into(), None, Theme::new(true));
    assert!(a.loading);
    let Effect::Load { generation, .. } = effects[0].clone() else {
        panic!()
    };
    // Keys while loading do not crash and what-if waits for data.
    let e = a.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('a'),
        KeyModifiers::NONE,
    )));
    assert!(e.is_empty());
    assert_eq!(
        a.update(Msg::Loaded {
            generation: generation + 5,
            snapshot: Box::new(fixture::recorded())
        }),
        vec![]
    );
    assert!(a.loading, "an answer to another request is ignored");
    a.update(Msg::Loaded {
        generation,
        snapshot: Box::new(fixture::recorded()),
    });
    assert!(!a.loading);
    assert_eq!(a.snap.requests.len(), 60);

    let effects = a.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('m'),
        KeyModifiers::NONE,
    )));
    let Effect::Load {
        generation, whatif, ..
    } = effects[0].clone()
    else {
        panic!()
    };
    assert_eq!(
        whatif,
        WhatIfSettings {
            alb_mode: Some(AlbMode::SourceIp),
            ..Default::default()
        }
    );
    a.update(Msg::LoadFailed {
        generation,
        error: "boom".into(),
    });
    assert!(a.message.as_deref().unwrap().contains("boom"));
    assert!(
        a.whatif.is_recorded(),
        "the switch snaps back to what is on screen"
    );
}

#[test]
fn quit_keys_and_signals() {
    let mut a = app();
    let e = a.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('c'),
        KeyModifiers::CONTROL,
    )));
    assert_eq!(e, vec![Effect::Quit]);
    let mut a = app();
    keys(&mut a, "/abc");
    let e = a.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('c'),
        KeyModifiers::CONTROL,
    )));
    assert_eq!(
        e,
        vec![Effect::Quit],
        "Ctrl-C quits even while typing a filter"
    );
    let mut a = app();
    assert_eq!(a.update(Msg::Signal), vec![Effect::Quit]);
    let mut a = app();
    let e = a.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('q'),
        KeyModifiers::NONE,
    )));
    assert!(apply_effects_blocking(&mut a, e, &fixture::FixtureSource));
}

#[test]
fn a_source_that_cannot_rerun_the_model_says_so() {
    let source = hoptrace::journey::snapshot::StaticSource::new(fixture::recorded());
    let (mut a, effects) = App::new("saved.json".into(), None, Theme::new(true));
    apply_effects_blocking(&mut a, effects, &source);
    let e = a.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('a'),
        KeyModifiers::NONE,
    )));
    apply_effects_blocking(&mut a, e, &source);
    assert!(
        a.whatif.is_recorded(),
        "the switch shows what is really on screen"
    );
    assert!(
        a.message
            .as_deref()
            .unwrap()
            .starts_with("what-if not applied: what-if (sessionAffinity ClientIP"),
        "{:?}",
        a.message
    );
}

#[test]
fn big_snapshots_filter_off_the_event_loop() {
    let tour = None;
    let (mut a, effects) = App::new("big".into(), tour, Theme::new(true));
    a.live_filter_limit = 100; // the fixture's 60 requests repeated 5 times count as "big"
    let snap = fixture::scaled(300);
    let Effect::Load { generation, .. } = effects[0].clone() else {
        panic!()
    };
    a.update(Msg::Loaded {
        generation,
        snapshot: Box::new(snap),
    });
    keys(&mut a, "/52.168");
    assert_eq!(
        a.request_rows().len(),
        300,
        "no live filtering while typing"
    );
    let effects = a.update(Msg::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)));
    assert!(matches!(effects.as_slice(), [Effect::Filter { query, .. }] if query == "52.168"));
    assert_eq!(a.filter.query, "52.168");
    assert_eq!(a.message.as_deref(), Some("filtering 300 requests…"));
    // A stale answer (an older generation) is ignored; the real one applies.
    a.update(Msg::Filtered {
        generation: 0,
        matches: Default::default(),
    });
    assert_eq!(a.request_rows().len(), 300);
    apply_effects_blocking(&mut a, effects, &fixture::FixtureSource);
    assert_eq!(
        a.request_rows().len(),
        50,
        "10 of every 60 requests come from 52.168.14.7"
    );
    assert!(a.filter.pending.is_none());
    keys(&mut a, "<Esc>");
    assert_eq!(a.request_rows().len(), 300);
}
