//! Bad input: a clear error naming file, line, column and token; never a panic or a hang; the
//! valid part is kept.

use hoptrace::netfilter::{self, ParseError, TableName};

fn errors(text: &[u8]) -> (netfilter::Ruleset, Vec<ParseError>) {
    netfilter::parse_lenient(text, "node.rules")
}

fn one_error(text: &str) -> ParseError {
    let (_, e) = errors(text.as_bytes());
    assert_eq!(e.len(), 1, "{e:#?}");
    e.into_iter().next().unwrap()
}

const GOOD: &str = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:X - [0:0]\n-A X -s 10.0.0.0/8 -j DROP\n";

#[test]
fn truncated_rule_names_line_column_and_token() {
    let e = one_error(&format!("{GOOD}-A X -p tcp --dport\nCOMMIT\n"));
    assert_eq!((e.line, e.file.as_str()), (7, "node.rules"));
    assert_eq!(e.token.as_deref(), Some("--dport"));
    assert_eq!(e.column, 13);
    assert!(e.message.contains("expected a value after --dport"), "{e}");
    assert_eq!(
        e.to_string(),
        "node.rules:7:13: expected a value after --dport (at `--dport`)"
    );
    // The rest of the table is kept.
    let (rs, _) = errors(format!("{GOOD}-A X -p tcp --dport\nCOMMIT\n").as_bytes());
    assert_eq!(
        rs.table(TableName::Filter)
            .unwrap()
            .chain("X")
            .unwrap()
            .rules
            .len(),
        1
    );
}

#[test]
fn unbalanced_quote() {
    let e = one_error(&format!(
        "{GOOD}-A X -m comment --comment \"oops -j DROP\nCOMMIT\n"
    ));
    assert_eq!((e.line, e.column), (7, 27));
    assert!(e.message.contains("unbalanced quote"), "{e}");
}

#[test]
fn unknown_table_is_skipped_with_an_error() {
    let (rs, e) =
        errors(format!("*bogus\n:X - [0:0]\n-A X -j DROP\nCOMMIT\n{GOOD}COMMIT\n").as_bytes());
    assert_eq!(e.len(), 1, "one error for the whole unknown table: {e:?}");
    assert!(e[0].message.contains("unknown table"), "{e:?}");
    assert_eq!(e[0].token.as_deref(), Some("bogus"));
    assert!(
        rs.table(TableName::Filter).is_some(),
        "the valid table is kept"
    );
}

#[test]
fn rule_before_its_chain() {
    let e = one_error(
        "*nat\n-A KUBE-SVC-X -j DNAT --to-destination 1.2.3.4\n:KUBE-SVC-X - [0:0]\nCOMMIT\n",
    );
    assert_eq!((e.line, e.column), (2, 4));
    assert_eq!(e.token.as_deref(), Some("KUBE-SVC-X"));
    assert!(e.message.contains("before its declaration"), "{e}");
}

#[test]
fn missing_commit_keeps_the_rules_and_says_so() {
    let (rs, e) = errors(GOOD.as_bytes());
    assert_eq!(e.len(), 1);
    assert!(e[0].message.contains("no COMMIT"), "{}", e[0]);
    assert_eq!(
        rs.table(TableName::Filter)
            .unwrap()
            .chain("X")
            .unwrap()
            .rules
            .len(),
        1
    );
    assert!(netfilter::parse(GOOD.as_bytes(), "node.rules").is_err());
}

#[test]
fn ten_megabyte_single_line_is_an_error_not_a_hang() {
    let mut text = String::from("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m comment --comment ");
    text.push_str(&"x".repeat(10 * 1024 * 1024));
    text.push_str(" -j ACCEPT\nCOMMIT\n");
    let t = std::time::Instant::now();
    let (rs, e) = errors(text.as_bytes());
    assert!(t.elapsed().as_secs() < 20, "took {:?}", t.elapsed());
    assert_eq!(e.len(), 1);
    assert!(e[0].message.contains("at most 255"), "{}", e[0]);
    assert!(
        e[0].token.as_ref().unwrap().chars().count() <= 61,
        "the token shown is shortened"
    );
    assert!(rs.table(TableName::Filter).is_some());
}

