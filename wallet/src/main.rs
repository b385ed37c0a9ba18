//! `chaincore-wallet`: keys on disk, balances and coins from a node, signed transactions.
//!
//! # Layout
//! - `keystore` and `hd` (the library `chaincore_wallet`): the wallet file, BIP39 and BIP32.
//! - [`lock`]: the wallet lock file that makes commands on one wallet run one at a time.
//! - [`scan`]: the gap-limit scan of the node's address index that `restore` runs.
//! - [`prompt`]: passphrases and mnemonic words from files or the terminal.
//! - [`coinselect`]: coin selection, change and fees.
//! - [`node`]: the JSON-RPC connection to `chaincore-node`.

mod coinselect;
mod lock;
mod node;
mod prompt;
mod scan;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use chaincore::config::RpcArgs;
use chaincore::key::PrivateKey;
use chaincore::{Address, Amount, OutPoint, Script, Transaction, TxOut};
use chaincore_wallet::{hd, keystore};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::coinselect::{Coin, FeeRate, Selection};
use crate::hd::Chain;
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
    /// How to reach the node (also from chaincore.conf).
    #[command(flatten)]
    node: RpcArgs,
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

/// Length of a new mnemonic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum WordCount {
    /// 12 words (128 bits of entropy).
    #[value(name = "12")]
    Twelve,
    /// 24 words (256 bits of entropy).
    #[value(name = "24")]
    TwentyFour,
}

impl WordCount {
    fn count(self) -> usize {
        match self {
            WordCount::Twelve => 12,
            WordCount::TwentyFour => 24,
        }
    }
}

/// The optional BIP39 passphrase (the "25th word"): a different passphrase gives a different,
/// equally valid wallet, so it must be kept with the words.
#[derive(clap::Args, Debug)]
struct Bip39Passphrase {
    /// Use a BIP39 passphrase, asked on the terminal.
    #[arg(long)]
    bip39_passphrase: bool,
    /// Read the BIP39 passphrase from the first line of this file.
    #[arg(long, conflicts_with = "bip39_passphrase")]
    bip39_passphrase_file: Option<PathBuf>,
}

impl Bip39Passphrase {
    /// The passphrase, or the empty string BIP39 uses when there is none.
    fn read(&self, confirm: bool) -> anyhow::Result<Zeroizing<String>> {
        match (&self.bip39_passphrase_file, self.bip39_passphrase) {
            (Some(file), _) => prompt::first_line(file, "BIP39 passphrase"),
            (None, true) => {
                prompt::ask_secret("BIP39 passphrase", confirm, "--bip39-passphrase-file")
            }
            (None, false) => Ok(Zeroizing::new(String::new())),
        }
    }

