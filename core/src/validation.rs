//! Consensus rules, one function per rule, each failing with Bitcoin Core's reject reason.
//!
//! Context-free checks ([`check_transaction`], [`check_block`]) need nothing but the data.
//! Contextual rules take their context (height, median time past, the spent coins) as
//! arguments, so the node supplies the chain state and this crate stays free of I/O.
//! [`check_block`] runs the cheapest checks first: proof of work, merkle root, size, coinbase
//! placement, then every transaction.

use std::collections::HashSet;

use crate::amount::Amount;
use crate::block::{Block, Header};
use crate::encode::impl_consensus_encoding;
use crate::hash::Txid;
use crate::key::{self, SignatureError};
use crate::merkle::MerkleTxids;
use crate::network::Network;
use crate::pow::asert_next_target;
use crate::script::Script;
use crate::sighash::{legacy_sighash, SIGHASH_ALL};
use crate::transaction::{Transaction, TxOut};

/// # Consensus
/// A serialized block is at most 1,000,000 bytes.
pub const MAX_BLOCK_SIZE: usize = 1_000_000;
/// # Consensus
/// Coinbase outputs can be spent only 100 blocks later.
pub const COINBASE_MATURITY: u32 = 100;
/// # Consensus
/// A block's time may be at most this many seconds ahead of the local clock.
pub const MAX_FUTURE_BLOCK_TIME: i64 = 120;
/// Number of previous blocks whose median time a new block must exceed.
pub const MEDIAN_TIME_SPAN: usize = 11;

/// A rule violation, displayed as Bitcoin Core's reject reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// A transaction with no inputs.
    #[error("bad-txns-vin-empty")]
    VinEmpty,
    /// A transaction with no outputs.
    #[error("bad-txns-vout-empty")]
    VoutEmpty,
    /// A transaction larger than a block.
    #[error("bad-txns-oversize")]
    TxOversize,
    /// An output with a negative value.
    #[error("bad-txns-vout-negative")]
    VoutNegative,
    /// An output above the money supply.
    #[error("bad-txns-vout-toolarge")]
    VoutTooLarge,
    /// Outputs summing above the money supply.
    #[error("bad-txns-txouttotal-toolarge")]
    OutputTotalTooLarge,
    /// The same outpoint spent twice in one transaction.
    #[error("bad-txns-inputs-duplicate")]
    InputsDuplicate,
    /// A coinbase scriptSig outside 2..=100 bytes.
    #[error("bad-cb-length")]
    CoinbaseLength,
    /// A non-coinbase input spending the null outpoint.
    #[error("bad-txns-prevout-null")]
    PrevoutNull,
    /// An output script that is neither P2PKH nor `OP_RETURN` with at most 80 bytes.
    #[error("bad-txns-vout-script")]
    VoutScript,
    /// An `OP_RETURN` output with a non-zero value.
    #[error("bad-txns-vout-opreturn-value")]
    OpReturnValue,
    /// A scriptSig that is not `<strict-DER signature + SIGHASH_ALL> <compressed pubkey>`.
    #[error("bad-txns-vin-script")]
    VinScript,
    /// Proof of work invalid: bad `bits`, above the pow limit, or hash above target.
    #[error("high-hash")]
    HighHash,
    /// The header's merkle root does not match the transactions.
    #[error("bad-txnmrklroot")]
    BadMerkleRoot,
    /// Duplicate transactions (CVE-2012-2459 mutation).
    #[error("bad-txns-duplicate")]
    DuplicateTx,
    /// No transactions, or over the block size limit.
    #[error("bad-blk-length")]
    BlockLength,
    /// The first transaction is not a coinbase.
    #[error("bad-cb-missing")]
    CoinbaseMissing,
    /// More than one coinbase.
    #[error("bad-cb-multiple")]
    CoinbaseMultiple,
    /// `bits` differ from the difficulty adjustment's.
    #[error("bad-diffbits")]
    BadDiffBits,
    /// Time not after the median of the last 11 blocks.
    #[error("time-too-old")]
    TimeTooOld,
    /// Time more than 120 s ahead of the local clock.
    #[error("time-too-new")]
    TimeTooNew,
    /// The coinbase scriptSig does not start with the block height (BIP34).
    #[error("bad-cb-height")]
    CoinbaseHeight,
    /// The coinbase pays more than subsidy plus fees.
    #[error("bad-cb-amount")]
    CoinbaseAmount,
    /// A transaction whose lock time has not passed.
    #[error("bad-txns-nonfinal")]
    NonFinal,
    /// An input's coin does not exist or is already spent.
    #[error("bad-txns-inputs-missingorspent")]
    InputsMissingOrSpent,
    /// Spending a coinbase output before it matured.
    #[error("bad-txns-premature-spend-of-coinbase")]
    PrematureCoinbaseSpend,
    /// Input values outside the money range.
    #[error("bad-txns-inputvalues-outofrange")]
    InputValuesOutOfRange,
    /// Outputs worth more than inputs.
    #[error("bad-txns-in-belowout")]
    InBelowOut,
    /// A signature check failed.
    #[error("mandatory-script-verify-flag-failed ({0})")]
    Script(ScriptFailure),
    /// The previous block is unknown.
    #[error("prev-blk-not-found")]
    PrevBlockNotFound,
    /// The previous block is invalid.
    #[error("bad-prevblk")]
    BadPrevBlock,
}

