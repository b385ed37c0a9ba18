//! Replays every committed fuzz input through its target: `fuzz/corpus/<target>/` (the
//! minimized corpus) and `fuzz/regressions/<target>/` (inputs that once crashed, kept even if
//! minimization would drop them). A panic on any of them fails the test, naming the file. No
//! fuzzing engine is needed; this is the CI step that keeps a found crash from coming back.

use std::path::Path;

use chaincore_fuzz::{inputs, TARGETS};

#[test]
fn every_committed_input_runs_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut failures = Vec::new();
    for target in &TARGETS {
        let corpus = root.join("corpus").join(target.name);
        let mut files = inputs(&corpus).unwrap_or_else(|e| panic!("{}: {e}", corpus.display()));
        assert!(
            !files.is_empty(),
            "{} has no corpus: run fuzz/run or the seeds example",
            target.name
        );
        let regressions = root.join("regressions").join(target.name);
        if regressions.is_dir() {
            files.extend(inputs(&regressions).unwrap());
        }
        for file in &files {
            let bytes = std::fs::read(file).unwrap();
            if std::panic::catch_unwind(|| (target.run)(&bytes)).is_err() {
                failures.push(file.display().to_string());
            }
        }
        println!("{}: {} inputs replayed", target.name, files.len());
    }
    assert!(failures.is_empty(), "inputs that panic: {failures:#?}");
}
