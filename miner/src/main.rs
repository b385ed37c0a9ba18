//! `chaincore-miner`: ChainCore standalone SHA-256d miner (not yet implemented: see the miner issue).

use clap::Parser;

/// ChainCore standalone SHA-256d miner (not yet implemented: see the miner issue).
#[derive(Parser, Debug)]
#[command(name = "chaincore-miner", version, about)]
struct Args {}

fn main() {
    let _args = Args::parse();
    eprintln!("chaincore-miner: nothing to do yet; run with --help");
    std::process::exit(2);
}
