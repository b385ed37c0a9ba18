//! One test per consensus rule that `core` decides: each crafted transaction or block triggers
//! exactly its Bitcoin Core reject reason.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use chaincore::block::Header;
use chaincore::key::PrivateKey;
use chaincore::merkle::MerkleTxids;
use chaincore::pow::block_subsidy;
use chaincore::validation::{
    check_block, check_block_time, check_block_with_txids, check_coinbase_amount,
    check_coinbase_height, check_difficulty, check_finality, check_transaction, check_tx_inputs,
    coinbase_height_prefix, median_time, next_work_required, verify_input, Coin, RuleError,
    MAX_BLOCK_SIZE,
};
use chaincore::{Amount, Block, Network, OutPoint, Script, Transaction, TxIn, TxOut, Txid};

const NET: Network = Network::Regtest;

fn coinbase(height: u32, value: Amount) -> Transaction {
    let mut script_sig = coinbase_height_prefix(height);
    script_sig.push_slice(b"test");
    Transaction {
        version: 1,
        input: vec![TxIn {
            previous_output: OutPoint::NULL,
            script_sig,
            sequence: u32::MAX,
        }],
        output: vec![TxOut {
            value,
            script_pubkey: Script::new_p2pkh(&[1; 20]),
        }],
        lock_time: 0,
    }
}

/// A properly signed spend of `prev` (locked to the fixed test key) paying `value`.
fn spend(prev: OutPoint, value: Amount) -> (Transaction, Script) {
    let key = PrivateKey::from_bytes(&[0x42; 32]).unwrap();
    let prev_script = Script::new_p2pkh(&key.public_key().pubkey_hash());
    let pay = TxOut {
        value,
        script_pubkey: Script::new_p2pkh(&[2; 20]),
    };
    let mut tx = Transaction::new_unsigned(&[prev], vec![pay]);
    chaincore::sign_p2pkh_input(&mut tx, 0, &prev_script, &key).unwrap();
    (tx, prev_script)
}

fn outpoint(n: u8) -> OutPoint {
    OutPoint {
        txid: Txid([n; 32]),
        vout: 0,
    }
}

/// A block on top of regtest genesis with `txs` after a coinbase, merkle root set and solved.
fn block_with(txs: Vec<Transaction>) -> Block {
    let mut txdata = vec![coinbase(1, block_subsidy(1))];
    txdata.extend(txs);
    solve(Block {
        header: Header {
            version: 1,
            prev_blockhash: NET.genesis_hash(),
            merkle_root: Default::default(),
            time: NET.params().genesis_time + 10,
            bits: NET.params().pow_limit_bits,
            nonce: 0,
        },
        txdata,
    })
}

fn solve(mut block: Block) -> Block {
    block.header.merkle_root = block.compute_merkle_root().0;
    let target = block.header.target().unwrap();
    while !target.is_met_by(&block.block_hash()) {
        block.header.nonce += 1;
    }
    block
}

fn tx_err(tx: &Transaction) -> String {
    check_transaction(tx).unwrap_err().to_string()
}

#[test]
fn valid_block_passes() {
    let (tx, _) = spend(outpoint(1), Amount::ONE_COIN);
    check_block(&block_with(vec![tx]), NET).unwrap();
}

#[test]
fn bad_txns_vin_empty() {
    let (mut tx, _) = spend(outpoint(1), Amount::ONE_COIN);
    tx.input.clear();
    assert_eq!(tx_err(&tx), "bad-txns-vin-empty");
}

#[test]
fn bad_txns_vout_empty() {
    let (mut tx, _) = spend(outpoint(1), Amount::ONE_COIN);
    tx.output.clear();
    assert_eq!(tx_err(&tx), "bad-txns-vout-empty");
}

#[test]
fn bad_txns_oversize() {
    let (mut tx, _) = spend(outpoint(1), Amount::ONE_COIN);
    let out = tx.output[0].clone();
    tx.output = vec![out; MAX_BLOCK_SIZE / 34 + 1];
    assert_eq!(tx_err(&tx), "bad-txns-oversize");
}

