//! Replays the committed fuzz corpus on stable Rust.
//!
//! `fuzz/` is a cargo-fuzz project that needs nightly and sanitizers; its
//! target bodies live in [`bgp_core::fuzzing`], so this test runs the very
//! same checks over every seed in `fuzz/corpus/<target>/` (written by
//! `fuzz/seeds.py`) and every fixed crash in `fuzz/regressions/<target>/`.
//! A missing or empty corpus directory fails the test, so the corpus cannot
//! silently vanish, and a failure names the input file that panicked.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// A fuzz target body: arbitrary bytes in, a panic on a broken invariant.
type Body = fn(&[u8]);

/// Every fuzz target, by name, with the function that is its body.
const TARGETS: [(&str, Body); 7] = [
    ("ipip_packet", ipip::fuzzing::packet),
    ("ipip_offload", ipip::fuzzing::offload),
    ("message", bgp_core::fuzzing::message),
    ("update", bgp_core::fuzzing::update),
    ("open", bgp_core::fuzzing::open),
    ("roundtrip", bgp_core::fuzzing::roundtrip),
    ("framer", bgp_core::fuzzing::framer),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The input files of a directory, sorted; dotfiles (`.gitkeep`) skipped.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.') || n.ends_with(".md"))
        })
        .collect();
    files.sort();
    files
}

/// Runs `body` over every file in `dir`; returns how many ran. Collects
/// every panicking file instead of stopping at the first.
fn replay_dir(dir: &Path, body: Body) -> usize {
    let files = inputs(dir);
    let mut failed = Vec::new();
    for file in &files {
        let data =
            std::fs::read(file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| body(&data))) {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".to_string());
            failed.push(format!("{}: {msg}", file.display()));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} inputs panicked:\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
    files.len()
}

/// Replays the seed corpus of `target` (which must exist and be non-empty)
/// and its regressions folder, if there is one.
fn replay(target: &str) {
    let body = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("unknown fuzz target {target}"));
    let corpus = fuzz_dir().join("corpus").join(target);
    assert!(
        corpus.is_dir(),
        "seed corpus {} is missing (regenerate it with `python3 fuzz/seeds.py`)",
        corpus.display()
    );
    let seeds = replay_dir(&corpus, body);
    assert!(seeds > 0, "seed corpus {} is empty", corpus.display());

    let regressions = fuzz_dir().join("regressions").join(target);
    if regressions.is_dir() {
        replay_dir(&regressions, body);
    }
}

#[test]
fn ipip_packet_corpus_replays_without_panic() {
    replay("ipip_packet");
}

#[test]
fn ipip_offload_corpus_replays_without_panic() {
    replay("ipip_offload");
}

#[test]
fn message_corpus_replays_without_panic() {
    replay("message");
}

#[test]
fn update_corpus_replays_without_panic() {
    replay("update");
}

#[test]
fn open_corpus_replays_without_panic() {
    replay("open");
}

#[test]
fn roundtrip_corpus_replays_without_panic() {
    replay("roundtrip");
}

#[test]
fn framer_corpus_replays_without_panic() {
    replay("framer");
}

#[test]
fn every_fuzz_target_has_a_corpus_and_a_replay() {
    let known: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    let dir_names = |dir: PathBuf, keep: fn(&Path) -> bool| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .filter(|p| keep(p))
            .filter_map(|p| p.file_stem().and_then(|n| n.to_str()).map(String::from))
            .collect();
        names.sort();
        names
    };
    let mut expected: Vec<String> = known.iter().map(|s| s.to_string()).collect();
    expected.sort();

    // Every corpus folder is replayed by a test above...
    let corpora = dir_names(fuzz_dir().join("corpus"), |p| p.is_dir());
    assert_eq!(
        corpora, expected,
        "fuzz/corpus/ folders vs. targets replayed here"
    );
    // ...and every cargo-fuzz target has one.
    let targets = dir_names(fuzz_dir().join("fuzz_targets"), |p| {
        p.extension().is_some_and(|e| e == "rs")
    });
    assert_eq!(
        targets, expected,
        "fuzz/fuzz_targets/*.rs vs. targets replayed here"
    );
}
