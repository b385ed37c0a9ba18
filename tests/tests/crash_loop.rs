//! The short crash loop (the long one is `cargo bench -p chaincore-tests --bench crash_loop`):
//! a node killed with SIGKILL at random moments of block submission, reorgs, invalidations
//! and its own recovery always restarts on the most-work tip it knows and, once the
//! interrupted command is sent again, matches a control node's tip and UTXO set. The second
//! test runs the victim with `--dbcache 0`, flushing its coins cache with every block, so kills
//! land in flushes and its UTXO-set hash is compared with a control on the default cache. Now
//! and then the victim runs with its indexes off, so its next start catches them up, and is
//! killed in that catch-up.

use chaincore_tests::crash_loop;
use chaincore_tests::TempDir;

#[test]
fn kill_9_at_any_moment_of_a_reorg_restarts_on_the_most_work_chain() {
    let dir = TempDir::new("crash-loop");
    let report = crash_loop::run(20, 0xC0FFEE, &dir);
    assert!(report.failures.is_empty(), "{report:#?}");
    assert_eq!(report.rounds, 20);
    assert!(report.kills_during_reorg > 0, "{report:#?}");
    // Some starts found the indexes behind (after a run with them off) and were killed.
    assert!(report.kills_during_catch_up > 0, "{report:#?}");
}

#[test]
fn kill_9_during_flushes_of_a_cache_that_flushes_every_block_matches_the_default_cache() {
    let dir = TempDir::new("crash-loop-flush");
    let report = crash_loop::run_with(12, 0xF1A5, &dir, &["--dbcache", "0"]);
    assert!(report.failures.is_empty(), "{report:#?}");
    assert_eq!(report.rounds, 12);
}