/// Why an input's scriptSig did not satisfy the output it spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScriptFailure {
    /// The scriptSig is not exactly `<sig> <pubkey>`.
    #[error("scriptSig is not <signature> <compressed pubkey>")]
    Form,
    /// The spent output is not P2PKH.
    #[error("spent output is not P2PKH")]
    NotP2pkh,
    /// HASH160 of the public key does not match the output.
    #[error("public key does not match the output's hash")]
    PubkeyHash,
    /// The signature itself failed.
    #[error("{0}")]
    Signature(SignatureError),
}

/// An unspent output with what the rules need to know about where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coin {
    /// The output.
    pub output: TxOut,
    /// Height of the block that created it.
    pub height: u32,
    /// Whether it was created by a coinbase (then it must mature).
    pub is_coinbase: bool,
}
impl_consensus_encoding!(Coin, output, height, is_coinbase);

/// # Consensus
/// Context-free transaction rules (Bitcoin Core's `CheckTransaction`, plus our script
/// templates): inputs and outputs present, size within a block, output values in the money
/// range, no input spent twice, coinbase scriptSig 2–100 bytes, no null prevout outside a
/// coinbase, every output P2PKH or a zero-value `OP_RETURN` of ≤80 bytes, every non-coinbase
/// scriptSig of the P2PKH form with a strict-DER signature.
pub fn check_transaction(tx: &Transaction) -> Result<(), RuleError> {
    check_tx_not_empty(tx)?;
    check_tx_size(tx)?;
    check_output_values(tx)?;
    check_no_duplicate_inputs(tx)?;
    if tx.is_coinbase() {
        check_coinbase_script_len(tx)?;
    } else {
        check_no_null_prevout(tx)?;
        check_input_scripts_form(tx)?;
    }
    check_output_scripts(tx)
}

/// # Consensus
/// A transaction has at least one input and one output.
fn check_tx_not_empty(tx: &Transaction) -> Result<(), RuleError> {
    if tx.input.is_empty() {
        return Err(RuleError::VinEmpty);
    }
    if tx.output.is_empty() {
        return Err(RuleError::VoutEmpty);
    }
    Ok(())
}

/// # Consensus
/// A transaction is no larger than a block.
fn check_tx_size(tx: &Transaction) -> Result<(), RuleError> {
    if tx.size() > MAX_BLOCK_SIZE {
        return Err(RuleError::TxOversize);
    }
    Ok(())
}

/// # Consensus
/// Each output value and their sum are in `0..=MAX_MONEY`.
fn check_output_values(tx: &Transaction) -> Result<(), RuleError> {
    let mut total = Amount::ZERO;
    for out in &tx.output {
        if out.value < Amount::ZERO {
            return Err(RuleError::VoutNegative);
        }
        if out.value > Amount::MAX_MONEY {
            return Err(RuleError::VoutTooLarge);
        }
        total = total
            .checked_add(out.value)
            .filter(|t| t.is_valid_money())
            .ok_or(RuleError::OutputTotalTooLarge)?;
    }
    Ok(())
}