#[test]
fn bad_txns_vout_negative() {
    let (mut tx, _) = spend(outpoint(1), Amount::from_units(-1));
    assert_eq!(tx_err(&tx), "bad-txns-vout-negative");
    tx.output[0].value = Amount::ZERO;
    check_transaction(&tx).unwrap();
}

#[test]
fn bad_txns_vout_toolarge() {
    let (tx, _) = spend(
        outpoint(1),
        Amount::from_units(Amount::MAX_MONEY.to_units() + 1),
    );
    assert_eq!(tx_err(&tx), "bad-txns-vout-toolarge");
}

#[test]
fn bad_txns_txouttotal_toolarge() {
    let (mut tx, _) = spend(outpoint(1), Amount::MAX_MONEY);
    tx.output.push(tx.output[0].clone());
    assert_eq!(tx_err(&tx), "bad-txns-txouttotal-toolarge");
}

#[test]
fn bad_txns_inputs_duplicate() {
    let (mut tx, _) = spend(outpoint(1), Amount::ONE_COIN);
    tx.input.push(tx.input[0].clone());
    assert_eq!(tx_err(&tx), "bad-txns-inputs-duplicate");
}

#[test]
fn bad_cb_length() {
    let mut cb = coinbase(1, Amount::ONE_COIN);
    cb.input[0].script_sig = Script(vec![0x51]);
    assert_eq!(tx_err(&cb), "bad-cb-length");
    cb.input[0].script_sig = Script(vec![0x51; 101]);
    assert_eq!(tx_err(&cb), "bad-cb-length");
    cb.input[0].script_sig = Script(vec![0x51; 100]);
    check_transaction(&cb).unwrap();
}

#[test]
fn bad_txns_prevout_null() {
    let (mut tx, _) = spend(outpoint(1), Amount::ONE_COIN);
    let (second, _) = spend(OutPoint::NULL, Amount::ONE_COIN);
    tx.input.push(second.input[0].clone());
    assert_eq!(tx_err(&tx), "bad-txns-prevout-null");
}

#[test]
fn bad_txns_vout_script() {
    let (mut tx, _) = spend(outpoint(1), Amount::ONE_COIN);
    // Pay-to-script-hash is not one of our templates.
    let mut p2sh = Script(vec![0xa9, 20]);
    p2sh.0.extend_from_slice(&[7; 20]);
    p2sh.0.push(0x87);
    tx.output[0].script_pubkey = p2sh;
    assert_eq!(tx_err(&tx), "bad-txns-vout-script");
    let mut big = Script(vec![0x6a]);
    big.push_slice(&[0; 81]);
    tx.output[0] = TxOut {
        value: Amount::ZERO,
        script_pubkey: big,
    };
    assert_eq!(tx_err(&tx), "bad-txns-vout-script");
}

#[test]
fn bad_txns_vout_opreturn_value() {
    let (mut tx, _) = spend(outpoint(1), Amount::ONE_COIN);
    tx.output[0].script_pubkey = Script::new_op_return(b"data").unwrap();
    assert_eq!(tx_err(&tx), "bad-txns-vout-opreturn-value");
}

#[test]
fn bad_txns_vin_script() {
    let (mut tx, _) = spend(outpoint(1), Amount::ONE_COIN);
    let good = tx.input[0].script_sig.clone();
    tx.input[0].script_sig = Script(vec![0x51]);
    assert_eq!(tx_err(&tx), "bad-txns-vin-script");
    // Non-strict DER (total length byte off by one) in an otherwise well-formed scriptSig.
    let (sig, pk) = good.p2pkh_script_sig_parts().unwrap();
    let mut sig = sig.to_vec();
    sig[1] -= 1;
    tx.input[0].script_sig = Script::new_p2pkh_script_sig(&sig, pk);
    assert_eq!(tx_err(&tx), "bad-txns-vin-script");
}

