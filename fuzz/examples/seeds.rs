//! Writes the seed inputs of every fuzz target into `DIR/<target>/` (default `fuzz/corpus`):
//! real messages made with the project's own encoders, and Bitcoin's test vectors from
//! `core/tests/data` (see `core/tests/data/README.md` for where each came from).
//!
//! `cargo run -p chaincore-fuzz --example seeds [-- DIR]`; `fuzz/run` then minimizes the
//! corpus with `afl-cmin`, so only seeds that add coverage stay committed. Each file name says
//! what the seed is; the contents are deterministic (fixed keys, salts and nonces).

use std::path::{Path, PathBuf};

use argon2::Argon2;
use bytes::BytesMut;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use chaincore::block::Header;
use chaincore::encode::serialize;
use chaincore::hash::hash160;
use chaincore::key::PrivateKey;
use chaincore::p2p::compact::{BlockTxn, CompactBlock, GetBlockTxn, SendCmpct, COMPACT_VERSION};
use chaincore::p2p::{Codec, Inv, Message, Version, INV_BLOCK, INV_TX, PROTOCOL_VERSION};
use chaincore::pow::block_subsidy;
use chaincore::sighash::{legacy_sighash, SIGHASH_ALL};
use chaincore::validation::{check_block, coinbase_height_prefix};
use chaincore::{
    Amount, Block, BlockHash, Network, OutPoint, Script, Transaction, TxIn, TxOut, Txid,
};
use chaincore_wallet::hd;
use chaincore_wallet::keystore::Keystore;
use serde_json::{json, Value};
use tokio_util::codec::Encoder;

const TX_VALID: &str = include_str!("../../core/tests/data/tx_valid.json");
const TX_INVALID: &str = include_str!("../../core/tests/data/tx_invalid.json");
const SIGHASH: &str = include_str!("../../core/tests/data/sighash.json");
const CHECKBLOCK: &str = include_str!("../../core/tests/data/checkblock_valid.json");
const LEGACY_PLAIN: &str = include_str!("../../wallet/tests/data/legacy_v1_plain.json");
const LEGACY_ENCRYPTED: &str = include_str!("../../wallet/tests/data/legacy_v1_encrypted.json");

/// What the generator's steps fail with.
type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Raw transactions taken from `sighash.json` (it has 500; they differ mostly in scripts).
const SIGHASH_TXS: usize = 40;

