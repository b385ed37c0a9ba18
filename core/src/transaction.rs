//! Transactions in Bitcoin's legacy (non-segwit) serialization.

use std::io::Write;

use crate::amount::Amount;
use crate::encode::{self, impl_consensus_encoding, Encodable};
use crate::hash::{Sha256dWriter, Txid};
use crate::script::Script;

/// Sequence number that makes an input final (disables lock time for the transaction when every
/// input has it).
pub const SEQUENCE_FINAL: u32 = 0xffff_ffff;

/// Lock times below this are block heights; at or above it, Unix times (Bitcoin's
/// `LOCKTIME_THRESHOLD`).
pub const LOCKTIME_THRESHOLD: u32 = 500_000_000;

/// A reference to an output of an earlier transaction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutPoint {
    /// The transaction that created the output.
    pub txid: Txid,
    /// The output's index in that transaction.
    pub vout: u32,
}
impl_consensus_encoding!(OutPoint, txid, vout);

impl OutPoint {
    /// The outpoint a coinbase input refers to: zero txid, index `0xffffffff`.
    pub const NULL: OutPoint = OutPoint {
        txid: Txid::ZERO,
        vout: u32::MAX,
    };

    /// True for [`OutPoint::NULL`].
    pub fn is_null(&self) -> bool {
        *self == OutPoint::NULL
    }
}

/// A transaction input.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TxIn {
    /// The output being spent.
    pub previous_output: OutPoint,
    /// The unlocking script (for a coinbase, the BIP34 height and free data).
    pub script_sig: Script,
    /// Sequence number; [`SEQUENCE_FINAL`] on every input disables the lock time.
    pub sequence: u32,
}
impl_consensus_encoding!(TxIn, previous_output, script_sig, sequence);

/// A transaction output.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TxOut {
    /// The value in base units.
    pub value: Amount,
    /// The locking script.
    pub script_pubkey: Script,
}
impl_consensus_encoding!(TxOut, value, script_pubkey);

/// The fee rate of the dust rule, in units per byte: Bitcoin Core's `-dustrelayfee` is
/// 3,000 sat/kvB, three times its minimum relay fee, and ours is three times ours (1 unit per
/// byte).
pub const DUST_RELAY_FEE_RATE: i64 = 3;

/// Bytes an input spending an output adds to a transaction, as Bitcoin Core counts it for the
/// dust rule: outpoint 36, script length 1, scriptSig 107 (a 72-byte signature push and a
/// 34-byte key push), sequence 4.
pub const DUST_SPEND_INPUT_SIZE: usize = 148;

impl TxOut {
    /// The smallest value this output may have to be relayed: what spending it costs at
    /// [`DUST_RELAY_FEE_RATE`], its own size plus [`DUST_SPEND_INPUT_SIZE`] bytes (Bitcoin
    /// Core's `GetDustThreshold`; 546 units for P2PKH, as in Core). Zero for `OP_RETURN`
    /// outputs, which are never spent.
    ///
    /// Policy, not consensus: a block may hold dust.
    pub fn dust_threshold(&self) -> Amount {
        if self.script_pubkey.op_return_data().is_some() {
            return Amount::ZERO;
        }
        let size = encode::serialize(self).len() + DUST_SPEND_INPUT_SIZE;
        Amount::from_units(size as i64 * DUST_RELAY_FEE_RATE)
    }

    /// True if the output is worth less than [`TxOut::dust_threshold`].
    pub fn is_dust(&self) -> bool {
        self.value < self.dust_threshold()
    }
}

/// A transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Transaction {
    /// Transaction version.
    pub version: i32,
    /// Inputs.
    pub input: Vec<TxIn>,
    /// Outputs.
    pub output: Vec<TxOut>,
    /// Earliest height or time at which the transaction may be mined.
    pub lock_time: u32,
}
impl_consensus_encoding!(Transaction, version, input, output, lock_time);

impl Transaction {
    /// An unsigned spend: one input per outpoint in `inputs` (empty scriptSig, final
    /// sequence), `outputs`, version 1, lock time 0; sign it with [`crate::sign_p2pkh_input`].
    pub fn new_unsigned(inputs: &[OutPoint], outputs: Vec<TxOut>) -> Transaction {
        Transaction {
            version: 1,
            input: inputs
                .iter()
                .map(|o| TxIn {
                    previous_output: *o,
                    script_sig: Script::new(),
                    sequence: u32::MAX,
                })
                .collect(),
            output: outputs,
            lock_time: 0,
        }
    }

