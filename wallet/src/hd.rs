//! HD keys: the BIP39 mnemonic (the backup words) and its seed, and the BIP32 keys of the
//! BIP44-style account `m/44'/<coin type>'/0'`, with its receive chain (`…/0/i`) and change
//! chain (`…/1/i`).
//!
//! Mnemonics come from the `bip39` crate and derivation from the `bip32` crate (on `k256`);
//! this module only picks the path and turns their errors into messages that say what to fix.

use bip32::{ChildNumber, XPrv};
use bip39::{Language, Mnemonic};
use chaincore::key::PrivateKey;
use chaincore::{Address, Network};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

/// BIP44 purpose field: the first, hardened, level of the path.
const PURPOSE: u32 = 44;

/// Coin type of ChainCore's main network (0x4343, "CC"). It is not registered in SLIP-44.
pub const MAIN_COIN_TYPE: u32 = 0x4343;

/// Coin type of the test networks: 1, as BIP44 asks of every coin's testnet.
pub const TEST_COIN_TYPE: u32 = 1;

/// The one account the wallet uses.
const ACCOUNT: u32 = 0;

/// A BIP39 seed: 64 bytes, wiped from memory when dropped.
pub type Seed = Zeroizing<[u8; 64]>;

/// Receive or change: the fourth level of the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chain {
    /// External chain (`…/0/i`): addresses given out to be paid.
    Receive,
    /// Internal chain (`…/1/i`): change of the wallet's own transactions.
    Change,
}

impl Chain {
    /// The chain's number in the path: 0 receive, 1 change.
    pub fn number(self) -> u32 {
        match self {
            Chain::Receive => 0,
            Chain::Change => 1,
        }
    }
}

/// Why a mnemonic or a key could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HdError {
    /// A word is not in the English BIP39 word list.
    #[error(
        "word {position} ('{word}') is not in the BIP39 English word list: check its spelling"
    )]
    UnknownWord {
        /// 1-based position of the word.
        position: usize,
        /// The word as typed.
        word: String,
    },
    /// Not 12, 15, 18, 21 or 24 words.
    #[error("{0} words given: a BIP39 mnemonic has 12, 15, 18, 21 or 24 words")]
    WordCount(usize),
    /// Every word is known but the checksum fails.
    #[error("the words fail the BIP39 checksum: one of them is wrong or out of order")]
    Checksum,
    /// BIP32 derivation failed (an index past 2^31, or a key outside the curve order).
    #[error("cannot derive the key at {path}: {why}")]
    Derivation {
        /// The path that failed.
        path: String,
        /// The `bip32` crate's reason.
        why: String,
    },
}

/// A new random mnemonic of `words` words (12 or 24) from the operating system's RNG.
pub fn new_mnemonic(words: usize) -> Result<Mnemonic, HdError> {
    let mut entropy = Zeroizing::new([0u8; 32]);
    let len = match words {
        12 => 16,
        24 => 32,
        n => return Err(HdError::WordCount(n)),
    };
    OsRng.fill_bytes(&mut entropy[..len]);
    Mnemonic::from_entropy_in(Language::English, &entropy[..len])
        .map_err(|_| HdError::WordCount(words))
}

/// Parses words typed by a person: any case, any whitespace between words, checked against
/// the English word list and the BIP39 checksum.
pub fn parse_mnemonic(text: &str) -> Result<Mnemonic, HdError> {
    let words: Zeroizing<Vec<String>> =
        Zeroizing::new(text.split_whitespace().map(str::to_lowercase).collect());
    let normalized = Zeroizing::new(words.join(" "));
    Mnemonic::parse_in(Language::English, normalized.as_str()).map_err(|e| match e {
        bip39::Error::UnknownWord(i) => HdError::UnknownWord {
            position: i + 1,
            word: words.get(i).cloned().unwrap_or_default(),
        },
        bip39::Error::BadWordCount(n) => HdError::WordCount(n),
        _ => HdError::Checksum,
    })
}