/// # Consensus
/// No outpoint is spent twice by one transaction.
fn check_no_duplicate_inputs(tx: &Transaction) -> Result<(), RuleError> {
    let mut seen = HashSet::with_capacity(tx.input.len());
    if tx.input.iter().all(|i| seen.insert(i.previous_output)) {
        Ok(())
    } else {
        Err(RuleError::InputsDuplicate)
    }
}

/// # Consensus
/// A coinbase scriptSig is 2 to 100 bytes long.
fn check_coinbase_script_len(tx: &Transaction) -> Result<(), RuleError> {
    if (2..=100).contains(&tx.input[0].script_sig.len()) {
        Ok(())
    } else {
        Err(RuleError::CoinbaseLength)
    }
}

/// # Consensus
/// Only a coinbase may spend the null outpoint.
fn check_no_null_prevout(tx: &Transaction) -> Result<(), RuleError> {
    if tx.input.iter().any(|i| i.previous_output.is_null()) {
        Err(RuleError::PrevoutNull)
    } else {
        Ok(())
    }
}

/// # Consensus
/// A non-coinbase scriptSig is exactly `<strict-DER signature + hash type> <33-byte pubkey>`.
fn check_input_scripts_form(tx: &Transaction) -> Result<(), RuleError> {
    let ok = tx.input.iter().all(|i| {
        i.script_sig
            .p2pkh_script_sig_parts()
            .is_some_and(|(sig, _)| key::is_strict_der(sig))
    });
    if ok {
        Ok(())
    } else {
        Err(RuleError::VinScript)
    }
}

/// # Consensus
/// Every output is P2PKH, or `OP_RETURN` with at most 80 bytes of data and value 0.
fn check_output_scripts(tx: &Transaction) -> Result<(), RuleError> {
    for out in &tx.output {
        if out.script_pubkey.p2pkh_hash().is_some() {
            continue;
        }
        if out.script_pubkey.op_return_data().is_none() {
            return Err(RuleError::VoutScript);
        }
        if out.value != Amount::ZERO {
            return Err(RuleError::OpReturnValue);
        }
    }
    Ok(())
}

/// # Consensus
/// Context-free block rules (Bitcoin Core's `CheckBlock`), cheapest first: proof of work
/// against the header's own `bits` and the network's pow limit, merkle root and no duplicated
/// transactions, 1–1,000,000 bytes, exactly one coinbase and first, then
/// [`check_transaction`] for each transaction. Returns the txids it hashed for the merkle
/// root, in block order, for the caller to reuse.
pub fn check_block(block: &Block, network: Network) -> Result<Vec<Txid>, RuleError> {
    check_block_with_txids(block, network, MerkleTxids::new(block.compute_txids()))
}

/// # Consensus
/// [`check_block`] for a block whose txids the caller has already computed from these very
/// transactions (`txids[i]` of `block.txdata[i]`: a block built from mempool entries, rebuilt
/// from a compact block, or checked before it was relayed), with their merkle root, so neither
/// is computed again; the root is still checked against the header. A list of the wrong length
/// is a bad merkle root.
pub fn check_block_with_txids(
    block: &Block,
    network: Network,
    txids: MerkleTxids,
) -> Result<Vec<Txid>, RuleError> {
    check_proof_of_work(&block.header, network)?;
    if txids.txids().len() != block.txdata.len() {
        return Err(RuleError::BadMerkleRoot);
    }
    check_merkle_root(block, &txids)?;
    check_block_size(block)?;
    check_coinbase_placement(block)?;
    block.txdata.iter().try_for_each(check_transaction)?;
    Ok(txids.into_txids())
}

/// # Consensus
/// `bits` is a valid target no easier than the pow limit, and the header hash meets it.
pub fn check_proof_of_work(header: &Header, network: Network) -> Result<(), RuleError> {
    match header.target() {
        Some(t) if t <= network.pow_limit() && t.is_met_by(&header.compute_block_hash()) => Ok(()),
        _ => Err(RuleError::HighHash),
    }
}

