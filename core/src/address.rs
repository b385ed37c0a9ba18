//! Base58Check P2PKH addresses: a network's version byte followed by HASH160(public key).

use std::fmt;

use crate::network::Network;
use crate::script::Script;

/// Why an address could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Characters outside the Base58 alphabet.
    #[error("invalid address: not Base58 ({0})")]
    Base58(String),
    /// The 4-byte checksum does not match: most likely a typo.
    #[error("invalid address: checksum mismatch (check for a typo)")]
    Checksum,
    /// Decoded to the wrong number of bytes.
    #[error("invalid address: wrong length")]
    Length,
    /// A valid address of another network.
    #[error("address is for the {found} network, but this is {expected}")]
    WrongNetwork {
        /// Network the version byte belongs to, or "unknown".
        found: String,
        /// Network that was expected.
        expected: Network,
    },
}

/// Base58Check-encodes `payload` (appends the first four bytes of its SHA-256d).
pub fn base58check_encode(payload: &[u8]) -> String {
    bs58::encode(payload).with_check().into_string()
}

/// Decodes Base58Check text and verifies its checksum; returns the payload (version included).
pub fn base58check_decode(s: &str) -> Result<Vec<u8>, AddressError> {
    bs58::decode(s)
        .with_check(None)
        .into_vec()
        .map_err(|e| match e {
            bs58::decode::Error::InvalidChecksum { .. } => AddressError::Checksum,
            bs58::decode::Error::NoChecksum => AddressError::Length,
            other => AddressError::Base58(other.to_string()),
        })
}

/// A P2PKH address on a given network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Address {
    /// The network whose version byte the address carries.
    pub network: Network,
    /// HASH160 of the compressed public key.
    pub pubkey_hash: [u8; 20],
}

impl Address {
    /// The address paying to `pubkey_hash` on `network`.
    pub fn p2pkh(pubkey_hash: [u8; 20], network: Network) -> Address {
        Address {
            network,
            pubkey_hash,
        }
    }

    /// Parses an address and requires it to belong to `network`.
    pub fn parse(s: &str, network: Network) -> Result<Address, AddressError> {
        let payload = base58check_decode(s.trim())?;
        let [version, hash @ ..] = payload.as_slice() else {
            return Err(AddressError::Length);
        };
        let pubkey_hash: [u8; 20] = hash.try_into().map_err(|_| AddressError::Length)?;
        if *version != network.params().address_version {
            let found = Network::ALL
                .into_iter()
                .find(|n| n.params().address_version == *version)
                .map_or_else(|| format!("unknown (version {version})"), |n| n.to_string());
            return Err(AddressError::WrongNetwork {
                found,
                expected: network,
            });
        }
        Ok(Address::p2pkh(pubkey_hash, network))
    }

    /// The address an output script pays to, if it is P2PKH.
    pub fn from_script(script: &Script, network: Network) -> Option<Address> {
        script.p2pkh_hash().map(|h| Address::p2pkh(h, network))
    }

    /// The P2PKH output script paying to this address.
    pub fn script_pubkey(&self) -> Script {
        Script::new_p2pkh(&self.pubkey_hash)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut payload = Vec::with_capacity(21);
        payload.push(self.network.params().address_version);
        payload.extend_from_slice(&self.pubkey_hash);
        f.write_str(&base58check_encode(&payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn mainnet_addresses_start_with_c() {
        for hash in [[0u8; 20], [0xff; 20], [0x5a; 20]] {
            assert!(Address::p2pkh(hash, Network::Main)
                .to_string()
                .starts_with('C'));
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let a = Address::p2pkh([9; 20], Network::Regtest).to_string();
        assert_eq!(
            Address::parse(&a, Network::Main),
            Err(AddressError::WrongNetwork {
                found: "regtest".into(),
                expected: Network::Main
            })
        );
        let mut typo = a.clone().into_bytes();
        typo[5] = if typo[5] == b'x' { b'y' } else { b'x' };
        assert_eq!(
            Address::parse(std::str::from_utf8(&typo).unwrap(), Network::Regtest),
            Err(AddressError::Checksum)
        );
        assert!(matches!(
            Address::parse("0OIl", Network::Regtest),
            Err(AddressError::Base58(_))
        ));
        assert_eq!(
            Address::parse(&base58check_encode(&[122, 1, 2]), Network::Regtest),
            Err(AddressError::Length)
        );
    }

    proptest! {
        #[test]
        fn round_trips(hash in any::<[u8; 20]>(), net in 0usize..3) {
            let net = Network::ALL[net];
            let a = Address::p2pkh(hash, net);
            prop_assert_eq!(Address::parse(&a.to_string(), net).unwrap(), a);
            prop_assert_eq!(Address::from_script(&a.script_pubkey(), net), Some(a));
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,60}") {
            let _ = Address::parse(&s, Network::Main);
        }
    }
}
