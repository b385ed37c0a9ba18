//! Scripts as byte strings, and the only templates our consensus accepts.
//!
//! There is no script interpreter: an output is either P2PKH
//! (`OP_DUP OP_HASH160 <20 bytes> OP_EQUALVERIFY OP_CHECKSIG`) or a data carrier
//! (`OP_RETURN [<≤80 bytes>]`), and an input's scriptSig is exactly the two pushes
//! `<DER signature + hash type> <33-byte compressed public key>`.

use std::fmt;
use std::io::{self, Read, Write};

use crate::encode::{self, Decodable, Encodable};

/// Pushes an empty byte string (the number 0).
pub const OP_0: u8 = 0x00;
/// The next byte is the length of the data to push.
pub const OP_PUSHDATA1: u8 = 0x4c;
/// The next two bytes (little-endian) are the length of the data to push.
pub const OP_PUSHDATA2: u8 = 0x4d;
/// The next four bytes (little-endian) are the length of the data to push.
pub const OP_PUSHDATA4: u8 = 0x4e;
/// Pushes the number -1.
pub const OP_1NEGATE: u8 = 0x4f;
/// Pushes the number 1; `OP_1 + n - 1` pushes n for n in 1..=16.
pub const OP_1: u8 = 0x51;
/// Marks an output as unspendable data.
pub const OP_RETURN: u8 = 0x6a;
/// Duplicates the top stack item.
pub const OP_DUP: u8 = 0x76;
/// Fails unless the top two items are equal.
pub const OP_EQUALVERIFY: u8 = 0x88;
/// Separates the part of a script that signatures commit to (only matters to the sighash).
pub const OP_CODESEPARATOR: u8 = 0xab;
/// Checks a signature against a public key.
pub const OP_CHECKSIG: u8 = 0xac;
/// Replaces the top item with its HASH160.
pub const OP_HASH160: u8 = 0xa9;

/// # Consensus
/// An `OP_RETURN` output carries at most 80 bytes of data.
pub const MAX_OP_RETURN_DATA: usize = 80;

/// A script: a byte string of opcodes and pushes.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Script(pub Vec<u8>);

/// One parsed element of a script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Instruction<'a> {
    /// A data push (any of the push opcodes), with the pushed bytes.
    Push(&'a [u8]),
    /// Any other opcode (including `OP_0`..`OP_16` number pushes).
    Op(u8),
}

/// A push opcode that claims more bytes than the script has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("script push runs past the end of the script")]
pub struct TruncatedPush;

/// Iterator over a script's [`Instruction`]s; yields an error once on a truncated push.
pub struct Instructions<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Instructions<'a> {
    type Item = Result<Instruction<'a>, TruncatedPush>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&op, rest) = self.rest.split_first()?;
        let (len_bytes, len) = match op {
            0x01..=0x4b => (0, usize::from(op)),
            OP_PUSHDATA1 | OP_PUSHDATA2 | OP_PUSHDATA4 => {
                let n = match op {
                    OP_PUSHDATA1 => 1,
                    OP_PUSHDATA2 => 2,
                    _ => 4,
                };
                if rest.len() < n {
                    self.rest = &[];
                    return Some(Err(TruncatedPush));
                }
                let mut buf = [0u8; 4];
                buf[..n].copy_from_slice(&rest[..n]);
                (n, u32::from_le_bytes(buf) as usize)
            }
            _ => {
                self.rest = rest;
                return Some(Ok(Instruction::Op(op)));
            }
        };
        let rest = &rest[len_bytes..];
        if rest.len() < len {
            self.rest = &[];
            return Some(Err(TruncatedPush));
        }
        let (data, rest) = rest.split_at(len);
        self.rest = rest;
        Some(Ok(Instruction::Push(data)))
    }
}

impl Script {
    /// An empty script.
    pub fn new() -> Script {
        Script(Vec::new())
    }

    /// `OP_DUP OP_HASH160 <pubkey_hash> OP_EQUALVERIFY OP_CHECKSIG`.
    pub fn new_p2pkh(pubkey_hash: &[u8; 20]) -> Script {
        let mut s = Vec::with_capacity(25);
        s.extend_from_slice(&[OP_DUP, OP_HASH160, 20]);
        s.extend_from_slice(pubkey_hash);
        s.extend_from_slice(&[OP_EQUALVERIFY, OP_CHECKSIG]);
        Script(s)
    }

    /// `OP_RETURN <data>` (bare `OP_RETURN` for empty data), or `None` if `data` is longer than
    /// [`MAX_OP_RETURN_DATA`].
    pub fn new_op_return(data: &[u8]) -> Option<Script> {
        if data.len() > MAX_OP_RETURN_DATA {
            return None;
        }
        let mut s = Script(vec![OP_RETURN]);
        if !data.is_empty() {
            s.push_slice(data);
        }
        Some(s)
    }