/// The block's txids if its header commits to them (merkle root, tree not mutated): what a
/// node checks before it relays a block ahead of validation, and can then hand to
/// [`check_block_with_txids`].
pub fn txids_matching_merkle_root(block: &Block) -> Option<MerkleTxids> {
    let txids = MerkleTxids::new(block.compute_txids());
    check_merkle_root(block, &txids).ok().map(|()| txids)
}

/// # Consensus
/// The header commits to the transactions' merkle root, and the tree is not mutated.
fn check_merkle_root(block: &Block, txids: &MerkleTxids) -> Result<(), RuleError> {
    if txids.root() != block.header.merkle_root {
        return Err(RuleError::BadMerkleRoot);
    }
    if txids.mutated() {
        return Err(RuleError::DuplicateTx);
    }
    Ok(())
}

/// # Consensus
/// A block has at least one transaction and at most 1,000,000 bytes.
fn check_block_size(block: &Block) -> Result<(), RuleError> {
    if block.txdata.is_empty() || block.size() > MAX_BLOCK_SIZE {
        return Err(RuleError::BlockLength);
    }
    Ok(())
}

/// # Consensus
/// The first transaction, and only the first, is a coinbase.
fn check_coinbase_placement(block: &Block) -> Result<(), RuleError> {
    if !block.txdata[0].is_coinbase() {
        return Err(RuleError::CoinbaseMissing);
    }
    if block.txdata[1..].iter().any(Transaction::is_coinbase) {
        return Err(RuleError::CoinbaseMultiple);
    }
    Ok(())
}

/// # Consensus
/// The `bits` a block at `prev_height + 1` must carry: the pow limit on regtest, otherwise
/// ASERT anchored at genesis (its parent's time taken as genesis time minus one spacing).
pub fn next_work_required(network: Network, prev_height: u32, prev_time: u32) -> u32 {
    let params = network.params();
    if params.no_retargeting {
        return params.pow_limit_bits;
    }
    let anchor_parent_time = i64::from(params.genesis_time) - params.asert.target_spacing;
    asert_next_target(
        network.pow_limit(),
        network.pow_limit(),
        params.asert,
        i64::from(prev_time) - anchor_parent_time,
        i64::from(prev_height),
    )
    .to_compact()
}

/// # Consensus
/// A header's `bits` equal [`next_work_required`].
pub fn check_difficulty(header: &Header, expected_bits: u32) -> Result<(), RuleError> {
    if header.bits == expected_bits {
        Ok(())
    } else {
        Err(RuleError::BadDiffBits)
    }
}

/// # Consensus
/// A block's time is after the median of the previous 11 blocks' times, and at most 120 s
/// after the local clock `now`.
pub fn check_block_time(header: &Header, median_time_past: i64, now: i64) -> Result<(), RuleError> {
    let time = i64::from(header.time);
    if time <= median_time_past {
        return Err(RuleError::TimeTooOld);
    }
    if time > now + MAX_FUTURE_BLOCK_TIME {
        return Err(RuleError::TimeTooNew);
    }
    Ok(())
}

/// Median of up to 11 previous block times (Bitcoin's `GetMedianTimePast`).
pub fn median_time(times: &[u32]) -> i64 {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).map_or(0, |&t| i64::from(t))
}

/// The coinbase scriptSig prefix BIP34 requires at `height`: Bitcoin Core's `CScript() << height`.
pub fn coinbase_height_prefix(height: u32) -> Script {
    let mut s = Script::new();
    s.push_int(i64::from(height));
    s
}