    fn given(&self) -> bool {
        self.bip39_passphrase || self.bip39_passphrase_file.is_some()
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a new HD wallet: shows its mnemonic words once and asks for them back.
    Create {
        /// Encrypt the seed with a passphrase (asked on the terminal or read from
        /// --passphrase-file).
        #[arg(long)]
        encrypt: bool,
        /// Number of mnemonic words.
        #[arg(long, value_enum, default_value = "12")]
        words: WordCount,
        /// Print the words (in the JSON as "mnemonic") instead of showing them on the terminal
        /// and asking for them back: for scripts, which must keep them safe themselves.
        #[arg(long)]
        show_mnemonic: bool,
        #[command(flatten)]
        bip39: Bip39Passphrase,
    },
    /// Rebuild an HD wallet from its mnemonic words, finding its used addresses on the node.
    Restore {
        /// Read the words from this file instead of asking on the terminal.
        #[arg(long, env = "CHAINCORE_MNEMONIC_FILE")]
        mnemonic_file: Option<PathBuf>,
        #[command(flatten)]
        bip39: Bip39Passphrase,
        /// Encrypt the seed with a passphrase (asked on the terminal or read from
        /// --passphrase-file).
        #[arg(long)]
        encrypt: bool,
        /// Stop scanning a chain after this many unused addresses in a row.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        gap_limit: u32,
    },
    /// Show the wallet file, network and number of addresses.
    Info,
    /// Create a new receiving address.
    NewAddress {
        /// A label to remember it by.
        #[arg(long, default_value = "")]
        label: String,
        /// An address on the change chain instead (Bitcoin Core's getrawchangeaddress), for
        /// transactions built by hand.
        #[arg(long)]
        change: bool,
    },
    /// List the wallet's addresses.
    Addresses,
    /// Confirmed, unconfirmed and immature (coinbase) balance.
    Balance,
    /// List spendable and pending coins.
    Utxos,
    /// Send coins: `send <address> <amount>`, or `send --to ADDR=AMOUNT --to ADDR=AMOUNT …`
    /// to pay several recipients in one transaction (amounts in coins).
    Send {
        /// Destination address (one recipient; use --to for several).
        #[arg(required_unless_present = "to")]
        address: Option<String>,
        /// Amount in coins (up to 8 decimals); omit with --send-all.
        #[arg(
            required_unless_present_any = ["send_all", "to"],
            allow_negative_numbers = true
        )]
        amount: Option<String>,
        /// A recipient and amount in coins as ADDR=AMOUNT; repeat for several recipients.
        #[arg(long = "to", value_name = "ADDR=AMOUNT", conflicts_with_all = ["address", "send_all"])]
        to: Vec<String>,
        /// Fee rate in units per byte, decimals allowed (1.5); the fee is rounded up to a
        /// whole unit [default: the node's estimatesmartfee for 6 blocks, or the minimum relay
        /// fee, 1, when the node has no estimate].
        #[arg(long)]
        fee_rate: Option<FeeRate>,
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

/// Prints the result. A reader that goes away early (`wallet utxos | head`) is not an error:
/// `println!` would panic on the broken pipe.
fn print_output(out: &Output, json_output: bool) {
    use std::io::Write;
    let text = if json_output {
        serde_json::to_string_pretty(&out.json).unwrap_or_default()
    } else {
        out.text.trim_end().to_string()
    };
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("error: cannot write the output: {e}");
            std::process::exit(1);
        }
        _ => {}
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

    /// The wallet passphrase from --passphrase-file, or asked on the terminal (twice if
    /// `confirm`).
    fn passphrase(&self, confirm: bool) -> anyhow::Result<Zeroizing<String>> {
        match &self.passphrase_file {
            Some(file) => prompt::first_line(file, "passphrase"),
            None => prompt::ask_secret("wallet passphrase", confirm, "--passphrase-file"),
        }
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
        let path = self.wallet_path()?;
        match Keystore::load(&path, self.node.network) {
            Err(keystore::KeystoreError::Missing(_)) if self.wallet.is_none() => {
                bail!(self.missing_wallet(&path))
            }
            loaded => Ok(loaded?),
        }
    }

