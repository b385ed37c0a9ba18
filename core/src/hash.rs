//! Hash functions (SHA-256d, HASH160) and the 32-byte hash newtypes [`Txid`], [`BlockHash`] and
//! [`TxMerkleNode`].
//!
//! Like Bitcoin, hashes are stored in the byte order SHA-256 produces and displayed byte-reversed
//! in hex.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use ripemd::Ripemd160;
use sha2::{Digest, Sha256};

/// SHA-256 applied twice.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(data)).into()
}

/// RIPEMD-160 of SHA-256, the hash behind P2PKH addresses.
pub fn hash160(data: &[u8]) -> [u8; 20] {
    Ripemd160::digest(Sha256::digest(data)).into()
}

/// An [`io::Write`] that feeds SHA-256d, so objects are hashed by encoding straight into it.
#[derive(Default, Clone)]
pub struct Sha256dWriter(Sha256);

impl Sha256dWriter {
    /// Returns SHA-256d of everything written.
    pub fn finish(self) -> [u8; 32] {
        Sha256::digest(self.0.finalize()).into()
    }
}

impl Write for Sha256dWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Why a hash string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a hash must be 64 hex digits")]
pub struct ParseHashError;

macro_rules! hash_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The all-zero hash (used for the null previous block and the null outpoint).
            pub const ZERO: $name = $name([0; 32]);

            /// Wraps bytes in internal (SHA-256 output) order.
            pub const fn from_byte_array(bytes: [u8; 32]) -> Self {
                $name(bytes)
            }

            /// The bytes in internal order.
            pub const fn to_byte_array(self) -> [u8; 32] {
                self.0
            }

            /// The bytes in internal order, borrowed.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut rev = self.0;
                rev.reverse();
                f.write_str(&hex::encode(rev))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl FromStr for $name {
            type Err = ParseHashError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(s, &mut bytes).map_err(|_| ParseHashError)?;
                bytes.reverse();
                Ok($name(bytes))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        impl $crate::encode::Encodable for $name {
            fn consensus_encode<W: Write + ?Sized>(&self, w: &mut W) -> io::Result<usize> {
                crate::encode::Encodable::consensus_encode(&self.0, w)
            }
        }

        impl $crate::encode::Decodable for $name {
            fn consensus_decode<R: io::Read + ?Sized>(
                r: &mut R,
            ) -> Result<Self, $crate::encode::Error> {
                Ok($name(<[u8; 32] as $crate::encode::Decodable>::consensus_decode(r)?))
            }
        }
    };
}

hash_newtype!(
    /// A transaction id: SHA-256d of the transaction's serialization.
    Txid
);
hash_newtype!(
    /// A block hash: SHA-256d of the 80-byte header.
    BlockHash
);
hash_newtype!(
    /// A node of a block's transaction merkle tree; the root is committed to in the header.
    TxMerkleNode
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_digests() {
        // SHA-256d("hello"), as used in Bitcoin's documentation.
        assert_eq!(
            hex::encode(sha256d(b"hello")),
            "9595c9df90075148eb06860365df33584b75bff782a510c6cd4883a419833d50"
        );
        // HASH160 of the generator point's compressed encoding (Bitcoin wiki, key 1).
        let g = hex::decode("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
            .unwrap();
        assert_eq!(
            hex::encode(hash160(&g)),
            "751e76e8199196d454941c45d1b3a323f1433bd6"
        );
    }

    #[test]
    fn display_is_byte_reversed() {
        let mut bytes = [0u8; 32];
        bytes[0] = 0xab;
        let txid = Txid(bytes);
        let s = txid.to_string();
        assert!(s.ends_with("ab") && s.starts_with("00"));
        assert_eq!(s.parse::<Txid>().unwrap(), txid);
        assert!("zz".parse::<Txid>().is_err());
        assert!("00".repeat(33).parse::<Txid>().is_err());
    }

    proptest! {
        #[test]
        fn hash_round_trips(bytes in any::<[u8; 32]>()) {
            let h = BlockHash(bytes);
            prop_assert_eq!(h.to_string().parse::<BlockHash>().unwrap(), h);
            let json = serde_json::to_string(&h).unwrap();
            prop_assert_eq!(serde_json::from_str::<BlockHash>(&json).unwrap(), h);
            let enc = crate::encode::serialize(&h);
            prop_assert_eq!(crate::encode::deserialize::<BlockHash>(&enc).unwrap(), h);
        }

        #[test]
        fn writer_matches_sha256d(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut w = Sha256dWriter::default();
            w.write_all(&data).unwrap();
            prop_assert_eq!(w.finish(), sha256d(&data));
        }
    }
}
