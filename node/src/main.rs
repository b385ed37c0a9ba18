//! `chaincore-node`: ChainCore full node daemon (not yet implemented: see the node issue).

use clap::Parser;

/// ChainCore full node daemon (not yet implemented: see the node issue).
#[derive(Parser, Debug)]
#[command(name = "chaincore-node", version, about)]
struct Args {}

fn main() {
    let _args = Args::parse();
    eprintln!("chaincore-node: nothing to do yet; run with --help");
    std::process::exit(2);
}