    /// What to say when the default wallet file of this network does not exist: `--network`
    /// defaults to main, so a user with a regtest wallet who forgot the flag is told to add
    /// it rather than to create a mainnet wallet.
    fn missing_wallet(&self, path: &std::path::Path) -> String {
        let network = self.node.network;
        let found: Vec<(chaincore::Network, PathBuf)> = chaincore::Network::ALL
            .into_iter()
            .filter(|&n| n != network)
            .filter_map(|n| {
                let mut other = self.node.clone();
                other.network = n;
                let file = other.network_dir().ok()?.join("wallet.json");
                file.exists().then_some((n, file))
            })
            .collect();
        match found.as_slice() {
            [] => format!(
                "no wallet for {network} at {}: create one with `chaincore-wallet --network {network} create` \
                 (or give --network test or regtest for a test network, --wallet FILE for another file)",
                path.display()
            ),
            [(n, file)] => format!(
                "no wallet for {network} at {}; found one for {n} at {}: add `--network {n}`",
                path.display(),
                file.display()
            ),
            several => format!(
                "no wallet for {network} at {}; found wallets for {}: add `--network` with one of them",
                path.display(),
                several
                    .iter()
                    .map(|(n, _)| n.to_string())
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        }
    }

    /// Loads the wallet with its private keys available.
    fn load_unlocked(&self) -> anyhow::Result<Keystore> {
        let mut ks = self.load()?;
        if !ks.is_unlocked() {
            ks.unlock(&self.passphrase(false)?)?;
        }
        Ok(ks)
    }

    /// Fails unless `path` is free for a new wallet (checked again when the file is written).
    fn refuse_existing(&self, path: &std::path::Path) -> anyhow::Result<()> {
        if path.exists() {
            bail!(
                "a wallet already exists at {}; refusing to overwrite it",
                path.display()
            );
        }
        Ok(())
    }
}

async fn run(mut args: Args) -> anyhow::Result<Output> {
    args.node.load()?;
    match &args.command {
        Command::Create {
            encrypt,
            words,
            show_mnemonic,
            bip39,
        } => create(&args, *encrypt, *words, *show_mnemonic, bip39),
        Command::Restore {
            mnemonic_file,
            bip39,
            encrypt,
            gap_limit,
        } => restore(&args, mnemonic_file.as_deref(), bip39, *encrypt, *gap_limit).await,
        Command::Info => {
            let path = args.wallet_path()?;
            let ks = args.load()?;
            let receive = ks.entries.iter().filter(|e| !e.change).count();
            let change = ks.entries.len() - receive;
            let kind = if ks.is_hd() {
                "HD (BIP39 seed)"
            } else {
                "random keys"
            };
            let account = ks.is_hd().then(|| hd::account_path(ks.network));
            Ok(Output {
                text: format!(
                    "wallet: {}\nnetwork: {}\nkind: {kind}{}\nencrypted: {}\naddresses: {} ({receive} receive, {change} change)",
                    path.display(),
                    ks.network,
                    account.as_ref().map(|a| format!("\naccount: {a}")).unwrap_or_default(),
                    ks.is_encrypted(),
                    ks.entries.len()
                ),
                json: json!({"wallet": path, "network": ks.network, "hd": ks.is_hd(), "account": account, "encrypted": ks.is_encrypted(), "addresses": ks.entries.len(), "receive_addresses": receive, "change_addresses": change}),
            })
        }
        Command::NewAddress { label, change } => {
            let path = args.wallet_path()?;
            let _lock = args.lock()?;
            let mut ks = args.load_unlocked()?;
            let chain = if *change {
                Chain::Change
            } else {
                Chain::Receive
            };
            let address = ks.new_address(chain, label.clone())?;
            ks.save(&path, false)?;
            let entry = ks.entries.last();
            let hd_path = entry.and_then(|e| ks.path_of(e));
            Ok(Output {
                text: address.clone(),
                json: json!({"address": address, "label": label, "change": change, "path": hd_path}),
            })
        }
        Command::Addresses => {
            let ks = args.load()?;
            let text = ks
                .entries
                .iter()
                .map(|e| {
                    let kind = if e.change { " (change)" } else { "" };
                    let path = ks.path_of(e).map(|p| format!("  {p}")).unwrap_or_default();
                    let label = if e.label.is_empty() {
                        String::new()
                    } else {
                        format!("  {}", e.label)
                    };
                    format!("{}{kind}{path}{label}", e.address)
                })
                .collect::<Vec<_>>()
                .join("\n");
            let rows: Vec<Value> = ks
                .entries
                .iter()
                .map(|e| json!({"address": e.address, "label": e.label, "change": e.change, "path": ks.path_of(e)}))
                .collect();
            Ok(Output {
                text,
                json: json!(rows),
            })
        }
        Command::Balance => {
            let ks = args.load()?;
            let node = args.node()?;
            let (text, json) = balance(&node, &ks).await?;
            Ok(Output { text, json })
        }
        Command::Utxos => {
            let ks = args.load()?;
            let node = args.node()?;
            let utxos = node.utxos(&addresses(&ks)).await?;
            let text = utxos
                .iter()
                .map(|u| {
                    let coinbase = match immature_for(u) {
                        Some(1) => "  coinbase, immature: spendable in 1 block".to_string(),
                        Some(blocks) => {
                            format!("  coinbase, immature: spendable in {blocks} blocks")
                        }
                        None if u.coinbase => "  coinbase".to_string(),
                        None => String::new(),
                    };
                    format!(
                        "{}:{}  {}  {} conf{coinbase}{}",
                        u.txid,
                        u.vout,
                        Amount::from_units(u.value),
                        u.confirmations,
                        if u.spent_in_mempool {
                            "  (spent, unconfirmed)"
                        } else {
                            ""
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            let rows: Vec<Value> = utxos.iter().map(|u| json!({"txid": u.txid, "vout": u.vout, "amount": Amount::from_units(u.value).to_string(), "confirmations": u.confirmations, "coinbase": u.coinbase, "immature": immature_for(u).is_some(), "address": u.address, "spent_in_mempool": u.spent_in_mempool})).collect();
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
            to,
            fee_rate,
            data,
            send_all,
            dry_run,
        } => {
            let network = args.node.network;
            let payees = match (address, amount, *send_all) {
                (Some(a), None, true) => Payees::All(parse_address(a, network)?),
                (Some(a), Some(amount), false) => {
                    Payees::Amounts(vec![(parse_address(a, network)?, parse_amount(amount)?)])
                }
                (None, None, false) if !to.is_empty() => {
                    Payees::Amounts(parse_recipients(to, network)?)
                }
                _ => bail!(
                    "give an address and an amount, an address and --send-all, or --to ADDR=AMOUNT"
                ),
            };
            send(&args, payees, *fee_rate, data.as_deref(), *dry_run).await
        }
        Command::History => {
            let ks = args.load()?;
            let node = args.node()?;
            let ours = addresses(&ks);
            let rows: Vec<HistoryLine> = node
                .history(&ours)
                .await?
                .iter()
                .map(|r| HistoryLine::new(r, &ours, args.node.network))
                .collect();
            let text = rows
                .iter()
                .map(HistoryLine::text)
                .collect::<Vec<_>>()
                .join("\n");
            let json_rows: Vec<Value> = rows.iter().map(HistoryLine::json).collect();
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
            let address = ks.import_key(key, "imported".into())?;
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

/// `create`: a new HD wallet from new words, written only once the words were confirmed (or
/// printed, with --show-mnemonic).
fn create(
    args: &Args,
    encrypt: bool,
    words: WordCount,
    show_mnemonic: bool,
    bip39: &Bip39Passphrase,
) -> anyhow::Result<Output> {
    let path = args.wallet_path()?;
    args.refuse_existing(&path)?;
    if !show_mnemonic && !prompt::interactive() {
        bail!(
            "create shows the mnemonic words on a terminal and asks for them back; \
             without a terminal pass --show-mnemonic to print them (keep them safe: they are the only backup)"
        );
    }
    let passphrase = if encrypt {
        Some(args.passphrase(true)?)
    } else {
        None
    };
    let bip39_passphrase = bip39.read(true)?;
    let mnemonic = hd::new_mnemonic(words.count())?;
    if !show_mnemonic {
        prompt::show_and_confirm(&mnemonic)?;
    }
    let seed = hd::seed(&mnemonic, &bip39_passphrase);
    let _lock = args.lock()?;
    let ks = Keystore::create_hd(
        args.node.network,
        seed,
        passphrase.as_deref().map(|p| p.as_str()),
    )?;
    ks.save(&path, true)?;
    let address = ks.entries[0].address.clone();
    let mut json = json!({
        "wallet": path,
        "network": args.node.network,
        "encrypted": encrypt,
        "address": address,
        "words": words.count(),
        "bip39_passphrase": bip39.given(),
        "account": hd::account_path(args.node.network),
    });
    let mut text = format!(
        "created {} HD wallet {}\naddress: {address}",
        args.node.network,
        path.display()
    );
    if show_mnemonic {
        let phrase = Zeroizing::new(mnemonic.to_string());
        json["mnemonic"] = json!(phrase.as_str());
        text += &format!("\nmnemonic: {}\nwrite these words down and keep them safe: they are the wallet's only backup", phrase.as_str());
    }
    Ok(Output { json, text })
}

/// `restore`: rebuilds an HD wallet from its words, keeping every address up to the last used
/// one on each chain, and shows the balance found.
async fn restore(
    args: &Args,
    mnemonic_file: Option<&std::path::Path>,
    bip39: &Bip39Passphrase,
    encrypt: bool,
    gap_limit: u32,
) -> anyhow::Result<Output> {
    let path = args.wallet_path()?;
    args.refuse_existing(&path)?;
    // Every check on what was typed comes before anything is written.
    let mnemonic = prompt::mnemonic_words(mnemonic_file)?;
    let bip39_passphrase = bip39.read(false)?;
    let passphrase = if encrypt {
        Some(args.passphrase(true)?)
    } else {
        None
    };
    let seed = hd::seed(&mnemonic, &bip39_passphrase);
    let network = args.node.network;
    let account = hd::Account::new(&seed, network)?;
    let node = args.node()?;
    let receive = scan::scan_chain(&node, &account, Chain::Receive, gap_limit).await?;
    let change = scan::scan_chain(&node, &account, Chain::Change, gap_limit).await?;

    let _lock = args.lock()?;
    let mut ks = Keystore::create_hd(network, seed, passphrase.as_deref().map(|p| p.as_str()))?;
    while ks.next_index(Chain::Receive) < receive.keep() {
        ks.new_address(Chain::Receive, String::new())?;
    }
    while ks.next_index(Chain::Change) < change.keep() {
        ks.new_address(Chain::Change, String::new())?;
    }
    ks.save(&path, true)?;
    let (balance_text, balance_json) = balance(&node, &ks).await?;
    Ok(Output {
        text: format!(
            "restored {network} HD wallet {}\nused addresses: {} receive, {} change (looked at {} and {}, gap limit {gap_limit})\n{balance_text}",
            path.display(),
            receive.used,
            change.used,
            receive.scanned,
            change.scanned,
        ),
        json: json!({
            "wallet": path,
            "network": network,
            "encrypted": encrypt,
            "gap_limit": gap_limit,
            "receive": {"used": receive.used, "scanned": receive.scanned, "kept": ks.next_index(Chain::Receive)},
            "change": {"used": change.used, "scanned": change.scanned, "kept": ks.next_index(Chain::Change)},
            "balance": balance_json,
        }),
    })
}

/// Blocks until a coinbase output can be spent, if it cannot be yet.
fn immature_for(u: &node::Utxo) -> Option<u64> {
    let maturity = u64::from(chaincore::validation::COINBASE_MATURITY);
    (u.coinbase && u.confirmations < maturity).then(|| maturity - u.confirmations)
}

/// The balance of every address of `ks` as Bitcoin Core's `getbalances` splits it, three parts
/// that add up to the total: `trusted` (confirmed mature coins, and unconfirmed change of our
/// own transactions), `untrusted pending` (unconfirmed payments from others), `immature`
/// (coinbase outputs under 100 confirmations). A coin an unconfirmed transaction of ours
/// spends counts nowhere: its change stands in for it. Text and JSON.
async fn balance(node: &NodeClient, ks: &Keystore) -> anyhow::Result<(String, Value)> {
    let ours = addresses(ks);
    let mut from_us: std::collections::HashMap<String, bool> = Default::default();
    let (mut trusted, mut pending, mut immature) = (Amount::ZERO, Amount::ZERO, Amount::ZERO);
    for u in node.utxos(&ours).await? {
        let value = Amount::from_units(u.value);
        if u.spent_in_mempool {
            continue;
        }
        if immature_for(&u).is_some() {
            immature = immature + value;
        } else if u.confirmations > 0 {
            trusted = trusted + value;
        } else {
            let mine = match from_us.get(&u.txid) {
                Some(&m) => m,
                None => {
                    let txid = u.txid.parse().context("node sent a bad txid")?;
                    let m = spends_only_ours(&node.raw_tx(&txid).await?.tx, &ours, ks.network);
                    from_us.insert(u.txid.clone(), m);
                    m
                }
            };
            if mine {
                trusted = trusted + value;
            } else {
                pending = pending + value;
            }
        }
    }
    let total = trusted + pending + immature;
    let [trusted, pending, immature, total] =
        [trusted, pending, immature, total].map(|a| a.to_string());
    Ok((
        format!(
            "trusted:           {trusted:>18}  (spendable: confirmed, and change of your own sends)\n\
             untrusted pending: {pending:>18}  (unconfirmed payments to you)\n\
             immature:          {immature:>18}  (mined, spendable after {} confirmations)\n\
             total:             {total:>18}",
            chaincore::validation::COINBASE_MATURITY
        ),
        json!({"trusted": trusted, "untrusted_pending": pending, "immature": immature, "total": total}),
    ))
}

/// True if every input of `tx` is signed by a key of one of `ours` (it is our own
/// transaction, so its change can be trusted before it confirms, as Core trusts it).
fn spends_only_ours(tx: &Transaction, ours: &[String], network: chaincore::Network) -> bool {
    tx.input.iter().all(|input| {
        input
            .script_sig
            .p2pkh_script_sig_parts()
            .map(|(_, pubkey)| {
                Address::p2pkh(chaincore::hash::hash160(pubkey), network).to_string()
            })
            .is_some_and(|a| ours.contains(&a))
    })
}

/// One line of `history`: what a transaction did to the wallet.
struct HistoryLine {
    txid: String,
    /// `receive`, `send`, `self` (every output is ours) or `coinbase`.
    direction: &'static str,
    /// Who was paid (a send) or which of our addresses was (a receive).
    address: Option<String>,
    /// What went to others (negative) or came to us (positive).
    amount: i64,
    /// The change in the wallet's balance: `amount` less any fee we paid.
    net: i64,
    /// The fee, when the wallet paid it.
    fee: Option<Amount>,
    confirmations: u64,
    time: Option<u64>,
    /// The text of an OP_RETURN output.
    data: Option<String>,
}

impl HistoryLine {
    fn new(r: &node::HistoryRow, ours: &[String], network: chaincore::Network) -> HistoryLine {
        let tx = &r.raw.tx;
        let address_of =
            |o: &TxOut| Address::from_script(&o.script_pubkey, network).map(|a| a.to_string());
        let is_ours = |o: &TxOut| address_of(o).is_some_and(|a| ours.contains(&a));
        let received: i64 = tx
            .output
            .iter()
            .filter(|o| is_ours(o))
            .map(|o| o.value.to_units())
            .sum();
        let to_others: i64 = tx
            .output
            .iter()
            .filter(|o| !is_ours(o))
            .map(|o| o.value.to_units())
            .sum();
        let output_total = received + to_others;
        let first = |mine: bool| {
            tx.output
                .iter()
                .filter(|o| is_ours(o) == mine)
                .find_map(address_of)
        };
        let paid_by_us = r.spent > 0;
        let fee = r
            .input_total
            .filter(|_| paid_by_us)
            .map(|inputs| Amount::from_units(inputs - output_total));
        let (direction, address, amount) = if tx.is_coinbase() {
            ("coinbase", first(true), received)
        } else if !paid_by_us {
            ("receive", first(true), received)
        } else if first(false).is_some() {
            ("send", first(false), -to_others)
        } else {
            ("self", first(true), 0)
        };
        HistoryLine {
            txid: r.txid.to_string(),
            direction,
            address,
            amount,
            net: received - r.spent,
            fee,
            confirmations: r.raw.confirmations,
            time: r.raw.time,
            data: tx
                .output
                .iter()
                .find_map(|o| o.script_pubkey.op_return_data())
                .map(|d| String::from_utf8_lossy(d).into_owned()),
        }
    }

    fn time_text(&self) -> String {
        self.time
            .map(|t| httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(t)))
            .unwrap_or_else(|| "unknown time".into())
    }

    fn text(&self) -> String {
        let mut line = format!(
            "{}  {:<8}  {:>18}  {:>6} conf  {}  {}",
            self.time_text(),
            self.direction,
            signed(self.amount),
            self.confirmations,
            self.address.as_deref().unwrap_or("-"),
            self.txid
        );
        if let Some(fee) = self.fee {
            line += &format!("  fee {fee}");
        }
        if let Some(data) = &self.data {
            line += &format!("  OP_RETURN {data:?}");
        }
        line
    }

    fn json(&self) -> Value {
        json!({
            "txid": self.txid,
            "direction": self.direction,
            "address": self.address,
            "amount": signed(self.amount),
            "net": signed(self.net),
            "fee": self.fee.map(|f| f.to_string()),
            "confirmations": self.confirmations,
            "time": self.time,
            "data": self.data,
        })
    }
}

/// Units as coins with a sign: `+12.50000000`, `-0.00000226`.
fn signed(units: i64) -> String {
    let sign = if units >= 0 { "+" } else { "-" };
    format!("{sign}{}", Amount::from_units(units.abs()))
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

fn parse_address(s: &str, network: chaincore::Network) -> anyhow::Result<Address> {
    Address::parse(s, network).map_err(|e| anyhow::anyhow!("bad address '{s}': {e}"))
}

/// Parses `--to ADDR=AMOUNT` arguments; an address may appear once (as Bitcoin Core's
/// `sendmany` insists).
fn parse_recipients(
    to: &[String],
    network: chaincore::Network,
) -> anyhow::Result<Vec<(Address, Amount)>> {
    let mut out: Vec<(Address, Amount)> = Vec::with_capacity(to.len());
    for arg in to {
        let (address, amount) = arg
            .split_once('=')
            .with_context(|| format!("bad --to '{arg}': expected ADDR=AMOUNT"))?;
        let address = parse_address(address.trim(), network)?;
        let amount = parse_amount(amount.trim())?;
        if out.iter().any(|(a, _)| a == &address) {
            bail!("bad --to '{arg}': {address} is already a recipient; give each address once");
        }
        out.push((address, amount));
    }
    Ok(out)
}

/// Who a `send` pays.
enum Payees {
    /// These recipients these amounts; change goes back to the wallet.
    Amounts(Vec<(Address, Amount)>),
    /// Everything spendable, less the fee, to one address.
    All(Address),
}

/// The confirmation target the wallet asks the node's fee estimate for.
const FEE_TARGET_BLOCKS: u32 = 6;

async fn send(
    args: &Args,
    payees: Payees,
    fee_rate: Option<FeeRate>,
    data: Option<&str>,
    dry_run: bool,
) -> anyhow::Result<Output> {
    if let Some(r) = fee_rate.filter(|&r| r < FeeRate::MIN_RELAY) {
        bail!("--fee-rate {r} is below the node's minimum relay fee, 1 unit per byte: the node would not accept the transaction");
    }
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
    let (fee_rate, rate_source) = match fee_rate {
        Some(r) => (r, "--fee-rate".to_string()),
        None => match node.fee_estimate(FEE_TARGET_BLOCKS).await? {
            // Coins per 1,000 bytes → units per 1,000 bytes (exact after rounding the float).
            Some(coins_per_kvb) => (
                FeeRate::per_kb((coins_per_kvb * 100_000_000.0).round().max(0.0) as u64)
                    .max(FeeRate::MIN_RELAY),
                format!("the node's estimate for {FEE_TARGET_BLOCKS} blocks"),
            ),
            None => (
                FeeRate::MIN_RELAY,
                "the minimum relay fee: the node has no fee estimate yet".to_string(),
            ),
        },
    };
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
    let selection = match payees {
        Payees::Amounts(recipients) => {
            let mut outputs: Vec<TxOut> = recipients
                .iter()
                .map(|(to, amount)| TxOut {
                    value: *amount,
                    script_pubkey: to.script_pubkey(),
                })
                .collect();
            outputs.extend(data_outputs);
            coinselect::select(&coins, outputs, fee_rate)?
        }
        Payees::All(to) => {
            coinselect::select_all(&coins, to.script_pubkey(), data_outputs, fee_rate)?
        }
    };
    if !ks.is_unlocked() {
        ks.unlock(&args.passphrase(false)?)?;
    }
    let change_address = selection
        .change
        .map(|_| ks.new_address(Chain::Change, String::new()))
        .transpose()?;
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
        "fee_rate_chosen": rate_json(fee_rate),
        "fee_rate_source": rate_source,
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
        "fee     {}  ({size} bytes, {:.2} units/byte; {fee_rate} units/byte from {rate_source})\n",
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
    rate: FeeRate,
) -> anyhow::Result<(Transaction, Amount)> {
    let total_in: Amount = selection.inputs.iter().map(|c| c.value).sum();
    let paid: Amount = selection.outputs.iter().map(|o| o.value).sum();
    let mut fee = selection.fee;
    for attempt in 0..4 {
        let outpoints: Vec<OutPoint> = selection.inputs.iter().map(|c| c.outpoint).collect();
        let mut tx = Transaction::new_unsigned(&outpoints, selection.outputs.clone());
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

/// A fee rate in JSON: a whole number of units per byte as an integer, else a decimal.
fn rate_json(rate: FeeRate) -> Value {
    let text = rate.to_string();
    text.parse::<u64>()
        .map(Value::from)
        .or_else(|_| text.parse::<f64>().map(Value::from))
        .unwrap_or(Value::Null)
}

fn sign(ks: &Keystore, tx: &mut Transaction, coins: &[Coin]) -> anyhow::Result<()> {
    for (i, coin) in coins.iter().enumerate() {
        let key = ks
            .key_for(&coin.address)
            .with_context(|| format!("no key for {}", coin.address))?;
        let script = Address::parse(&coin.address, ks.network)?.script_pubkey();
        chaincore::sign_p2pkh_input(tx, i, &script, key)?;
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
                fee_rate: Some(r),
                dry_run: true,
                ..
            } if r == FeeRate::per_byte(3)
        ));
        let decimals =
            Args::try_parse_from(["w", "send", "rADDR", "1", "--fee-rate", "1.25"]).unwrap();
        assert!(matches!(
            decimals.command,
            Command::Send { fee_rate: Some(r), .. } if r == FeeRate::per_kb(1_250)
        ));
        let err = Args::try_parse_from(["w", "send", "rADDR", "1", "--fee-rate", "1,5"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("units per byte"), "{err}");
        assert!(
            Args::try_parse_from(["w", "send", "rADDR"]).is_err(),
            "amount or --send-all"
        );
        assert!(Args::try_parse_from(["w", "send", "rADDR", "--send-all"]).is_ok());
        // The password may come from chaincore.conf, so the pair is checked once the file is
        // read (none in a data directory that does not exist).
        let mut a = Args::try_parse_from([
            "w",
            "--datadir",
            "/nonexistent/cc",
            "--rpc-user",
            "u",
            "balance",
        ])
        .unwrap();
        assert!(a.node.load().is_err(), "user needs password");
        assert!(Args::try_parse_from(["w", "--network", "nope", "info"]).is_err());
    }

    #[test]
    fn new_commands_parse_like_the_docs_say() {
        let a = Args::try_parse_from(["w", "send", "--to", "rA=1", "--to", "rB=2.5"]).unwrap();
        assert!(matches!(a.command, Command::Send { ref to, address: None, .. } if to.len() == 2));
        for bad in [
            &["w", "send", "rADDR", "--to", "rA=1"][..],
            &["w", "send", "--to", "rA=1", "--send-all"],
            &["w", "send"],
            &["w", "create", "--words", "13"],
            &[
                "w",
                "create",
                "--bip39-passphrase",
                "--bip39-passphrase-file",
                "f",
            ],
            &["w", "restore", "--gap-limit", "0"],
        ] {
            assert!(Args::try_parse_from(bad).is_err(), "{bad:?}");
        }
        let c = Args::try_parse_from(["w", "--json", "create", "--show-mnemonic", "--words", "24"])
            .unwrap();
        assert!(matches!(
            c.command,
            Command::Create {
                words: WordCount::TwentyFour,
                show_mnemonic: true,
                ..
            }
        ));
        let r = Args::try_parse_from(["w", "restore", "--mnemonic-file", "m.txt"]).unwrap();
        assert!(matches!(r.command, Command::Restore { gap_limit: 20, .. }));
        assert_eq!(r.lock_timeout, 60);
    }

    #[test]
    fn recipients_are_checked() {
        let net = chaincore::Network::Regtest;
        let a = Address::p2pkh([1; 20], net).to_string();
        let b = Address::p2pkh([2; 20], net).to_string();
        let two = parse_recipients(&[format!("{a}=1.5"), format!("{b}=0.25")], net).unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(two[1].1, Amount::from_units(25_000_000));
        for (bad, why) in [
            (vec![a.clone()], "expected ADDR=AMOUNT"),
            (
                vec![format!("{a}=1"), format!("{a}=2")],
                "already a recipient",
            ),
            (vec![format!("{a}=0")], "must be more than zero"),
            (vec![format!("{a}x=1")], "bad address"),
        ] {
            let err = parse_recipients(&bad, net).unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}