#[test]
fn high_hash() {
    let mut block = block_with(vec![]);
    // Find a nonce whose hash misses the (very easy) regtest target.
    while block
        .header
        .target()
        .unwrap()
        .is_met_by(&block.block_hash())
    {
        block.header.nonce += 1;
    }
    assert_eq!(check_block(&block, NET).unwrap_err(), RuleError::HighHash);
    // bits easier than the pow limit, and invalid bits, are refused too.
    let mut easy = block_with(vec![]);
    easy.header.bits = 0x2100ffff;
    assert_eq!(check_block(&easy, NET).unwrap_err(), RuleError::HighHash);
    easy.header.bits = 0x04923456;
    assert_eq!(check_block(&easy, NET).unwrap_err(), RuleError::HighHash);
}

#[test]
fn bad_txnmrklroot() {
    let mut block = block_with(vec![]);
    block.header.merkle_root = Default::default();
    let block = resolve_keeping_root(block);
    assert_eq!(
        check_block(&block, NET).unwrap_err().to_string(),
        "bad-txnmrklroot"
    );
}

#[test]
fn known_txids_are_checked_against_the_merkle_root() {
    let (a, _) = spend(outpoint(1), Amount::ONE_COIN);
    let (b, _) = spend(outpoint(2), Amount::ONE_COIN);
    let block = block_with(vec![a, b]);
    let txids = block.compute_txids();
    assert_eq!(
        check_block_with_txids(&block, NET, MerkleTxids::new(txids.clone())).unwrap(),
        txids
    );
    // A txid list that is not the block's: wrong order, one missing, one wrong.
    let mut swapped = txids.clone();
    swapped.swap(1, 2);
    let mut wrong = txids.clone();
    wrong[2] = Txid([7; 32]);
    for bad in [swapped, txids[..2].to_vec(), wrong] {
        assert_eq!(
            check_block_with_txids(&block, NET, MerkleTxids::new(bad)).unwrap_err(),
            RuleError::BadMerkleRoot
        );
    }
}

fn resolve_keeping_root(mut block: Block) -> Block {
    let target = block.header.target().unwrap();
    while !target.is_met_by(&block.block_hash()) {
        block.header.nonce += 1;
    }
    block
}

#[test]
fn bad_txns_duplicate() {
    // CVE-2012-2459: [cb, a, b, b] has the same root as [cb, a, b]; the mutated one is refused.
    let (a, _) = spend(outpoint(1), Amount::ONE_COIN);
    let (b, _) = spend(outpoint(2), Amount::ONE_COIN);
    let good = block_with(vec![a.clone(), b.clone()]);
    let mut bad = good.clone();
    bad.txdata.push(b);
    assert_eq!(bad.compute_merkle_root().0, good.header.merkle_root);
    assert_eq!(
        check_block(&bad, NET).unwrap_err().to_string(),
        "bad-txns-duplicate"
    );
}

#[test]
fn bad_blk_length() {
    // An empty block's merkle root is zero; the header commits to that to reach the size check.
    let mut empty = block_with(vec![]);
    empty.txdata.clear();
    empty.header.merkle_root = Default::default();
    let empty = resolve_keeping_root(empty);
    assert_eq!(
        check_block(&empty, NET).unwrap_err().to_string(),
        "bad-blk-length"
    );

    let (tx, _) = spend(outpoint(1), Amount::ONE_COIN);
    let txs: Vec<Transaction> = (0..(MAX_BLOCK_SIZE / tx.size() + 1) as u32)
        .map(|i| {
            spend(
                OutPoint {
                    txid: Txid([1; 32]),
                    vout: i,
                },
                Amount::ONE_COIN,
            )
            .0
        })
        .collect();
    let big = block_with(txs);
    assert!(big.size() > MAX_BLOCK_SIZE);
    assert_eq!(
        check_block(&big, NET).unwrap_err().to_string(),
        "bad-blk-length"
    );
}

#[test]
fn bad_cb_missing_and_multiple() {
    let (tx, _) = spend(outpoint(1), Amount::ONE_COIN);
    let mut missing = block_with(vec![tx]);
    missing.txdata.remove(0);
    let missing = solve(missing);
    assert_eq!(
        check_block(&missing, NET).unwrap_err().to_string(),
        "bad-cb-missing"
    );

    let multiple = block_with(vec![coinbase(2, Amount::ONE_COIN)]);
    assert_eq!(
        check_block(&multiple, NET).unwrap_err().to_string(),
        "bad-cb-multiple"
    );
}

