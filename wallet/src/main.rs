//! `chaincore-wallet`: keys on disk, balances and coins from a node, signed transactions.
//!
//! # Layout
//! - [`keystore`]: the wallet file (plain or encrypted keys), atomic writes.
//! - [`lock`]: the wallet lock file that makes commands on one wallet run one at a time.
//! - [`coinselect`]: coin selection, change and fees.
//! - [`node`]: the JSON-RPC connection to `chaincore-node`.

mod coinselect;
mod keystore;
mod lock;
mod node;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use chaincore::key::PrivateKey;
use chaincore::rpc::NodeArgs;
use chaincore::sighash::{legacy_sighash, SIGHASH_ALL};
use chaincore::{Address, Amount, Script, Transaction, TxIn, TxOut};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};

use crate::coinselect::{Coin, Selection};
use crate::keystore::Keystore;
use crate::lock::WalletLock;
use crate::node::NodeClient;

/// ChainCore wallet: holds keys, shows balances, builds and sends signed transactions.
#[derive(Parser, Debug)]
#[command(name = "chaincore-wallet", version, about)]
struct Args {
    /// Wallet file [default: <datadir>/<network>/wallet.json].
    #[arg(long, env = "CHAINCORE_WALLET")]
    wallet: Option<PathBuf>,
    #[command(flatten)]
    node: NodeArgs,
    /// Read the passphrase of an encrypted wallet from this file instead of the terminal.
    #[arg(long, env = "CHAINCORE_PASSPHRASE_FILE", global = true)]
    passphrase_file: Option<PathBuf>,
    /// Seconds to wait for another command that holds the wallet (its lock file
    /// `<wallet>.lock`) before giving up.
    #[arg(
        long,
        env = "CHAINCORE_WALLET_LOCK_TIMEOUT",
        default_value_t = 60,
        global = true
    )]
    lock_timeout: u64,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a new wallet with one address.
    Create {
        /// Encrypt the keys with a passphrase (asked on the terminal or read from --passphrase-file).
        #[arg(long)]
        encrypt: bool,
    },
    /// Show the wallet file, network and number of addresses.
    Info,
    /// Create a new receiving address.
    NewAddress {
        /// A label to remember it by.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List the wallet's addresses.
    Addresses,
    /// Confirmed, unconfirmed and immature (coinbase) balance.
    Balance,
    /// List spendable and pending coins.
    Utxos,
    /// Send coins: `send <address> <amount in coins>`.
    Send {
        /// Destination address.
        address: String,
        /// Amount in coins (up to 8 decimals); omit with --send-all.
        #[arg(required_unless_present = "send_all", allow_negative_numbers = true)]
        amount: Option<String>,
        /// Fee rate in units per byte.
        #[arg(long, default_value_t = 1)]
        fee_rate: i64,
        /// Attach up to 80 bytes of text in an OP_RETURN output.
        #[arg(long)]
        data: Option<String>,
        /// Send every spendable coin (the fee comes out of the amount).
        #[arg(long, conflicts_with = "amount")]
        send_all: bool,
        /// Show inputs, outputs, change, fee and fee rate without sending or saving anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Incoming and outgoing transactions with confirmations.
    History,
    /// Import a private key in WIF.
    ImportKey {
        /// The key, Wallet Import Format.
        wif: String,
    },
    /// Print the WIF private key of one of the wallet's addresses.
    ExportKey {
        /// The address.
        address: String,
    },
}

fn main() {
    let args = Args::parse();
    let json_output = args.json;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            std::process::exit(1);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(out) => print_output(&out, json_output),
        Err(e) => {
            if json_output {
                println!("{}", json!({"error": format!("{e:#}")}));
            } else {
                eprintln!("error: {e:#}");
            }
            std::process::exit(1);
        }
    }
}

/// A command's result: JSON for `--json`, and the text people read.
struct Output {
    json: Value,
    text: String,
}

fn print_output(out: &Output, json_output: bool) {
    if json_output {
        println!(
            "{}",
            serde_json::to_string_pretty(&out.json).unwrap_or_default()
        );
    } else {
        println!("{}", out.text.trim_end());
    }
}