fn main() -> Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    let mut n = 0;
    let mut write = |target: &str, name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let d = dir.join(target);
        std::fs::create_dir_all(&d)?;
        n += 1;
        std::fs::write(d.join(format!("seed-{name}")), bytes)
    };

    let key = PrivateKey::from_bytes(&[0x11; 32])?;
    let spend = signed_spend(&key, 2);
    let block = regtest_block(&key, &spend);
    let blocks = bitcoin_blocks()?;

    // p2p_message: flags 0x03 (handshake done, checksums fixed), then one frame.
    let regtest = Network::Regtest;
    let ours = Version {
        version: PROTOCOL_VERSION,
        services: 0,
        timestamp: 1_764_000_000,
        nonce: 0x0123_4567_89ab_cdef,
        user_agent: "/chaincore:0.1.0/".into(),
        start_height: 12,
        addr_recv: Some("127.0.0.1:18744".parse()?),
        relay: true,
        genesis: Some(regtest.genesis_hash()),
    };
    let bitcoin = Version {
        user_agent: "/Satoshi:27.0.0/".into(),
        relay: false,
        genesis: None,
        addr_recv: Some("[2001:db8::1]:8333".parse()?),
        ..ours.clone()
    };
    let invs = vec![
        Inv {
            kind: INV_TX,
            hash: spend.compute_txid().0,
        },
        Inv {
            kind: INV_BLOCK,
            hash: block.block_hash().0,
        },
    ];
    let messages = [
        ("version", Message::Version(ours)),
        ("version-bitcoin", Message::Version(bitcoin)),
        ("verack", Message::Verack),
        ("ping", Message::Ping(7)),
        ("pong", Message::Pong(7)),
        ("getaddr", Message::GetAddr),
        ("sendheaders", Message::SendHeaders),
        (
            "addr",
            Message::Addr(vec![
                "10.1.2.3:18744".parse()?,
                "[2001:db8::2]:18744".parse()?,
            ]),
        ),
        ("inv", Message::Inv(invs.clone())),
        ("getdata", Message::GetData(invs.clone())),
        ("notfound", Message::NotFound(invs)),
        (
            "getheaders",
            Message::GetHeaders {
                version: PROTOCOL_VERSION as u32,
                locator: vec![block.block_hash(), regtest.genesis_hash()],
                stop: BlockHash::ZERO,
            },
        ),
        (
            "headers",
            Message::Headers(vec![regtest.genesis_block().header, block.header]),
        ),
        ("block", Message::Block(block.clone())),
        ("tx", Message::Tx(spend.clone())),
        ("wtxidrelay", Message::Unknown("wtxidrelay".into())),
        (
            "sendcmpct",
            Message::SendCmpct(SendCmpct {
                high_bandwidth: true,
                version: COMPACT_VERSION,
            }),
        ),
        (
            "cmpctblock",
            Message::CmpctBlock(Box::new(CompactBlock::from_block(&block, 0x5eed))),
        ),
        (
            "getblocktxn",
            Message::GetBlockTxn(GetBlockTxn {
                block_hash: block.block_hash(),
                indexes: vec![1],
            }),
        ),
        (
            "blocktxn",
            Message::BlockTxn(BlockTxn {
                block_hash: block.block_hash(),
                txs: vec![spend.clone()],
            }),
        ),
    ];
    let mut handshake = vec![0x00];
    for (name, msg) in messages {
        let frame = frame(msg.clone())?;
        if matches!(
            msg,
            Message::Version(_) | Message::Verack | Message::SendHeaders
        ) {
            handshake.extend_from_slice(&frame);
        }
        write("p2p_message", name, &[&[0x03][..], &frame].concat())?;
    }
    write("p2p_message", "handshake-stream", &handshake)?;

    // block: our regtest block, the genesis blocks, three Bitcoin mainnet blocks.
    write("block", "regtest-spend", &serialize(&block))?;
    for network in Network::ALL {
        write(
            "block",
            &format!("genesis-{network}"),
            &serialize(network.genesis_block()),
        )?;
    }
    for (name, bytes) in &blocks {
        write("block", &format!("bitcoin-{name}"), bytes)?;
    }

    // transaction: ours, then Bitcoin Core's vectors.
    write("transaction", "p2pkh-spend", &serialize(&spend))?;
    write("transaction", "coinbase", &serialize(&block.txdata[0]))?;
    for (i, hex_tx) in bitcoin_txs()?.iter().enumerate() {
        write(
            "transaction",
            &format!("bitcoin-{i:03}"),
            &hex::decode(hex_tx)?,
        )?;
    }

    // rpc_request: a call of every method, 2.0 and 1.0 style, a batch, named parameters.
    for (i, body) in rpc_bodies(&block, &spend).iter().enumerate() {
        write("rpc_request", &format!("{i:02}"), body.as_bytes())?;
    }

    // wallet_file: HD and random-key wallets, plain and encrypted with PASSPHRASE.
    for (name, text) in wallets()? {
        write("wallet_file", name, text.as_bytes())?;
    }
    println!("wrote {n} seeds under {}", dir.display());
    Ok(())
}

/// One regtest frame of `msg`, as the node sends it.
fn frame(msg: Message) -> Result<Vec<u8>> {
    let mut codec = Codec::new(Network::Regtest.params().magic);
    let mut buf = BytesMut::new();
    codec.encode(msg, &mut buf)?;
    Ok(buf.to_vec())
}

