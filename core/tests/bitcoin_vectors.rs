//! Bitcoin's own data, decoded and checked with our code: mainnet blocks, the 500 legacy sighash
//! vectors, the transaction vectors, and the Base58 / Base58Check vectors. See `data/README.md`.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use chaincore::address::{base58check_decode, base58check_encode};
use chaincore::encode::{deserialize, serialize};
use chaincore::sighash::legacy_sighash;
use chaincore::{Block, Script, Transaction};
use serde_json::Value;

fn json(text: &str) -> Vec<Value> {
    serde_json::from_str::<Vec<Value>>(text).expect("test data is valid JSON")
}

/// Rows with the given number of fields; single-string rows are comments.
fn rows(text: &str, len: usize) -> Vec<Vec<Value>> {
    json(text)
        .into_iter()
        .filter_map(|v| v.as_array().cloned())
        .filter(|r| r.len() == len)
        .collect()
}

fn block_named(name: &str) -> Vec<u8> {
    let row = rows(include_str!("data/checkblock_valid.json"), 5)
        .into_iter()
        .find(|r| r[0].as_str() == Some(name))
        .expect("block present in test data");
    hex::decode(row[4].as_str().unwrap()).unwrap()
}

#[test]
fn mainnet_blocks_round_trip_with_known_hashes() {
    // Hashes of Bitcoin mainnet blocks 0, 99,960 and 99,993 (as shown by any block explorer;
    // checked here against an independent SHA-256d in Python when the fixture was added), and
    // the number of transactions in each.
    let cases = [
        (
            "Genesis block",
            "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
            "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b",
            1,
        ),
        (
            "Block 99960, three transactions",
            "0000000000032d10c9c3fe953772e3e0b0e3b7553aad593384a6ccf30f1c9c27",
            "34d5a57822efa653019edfee29b9586a0d0d807572275b45f39a7e9c25614bf9",
            3,
        ),
        (
            "Block 99993, four transactions",
            "00000000000306f827d8cc344b91a2a74074e3e1800e523ead74a20a915db27c",
            "ff2ecc061ab7f9034ba9cbda612b36313b946b1b2696cc09e70f9e9acb791170",
            4,
        ),
    ];
    for (name, hash, merkle, ntx) in cases {
        let bytes = block_named(name);
        let block: Block = deserialize(&bytes).unwrap();
        assert_eq!(serialize(&block), bytes, "{name} re-encodes byte for byte");
        assert_eq!(block.block_hash().to_string(), hash, "{name}");
        assert_eq!(block.txdata.len(), ntx, "{name}");
        let (root, mutated) = block.compute_merkle_root();
        assert_eq!(root.to_string(), merkle, "{name}");
        assert_eq!(root, block.header.merkle_root, "{name}");
        assert!(!mutated);
        assert!(block
            .header
            .target()
            .unwrap()
            .is_met_by(&block.block_hash()));
        assert_eq!(block.size(), bytes.len());
    }
    // The genesis coinbase txid is the merkle root of a one-transaction block.
    let genesis: Block = deserialize(&block_named("Genesis block")).unwrap();
    assert_eq!(
        genesis.txdata[0].compute_txid().to_string(),
        "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
    );
    assert!(genesis.txdata[0].is_coinbase());
}

#[test]
fn truncated_and_extended_blocks_are_rejected() {
    let bytes = block_named("Block 99960, three transactions");
    for cut in [0, 1, 79, 80, 81, bytes.len() / 2, bytes.len() - 1] {
        assert!(deserialize::<Block>(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(deserialize::<Block>(&longer).is_err());
}

#[test]
fn all_500_sighash_vectors_match() {
    let vectors = rows(include_str!("data/sighash.json"), 5);
    assert_eq!(vectors.len(), 500);
    for (i, v) in vectors.iter().enumerate() {
        let tx: Transaction = v[0].as_str().unwrap().parse().unwrap();
        let script = Script(hex::decode(v[1].as_str().unwrap()).unwrap());
        let index = v[2].as_u64().unwrap() as usize;
        let hash_type = v[3].as_i64().unwrap() as i32 as u32;
        let mut digest = legacy_sighash(&tx, index, &script, hash_type);
        digest.reverse();
        assert_eq!(hex::encode(digest), v[4].as_str().unwrap(), "vector {i}");
    }
}

/// True if the hex is in BIP144 witness form (marker 0x00, flag 0x01 after the version).
fn is_witness_serialization(bytes: &[u8]) -> bool {
    bytes.len() > 6 && bytes[4] == 0 && bytes[5] == 1
}

#[test]
fn transaction_vectors_round_trip_and_witness_form_is_refused() {
    let mut legacy = 0;
    let mut witness = 0;
    for text in [
        include_str!("data/tx_valid.json"),
        include_str!("data/tx_invalid.json"),
    ] {
        for row in rows(text, 3) {
            let Some(hex_tx) = row[1].as_str() else {
                continue;
            };
            let bytes = hex::decode(hex_tx).unwrap();
            if is_witness_serialization(&bytes) {
                // Our chain has no witness data: the legacy decoder must refuse these bytes.
                assert!(deserialize::<Transaction>(&bytes).is_err(), "{hex_tx}");
                witness += 1;
            } else {
                let tx: Transaction = deserialize(&bytes).unwrap();
                assert_eq!(serialize(&tx), bytes);
                legacy += 1;
            }
        }
    }
    assert_eq!((legacy, witness), (173, 41));
}

#[test]
fn base58_vectors() {
    for row in rows(include_str!("data/base58_encode_decode.json"), 2) {
        let raw = hex::decode(row[0].as_str().unwrap()).unwrap();
        let text = row[1].as_str().unwrap();
        assert_eq!(bs58::encode(&raw).into_string(), text);
        assert_eq!(bs58::decode(text).into_vec().unwrap(), raw);
    }
}

#[test]
fn base58check_key_io_vectors() {
    let mut checked = 0;
    for row in rows(include_str!("data/key_io_valid.json"), 3) {
        let text = row[0].as_str().unwrap();
        let expected = hex::decode(row[1].as_str().unwrap()).unwrap();
        let is_privkey = row[2]["isPrivkey"].as_bool().unwrap();
        // Bech32 (segwit) addresses are not Base58Check; skip them.
        let Ok(payload) = base58check_decode(text) else {
            assert!(text.contains('1') && text.to_lowercase() == text, "{text}");
            continue;
        };
        if is_privkey {
            // WIF: version, 32-byte key, then 0x01 if the public key is compressed.
            assert_eq!(&payload[1..33], &expected[..]);
        } else if let Some(hash) = Script(expected.clone()).p2pkh_hash() {
            assert_eq!(payload[1..], hash);
        } else {
            // P2SH: OP_HASH160 <20> OP_EQUAL.
            assert_eq!(payload[1..], expected[2..22]);
        }
        assert_eq!(base58check_encode(&payload), text);
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} Base58Check vectors found");
}