/// # Consensus
/// The coinbase scriptSig starts with the block height (BIP34), pushed as Bitcoin Core does
/// ([`coinbase_height_prefix`]: `OP_1`…`OP_16` for heights 1–16, otherwise a minimal
/// little-endian data push) or, for heights 1–16, as the one-byte data push `01 0N` that
/// cpuminer 2.5.1 writes (`cpu-miner.c`: `for (n = work->height; n; n >>= 8)`). Above 16 the
/// two encodings are the same bytes. Each prefix decodes to exactly one height (`0x51`…`0x60`
/// and `01 01`…`01 10` name 1–16, any other push a height above 16), so no two heights share
/// a coinbase prefix and coinbase transactions stay unique.
pub fn check_coinbase_height(block: &Block, height: u32) -> Result<(), RuleError> {
    let Some(cb) = block.coinbase() else {
        return Err(RuleError::CoinbaseHeight);
    };
    let script_sig = cb.input[0].script_sig.as_bytes();
    let core = coinbase_height_prefix(height);
    let data_push = (1..=16).contains(&height) && script_sig.starts_with(&[0x01, height as u8]);
    if script_sig.starts_with(core.as_bytes()) || data_push {
        Ok(())
    } else {
        Err(RuleError::CoinbaseHeight)
    }
}

/// # Consensus
/// Every transaction in a block at `height` is final at that height and the previous block's
/// median time past (Bitcoin's lock-time rule with BIP113).
pub fn check_finality(block: &Block, height: u32, median_time_past: i64) -> Result<(), RuleError> {
    if block
        .txdata
        .iter()
        .all(|tx| tx.is_final(height, median_time_past))
    {
        Ok(())
    } else {
        Err(RuleError::NonFinal)
    }
}

/// # Consensus
/// The coinbase pays at most the subsidy plus the block's fees.
pub fn check_coinbase_amount(
    block: &Block,
    subsidy: Amount,
    fees: Amount,
) -> Result<(), RuleError> {
    let paid = block
        .coinbase()
        .and_then(Transaction::total_output)
        .ok_or(RuleError::CoinbaseAmount)?;
    match subsidy.checked_add(fees) {
        Some(allowed) if paid <= allowed => Ok(()),
        _ => Err(RuleError::CoinbaseAmount),
    }
}

/// # Consensus
/// Bitcoin Core's `CheckTxInputs` for a non-coinbase `tx` spending `coins` (one per input, in
/// order) in a block at `spend_height`: coinbase outputs are mature, input values are in the money
/// range, and inputs cover outputs. Returns the fee.
pub fn check_tx_inputs(
    tx: &Transaction,
    coins: &[&Coin],
    spend_height: u32,
) -> Result<Amount, RuleError> {
    if coins.len() != tx.input.len() {
        return Err(RuleError::InputsMissingOrSpent);
    }
    let mut total_in = Amount::ZERO;
    for coin in coins {
        if coin.is_coinbase && spend_height.saturating_sub(coin.height) < COINBASE_MATURITY {
            return Err(RuleError::PrematureCoinbaseSpend);
        }
        total_in = total_in
            .checked_add(coin.output.value)
            .filter(|t| coin.output.value.is_valid_money() && t.is_valid_money())
            .ok_or(RuleError::InputValuesOutOfRange)?;
    }
    let total_out = tx.total_output().ok_or(RuleError::OutputTotalTooLarge)?;
    if total_in < total_out {
        return Err(RuleError::InBelowOut);
    }
    Ok(total_in - total_out)
}

/// # Consensus
/// Input `index` of `tx` satisfies the P2PKH output `spent`: its public key hashes to the
/// output's hash and its signature, strict DER with low S and `SIGHASH_ALL`, verifies over the
/// legacy sighash.
pub fn verify_input(tx: &Transaction, index: usize, spent: &Script) -> Result<(), ScriptFailure> {
    let expected = spent.p2pkh_hash().ok_or(ScriptFailure::NotP2pkh)?;
    let (sig, pubkey) = tx
        .input
        .get(index)
        .and_then(|i| i.script_sig.p2pkh_script_sig_parts())
        .ok_or(ScriptFailure::Form)?;
    if crate::hash::hash160(pubkey) != expected {
        return Err(ScriptFailure::PubkeyHash);
    }
    let digest = legacy_sighash(tx, index, spent, SIGHASH_ALL);
    key::verify_signature(pubkey, sig, &digest).map_err(ScriptFailure::Signature)
}