/// A transaction spending `inputs` made-up P2PKH outputs of `key`, signed as the wallet signs,
/// paying one P2PKH output and one `OP_RETURN`.
fn signed_spend(key: &PrivateKey, inputs: u8) -> Transaction {
    let pubkey = key.public_key();
    let spent = Script::new_p2pkh(&pubkey.pubkey_hash());
    let mut tx = Transaction {
        version: 1,
        input: (0..inputs)
            .map(|i| TxIn {
                previous_output: OutPoint {
                    txid: Txid([0x70 + i; 32]),
                    vout: u32::from(i),
                },
                script_sig: Script::new(),
                sequence: u32::MAX,
            })
            .collect(),
        output: vec![
            TxOut {
                value: Amount::from_units(49_000),
                script_pubkey: Script::new_p2pkh(&hash160(b"recipient")),
            },
            TxOut {
                value: Amount::ZERO,
                script_pubkey: Script::new_op_return(b"fuzz seed").unwrap_or_default(),
            },
        ],
        lock_time: 0,
    };
    for i in 0..tx.input.len() {
        let mut sig = key.sign_digest(&legacy_sighash(&tx, i, &spent, SIGHASH_ALL));
        sig.push(SIGHASH_ALL as u8);
        tx.input[i].script_sig = Script::new_p2pkh_script_sig(&sig, &pubkey.to_bytes());
    }
    tx
}

/// A regtest block at height 1 on genesis holding a coinbase and `spend`, with a valid merkle
/// root and proof of work, so it passes `check_block`.
fn regtest_block(key: &PrivateKey, spend: &Transaction) -> Block {
    let regtest = Network::Regtest;
    let mut script_sig = coinbase_height_prefix(1);
    script_sig.push_slice(b"fuzz");
    let coinbase = Transaction::new_coinbase(
        script_sig,
        block_subsidy(1),
        Script::new_p2pkh(&key.public_key().pubkey_hash()),
    );
    let mut block = Block {
        header: Header {
            version: 1,
            prev_blockhash: regtest.genesis_hash(),
            time: regtest.genesis_block().header.time + 10,
            bits: regtest.params().pow_limit_bits,
            ..Header::default()
        },
        txdata: vec![coinbase, spend.clone()],
    };
    block.header.merkle_root = block.compute_merkle_root().0;
    while check_block(&block, regtest).is_err() {
        block.header.nonce += 1;
    }
    block
}

/// The raw blocks of `checkblock_valid.json`: Bitcoin's genesis, 99960 and 99993.
fn bitcoin_blocks() -> Result<Vec<(String, Vec<u8>)>> {
    let rows: Vec<Value> = serde_json::from_str(CHECKBLOCK)?;
    let mut out = Vec::new();
    for row in rows
        .iter()
        .filter_map(Value::as_array)
        .filter(|r| r.len() == 5)
    {
        let (Some(comment), Some(hex_block)) = (row[0].as_str(), row[4].as_str()) else {
            continue;
        };
        let name: String = comment
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        out.push((name, hex::decode(hex_block)?));
    }
    Ok(out)
}

/// The raw transactions of Bitcoin Core's `tx_valid.json` and `tx_invalid.json`, and the first
/// [`SIGHASH_TXS`] of `sighash.json`.
fn bitcoin_txs() -> Result<Vec<String>> {
    let mut out = Vec::new();
    for file in [TX_VALID, TX_INVALID] {
        let rows: Vec<Value> = serde_json::from_str(file)?;
        for row in rows.iter().filter_map(Value::as_array) {
            if let (Some(Value::Array(_)), Some(Value::String(tx))) = (row.first(), row.get(1)) {
                out.push(tx.clone());
            }
        }
    }
    let rows: Vec<Value> = serde_json::from_str(SIGHASH)?;
    out.extend(
        rows.iter()
            .filter_map(Value::as_array)
            .filter(|r| r.len() == 5)
            .filter_map(|r| r[0].as_str().map(String::from))
            .take(SIGHASH_TXS),
    );
    Ok(out)
}