/// The BIP39 seed of `mnemonic` with the optional BIP39 passphrase (NFKD-normalized, as
/// BIP39 says; the empty string when there is none).
pub fn seed(mnemonic: &Mnemonic, passphrase: &str) -> Seed {
    Zeroizing::new(mnemonic.to_seed(passphrase))
}

/// Coin type of `network`'s derivation path.
pub fn coin_type(network: Network) -> u32 {
    match network {
        Network::Main => MAIN_COIN_TYPE,
        _ => TEST_COIN_TYPE,
    }
}

/// The account path `m/44'/<coin type>'/0'` of `network`.
pub fn account_path(network: Network) -> String {
    format!("m/{PURPOSE}'/{}'/{ACCOUNT}'", coin_type(network))
}

/// The full path of key `index` on `chain`.
pub fn key_path(network: Network, chain: Chain, index: u32) -> String {
    format!("{}/{}/{index}", account_path(network), chain.number())
}

/// The two chain keys of the account, from which every address key is one step away.
pub struct Account {
    network: Network,
    receive: XPrv,
    change: XPrv,
}

impl Account {
    /// Derives the account of `network` from a BIP39 seed.
    pub fn new(seed: &[u8; 64], network: Network) -> Result<Account, HdError> {
        let failed = |path: String| {
            move |e: bip32::Error| HdError::Derivation {
                path,
                why: e.to_string(),
            }
        };
        let hardened = |i: u32| ChildNumber::new(i, true);
        let account = XPrv::new(seed)
            .and_then(|m| m.derive_child(hardened(PURPOSE)?))
            .and_then(|k| k.derive_child(hardened(coin_type(network))?))
            .and_then(|k| k.derive_child(hardened(ACCOUNT)?))
            .map_err(failed(account_path(network)))?;
        let chain = |c: Chain| {
            ChildNumber::new(c.number(), false)
                .and_then(|n| account.derive_child(n))
                .map_err(failed(format!("{}/{}", account_path(network), c.number())))
        };
        Ok(Account {
            network,
            receive: chain(Chain::Receive)?,
            change: chain(Chain::Change)?,
        })
    }

    /// The private key at `index` on `chain`.
    pub fn key(&self, chain: Chain, index: u32) -> Result<PrivateKey, HdError> {
        let failed = |why: String| HdError::Derivation {
            path: key_path(self.network, chain, index),
            why,
        };
        let parent = match chain {
            Chain::Receive => &self.receive,
            Chain::Change => &self.change,
        };
        let child = ChildNumber::new(index, false)
            .and_then(|n| parent.derive_child(n))
            .map_err(|e| failed(e.to_string()))?;
        PrivateKey::from_bytes(&child.to_bytes()).map_err(|e| failed(e.to_string()))
    }

    /// The P2PKH address of the key at `index` on `chain`.
    pub fn address(&self, chain: Chain, index: u32) -> Result<String, HdError> {
        let key = self.key(chain, index)?;
        Ok(Address::p2pkh(key.public_key().pubkey_hash(), self.network).to_string())
    }
}

#[cfg(test)]
mod tests {
    //! Checked against the published vectors copied into `wallet/tests/data` (see its
    //! README for where each file comes from).

    use super::*;
    use bip32::{DerivationPath, Prefix};
    use serde_json::Value;

    const BIP39_VECTORS: &str = include_str!("../tests/data/bip39_vectors.json");
    const BIP32_VECTORS: &str = include_str!("../tests/data/bip32_vectors.json");

    #[test]
    fn bip39_vectors_from_trezor() {
        let vectors: Value = serde_json::from_str(BIP39_VECTORS).unwrap();
        let english = vectors["english"].as_array().unwrap();
        assert_eq!(english.len(), 24);
        for v in english {
            let [entropy, words, seed_hex, xprv] = [0, 1, 2, 3].map(|i| v[i].as_str().unwrap());
            let from_entropy =
                Mnemonic::from_entropy_in(Language::English, &hex::decode(entropy).unwrap())
                    .unwrap();
            assert_eq!(from_entropy.to_string(), words);
            let parsed = parse_mnemonic(words).unwrap();
            assert_eq!(parsed.to_entropy(), hex::decode(entropy).unwrap());
            let s = seed(&parsed, "TREZOR");
            assert_eq!(hex::encode(*s), seed_hex, "{words}");
            // The vectors' BIP32 master key of that seed.
            assert_eq!(
                XPrv::new(*s).unwrap().to_string(Prefix::XPRV).as_str(),
                xprv
            );
        }
    }

