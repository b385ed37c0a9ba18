//! The `rpc_request` fuzz target's binary: an AFL++ harness with the `afl` feature, otherwise a
//! replay of the files it is given (see [`chaincore_fuzz::run_binary`]).

fn main() -> std::process::ExitCode {
    chaincore_fuzz::run_binary(env!("CARGO_BIN_NAME"))
}
