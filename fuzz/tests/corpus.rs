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

/// The wallet corpus reaches the code behind the decryption: some file in it is encrypted and
/// unlocks with the target's passphrase (mutations of a file's clear parts keep its ciphertext
/// valid), so a minimization that dropped them all would show here.
#[test]
fn the_wallet_corpus_unlocks() {
    use chaincore::Network;
    use chaincore_fuzz::wallet_file::PASSPHRASE;
    use chaincore_wallet::keystore::Keystore;

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/wallet_file");
    let unlocked = inputs(&dir)
        .unwrap()
        .iter()
        .filter(|file| {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            Network::ALL.iter().any(|&network| {
                Keystore::from_json(&text, network, String::new())
                    .is_ok_and(|mut w| w.is_encrypted() && w.unlock(PASSPHRASE).is_ok())
            })
        })
        .count();
    assert!(unlocked > 0, "no encrypted wallet in the corpus unlocks");
    println!("{unlocked} encrypted wallet files unlock");
}
