//! `chaincore-cli`: calls one RPC method of a running `chaincore-node`, as `bitcoin-cli` does.
//!
//! It finds the node the way the node finds its own files: the cookie in
//! `<datadir>/<network>/.cookie` and the network's RPC port, unless `--rpcport`,
//! `--rpcconnect`, `--rpcuser`/`--rpcpassword` (or the same keys in `chaincore.conf`, read
//! as the miner and wallet read it: `chaincore::config::RpcArgs`) say otherwise. Each argument is read as JSON
//! when it parses as JSON and as a string otherwise; with `-named`, arguments are
//! `name=value` pairs. A result is printed as `bitcoin-cli` prints it: a string bare, anything
//! else as indented JSON, `null` as nothing. An error prints Core's code and message on stderr
//! and exits with status 1. Core's single-dash spellings (`-rpcwait`, `-regtest`, `-named`)
//! work too.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use chaincore::config::RpcArgs;
use chaincore::rpc::{http_client, is_auth_failure};
use clap::Parser;
use jsonrpsee::core::client::{ClientT, Error};
use jsonrpsee::core::params::{ArrayParams, ObjectParams};
use serde_json::Value;

/// Calls one RPC method of a running chaincore-node and prints the result.
#[derive(Parser, Debug)]
#[command(name = "chaincore-cli", version)]
struct Args {
    /// Where the node is and how to authenticate (flags, environment, then chaincore.conf).
    #[command(flatten)]
    rpc: RpcArgs,
    /// Wait for the node to answer, at most SECS seconds (without SECS: as long as it takes).
    #[arg(
        long,
        value_name = "SECS",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "0"
    )]
    rpcwait: Option<u64>,
    /// Arguments are name=value pairs (named parameters).
    #[arg(long)]
    named: bool,
    /// The method.
    method: String,
    /// Its arguments: JSON where they parse as JSON, strings otherwise.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// Core's single-dash spellings (`-rpcwait`, `-rpcport=1`, `-regtest`) as this parser's
/// (`--rpcwait`, `--rpcport=1`, `--network regtest`), up to the method name.
fn cores_spellings(argv: impl Iterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_method = false;
    for arg in argv {
        if in_method || out.is_empty() {
            out.push(arg);
            continue;
        }
        match arg.as_str() {
            "-regtest" | "--regtest" => out.extend(["--network".into(), "regtest".into()]),
            "-testnet" | "--testnet" => out.extend(["--network".into(), "test".into()]),
            a if a.starts_with('-') && !a.starts_with("--") && a.len() > 2 => {
                out.push(format!("-{a}"));
            }
            a => {
                // The first word that is not an option (or an option's value) is the method.
                let takes_value = out.last().is_some_and(|prev: &String| {
                    matches!(
                        prev.as_str(),
                        "--network"
                            | "--datadir"
                            | "--rpcport"
                            | "--rpcconnect"
                            | "--rpcuser"
                            | "--rpcpassword"
                    )
                });
                in_method = !a.starts_with('-') && !takes_value;
                out.push(arg);
            }
        }
    }
    out
}

/// An argument as bitcoin-cli reads it: a string where the method's usage quotes the
/// parameter (`"blockhash"`: a hash of digits stays a string), otherwise JSON if it parses
/// and a string if not.
fn value_of(arg: &str, quoted: bool) -> Value {
    if quoted {
        return Value::String(arg.to_string());
    }
    serde_json::from_str(arg).unwrap_or_else(|_| Value::String(arg.to_string()))
}

/// The parameters of `method` as its usage line names them: (name, quoted as a string).
fn parameters(method: &str) -> Vec<(String, bool)> {
    chaincore::rpc::help::find(method)
        .map(|usage| {
            usage
                .params()
                .into_iter()
                .map(|p| (p.name, p.string))
                .collect()
        })
        .unwrap_or_default()
}

/// Why a call failed, printed as bitcoin-cli prints it.
enum Failure {
    /// The node answered with an error.
    Rpc { code: i32, message: String },
    /// Anything else: no node, bad credentials, bad arguments.
    Other(String),
}

