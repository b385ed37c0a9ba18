//! Property tests: every encodable type round-trips, and arbitrary bytes fed to every decoder
//! never panic.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use chaincore::block::Header;
use chaincore::encode::{deserialize, serialize, CompactSize, Decodable, Encodable};
use chaincore::validation::Coin;
use chaincore::{Amount, Block, BlockHash, OutPoint, Script, Transaction, TxIn, TxOut, Txid};
use proptest::collection::vec;
use proptest::prelude::*;

fn script() -> impl Strategy<Value = Script> {
    vec(any::<u8>(), 0..120).prop_map(Script)
}

fn outpoint() -> impl Strategy<Value = OutPoint> {
    (any::<[u8; 32]>(), any::<u32>()).prop_map(|(t, vout)| OutPoint {
        txid: Txid(t),
        vout,
    })
}

fn txin() -> impl Strategy<Value = TxIn> {
    (outpoint(), script(), any::<u32>()).prop_map(|(previous_output, script_sig, sequence)| TxIn {
        previous_output,
        script_sig,
        sequence,
    })
}

fn txout() -> impl Strategy<Value = TxOut> {
    (any::<i64>(), script()).prop_map(|(v, script_pubkey)| TxOut {
        value: Amount::from_units(v),
        script_pubkey,
    })
}

fn transaction() -> impl Strategy<Value = Transaction> {
    (
        any::<i32>(),
        vec(txin(), 0..4),
        vec(txout(), 0..4),
        any::<u32>(),
    )
        .prop_map(|(version, input, output, lock_time)| Transaction {
            version,
            input,
            output,
            lock_time,
        })
}

fn header() -> impl Strategy<Value = Header> {
    (
        any::<i32>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<(u32, u32, u32)>(),
    )
        .prop_map(|(version, prev, root, (time, bits, nonce))| Header {
            version,
            prev_blockhash: BlockHash(prev),
            merkle_root: chaincore::TxMerkleNode(root),
            time,
            bits,
            nonce,
        })
}

fn block() -> impl Strategy<Value = Block> {
    (header(), vec(transaction(), 0..4)).prop_map(|(header, txdata)| Block { header, txdata })
}

fn coin() -> impl Strategy<Value = Coin> {
    (txout(), any::<u32>(), any::<bool>()).prop_map(|(output, height, is_coinbase)| Coin {
        output,
        height,
        is_coinbase,
    })
}

fn round_trip<T: Encodable + Decodable + PartialEq + std::fmt::Debug>(value: &T) {
    let bytes = serialize(value);
    assert_eq!(&deserialize::<T>(&bytes).unwrap(), value);
    // Any strict prefix is an error, never a panic or a different value.
    if !bytes.is_empty() {
        assert!(deserialize::<T>(&bytes[..bytes.len() - 1]).is_err());
    }
}

proptest! {
    #[test]
    fn outpoint_round_trips(v in outpoint()) { round_trip(&v); }

    #[test]
    fn txin_round_trips(v in txin()) { round_trip(&v); }

    #[test]
    fn txout_round_trips(v in txout()) { round_trip(&v); }

    #[test]
    fn script_round_trips(v in script()) { round_trip(&v); }

    #[test]
    fn transaction_round_trips(v in transaction()) {
        round_trip(&v);
        prop_assert_eq!(v.size(), serialize(&v).len());
    }

    #[test]
    fn header_round_trips(v in header()) {
        round_trip(&v);
        prop_assert_eq!(serialize(&v).len(), 80);
        prop_assert_eq!(&v.to_bytes()[..], &serialize(&v)[..]);
    }

    #[test]
    fn block_round_trips(v in block()) {
        round_trip(&v);
        prop_assert_eq!(v.size(), serialize(&v).len());
    }

    #[test]
    fn coin_round_trips(v in coin()) { round_trip(&v); }

    #[test]
    fn compact_size_round_trips(n in any::<u64>()) { round_trip(&CompactSize(n)); }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..400)) {
        let _ = deserialize::<OutPoint>(&bytes);
        let _ = deserialize::<TxIn>(&bytes);
        let _ = deserialize::<TxOut>(&bytes);
        let _ = deserialize::<Script>(&bytes);
        let _ = deserialize::<Transaction>(&bytes);
        let _ = deserialize::<Header>(&bytes);
        let _ = deserialize::<Block>(&bytes);
        let _ = deserialize::<Coin>(&bytes);
        let _ = deserialize::<CompactSize>(&bytes);
        let _ = deserialize::<Vec<Transaction>>(&bytes);
        let _ = Script(bytes.clone()).without_codeseparators();
        let _ = Script(bytes.clone()).op_return_data();
        let _ = Script(bytes.clone()).p2pkh_script_sig_parts();
        let _ = chaincore::key::is_strict_der(&bytes);
    }

    #[test]
    fn mutated_valid_transaction_bytes_never_panic(
        v in transaction(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = serialize(&v);
        for (i, b) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= b;
        }
        if let Ok(tx) = deserialize::<Transaction>(&bytes) {
            prop_assert_eq!(serialize(&tx), bytes);
            let _ = chaincore::validation::check_transaction(&tx);
        }
    }
}
