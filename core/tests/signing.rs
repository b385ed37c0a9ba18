//! Our own signature vectors: a signed P2PKH spend verifies, and every single-byte change of
//! the transaction, the signature or the public key makes it fail.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use chaincore::encode::{deserialize, serialize};
use chaincore::key::PrivateKey;
use chaincore::sighash::{legacy_sighash, SIGHASH_ALL};
use chaincore::validation::{check_transaction, verify_input, ScriptFailure};
use chaincore::{Address, Amount, Network, OutPoint, Script, Transaction, TxIn, TxOut};

/// A fixed key, so failures reproduce.
fn key() -> PrivateKey {
    PrivateKey::from_bytes(&[0x11; 32]).unwrap()
}

/// A transaction spending output 0 of a made-up funding tx locked to `key()`, signed.
fn signed_spend() -> (Transaction, Script) {
    let key = key();
    let prev_script =
        Address::p2pkh(key.public_key().pubkey_hash(), Network::Regtest).script_pubkey();
    let mut tx = Transaction {
        version: 1,
        input: vec![TxIn {
            previous_output: OutPoint {
                txid: "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
                    .parse()
                    .unwrap(),
                vout: 0,
            },
            script_sig: Script::new(),
            sequence: 0xffff_fffe,
        }],
        output: vec![
            TxOut {
                value: Amount::from_units(12_3456_7890),
                script_pubkey: Script::new_p2pkh(&[0x22; 20]),
            },
            TxOut {
                value: Amount::ZERO,
                script_pubkey: Script::new_op_return(b"hello").unwrap(),
            },
        ],
        lock_time: 0,
    };
    chaincore::sign_p2pkh_input(&mut tx, 0, &prev_script, &key).unwrap();
    (tx, prev_script)
}

#[test]
fn sign_p2pkh_input_writes_the_two_pushes_verify_input_checks() {
    let (tx, prev) = signed_spend();
    let (sig, pubkey) = tx.input[0].script_sig.p2pkh_script_sig_parts().unwrap();
    assert_eq!(pubkey, key().public_key().to_bytes().as_slice());
    let digest = legacy_sighash(&tx, 0, &prev, SIGHASH_ALL);
    let mut expected = key().sign_digest(&digest);
    expected.push(SIGHASH_ALL as u8);
    assert_eq!(sig, expected.as_slice());
    let mut unsigned = tx.clone();
    assert_eq!(
        chaincore::sign_p2pkh_input(&mut unsigned, 1, &prev, &key()),
        Err(chaincore::sighash::NoSuchInput(1))
    );
    assert_eq!(unsigned, tx, "nothing written for a missing input");
}

#[test]
fn signed_spend_verifies_and_is_deterministic() {
    let (tx, prev) = signed_spend();
    check_transaction(&tx).unwrap();
    verify_input(&tx, 0, &prev).unwrap();
    // RFC 6979: the same key and digest always give the same signature.
    assert_eq!(signed_spend().0, tx);
}

#[test]
fn any_single_byte_change_of_the_transaction_fails() {
    let (tx, prev) = signed_spend();
    let bytes = serialize(&tx);
    for i in 0..bytes.len() {
        for flip in [0x01u8, 0x80] {
            let mut changed = bytes.clone();
            changed[i] ^= flip;
            let Ok(changed) = deserialize::<Transaction>(&changed) else {
                continue; // no longer a transaction at all
            };
            assert!(
                verify_input(&changed, 0, &prev).is_err(),
                "byte {i} ^ {flip:#x} still verifies"
            );
        }
    }
}

#[test]
fn any_single_byte_change_of_signature_or_pubkey_fails() {
    let (tx, prev) = signed_spend();
    let (sig, pubkey) = tx.input[0].script_sig.p2pkh_script_sig_parts().unwrap();
    let (sig, pubkey) = (sig.to_vec(), pubkey.to_vec());
    for i in 0..sig.len() {
        let mut s = sig.clone();
        s[i] ^= 0x01;
        let mut t = tx.clone();
        t.input[0].script_sig = Script::new_p2pkh_script_sig(&s, &pubkey);
        assert!(verify_input(&t, 0, &prev).is_err(), "signature byte {i}");
    }
    for i in 0..pubkey.len() {
        let mut p = pubkey.clone();
        p[i] ^= 0x01;
        let mut t = tx.clone();
        t.input[0].script_sig = Script::new_p2pkh_script_sig(&sig, &p);
        assert_eq!(
            verify_input(&t, 0, &prev),
            Err(ScriptFailure::PubkeyHash),
            "pubkey byte {i}"
        );
    }
}

#[test]
fn spend_against_the_wrong_output_fails() {
    let (tx, _) = signed_spend();
    let other = Script::new_p2pkh(&[0x33; 20]);
    assert_eq!(verify_input(&tx, 0, &other), Err(ScriptFailure::PubkeyHash));
    let op_return = Script::new_op_return(b"x").unwrap();
    assert_eq!(
        verify_input(&tx, 0, &op_return),
        Err(ScriptFailure::NotP2pkh)
    );
    assert_eq!(verify_input(&tx, 1, &other), Err(ScriptFailure::Form));
}