impl Args {
    /// One attempt at the call.
    async fn call(&self) -> Result<Value, (Failure, bool)> {
        // A missing cookie while waiting means the node has not started yet.
        let credentials = self
            .rpc
            .credentials()
            .map_err(|e| (Failure::Other(e), true))?;
        let url = self.rpc.url();
        let client = http_client(&url, &credentials, Duration::from_secs(900))
            .map_err(|e| (Failure::Other(e), false))?;
        let declared = parameters(&self.method);
        let quoted = |i: usize| declared.get(i).is_some_and(|p| p.1);
        let answer = if self.named {
            let mut params = ObjectParams::new();
            for arg in &self.args {
                let Some((name, value)) = arg.split_once('=') else {
                    return Err((
                        Failure::Other(format!("-named argument '{arg}' is not name=value")),
                        false,
                    ));
                };
                let quoted = declared.iter().any(|p| p.0 == name && p.1);
                params
                    .insert(name, value_of(value, quoted))
                    .map_err(|e| (Failure::Other(e.to_string()), false))?;
            }
            client.request::<Value, _>(&self.method, params).await
        } else {
            let mut params = ArrayParams::new();
            for (i, arg) in self.args.iter().enumerate() {
                params
                    .insert(value_of(arg, quoted(i)))
                    .map_err(|e| (Failure::Other(e.to_string()), false))?;
            }
            client.request::<Value, _>(&self.method, params).await
        };
        answer.map_err(|e| match e {
            Error::Call(obj) => (
                Failure::Rpc {
                    code: obj.code(),
                    message: obj.message().to_string(),
                },
                false,
            ),
            e if is_auth_failure(&e) => (
                Failure::Other(format!(
                    "the node at {url} refused the credentials (check --datadir and --network, or --rpcuser/--rpcpassword)"
                )),
                // As bitcoin-cli: waiting is for a node that is not up yet, never for
                // credentials it refuses.
                false,
            ),
            Error::Transport(t) => (
                Failure::Other(format!(
                    "cannot reach the node at {url}: {t} (is chaincore-node running? check --rpcport and --network)"
                )),
                true,
            ),
            other => (Failure::Other(format!("RPC to {url} failed: {other}")), false),
        })
    }
}

fn print(result: &Value) {
    match result {
        Value::Null => {}
        Value::String(s) => println!("{s}"),
        other => println!(
            "{}",
            serde_json::to_string_pretty(other).unwrap_or_else(|_| other.to_string())
        ),
    }
}

fn main() -> ExitCode {
    let mut args = match Args::try_parse_from(cores_spellings(std::env::args())) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if let Err(e) = args.rpc.load() {
        eprintln!("error: {e}");
        return ExitCode::from(1);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let deadline = args
        .rpcwait
        .filter(|s| *s > 0)
        .map(|s| Instant::now() + Duration::from_secs(s));
    let failure = runtime.block_on(async {
        loop {
            match args.call().await {
                Ok(result) => {
                    print(&result);
                    return None;
                }
                Err((failure, retry)) => {
                    let waiting = args.rpcwait.is_some()
                        && retry
                        && deadline.is_none_or(|d| Instant::now() < d);
                    if !waiting {
                        return Some(failure);
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    });
    match failure {
        None => ExitCode::SUCCESS,
        Some(Failure::Rpc { code, message }) => {
            eprintln!("error code: {code}\nerror message:\n{message}");
            ExitCode::from(1)
        }
        Some(Failure::Other(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spell(args: &[&str]) -> Vec<String> {
        cores_spellings(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn cores_single_dash_options_are_read_up_to_the_method() {
        assert_eq!(
            spell(&[
                "cli",
                "-regtest",
                "-rpcwait",
                "-rpcport=5",
                "getblock",
                "-1"
            ]),
            [
                "cli",
                "--network",
                "regtest",
                "--rpcwait",
                "--rpcport=5",
                "getblock",
                "-1"
            ]
        );
        assert_eq!(
            spell(&["cli", "--datadir", "d", "echo", "-named"]),
            ["cli", "--datadir", "d", "echo", "-named"]
        );
    }

    #[test]
    fn arguments_are_json_where_they_parse_and_strings_where_quoted() {
        assert_eq!(value_of("5", false), Value::from(5));
        assert_eq!(value_of("true", false), Value::from(true));
        assert_eq!(value_of("[\"a\"]", false), serde_json::json!(["a"]));
        assert_eq!(value_of("00ff", false), Value::from("00ff"));
        assert_eq!(value_of("1234", true), Value::from("1234"));
        assert_eq!(
            parameters("getblock"),
            [
                ("blockhash".to_string(), true),
                ("verbosity".to_string(), false)
            ]
        );
    }
}