    /// A coinbase: one input spending the null outpoint with `script_sig`, one output paying
    /// `value` to `script_pubkey`, version 1, lock time 0.
    pub fn new_coinbase(script_sig: Script, value: Amount, script_pubkey: Script) -> Transaction {
        Transaction {
            version: 1,
            input: vec![TxIn {
                previous_output: OutPoint::NULL,
                script_sig,
                sequence: SEQUENCE_FINAL,
            }],
            output: vec![TxOut {
                value,
                script_pubkey,
            }],
            lock_time: 0,
        }
    }

    /// The transaction id: SHA-256d of the serialization.
    pub fn compute_txid(&self) -> Txid {
        let mut w = Sha256dWriter::default();
        self.consensus_encode(&mut w)
            .expect("hashing writer cannot fail");
        Txid(w.finish())
    }

    /// Serialized size in bytes.
    pub fn size(&self) -> usize {
        encoded_size(self)
    }

    /// True if this is a coinbase: one input spending the null outpoint.
    pub fn is_coinbase(&self) -> bool {
        self.input.len() == 1 && self.input[0].previous_output.is_null()
    }

    /// Sum of output values, or `None` on overflow.
    pub fn total_output(&self) -> Option<Amount> {
        self.output
            .iter()
            .try_fold(Amount::ZERO, |sum, out| sum.checked_add(out.value))
    }

    /// # Consensus
    /// Bitcoin's `IsFinalTx`: a transaction is final if its lock time is 0, or below the block
    /// height (lock time < 500,000,000) or the block time (median time past) otherwise, or if
    /// every input's sequence is `0xffffffff`.
    pub fn is_final(&self, height: u32, block_time: i64) -> bool {
        if self.lock_time == 0 {
            return true;
        }
        let limit = if self.lock_time < LOCKTIME_THRESHOLD {
            i64::from(height)
        } else {
            block_time
        };
        if i64::from(self.lock_time) < limit {
            return true;
        }
        self.input.iter().all(|i| i.sequence == SEQUENCE_FINAL)
    }
}

/// A writer that only counts bytes, for computing serialized sizes without allocating.
struct ByteCounter(usize);

impl Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Serialized size of any encodable value.
pub fn encoded_size<T: Encodable + ?Sized>(value: &T) -> usize {
    let mut counter = ByteCounter(0);
    value
        .consensus_encode(&mut counter)
        .expect("counting writer cannot fail");
    counter.0
}

impl std::str::FromStr for Transaction {
    type Err = encode::Error;

    /// Parses a transaction from its serialization in hex.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = hex::decode(s).map_err(|_| encode::Error::Invalid("not hex"))?;
        encode::deserialize(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coinbase_detection() {
        let mut tx = Transaction {
            version: 1,
            input: vec![TxIn {
                previous_output: OutPoint::NULL,
                script_sig: Script(vec![1, 1]),
                sequence: SEQUENCE_FINAL,
            }],
            output: vec![],
            lock_time: 0,
        };
        assert!(tx.is_coinbase());
        tx.input.push(TxIn::default());
        assert!(!tx.is_coinbase());
    }

    #[test]
    fn finality_follows_bitcoin() {
        let mut tx = Transaction {
            version: 1,
            input: vec![TxIn {
                sequence: 0,
                ..TxIn::default()
            }],
            output: vec![],
            lock_time: 100,
        };
        assert!(!tx.is_final(100, 0));
        assert!(tx.is_final(101, 0));
        tx.lock_time = LOCKTIME_THRESHOLD + 10;
        assert!(!tx.is_final(1_000_000, i64::from(LOCKTIME_THRESHOLD) + 10));
        assert!(tx.is_final(1, i64::from(LOCKTIME_THRESHOLD) + 11));
        tx.input[0].sequence = SEQUENCE_FINAL;
        assert!(tx.is_final(0, 0));
    }

    #[test]
    fn dust_threshold_is_cores_546_for_p2pkh() {
        let p2pkh = |units| TxOut {
            value: Amount::from_units(units),
            script_pubkey: Script::new_p2pkh(&[7; 20]),
        };
        // (34 bytes of output + 148 of input) × 3 units per byte.
        assert_eq!(p2pkh(0).dust_threshold(), Amount::from_units(546));
        assert!(p2pkh(545).is_dust());
        assert!(p2pkh(1).is_dust());
        assert!(!p2pkh(546).is_dust());
        let data = TxOut {
            value: Amount::ZERO,
            script_pubkey: Script::new_op_return(b"hello").unwrap(),
        };
        assert!(!data.is_dust(), "OP_RETURN outputs are never spent");
    }
}
