//! Transaction decoding, the context-free transaction checks and the script templates: what
//! a peer's `tx` message body and an RPC client's `sendrawtransaction` hex reach.
//!
//! Input: a serialized transaction. Checked: no panic; a transaction that decodes re-encodes
//! to exactly the input bytes; the template predicates agree with each other (an allowed
//! output is P2PKH or `OP_RETURN`, a P2PKH output's address gives back the same script). For
//! up to [`MAX_INPUTS`] inputs whose scriptSig has the P2PKH form, the signature is verified
//! against the P2PKH output of that scriptSig's own public key, so strict DER, low S, the
//! public key and the legacy sighash are all reached with fuzzed bytes.

use chaincore::encode::{deserialize, serialize};
use chaincore::hash::hash160;
use chaincore::sighash::{legacy_sighash, SIGHASH_ALL};
use chaincore::validation::{check_transaction, verify_input};
use chaincore::{Address, Network, Script, Transaction};

/// Inputs whose signatures are checked per transaction (each costs an ECDSA verification).
pub const MAX_INPUTS: usize = 2;

/// Runs one input (see the module docs).
pub fn run(data: &[u8]) {
    let Ok(tx) = deserialize::<Transaction>(data) else {
        return;
    };
    assert_eq!(
        serialize(&tx),
        data,
        "a decoded transaction re-encodes differently"
    );
    assert_eq!(tx.size(), data.len());
    let _ = check_transaction(&tx);
    let _ = tx.compute_txid();
    let _ = tx.total_output();
    let _ = tx.is_final(100, i64::from(tx.lock_time));

    for out in &tx.output {
        let script = &out.script_pubkey;
        let p2pkh = script.p2pkh_hash();
        let data = script.op_return_data();
        assert_eq!(
            script.is_allowed_output(),
            p2pkh.is_some() || data.is_some()
        );
        if let Some(hash) = p2pkh {
            assert_eq!(&Script::new_p2pkh(&hash), script);
            let address = Address::from_script(script, Network::Regtest)
                .unwrap_or_else(|| panic!("a P2PKH script without an address"));
            let parsed = Address::parse(&address.to_string(), Network::Regtest);
            assert_eq!(parsed.ok().as_ref(), Some(&address));
            assert_eq!(&address.script_pubkey(), script);
        }
        walk(script);
    }

    for (index, input) in tx.input.iter().enumerate().take(MAX_INPUTS) {
        walk(&input.script_sig);
        // The scriptSig as script code: fuzzed bytes, OP_CODESEPARATOR removal included.
        let _ = legacy_sighash(&tx, index, &input.script_sig, SIGHASH_ALL);
        if let Some((_sig, pubkey)) = input.script_sig.p2pkh_script_sig_parts() {
            let spent = Script::new_p2pkh(&hash160(pubkey));
            let _ = verify_input(&tx, index, &spent);
        }
    }
}

/// Iterates over every instruction of `script` and strips its code separators.
fn walk(script: &Script) {
    let _ = script.instructions().count();
    let stripped = script.without_codeseparators();
    assert!(stripped.len() <= script.len());
}
