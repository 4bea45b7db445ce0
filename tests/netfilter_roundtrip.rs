//! Round-trip and save-format fidelity over the kube-proxy corpus:
//! * parse → print → parse gives the same model for every corpus file (both forms);
//! * printing a parsed kube-proxy restore dump gives, byte for byte, what `iptables-save`
//!   printed on a real kernel after loading that dump (`saved/`).

use hoptrace::netfilter::{self, print};
use std::path::PathBuf;

fn corpus() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/corpus/kube-proxy"
    ));
    if p.is_dir() {
        Some(p)
    } else {
        println!(
            "skipped: {} not found (the shared corpus sits beside the clone in CI)",
            p.display()
        );
        None
    }
}

fn rules_files(dir: &PathBuf) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rules"))
        .collect();
    v.sort();
    v
}

#[test]
fn parse_print_parse_is_identity_on_every_corpus_file() {
    let Some(c) = corpus() else { return };
    let mut n = 0;
    for sub in ["dumps", "saved"] {
        for f in rules_files(&c.join(sub)) {
            let text = std::fs::read(&f).unwrap();
            let name = f.display().to_string();
            let (a, errs) = netfilter::parse_lenient(&text, &name);
            assert!(errs.is_empty(), "{name}: {errs:?}");
            let printed = print::save(&a, Default::default());
            let b = netfilter::parse(printed.as_bytes(), "printed")
                .unwrap_or_else(|e| panic!("{name}: reparse: {e}\n{printed}"));
            assert!(a.same_rules(&b), "{name}: model changed by print/parse");
            assert_eq!(
                print::save(&b, Default::default()),
                printed,
                "{name}: printing is not stable"
            );
            n += 1;
        }
    }
    assert!(n >= 60, "only {n} corpus files");
}

#[test]
fn printing_a_restore_dump_reproduces_iptables_save_byte_for_byte() {
    let Some(c) = corpus() else { return };
    let mut n = 0;
    for saved in rules_files(&c.join("saved")) {
        let dump = c.join("dumps").join(saved.file_name().unwrap());
        let rs =
            netfilter::parse(&std::fs::read(&dump).unwrap(), &dump.display().to_string()).unwrap();
        let expected = std::fs::read_to_string(&saved).unwrap();
        let printed = print::save(&rs, Default::default());
        if printed != expected {
            let diff: Vec<_> = printed
                .lines()
                .zip(expected.lines())
                .filter(|(a, b)| a != b)
                .take(3)
                .collect();
            panic!(
                "{}: differs from iptables-save; first differing lines (ours, kernel's): {diff:#?}",
                saved.display()
            );
        }
        n += 1;
    }
    assert_eq!(n, 33);
}
