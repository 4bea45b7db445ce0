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
