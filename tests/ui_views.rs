//! Plain-text snapshots (insta) of every view at 80×24 and 160×48 on the FIXTURE scenario
//! (tests/common/fixture.rs — hand-written, not a recording). Accept changes with
//! `INSTA_UPDATE=always cargo test --test ui_views` and read the .snap files.

mod common;

use common::{app, keys, screen};

fn check(name: &str, script: &str) {
    let mut a = app();
    keys(&mut a, script);
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

// Requests view with the journey diagram of a crossed-node request (request 1, keep-alive).
view_test!(requests_journey, "");
// A request whose pod was local to the ingress node (inferred) further down.
view_test!(requests_scrolled, "jjjjjjjjjjjjjjj");
// A request with no DNAT evidence: candidates listed, modelled.
view_test!(requests_modelled, "Gkkkkkkkkkkkkkkkkkkkkkkkk");
// Enter: the detail pane (packets, HTTP heads, every rule and why not).
view_test!(detail, "jjjjjjjjjjj<Enter>");
view_test!(detail_scrolled, "jjjjjjjjjjj<Enter><PgDn>");
// A request whose path carried an escape sequence: shown escaped.
view_test!(detail_sanitised, "G<Up><Up><Up><Enter>jjjjjjjjjjjjjjjjjj");
view_test!(connections, "2");
view_test!(connections_keepalive_requests, "2<Tab>jj");
view_test!(rules, "3");
view_test!(rules_chain_rules, "3jjjjjj<Enter>");
view_test!(rules_jump_into_chain, "3jjjj<Enter>jjjj<Enter>");
view_test!(rules_other_node_chain_list, "3l");
view_test!(nodes, "4");
view_test!(nodes_pod_selected, "4jjjj");
view_test!(help_requests, "?");
view_test!(help_rules, "3?");
view_test!(help_scrolled, "?jjjjjjjjjjjjjjjjjjjj");
// Tab: the diagram gets the keys (and the room) in the stacked layout.
view_test!(requests_diagram_focused, "<Tab>");
view_test!(filter_typing, "/52.168");
view_test!(filter_applied, "/52.168<Enter>n");
view_test!(whatif_affinity, "jjjjjjjjjjja");
view_test!(whatif_alb_mode, "m");
view_test!(whatif_nodes, "a4");
view_test!(tour_step_2, "t]");
view_test!(tour_step_cascade, "t]]]]");
view_test!(tour_step_affinity, "t]]]]]]");
view_test!(replay_paused, "<Space><Space>.....");

/// A journey decided by the `recent` table (sessionAffinity): the ∞ marks and the lookups, in the
/// full diagram (Tab) and the detail. Built from the fixture with request 1 edited by hand.
#[test]
fn journey_decided_by_affinity() {
    use hoptrace::journey::model::Evidence;
    use hoptrace::journey::snapshot::{RecentCheck, StaticSource};
    let mut snap = common::fixture::recorded();
    let r = &mut snap.requests[0];
    r.endpoint.as_mut().unwrap().evidence = Evidence::Affinity;
    let d = snap.details.get_mut(&1).unwrap();
    for s in d
        .chain_walk
        .iter_mut()
        .filter(|s| s.chain.starts_with("KUBE-SVC") || s.chain.starts_with("KUBE-SEP"))
    {
        s.evidence = Evidence::Affinity;
    }
    for (name, hit) in [
        ("KUBE-SEP-GB5ZXZKDF6JWMI74", false),
        ("KUBE-SEP-SHJOK7USDC7L53KY", true),
    ] {
        d.recent.push(RecentCheck {
            name: name.into(),
            op: "rcheck".into(),
            seconds: Some(10800),
            address: "71.246.222.12".parse().unwrap(),
            hit,
            last_seen: hit.then(|| "2026-11-21T10:05:58.120000Z".into()),
        });
    }
    let source = StaticSource::new(snap);
    let (mut a, effects) = hoptrace::ui::App::new(
        "edited fixture".into(),
        None,
        hoptrace::ui::theme::Theme::new(true),
    );
    hoptrace::ui::apply_effects_blocking(&mut a, effects, &source);
    let key = |a: &mut hoptrace::ui::App, c| {
        a.update(hoptrace::ui::Msg::Key(crossterm::event::KeyEvent::new(
            c,
            crossterm::event::KeyModifiers::NONE,
        )));
    };
    key(&mut a, crossterm::event::KeyCode::Tab);
    insta::assert_snapshot!("journey_affinity_diagram_160x48", screen(&a, 160, 48));
    key(&mut a, crossterm::event::KeyCode::Tab);
    key(&mut a, crossterm::event::KeyCode::Enter);
    for _ in 0..30 {
        key(&mut a, crossterm::event::KeyCode::Char('j'));
    }
    insta::assert_snapshot!("journey_affinity_detail_80x24", screen(&a, 80, 24));
}

/// Every colour on screen is one of the 16 ANSI colours (so it follows the terminal's palette and
/// works on 16-colour terminals), and with NO_COLOR there is no colour at all.
#[test]
fn theme_uses_only_the_16_ansi_colours_and_no_color_has_none() {
    use ratatui::style::Color;
    let ansi16 = |c: Color| {
        matches!(
            c,
            Color::Reset
                | Color::Black
                | Color::Red
                | Color::Green
                | Color::Yellow
                | Color::Blue
                | Color::Magenta
                | Color::Cyan
                | Color::Gray
                | Color::DarkGray
                | Color::LightRed
                | Color::LightGreen
                | Color::LightYellow
                | Color::LightBlue
                | Color::LightMagenta
                | Color::LightCyan
                | Color::White
        )
    };
    for no_color in [false, true] {
        for script in ["", "a", "2", "3", "4", "?", "<Enter>", "t]"] {
            let mut a = app();
            a.theme = hoptrace::ui::theme::Theme::new(no_color);
            keys(&mut a, script);
            let mut terminal =
                ratatui::Terminal::new(ratatui::backend::TestBackend::new(120, 40)).unwrap();
            terminal
                .draw(|f| hoptrace::ui::render::view(f, &a))
                .unwrap();
            for cell in terminal.backend().buffer().content() {
                if no_color {
                    assert_eq!(
                        (cell.fg, cell.bg),
                        (Color::Reset, Color::Reset),
                        "NO_COLOR, keys {script:?}"
                    );
                } else {
                    assert!(
                        ansi16(cell.fg) && ansi16(cell.bg),
                        "{:?}/{:?} after {script:?}",
                        cell.fg,
                        cell.bg
                    );
                }
            }
        }
    }
}
