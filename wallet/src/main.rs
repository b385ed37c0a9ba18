//! `chaincore-wallet`: ChainCore wallet CLI (not yet implemented: see the wallet issue).

use clap::Parser;

/// ChainCore wallet CLI (not yet implemented: see the wallet issue).
#[derive(Parser, Debug)]
#[command(name = "chaincore-wallet", version, about)]
struct Args {}

fn main() {
    let _args = Args::parse();
    eprintln!("chaincore-wallet: nothing to do yet; run with --help");
    std::process::exit(2);
}
