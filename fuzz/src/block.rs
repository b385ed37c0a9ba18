//! Block decoding and the context-free block checks: what a peer's `block` message body and
//! an RPC client's `submitblock` hex reach.
//!
//! Input: a serialized block. Checked: no panic; a block that decodes re-encodes to exactly
//! the input bytes (decoding is strict, so the encoding is unique) and its size is the input's
//! length. [`check_block`] runs against every network as given; then, so that the fuzzer gets
//! past the merkle root and proof of work it cannot forge, again on regtest with the merkle
//! root recomputed and the nonce ground (regtest's limit is met by about every second hash),
//! followed by the pure checks that take a height or time from the caller.

use chaincore::encode::{deserialize, serialize};
use chaincore::pow::block_subsidy;
use chaincore::validation::{
    check_block, check_coinbase_amount, check_coinbase_height, check_finality, check_proof_of_work,
};
use chaincore::{Amount, Block, Network};

/// Nonces tried on the regtest copy before giving up on its proof of work.
const NONCE_TRIES: u32 = 64;

/// Runs one input (see the module docs).
pub fn run(data: &[u8]) {
    let Ok(block) = deserialize::<Block>(data) else {
        return;
    };
    assert_eq!(
        serialize(&block),
        data,
        "a decoded block re-encodes differently"
    );
    assert_eq!(block.size(), data.len());
    for network in Network::ALL {
        if let Ok(txids) = check_block(&block, network) {
            assert_eq!(txids, block.compute_txids());
        }
    }

    let mut fixed = block;
    let (root, _mutated) = fixed.compute_merkle_root();
    fixed.header.merkle_root = root;
    for nonce in 0..NONCE_TRIES {
        fixed.header.nonce = nonce;
        if check_proof_of_work(&fixed.header, Network::Regtest).is_ok() {
            break;
        }
    }
    let _ = check_block(&fixed, Network::Regtest);
    let time = i64::from(fixed.header.time);
    for height in [1, 16, 17, 1_000_000] {
        let _ = check_coinbase_height(&fixed, height);
        let _ = check_finality(&fixed, height, time);
        let _ = check_coinbase_amount(&fixed, block_subsidy(height), Amount::ZERO);
    }
}