#[test]
fn transaction_rules_apply_inside_blocks() {
    let (tx, _) = spend(outpoint(1), Amount::from_units(-5));
    assert_eq!(
        check_block(&block_with(vec![tx]), NET)
            .unwrap_err()
            .to_string(),
        "bad-txns-vout-negative"
    );
}

#[test]
fn bad_diffbits() {
    let header = block_with(vec![]).header;
    let expected = next_work_required(NET, 0, header.time - 10);
    check_difficulty(&header, expected).unwrap();
    assert_eq!(
        check_difficulty(&header, 0x1d00ffff)
            .unwrap_err()
            .to_string(),
        "bad-diffbits"
    );
    // On main, blocks on schedule keep the genesis target; early blocks raise difficulty.
    let main = Network::Main.params();
    assert_eq!(
        next_work_required(Network::Main, 0, main.genesis_time),
        main.pow_limit_bits
    );
    assert_ne!(
        next_work_required(Network::Main, 1000, main.genesis_time + 100),
        main.pow_limit_bits
    );
}

#[test]
fn time_too_old_and_too_new() {
    let times: Vec<u32> = (0..11).map(|i| 1000 + i * 10).collect();
    let mtp = median_time(&times);
    assert_eq!(mtp, 1050);
    let mut header = block_with(vec![]).header;
    header.time = 1050;
    assert_eq!(
        check_block_time(&header, mtp, 2000)
            .unwrap_err()
            .to_string(),
        "time-too-old"
    );
    header.time = 1051;
    check_block_time(&header, mtp, 2000).unwrap();
    header.time = 2121;
    assert_eq!(
        check_block_time(&header, mtp, 2000)
            .unwrap_err()
            .to_string(),
        "time-too-new"
    );
    header.time = 2120;
    check_block_time(&header, mtp, 2000).unwrap();
}

#[test]
fn bad_cb_height() {
    let block = block_with(vec![]);
    check_coinbase_height(&block, 1).unwrap();
    assert_eq!(
        check_coinbase_height(&block, 2).unwrap_err().to_string(),
        "bad-cb-height"
    );
    // Heights 1-16 are OP_1..OP_16, larger ones minimal pushes, as Bitcoin Core does.
    assert_eq!(coinbase_height_prefix(16).0, vec![0x60]);
    assert_eq!(coinbase_height_prefix(17).0, vec![1, 17]);
    assert_eq!(coinbase_height_prefix(300).0, vec![2, 0x2c, 0x01]);
}

/// The scriptSig cpuminer 2.5.1 writes for `height`, exactly as its source does
/// (`cpu-miner.c`, `gbt_work_decode`, pooler/cpuminer tag v2.5.1, lines 471-477):
///
/// ```c
/// for (n = work->height; n; n >>= 8) {
///     cbtx[cbtx_size++] = n & 0xff;
///     if (n < 0x100 && n >= 0x80)
///         cbtx[cbtx_size++] = 0;
/// }
/// cbtx[42] = cbtx_size - 43;
/// ```
fn cpuminer_script_sig(height: u32) -> Vec<u8> {
    let mut digits = Vec::new();
    let mut n = height;
    while n != 0 {
        digits.push((n & 0xff) as u8);
        if (0x80..0x100).contains(&n) {
            digits.push(0);
        }
        n >>= 8;
    }
    let mut s = vec![digits.len() as u8];
    s.extend(digits);
    s
}

fn block_with_script_sig(script_sig: Vec<u8>) -> Block {
    let mut block = block_with(vec![]);
    block.txdata[0].input[0].script_sig = Script(script_sig);
    block
}