/// Request bodies: each method with typical parameters as JSON-RPC 2.0, a few as 1.0 (as
/// python-bitcoinlib and bitcoin-cli send them), a mixed batch and named parameters.
fn rpc_bodies(block: &Block, spend: &Transaction) -> Vec<String> {
    let hash = block.block_hash().to_string();
    let txid = spend.compute_txid().to_string();
    let tx_hex = hex::encode(serialize(spend));
    let block_hex = hex::encode(serialize(block));
    let address = chaincore::Address::p2pkh([9; 20], Network::Regtest).to_string();
    let calls: Vec<(&str, Value)> = vec![
        ("getblockchaininfo", json!([])),
        ("getbestblockhash", json!([])),
        ("getblockcount", json!([])),
        ("getblockhash", json!([1])),
        ("getblock", json!([hash, 2])),
        ("getblockheader", json!([hash, false])),
        ("getchaintips", json!([])),
        ("getdifficulty", json!([])),
        ("gettxout", json!([txid, 0, true])),
        ("gettxoutsetinfo", json!([])),
        ("verifychain", json!([4, 10])),
        (
            "getblocktemplate",
            json!([{"rules": [], "longpollid": hash}]),
        ),
        ("submitblock", json!([block_hex])),
        ("getmininginfo", json!([])),
        ("getnetworkhashps", json!([120, -1])),
        ("generatetoaddress", json!([1, address, 1000])),
        ("sendrawtransaction", json!([tx_hex, 0.1])),
        ("testmempoolaccept", json!([[tx_hex]])),
        ("getrawtransaction", json!([txid, true, hash])),
        ("decoderawtransaction", json!([tx_hex])),
        ("getrawmempool", json!([true])),
        ("getmempoolinfo", json!([])),
        ("estimatesmartfee", json!([6, "CONSERVATIVE"])),
        ("savemempool", json!([])),
        ("getmempoolentry", json!([txid])),
        ("getaddressbalance", json!([{"addresses": [address]}])),
        ("getaddressutxos", json!([address])),
        ("getaddresstxids", json!([{"addresses": [address]}])),
        ("invalidateblock", json!([hash])),
        ("reconsiderblock", json!([hash])),
        ("getpeerinfo", json!([])),
        ("getconnectioncount", json!([])),
        ("addnode", json!(["127.0.0.1:18744", "onetry"])),
        ("getnetworkinfo", json!([])),
        ("disconnectnode", json!(["127.0.0.1:18744"])),
        ("getnodeaddresses", json!([10])),
        ("setban", json!(["10.0.0.1", "add", 3600])),
        ("listbanned", json!([])),
        ("clearbanned", json!([])),
        ("ping", json!([])),
        ("uptime", json!([])),
        ("stop", json!([])),
        ("subscribenewtip", json!([])),
        ("help", json!(["getblock"])),
    ];
    let mut out: Vec<String> = calls
        .iter()
        .enumerate()
        .map(|(id, (method, params))| {
            json!({"jsonrpc": "2.0", "method": method, "params": params, "id": id}).to_string()
        })
        .collect();
    // python-bitcoinlib's `bitcoin.rpc.Proxy` (1.0 with "version": "1.1"), a 1.0 call without
    // an id, bitcoin-cli's shape, named parameters, and a batch mixing 1.0 and 2.0 calls.
    out.push(r#"{"version": "1.1", "method": "getblock", "params": ["00", 1], "id": 1}"#.into());
    out.push(r#"{"method":"getblockcount","params":[]}"#.into());
    out.push(r#"{"jsonrpc":"1.0","id":"curltest","method":"getblockhash","params":[0]}"#.into());
    out.push(r#"{"jsonrpc":"2.0","id":3,"method":"gettxout","params":{"txid":"ab","n":1}}"#.into());
    out.push(
        r#"[{"method":"getblockcount","id":1},{"jsonrpc":"2.0","method":"uptime","id":2},7]"#
            .into(),
    );
    out
}

/// Wallet files: an HD wallet (receive, change and imported keys) and a version 1 wallet,
/// each plain and encrypted with [`PASSPHRASE`] under the cheapest Argon2id parameters.
fn wallets() -> Result<Vec<(&'static str, String)>> {
    let dir = tempfile::tempdir()?;
    let words = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
    let seed = hd::seed(&hd::parse_mnemonic(words)?, "");
    let mut ks = Keystore::create_hd(Network::Regtest, seed, None)?;
    ks.new_address(hd::Chain::Receive, "savings".into())?;
    ks.new_address(hd::Chain::Change, String::new())?;
    ks.import_key(PrivateKey::from_bytes(&[0x22; 32])?, "imported".into())?;
    let path = dir.path().join("hd.json");
    ks.save(&path, true)?;
    let hd_plain = std::fs::read_to_string(&path)?;

    // The version 1 test file, its keys taken out by unlocking its passphrase.
    let mut legacy = Keystore::from_json(LEGACY_ENCRYPTED, Network::Regtest, "test data".into())?;
    legacy.unlock("legacy passphrase")?;
    let mut legacy_plain: Value = serde_json::from_str(LEGACY_ENCRYPTED)?;
    let keys: Vec<String> = legacy
        .entries
        .iter()
        .filter_map(|e| legacy.key_for(&e.address))
        .map(|k| hex::encode(k.to_bytes()))
        .collect();
    if let Some(obj) = legacy_plain.as_object_mut() {
        obj.remove("encrypted");
        obj.insert("keys".into(), json!(keys));
    }

    Ok(vec![
        ("hd-plain.json", hd_plain.clone()),
        (
            "hd-encrypted.json",
            seal(&serde_json::from_str(&hd_plain)?)?,
        ),
        ("v1-plain.json", LEGACY_PLAIN.to_string()),
        ("v1-encrypted.json", seal(&legacy_plain)?),
    ])
}

/// The encrypted form of a plain wallet file, as `Keystore::save` writes it (ChaCha20-Poly1305
/// of the seed, if any, then the keys), but with Argon2id at its minimum cost (8 KiB, one
/// pass) so that each unlock costs the fuzzer microseconds, and with a fixed salt and nonce.
fn seal(plain: &Value) -> Result<String> {
    let mut secret = Vec::new();
    if let Some(seed) = plain["seed"].as_str() {
        secret.extend(hex::decode(seed)?);
    }
    for k in plain["keys"].as_array().into_iter().flatten() {
        secret.extend(hex::decode(k.as_str().unwrap_or_default())?);
    }
    let salt = [0x5a; 16];
    let params = argon2::Params::new(8, 1, 1, Some(32)).map_err(|e| e.to_string())?;
    let mut key = [0u8; 32];
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(
            chaincore_fuzz::wallet_file::PASSPHRASE.as_bytes(),
            &salt,
            &mut key,
        )
        .map_err(|e| e.to_string())?;
    let nonce = [0x4e; 12];
    let ciphertext = ChaCha20Poly1305::new(&Key::from(key))
        .encrypt(&Nonce::from(nonce), secret.as_slice())
        .map_err(|e| e.to_string())?;
    let mut file = plain.clone();
    let obj = file.as_object_mut().ok_or("a wallet file is an object")?;
    obj.remove("seed");
    obj.remove("keys");
    obj.insert(
        "encrypted".into(),
        json!({
            "kdf": {"m_cost": 8, "t_cost": 1, "p_cost": 1, "salt": hex::encode(salt)},
            "nonce": hex::encode(nonce),
            "ciphertext": hex::encode(ciphertext),
        }),
    );
    Ok(serde_json::to_string_pretty(&file)?)
}
