//! The long crash loop on release binaries: `cargo bench -p chaincore-tests --bench
//! crash_loop [-- ROUNDS [SEED]]` (default 200 rounds). Prints what it saw and exits non-zero
//! if any round ended inconsistent (target: 0).

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .map(|a| a.parse::<u64>());
    let rounds = match args.next() {
        Some(Ok(n)) => n as u32,
        Some(Err(e)) => return eprintln!("ROUNDS must be a number: {e}"),
        None => 200,
    };
    let seed = match args.next() {
        Some(Ok(s)) => s,
        Some(Err(e)) => return eprintln!("SEED must be a number: {e}"),
        None => 0x5EED,
    };
    chaincore_tests::use_release_binaries();
    let dir = chaincore_tests::TempDir::new("crash-loop-bench");
    let r = chaincore_tests::crash_loop::run(rounds, seed, &dir);
    println!(
        "crash loop, seed {seed}: {} rounds in {:.1} s",
        r.rounds,
        r.elapsed.as_secs_f64()
    );
    println!(
        "  kills while a reorg/invalidate/reconsider ran: {}",
        r.kills_during_reorg
    );
    println!(
        "  extra kills during the recovery after restart:  {}",
        r.kills_during_recovery
    );
    println!(
        "  restarts whose tip moved past the last answer:  {}",
        r.restarts_that_moved
    );
    println!("  final height: {}", r.final_height);
    println!("  inconsistent rounds: {} (target 0)", r.failures.len());
    for f in &r.failures {
        println!("    {f}");
    }
    if !r.failures.is_empty() {
        std::process::exit(1);
    }
}