impl Args {
    fn wallet_path(&self) -> anyhow::Result<PathBuf> {
        match &self.wallet {
            Some(p) => Ok(p.clone()),
            None => Ok(self
                .node
                .network_dir()
                .map_err(|e| anyhow::anyhow!("{e} or --wallet"))?
                .join("wallet.json")),
        }
    }

    fn node(&self) -> anyhow::Result<NodeClient> {
        let credentials = self.node.credentials().map_err(|e| anyhow::anyhow!(e))?;
        NodeClient::new(&self.node.url(), &credentials)
    }

    /// The passphrase from --passphrase-file, or asked on the terminal (twice if `confirm`).
    fn passphrase(&self, confirm: bool) -> anyhow::Result<String> {
        if let Some(file) = &self.passphrase_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read passphrase file {}", file.display()))?;
            let p = text.lines().next().unwrap_or("").to_string();
            if p.is_empty() {
                bail!("passphrase file {} is empty", file.display());
            }
            return Ok(p);
        }
        if !std::io::stdin().is_terminal() {
            bail!("this needs the wallet passphrase: run in a terminal or pass --passphrase-file");
        }
        let p = rpassword::prompt_password("Wallet passphrase: ")?;
        if confirm && rpassword::prompt_password("Repeat passphrase: ")? != p {
            bail!("the passphrases do not match");
        }
        if p.is_empty() {
            bail!("the passphrase must not be empty");
        }
        Ok(p)
    }

    /// Takes the wallet's lock, waiting up to --lock-timeout for another command to finish.
    fn lock(&self) -> anyhow::Result<WalletLock> {
        let path = self.wallet_path()?;
        Ok(WalletLock::acquire(
            &path,
            Duration::from_secs(self.lock_timeout),
            |lock| {
                eprintln!(
                    "waiting up to {} s for another command that holds {} (lock file {})",
                    self.lock_timeout,
                    path.display(),
                    lock.display()
                )
            },
        )?)
    }

    fn load(&self) -> anyhow::Result<Keystore> {
        Ok(Keystore::load(&self.wallet_path()?, self.node.network)?)
    }

    /// Loads the wallet with its private keys available.
    fn load_unlocked(&self) -> anyhow::Result<Keystore> {
        let mut ks = self.load()?;
        if !ks.is_unlocked() {
            ks.unlock(&self.passphrase(false)?)?;
        }
        Ok(ks)
    }
}

