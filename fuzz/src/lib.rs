//! Coverage-guided fuzz targets for every decoder an outsider reaches: a peer's bytes, an RPC
//! client's request, a damaged wallet file.
//!
//! Each target is a plain `fn(&[u8])` that returns on any input the product refuses and
//! panics only on a bug: a panic in the product code, or a broken property the target checks
//! (a decoded value that does not encode back to what was read, a message the codec cannot read
//! back). The binaries in `src/bin/` run one target each: under AFL++ when built by
//! `fuzz/run` (feature `afl`), otherwise they replay the files they are given, for reproducing
//! a crash. `tests/corpus.rs` replays every committed input through its target on each
//! `cargo test`, so a crash once found stays fixed. See `docs/FUZZING.md`.
//!
//! # Layout
//! - [`p2p_message`]: P2P framing and every message body, dispatched on the command.
//! - [`block`]: block decoding and the context-free block checks.
//! - [`transaction`]: transaction decoding, the transaction checks and the script templates.
//! - [`rpc_request`]: the JSON-RPC request path: 1.0 upgrade, jsonrpsee's request parsing,
//!   every method's parameter decoding, the 1.0 downgrade of the answer.
//! - [`wallet_file`]: the wallet file parser, plain and encrypted.

pub mod block;
pub mod p2p_message;
pub mod rpc_request;
pub mod transaction;
pub mod wallet_file;

use std::path::Path;
use std::process::ExitCode;

/// A fuzz target: its name (also its binary's and its corpus directory's) and its body.
pub struct Target {
    /// The name: `fuzz/corpus/<name>/` holds its corpus, `fuzz/regressions/<name>/` its fixed
    /// crashes, and `src/bin/<name>.rs` is its binary.
    pub name: &'static str,
    /// Runs one input.
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: [Target; 5] = [
    Target {
        name: "p2p_message",
        run: p2p_message::run,
    },
    Target {
        name: "block",
        run: block::run,
    },
    Target {
        name: "transaction",
        run: transaction::run,
    },
    Target {
        name: "rpc_request",
        run: rpc_request::run,
    },
    Target {
        name: "wallet_file",
        run: wallet_file::run,
    },
];

/// The `main` of the target binary `name`. Built with the `afl` feature (by `cargo afl build`)
/// it is an AFL++ persistent-mode harness, and a panic aborts so AFL++ records a crash.
/// Without it, it runs the target on every file named on the command line (a directory: on
/// every file in it), or on standard input when none is named, and fails if one cannot be read.
pub fn run_binary(name: &str) -> ExitCode {
    let Some(target) = TARGETS.iter().find(|t| t.name == name) else {
        eprintln!("no fuzz target named {name}");
        return ExitCode::FAILURE;
    };
    #[cfg(feature = "afl")]
    {
        afl::fuzz(true, target.run);
        ExitCode::SUCCESS
    }
    #[cfg(not(feature = "afl"))]
    {
        replay_args(target)
    }
}

#[cfg(not(feature = "afl"))]
fn replay_args(target: &Target) -> ExitCode {
    let args: Vec<std::path::PathBuf> = std::env::args_os().skip(1).map(Into::into).collect();
    if args.is_empty() {
        let mut input = Vec::new();
        if let Err(e) = std::io::Read::read_to_end(&mut std::io::stdin(), &mut input) {
            eprintln!("cannot read standard input: {e}");
            return ExitCode::FAILURE;
        }
        (target.run)(&input);
        return ExitCode::SUCCESS;
    }
    for arg in &args {
        match inputs(arg) {
            Ok(files) => {
                for file in files {
                    eprintln!("{}: {}", target.name, file.display());
                    match std::fs::read(&file) {
                        Ok(bytes) => (target.run)(&bytes),
                        Err(e) => {
                            eprintln!("cannot read {}: {e}", file.display());
                            return ExitCode::FAILURE;
                        }
                    }
                }
            }
            Err(e) => {
                eprintln!("cannot read {}: {e}", arg.display());
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

/// `path` itself if it is a file, else the files directly in it, sorted by name, skipping
/// hidden ones (names starting with `.`).
pub fn inputs(path: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        if entry.file_type()?.is_file() && !entry.file_name().to_string_lossy().starts_with('.') {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}