    #[test]
    fn bip32_vectors_1_to_3() {
        let vectors: Value = serde_json::from_str(BIP32_VECTORS).unwrap();
        let mut checked = 0;
        for v in vectors.as_array().unwrap() {
            let seed = hex::decode(v["seed"].as_str().unwrap()).unwrap();
            for c in v["chains"].as_array().unwrap() {
                let path: DerivationPath = c["path"].as_str().unwrap().parse().unwrap();
                let key = XPrv::derive_from_path(&seed, &path).unwrap();
                assert_eq!(
                    key.to_string(Prefix::XPRV).as_str(),
                    c["xprv"].as_str().unwrap(),
                    "vector {} {}",
                    v["vector"],
                    c["path"]
                );
                assert_eq!(
                    key.public_key().to_string(Prefix::XPUB),
                    c["xpub"].as_str().unwrap()
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 14, "every chain of vectors 1-3");
    }

    #[test]
    fn account_keys_are_the_bip32_keys_of_the_bip44_path() {
        // "abandon … about" (the first Trezor vector) with the passphrase "TREZOR".
        let m = parse_mnemonic(
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
        )
        .unwrap();
        let s = seed(&m, "TREZOR");
        for network in [Network::Main, Network::Regtest] {
            let account = Account::new(&s, network).unwrap();
            for (chain, index) in [(Chain::Receive, 0), (Chain::Receive, 7), (Chain::Change, 3)] {
                let path: DerivationPath = key_path(network, chain, index).parse().unwrap();
                let expected = XPrv::derive_from_path(*s, &path).unwrap().to_bytes();
                assert_eq!(account.key(chain, index).unwrap().to_bytes(), expected);
            }
        }
        assert_eq!(
            key_path(Network::Main, Chain::Change, 5),
            "m/44'/17219'/0'/1/5"
        );
        assert_eq!(
            key_path(Network::Regtest, Chain::Receive, 0),
            "m/44'/1'/0'/0/0"
        );
        assert!(matches!(
            account_key_past_the_last_index(&s),
            Err(HdError::Derivation { .. })
        ));
    }

    fn account_key_past_the_last_index(s: &Seed) -> Result<PrivateKey, HdError> {
        Account::new(s, Network::Regtest)?.key(Chain::Receive, 1 << 31)
    }

    #[test]
    fn typed_words_are_forgiven_case_and_spacing_but_not_mistakes() {
        let words =
            "Legal  winner thank year wave sausage worth useful legal winner thank\tYELLOW\n";
        assert_eq!(
            parse_mnemonic(words).unwrap().to_string(),
            "legal winner thank year wave sausage worth useful legal winner thank yellow"
        );
        assert_eq!(
            parse_mnemonic(
                "legal winner thank year wave sausage worth useful legal winnr thank yellow"
            ),
            Err(HdError::UnknownWord {
                position: 10,
                word: "winnr".into()
            })
        );
        assert_eq!(
            parse_mnemonic(&"abandon ".repeat(12)),
            Err(HdError::Checksum)
        );
        assert_eq!(parse_mnemonic("abandon about"), Err(HdError::WordCount(2)));
        assert!(HdError::Checksum.to_string().contains("checksum"));
    }

    #[test]
    fn new_mnemonics_have_the_asked_length_and_parse_back() {
        for n in [12, 24] {
            let m = new_mnemonic(n).unwrap();
            assert_eq!(m.word_count(), n);
            assert_eq!(parse_mnemonic(&m.to_string()).unwrap(), m);
        }
        assert_eq!(new_mnemonic(13).unwrap_err(), HdError::WordCount(13));
        assert_ne!(new_mnemonic(12).unwrap(), new_mnemonic(12).unwrap());
    }
}