#[test]
fn cpuminer_height_bytes_are_accepted_at_every_height_and_mean_only_that_height() {
    // What the real miner sends, checked against its own bytes (not our encoder).
    assert_eq!(cpuminer_script_sig(1), vec![0x01, 0x01]);
    assert_eq!(cpuminer_script_sig(16), vec![0x01, 0x10]);
    assert_eq!(cpuminer_script_sig(17), vec![0x01, 0x11]);
    assert_eq!(cpuminer_script_sig(128), vec![0x02, 0x80, 0x00]);
    assert_eq!(cpuminer_script_sig(300), vec![0x02, 0x2c, 0x01]);
    for height in 1..=1_000u32 {
        let block = block_with_script_sig(cpuminer_script_sig(height));
        check_coinbase_height(&block, height).unwrap();
        // The same bytes are no other height's prefix, in either encoding.
        for other in [height - 1, height + 1, height + 256] {
            if other > 0 {
                assert!(
                    check_coinbase_height(&block, other).is_err(),
                    "{height} as {other}"
                );
            }
        }
        // Core's encoding stays accepted.
        let core = block_with_script_sig(coinbase_height_prefix(height).0);
        check_coinbase_height(&core, height).unwrap();
    }
    // Above 16 the one-byte data push of a small number is not an alternative.
    assert!(check_coinbase_height(&block_with_script_sig(vec![0x01, 0x05]), 5 + 256).is_err());
    assert!(check_coinbase_height(&block_with_script_sig(vec![0x01, 0x00]), 0).is_err());
}

#[test]
fn bad_cb_amount() {
    let block = block_with(vec![]);
    check_coinbase_amount(&block, block_subsidy(1), Amount::ZERO).unwrap();
    assert_eq!(
        check_coinbase_amount(
            &block,
            block_subsidy(1) - Amount::from_units(1),
            Amount::ZERO
        )
        .unwrap_err()
        .to_string(),
        "bad-cb-amount"
    );
}

#[test]
fn bad_txns_nonfinal() {
    let (mut tx, _) = spend(outpoint(1), Amount::ONE_COIN);
    tx.lock_time = 5;
    tx.input[0].sequence = 0;
    let block = block_with(vec![tx]);
    assert_eq!(
        check_finality(&block, 5, 0).unwrap_err().to_string(),
        "bad-txns-nonfinal"
    );
    check_finality(&block, 6, 0).unwrap();
}

fn coin(value: Amount, height: u32, is_coinbase: bool) -> Coin {
    Coin {
        output: TxOut {
            value,
            script_pubkey: Script::new_p2pkh(&[0; 20]),
        },
        height,
        is_coinbase,
    }
}

#[test]
fn tx_input_rules() {
    let (tx, _) = spend(outpoint(1), Amount::ONE_COIN);
    let c = coin(Amount::from_units(150_000_000), 1, true);
    assert_eq!(
        check_tx_inputs(&tx, &[&c], 101),
        Ok(Amount::from_units(50_000_000))
    );
    assert_eq!(
        check_tx_inputs(&tx, &[&c], 100).unwrap_err().to_string(),
        "bad-txns-premature-spend-of-coinbase"
    );
    let small = coin(Amount::from_units(99_999_999), 1, false);
    assert_eq!(
        check_tx_inputs(&tx, &[&small], 2).unwrap_err().to_string(),
        "bad-txns-in-belowout"
    );
    let huge = coin(
        Amount::from_units(Amount::MAX_MONEY.to_units() + 1),
        1,
        false,
    );
    assert_eq!(
        check_tx_inputs(&tx, &[&huge], 2).unwrap_err().to_string(),
        "bad-txns-inputvalues-outofrange"
    );
    assert_eq!(
        check_tx_inputs(&tx, &[], 2).unwrap_err().to_string(),
        "bad-txns-inputs-missingorspent"
    );
}

#[test]
fn script_failure_reason_names_the_problem() {
    let (tx, prev) = spend(outpoint(1), Amount::ONE_COIN);
    verify_input(&tx, 0, &prev).unwrap();
    let err = RuleError::Script(verify_input(&tx, 0, &Script::new_p2pkh(&[9; 20])).unwrap_err());
    assert_eq!(
        err.to_string(),
        "mandatory-script-verify-flag-failed (public key does not match the output's hash)"
    );
}