    /// The P2PKH scriptSig `<signature> <pubkey>`.
    pub fn new_p2pkh_script_sig(signature: &[u8], pubkey: &[u8]) -> Script {
        let mut s = Script::new();
        s.push_slice(signature);
        s.push_slice(pubkey);
        s
    }

    /// Appends a minimally encoded push of `data`.
    pub fn push_slice(&mut self, data: &[u8]) -> &mut Script {
        let len = data.len();
        match len {
            0..=0x4b => self.0.push(len as u8),
            0x4c..=0xff => self.0.extend_from_slice(&[OP_PUSHDATA1, len as u8]),
            0x100..=0xffff => {
                self.0.push(OP_PUSHDATA2);
                self.0.extend_from_slice(&(len as u16).to_le_bytes());
            }
            _ => {
                self.0.push(OP_PUSHDATA4);
                self.0.extend_from_slice(&(len as u32).to_le_bytes());
            }
        }
        self.0.extend_from_slice(data);
        self
    }

    /// Appends a number the way Bitcoin Core's `CScript << int64_t` does: `OP_0`, `OP_1NEGATE`
    /// and `OP_1`..`OP_16` for small values, otherwise a minimal little-endian sign-magnitude push.
    /// This is the encoding of the BIP34 height in a coinbase.
    pub fn push_int(&mut self, n: i64) -> &mut Script {
        match n {
            0 => self.0.push(OP_0),
            -1 => self.0.push(OP_1NEGATE),
            1..=16 => self.0.push(OP_1 + (n as u8) - 1),
            _ => {
                self.push_slice(&script_num(n));
            }
        }
        self
    }

    /// Appends a raw opcode.
    pub fn push_opcode(&mut self, op: u8) -> &mut Script {
        self.0.push(op);
        self
    }

    /// The script's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if the script has no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over the script's instructions.
    pub fn instructions(&self) -> Instructions<'_> {
        Instructions { rest: &self.0 }
    }

    /// The public key hash if this is exactly a P2PKH output script.
    pub fn p2pkh_hash(&self) -> Option<[u8; 20]> {
        match self.0.as_slice() {
            [OP_DUP, OP_HASH160, 20, hash @ .., OP_EQUALVERIFY, OP_CHECKSIG]
                if hash.len() == 20 =>
            {
                hash.try_into().ok()
            }
            _ => None,
        }
    }

    /// The carried data if this is exactly `OP_RETURN` or `OP_RETURN <minimal push of ≤80 bytes>`.
    pub fn op_return_data(&self) -> Option<&[u8]> {
        let rest = self.0.strip_prefix(&[OP_RETURN])?;
        if rest.is_empty() {
            return Some(rest);
        }
        let mut ins = Instructions { rest };
        match (ins.next(), ins.next()) {
            (Some(Ok(Instruction::Push(data))), None)
                if data.len() <= MAX_OP_RETURN_DATA
                    && Script::new().push_slice(data).len() == rest.len() =>
            {
                Some(data)
            }
            _ => None,
        }
    }

    /// True if this output script fits one of the two templates our consensus allows.
    pub fn is_allowed_output(&self) -> bool {
        self.p2pkh_hash().is_some() || self.op_return_data().is_some()
    }

    /// Splits a P2PKH scriptSig into `(signature with hash type, public key)` if it is exactly
    /// two minimal direct pushes, the second 33 bytes long.
    pub fn p2pkh_script_sig_parts(&self) -> Option<(&[u8], &[u8])> {
        let (&sig_len, rest) = self.0.split_first()?;
        let sig_len = usize::from(sig_len);
        if !(1..=0x4b).contains(&sig_len) || rest.len() < sig_len {
            return None;
        }
        let (sig, rest) = rest.split_at(sig_len);
        match rest {
            [33, pubkey @ ..] if pubkey.len() == 33 => Some((sig, pubkey)),
            _ => None,
        }
    }

    /// This script with every `OP_CODESEPARATOR` removed, as the legacy sighash requires. Bytes
    /// after a truncated push are kept as they are.
    pub fn without_codeseparators(&self) -> Script {
        if !self.0.contains(&OP_CODESEPARATOR) {
            return self.clone();
        }
        let mut out = Vec::with_capacity(self.0.len());
        let mut rest = self.0.as_slice();
        let mut iter = self.instructions();
        while let Some(Ok(ins)) = iter.next() {
            let consumed = rest.len() - iter.rest.len();
            if ins != Instruction::Op(OP_CODESEPARATOR) {
                out.extend_from_slice(&rest[..consumed]);
            }
            rest = iter.rest;
        }
        out.extend_from_slice(rest);
        Script(out)
    }
}