async fn run(args: Args) -> anyhow::Result<Output> {
    match &args.command {
        Command::Create { encrypt } => {
            let path = args.wallet_path()?;
            if path.exists() {
                bail!(
                    "a wallet already exists at {}; refusing to overwrite it",
                    path.display()
                );
            }
            let passphrase = if *encrypt {
                Some(args.passphrase(true)?)
            } else {
                None
            };
            let _lock = args.lock()?;
            let ks = Keystore::create(args.node.network, passphrase.as_deref());
            ks.save(&path, true)?;
            let address = ks.entries[0].address.clone();
            Ok(Output {
                text: format!(
                    "created {} wallet {}\naddress: {address}",
                    args.node.network,
                    path.display()
                ),
                json: json!({"wallet": path, "network": args.node.network, "encrypted": encrypt, "address": address}),
            })
        }
        Command::Info => {
            let path = args.wallet_path()?;
            let ks = args.load()?;
            Ok(Output {
                text: format!(
                    "wallet: {}\nnetwork: {}\nencrypted: {}\naddresses: {}",
                    path.display(),
                    ks.network,
                    ks.is_encrypted(),
                    ks.entries.len()
                ),
                json: json!({"wallet": path, "network": ks.network, "encrypted": ks.is_encrypted(), "addresses": ks.entries.len()}),
            })
        }
        Command::NewAddress { label } => {
            let path = args.wallet_path()?;
            let _lock = args.lock()?;
            let mut ks = args.load_unlocked()?;
            let address = ks.add_key(PrivateKey::generate(), label.clone(), false);
            ks.save(&path, false)?;
            Ok(Output {
                text: address.clone(),
                json: json!({"address": address, "label": label}),
            })
        }
        Command::Addresses => {
            let ks = args.load()?;
            let text = ks
                .entries
                .iter()
                .map(|e| {
                    let kind = if e.change { " (change)" } else { "" };
                    format!(
                        "{}{kind}{}",
                        e.address,
                        if e.label.is_empty() {
                            String::new()
                        } else {
                            format!("  {}", e.label)
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            Ok(Output {
                text,
                json: json!(ks.entries),
            })
        }
        Command::Balance => {
            let ks = args.load()?;
            let node = args.node()?;
            let b = node.balance(&addresses(&ks)).await?;
            let confirmed = Amount::from_units(b.balance - b.immature);
            let (unconfirmed, immature) = (
                Amount::from_units(b.unconfirmed),
                Amount::from_units(b.immature),
            );
            Ok(Output {
                text: format!(
                    "confirmed: {confirmed}\nunconfirmed: {unconfirmed}\nimmature: {immature}"
                ),
                json: json!({"confirmed": confirmed.to_string(), "unconfirmed": unconfirmed.to_string(), "immature": immature.to_string()}),
            })
        }
        Command::Utxos => {
            let ks = args.load()?;
            let node = args.node()?;
            let utxos = node.utxos(&addresses(&ks)).await?;
            let text = utxos
                .iter()
                .map(|u| {
                    format!(
                        "{}:{}  {}  {} conf{}{}",
                        u.txid,
                        u.vout,
                        Amount::from_units(u.value),
                        u.confirmations,
                        if u.coinbase { "  coinbase" } else { "" },
                        if u.spent_in_mempool {
                            "  (spent, unconfirmed)"
                        } else {
                            ""
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            let rows: Vec<Value> = utxos.iter().map(|u| json!({"txid": u.txid, "vout": u.vout, "amount": Amount::from_units(u.value).to_string(), "confirmations": u.confirmations, "coinbase": u.coinbase, "address": u.address, "spent_in_mempool": u.spent_in_mempool})).collect();
            Ok(Output {
                text: if text.is_empty() {
                    "no coins".into()
                } else {
                    text
                },
                json: json!(rows),
            })
        }
        Command::Send {
            address,
            amount,
            fee_rate,
            data,
            send_all,
            dry_run,
        } => {
            send(
                &args,
                address,
                amount.as_deref(),
                *fee_rate,
                data.as_deref(),
                *send_all,
                *dry_run,
            )
            .await
        }
        Command::History => {
            let ks = args.load()?;
            let node = args.node()?;
            let rows = node.history(&addresses(&ks)).await?;
            let text = rows
                .iter()
                .map(|r| {
                    format!(
                        "{}  {:>+18}  {} conf",
                        r.txid,
                        r.delta_string(),
                        r.confirmations
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            let json_rows: Vec<Value> = rows.iter().map(|r| json!({"txid": r.txid, "amount": r.delta_string(), "confirmations": r.confirmations})).collect();
            Ok(Output {
                text: if text.is_empty() {
                    "no transactions".into()
                } else {
                    text
                },
                json: json!(json_rows),
            })
        }
        Command::ImportKey { wif } => {
            let path = args.wallet_path()?;
            let key = PrivateKey::from_wif(wif, args.node.network).context("cannot import key")?;
            let _lock = args.lock()?;
            let mut ks = args.load_unlocked()?;
            let address = ks.add_key(key, "imported".into(), false);
            ks.save(&path, false)?;
            Ok(Output {
                text: address.clone(),
                json: json!({"address": address}),
            })
        }
        Command::ExportKey { address } => {
            Address::parse(address, args.node.network).context("bad address")?;
            let ks = args.load_unlocked()?;
            let key = ks
                .key_for(address)
                .with_context(|| format!("address {address} is not in this wallet"))?;
            let wif = key.to_wif(args.node.network);
            Ok(Output {
                text: wif.clone(),
                json: json!({"address": address, "wif": wif}),
            })
        }
    }
}

fn addresses(ks: &Keystore) -> Vec<String> {
    ks.entries.iter().map(|e| e.address.clone()).collect()
}

/// Parses a user amount: positive, at most 8 decimals, at most the money supply.
fn parse_amount(s: &str) -> anyhow::Result<Amount> {
    let amount = Amount::from_coins_str(s).map_err(|e| anyhow::anyhow!("bad amount '{s}': {e}"))?;
    if amount == Amount::ZERO {
        bail!("bad amount '{s}': must be more than zero");
    }
    Ok(amount)
}

async fn send(
    args: &Args,
    to: &str,
    amount: Option<&str>,
    fee_rate: i64,
    data: Option<&str>,
    send_all: bool,
    dry_run: bool,
) -> anyhow::Result<Output> {
    let dest = Address::parse(to, args.node.network)
        .map_err(|e| anyhow::anyhow!("bad address '{to}': {e}"))?;
    if fee_rate < 1 {
        bail!("--fee-rate must be at least 1 unit per byte (the node's minimum relay fee)");
    }
    let amount = match (amount, send_all) {
        (Some(a), false) => Some(parse_amount(a)?),
        (None, true) => None,
        _ => bail!("give an amount, or --send-all"),
    };
    let mut data_outputs = Vec::new();
    if let Some(text) = data {
        let script = Script::new_op_return(text.as_bytes()).with_context(|| {
            format!(
                "--data is {} bytes; at most 80 fit in an OP_RETURN output",
                text.len()
            )
        })?;
        data_outputs.push(TxOut {
            value: Amount::ZERO,
            script_pubkey: script,
        });
    }
    let path = args.wallet_path()?;
    // Held until the transaction is broadcast: no other command sees these coins as unspent
    // or writes the file in between.
    let _lock = args.lock()?;
    let mut ks = args.load()?;
    let node = args.node()?;
    let coins: Vec<Coin> = node
        .utxos(&addresses(&ks))
        .await?
        .into_iter()
        .filter(|u| !u.spent_in_mempool && u.confirmations > 0)
        .filter(|u| {
            !u.coinbase || u.confirmations >= u64::from(chaincore::validation::COINBASE_MATURITY)
        })
        .map(|u| Coin {
            outpoint: u.outpoint(),
            value: Amount::from_units(u.value),
            address: u.address.clone(),
        })
        .collect();
    let selection = match amount {
        Some(a) => {
            let mut outputs = vec![TxOut {
                value: a,
                script_pubkey: dest.script_pubkey(),
            }];
            outputs.extend(data_outputs);
            coinselect::select(&coins, outputs, fee_rate)?
        }
        None => coinselect::select_all(&coins, dest.script_pubkey(), data_outputs, fee_rate)?,
    };
    if !ks.is_unlocked() {
        ks.unlock(&args.passphrase(false)?)?;
    }
    let change_address = selection
        .change
        .map(|_| ks.add_key(PrivateKey::generate(), String::new(), true));
    let (tx, fee) = build_and_sign(&ks, &selection, change_address.as_deref(), fee_rate)?;
    let size = chaincore::encode::serialize(&tx).len();
    let txid = tx.compute_txid().to_string();
    let summary = json!({
        "txid": txid,
        "inputs": selection.inputs.iter().map(|c| json!({"txid": c.outpoint.txid.to_string(), "vout": c.outpoint.vout, "amount": c.value.to_string()})).collect::<Vec<_>>(),
        "outputs": tx.output.iter().map(|o| json!({"amount": o.value.to_string(), "address": Address::from_script(&o.script_pubkey, args.node.network).map(|a| a.to_string()), "data": o.script_pubkey.op_return_data().map(|d| String::from_utf8_lossy(d).into_owned())})).collect::<Vec<_>>(),
        "change": change_address.as_ref().map(|a| json!({"address": a, "amount": tx.output.last().map(|o| o.value.to_string())})),
        "fee": fee.to_string(),
        "size": size,
        "fee_rate": fee.to_units() as f64 / size as f64,
        "sent": !dry_run,
    });
    let mut text = String::new();
    for c in &selection.inputs {
        text += &format!(
            "input   {}:{}  {}\n",
            c.outpoint.txid, c.outpoint.vout, c.value
        );
    }
    for o in &tx.output {
        let who = Address::from_script(&o.script_pubkey, args.node.network)
            .map(|a| a.to_string())
            .or_else(|| {
                o.script_pubkey
                    .op_return_data()
                    .map(|d| format!("OP_RETURN \"{}\"", String::from_utf8_lossy(d)))
            })
            .unwrap_or_default();
        let mark = if change_address.as_deref() == Some(who.as_str()) {
            "  (change)"
        } else {
            ""
        };
        text += &format!("output  {who}  {}{mark}\n", o.value);
    }
    text += &format!(
        "fee     {}  ({size} bytes, {:.2} units/byte)\n",
        fee,
        fee.to_units() as f64 / size as f64
    );
    if dry_run {
        text += "dry run: nothing sent\n";
        return Ok(Output {
            json: summary,
            text,
        });
    }
    // Save the change key before broadcasting, so a crash cannot lose change.
    if change_address.is_some() {
        ks.save(&path, false)?;
    }
    let sent = node.send_raw(&tx).await?;
    text += &format!("sent {sent}\n");
    Ok(Output {
        json: summary,
        text,
    })
}

/// Builds and signs the transaction, then sets the fee to the rate times the exact signed size
/// (re-signing when the size moves), taking any difference from the change. A signature can
/// be one byte shorter or longer after re-signing; if the size flips back and forth, the fee
/// for the larger size is kept, so the rate is never below the one asked for.
fn build_and_sign(
    ks: &Keystore,
    selection: &Selection,
    change: Option<&str>,
    rate: i64,
) -> anyhow::Result<(Transaction, Amount)> {
    let total_in: Amount = selection.inputs.iter().map(|c| c.value).sum();
    let paid: Amount = selection.outputs.iter().map(|o| o.value).sum();
    let mut fee = selection.fee;
    for attempt in 0..4 {
        let mut tx = Transaction {
            version: 1,
            input: selection
                .inputs
                .iter()
                .map(|c| TxIn {
                    previous_output: c.outpoint,
                    script_sig: Script::new(),
                    sequence: u32::MAX,
                })
                .collect(),
            output: selection.outputs.clone(),
            lock_time: 0,
        };
        if let Some(addr) = change {
            let a = Address::parse(addr, ks.network)?;
            tx.output.push(TxOut {
                value: total_in - paid - fee,
                script_pubkey: a.script_pubkey(),
            });
        }
        sign(ks, &mut tx, &selection.inputs)?;
        if change.is_none() {
            return Ok((tx, fee));
        }
        let exact = coinselect::fee_for(tx.size(), rate);
        if exact == fee || (attempt > 0 && fee > exact) {
            return Ok((tx, fee));
        }
        fee = exact;
    }
    bail!("could not settle the fee; try again")
}

fn sign(ks: &Keystore, tx: &mut Transaction, coins: &[Coin]) -> anyhow::Result<()> {
    for (i, coin) in coins.iter().enumerate() {
        let key = ks
            .key_for(&coin.address)
            .with_context(|| format!("no key for {}", coin.address))?;
        let script = Address::parse(&coin.address, ks.network)?.script_pubkey();
        let mut sig = key.sign_digest(&legacy_sighash(tx, i, &script, SIGHASH_ALL));
        sig.push(SIGHASH_ALL as u8);
        tx.input[i].script_sig = Script::new_p2pkh_script_sig(&sig, &key.public_key().to_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_checked() {
        assert_eq!(
            parse_amount("12.5").unwrap(),
            Amount::from_units(1_250_000_000)
        );
        for bad in [
            "0",
            "0.0",
            "-1",
            "1.123456789",
            "21000000.00000001",
            "abc",
            "",
        ] {
            assert!(parse_amount(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cli_parses_like_the_docs_say() {
        let a = Args::try_parse_from([
            "w",
            "--network",
            "regtest",
            "send",
            "rADDR",
            "1.5",
            "--fee-rate",
            "3",
            "--dry-run",
        ])
        .unwrap();
        assert!(matches!(
            a.command,
            Command::Send {
                fee_rate: 3,
                dry_run: true,
                ..
            }
        ));
        assert!(
            Args::try_parse_from(["w", "send", "rADDR"]).is_err(),
            "amount or --send-all"
        );
        assert!(Args::try_parse_from(["w", "send", "rADDR", "--send-all"]).is_ok());
        assert!(
            Args::try_parse_from(["w", "--rpc-user", "u", "balance"]).is_err(),
            "user needs password"
        );
        assert!(Args::try_parse_from(["w", "--network", "nope", "info"]).is_err());
    }
}
