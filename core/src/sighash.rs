//! Bitcoin's legacy signature hash (the digest a pre-segwit signature commits to).
//!
//! Every hash type is implemented so Bitcoin's published vectors can be checked; our consensus
//! only accepts [`SIGHASH_ALL`].

use crate::amount::Amount;
use crate::encode::{CompactSize, Encodable};
use crate::hash::Sha256dWriter;
use crate::script::Script;
use crate::transaction::{Transaction, TxOut};

/// Sign all inputs and outputs (the only type our consensus accepts).
pub const SIGHASH_ALL: u32 = 1;
/// Sign no outputs.
pub const SIGHASH_NONE: u32 = 2;
/// Sign only the output with the same index as the input.
pub const SIGHASH_SINGLE: u32 = 3;
/// Sign only this input (combined with one of the above).
pub const SIGHASH_ANYONECANPAY: u32 = 0x80;

/// `tx` has no input at this index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the transaction has no input {0}")]
pub struct NoSuchInput(pub usize);

/// Signs input `index` of `tx`, which spends an output locked by the P2PKH script `spent`, with
/// `key`: writes the scriptSig `<strict-DER low-S signature + SIGHASH_ALL> <compressed public
/// key>` over the legacy `SIGHASH_ALL` digest, the form
/// [`crate::validation::verify_input`] accepts. Legacy digests blank every other input's
/// script, so inputs can be signed in any order.
pub fn sign_p2pkh_input(
    tx: &mut Transaction,
    index: usize,
    spent: &Script,
    key: &crate::key::PrivateKey,
) -> Result<(), NoSuchInput> {
    if index >= tx.input.len() {
        return Err(NoSuchInput(index));
    }
    let mut sig = key.sign_digest(&legacy_sighash(tx, index, spent, SIGHASH_ALL));
    sig.push(SIGHASH_ALL as u8);
    tx.input[index].script_sig = Script::new_p2pkh_script_sig(&sig, &key.public_key().to_bytes());
    Ok(())
}

/// The legacy signature hash of input `input_index` of `tx`, spending an output locked by
/// `script_code`, for `hash_type` (Bitcoin Core's `SignatureHash` with `SigVersion::BASE`).
///
/// Bitcoin's quirks are kept: an input index out of range, or `SIGHASH_SINGLE` without a matching
/// output, gives the value 1 instead of a hash. `OP_CODESEPARATOR`s are removed from the
/// script code. The result is in internal byte order, ready to sign.
pub fn legacy_sighash(
    tx: &Transaction,
    input_index: usize,
    script_code: &Script,
    hash_type: u32,
) -> [u8; 32] {
    const ONE: [u8; 32] = {
        let mut one = [0u8; 32];
        one[0] = 1;
        one
    };
    let base = hash_type & 0x1f;
    let anyone_can_pay = hash_type & SIGHASH_ANYONECANPAY != 0;
    if input_index >= tx.input.len() || (base == SIGHASH_SINGLE && input_index >= tx.output.len()) {
        return ONE;
    }

    let script_code = script_code.without_codeseparators();
    let empty = Script::new();
    let mut w = Sha256dWriter::default();

    put(&mut w, &tx.version);
    let inputs = if anyone_can_pay {
        input_index..input_index + 1
    } else {
        0..tx.input.len()
    };
    put(&mut w, &CompactSize(inputs.len() as u64));
    for i in inputs {
        let input = &tx.input[i];
        let (script, sequence) = if i == input_index {
            (&script_code, input.sequence)
        } else if base == SIGHASH_NONE || base == SIGHASH_SINGLE {
            (&empty, 0)
        } else {
            (&empty, input.sequence)
        };
        put(&mut w, &input.previous_output);
        put(&mut w, script);
        put(&mut w, &sequence);
    }

    match base {
        SIGHASH_NONE => put(&mut w, &CompactSize(0)),
        SIGHASH_SINGLE => {
            let blank = TxOut {
                value: Amount::from_units(-1),
                script_pubkey: Script::new(),
            };
            put(&mut w, &CompactSize(input_index as u64 + 1));
            for _ in 0..input_index {
                put(&mut w, &blank);
            }
            put(&mut w, &tx.output[input_index]);
        }
        _ => put(&mut w, &tx.output),
    }
    put(&mut w, &tx.lock_time);
    put(&mut w, &hash_type);
    w.finish()
}

fn put<T: Encodable + ?Sized>(w: &mut Sha256dWriter, value: &T) {
    value
        .consensus_encode(w)
        .expect("hashing writer cannot fail");
}