/// Bitcoin's `CScriptNum` serialization: minimal little-endian magnitude with a sign bit.
fn script_num(n: i64) -> Vec<u8> {
    let mut out = Vec::new();
    let neg = n < 0;
    let mut abs = n.unsigned_abs();
    while abs > 0 {
        out.push((abs & 0xff) as u8);
        abs >>= 8;
    }
    if let Some(last) = out.last_mut() {
        if *last & 0x80 != 0 {
            out.push(if neg { 0x80 } else { 0 });
        } else if neg {
            *last |= 0x80;
        }
    }
    out
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Script({})", hex::encode(&self.0))
    }
}

impl fmt::Display for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl Encodable for Script {
    fn consensus_encode<W: Write + ?Sized>(&self, w: &mut W) -> io::Result<usize> {
        encode::write_bytes(w, &self.0)
    }
}

impl Decodable for Script {
    fn consensus_decode<R: Read + ?Sized>(r: &mut R) -> Result<Self, encode::Error> {
        encode::read_bytes(r).map(Script)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p2pkh_template() {
        let s = Script::new_p2pkh(&[7; 20]);
        assert_eq!(s.len(), 25);
        assert_eq!(s.p2pkh_hash(), Some([7; 20]));
        assert!(s.is_allowed_output());
        let mut longer = s.clone();
        longer.0.push(0);
        assert_eq!(longer.p2pkh_hash(), None);
    }

    #[test]
    fn op_return_template() {
        let data = [0x42u8; 80];
        let s = Script::new_op_return(&data).unwrap();
        assert_eq!(s.op_return_data(), Some(&data[..]));
        assert_eq!(Script(vec![OP_RETURN]).op_return_data(), Some(&[][..]));
        assert!(Script::new_op_return(&[0; 81]).is_none());
        // 81 bytes pushed by hand, a non-minimal push, and two pushes are all refused.
        let mut s81 = Script(vec![OP_RETURN]);
        s81.push_slice(&[0; 81]);
        assert_eq!(s81.op_return_data(), None);
        assert_eq!(
            Script(vec![OP_RETURN, OP_PUSHDATA1, 1, 9]).op_return_data(),
            None
        );
        assert_eq!(Script(vec![OP_RETURN, 1, 9, 1, 9]).op_return_data(), None);
        assert_eq!(Script(vec![OP_RETURN, 5, 1]).op_return_data(), None);
    }

    #[test]
    fn push_int_matches_bitcoin_core() {
        let enc = |n| Script::new().push_int(n).0.clone();
        assert_eq!(enc(0), vec![OP_0]);
        assert_eq!(enc(1), vec![OP_1]);
        assert_eq!(enc(16), vec![0x60]);
        assert_eq!(enc(17), vec![1, 17]);
        assert_eq!(enc(127), vec![1, 0x7f]);
        assert_eq!(enc(128), vec![2, 0x80, 0]);
        assert_eq!(enc(-1), vec![OP_1NEGATE]);
        assert_eq!(enc(-128), vec![2, 0x80, 0x80]);
        // Block 227,931's coinbase (the first under BIP34 on mainnet) starts 03 5b 7a 03.
        assert_eq!(enc(227_931), vec![3, 0x5b, 0x7a, 0x03]);
    }

    #[test]
    fn script_sig_parts() {
        let sig = [0x30u8; 71];
        let pk = [0x02u8; 33];
        let s = Script::new_p2pkh_script_sig(&sig, &pk);
        assert_eq!(s.p2pkh_script_sig_parts(), Some((&sig[..], &pk[..])));
        assert_eq!(
            Script::new_p2pkh_script_sig(&sig, &[2; 65]).p2pkh_script_sig_parts(),
            None
        );
        let mut extra = s.clone();
        extra.0.push(OP_0);
        assert_eq!(extra.p2pkh_script_sig_parts(), None);
        assert_eq!(Script(vec![OP_0]).p2pkh_script_sig_parts(), None);
    }

    #[test]
    fn codeseparators_are_removed_outside_pushes() {
        let s = Script(vec![
            OP_CODESEPARATOR,
            1,
            OP_CODESEPARATOR,
            OP_CODESEPARATOR,
            OP_DUP,
        ]);
        assert_eq!(
            s.without_codeseparators().0,
            vec![1, OP_CODESEPARATOR, OP_DUP]
        );
        let truncated = Script(vec![OP_CODESEPARATOR, 5, 1]);
        assert_eq!(truncated.without_codeseparators().0, vec![5, 1]);
    }
}