#[test]
fn binary_garbage() {
    let mut junk = vec![0u8, 0xff, 0xfe, b'\n', 0x1b, b'[', b'2', b'J', b'\n'];
    junk.extend((0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
    let (rs, e) = errors(&junk);
    assert!(!e.is_empty());
    assert!(rs.tables.is_empty());
    assert!(e[0].message.contains("invalid UTF-8"), "{}", e[0]);
    for err in &e {
        assert!(
            !err.to_string().chars().any(|c| c.is_control()),
            "unescaped control character in {err:?}"
        );
    }
}

#[test]
fn wrong_family_mix_and_bad_values() {
    let e = one_error(&format!("{GOOD}-A X -d fd00::1 -j DROP\nCOMMIT\n"));
    assert!(
        e.message.contains("IPv6 address in a rule set of IPv4"),
        "{e}"
    );
    let e = one_error(&format!(
        "{GOOD}-A X -m statistic --mode random --probability 1.5 -j DROP\nCOMMIT\n"
    ));
    assert_eq!(e.token.as_deref(), Some("1.5"));
    let e = one_error(&format!(
        "{GOOD}-A X -p tcp -m tcp --dport 99999 -j DROP\nCOMMIT\n"
    ));
    assert_eq!(e.token.as_deref(), Some("99999"));
    let e = one_error(&format!(
        "{GOOD}-A X -m recent --set --seconds 5 -j DROP\nCOMMIT\n"
    ));
    assert!(e.message.contains("kernel refuses"), "{e}");
    let e = one_error(&format!("{GOOD}-A X --bogus 1 -j DROP\nCOMMIT\n"));
    assert_eq!(e.token.as_deref(), Some("--bogus"));
}

#[test]
fn jump_loops_are_refused_and_undeclared_chains_warned() {
    let (_, e) = errors(
        b"*filter\n:INPUT ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n-A A -j B\n-A B -j A\nCOMMIT\n",
    );
    assert!(
        e.iter().any(|x| x.message.contains("can reach itself")),
        "{e:?}"
    );
    let (rs, e) =
        errors(b"*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j KUBE-MARK-DROP\nCOMMIT\n");
    assert!(e.is_empty());
    assert!(
        rs.warnings
            .iter()
            .any(|w| w.message.contains("undeclared chain KUBE-MARK-DROP"))
    );
}

#[test]
fn arbitrary_bytes_never_panic() {
    bolero::check!().with_max_len(4096).for_each(|data: &[u8]| {
        let (rs, errs) = netfilter::parse_lenient(data, "fuzz");
        for e in &errs {
            let _ = e.to_string();
        }
        let _ = netfilter::print::save(&rs, Default::default());
        let _ = netfilter::kube::service_map(&rs);
    });
}

#[test]
fn mutated_corpus_lines_never_panic() {
    // Every prefix of a real kube-proxy rule line, inside a table.
    let line = "-A KUBE-SVC-X ! -s 10.0.0.0/8 -d 172.30.0.41/32 -p tcp -m comment --comment \"a b\" -m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-Y --mask 255.255.255.255 --rsource -m statistic --mode random --probability 0.33333333349 -m tcp --dport 80 -j DNAT --to-destination 10.0.0.1:80";
    for cut in 0..=line.len() {
        if !line.is_char_boundary(cut) {
            continue;
        }
        let text = format!("*nat\n:KUBE-SVC-X - [0:0]\n{}\nCOMMIT\n", &line[..cut]);
        let (rs, errs) = netfilter::parse_lenient(text.as_bytes(), "cut");
        for e in errs {
            assert_eq!(e.line, 3, "{e}");
        }
        let _ = netfilter::trace(
            &rs,
            &Default::default(),
            &netfilter::Packet::tcp(
                "1.1.1.1".parse().unwrap(),
                Some(1),
                "172.30.0.41".parse().unwrap(),
                80,
            ),
            Default::default(),
        );
    }
}
