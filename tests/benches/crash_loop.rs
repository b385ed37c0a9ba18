//! The long crash loop on release binaries: `cargo bench -p chaincore-tests --bench
//! crash_loop [-- ROUNDS [SEED] [DBCACHE_MIB]]` (default 200 rounds, the victim on the default
//! coins cache; `DBCACHE_MIB` 0 flushes it with every block). Prints what it saw and exits
//! non-zero if any round ended inconsistent (target: 0).

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
    let dbcache = match args.next() {
        Some(Ok(mb)) => Some(mb.to_string()),
        Some(Err(e)) => return eprintln!("DBCACHE_MIB must be a number: {e}"),
        None => None,
    };
    chaincore_tests::use_release_binaries();
    let dir = chaincore_tests::TempDir::new("crash-loop-bench");
    let victim_args: Vec<&str> = match &dbcache {
        Some(mb) => vec!["--dbcache", mb],
        None => Vec::new(),
    };
    let r = chaincore_tests::crash_loop::run_with(rounds, seed, &dir, &victim_args);
    println!(
        "crash loop, seed {seed}, victim --dbcache {}: {} rounds in {:.1} s",
        dbcache.as_deref().unwrap_or("default"),
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
    println!(
        "  kills of a start catching its indexes up:      {}",
        r.kills_during_catch_up
    );
    println!(
        "  restarts that found an index catching up:      {}",
        r.restarts_with_index_behind
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
