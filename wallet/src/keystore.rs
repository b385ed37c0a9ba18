//! The wallet file: addresses in the clear; secrets (the BIP39 seed of an HD wallet, and any
//! random or imported keys) either in the clear or encrypted at rest (Argon2id key derivation,
//! ChaCha20-Poly1305). Written atomically (a temp file of its own name, fsync, rename) with
//! mode 0600; a file that does not parse is refused and never overwritten.
//!
//! Two versions of the file are read and written:
//! - version 1, random-key wallets (what the wallet wrote before HD): every key stored;
//! - version 2, HD wallets: the seed, the account path, and the keys of imported addresses;
//!   the keys of derived addresses are derived again from the seed on every load and checked
//!   against the stored addresses.
//!
//! Saving keeps a wallet's version, so a version 1 file stays readable by older binaries.

use std::io::Write;
use std::path::Path;

use argon2::Argon2;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use chaincore::key::PrivateKey;
use chaincore::{Address, Network};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::hd::{self, Account, Chain, Seed};

/// Format of random-key wallets.
const LEGACY_VERSION: u32 = 1;

/// Format of HD wallets.
const HD_VERSION: u32 = 2;

/// Bytes of a BIP39 seed.
const SEED_LEN: usize = 64;

/// Why the wallet file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// No file at the path.
    #[error("no wallet at {0}: create one with `chaincore-wallet create`")]
    Missing(String),
    /// A file already exists where `create` would write.
    #[error("a wallet already exists at {0}; refusing to overwrite it")]
    Exists(String),
    /// The file does not parse or is inconsistent.
    #[error(
        "wallet file {path} is corrupted ({why}); it was left untouched — restore it from a backup"
    )]
    Corrupted {
        /// File path.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// The passphrase does not decrypt the keys.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// A change to the keys was asked of a wallet whose keys are still encrypted.
    #[error("the wallet's keys are encrypted: unlock it with its passphrase first")]
    Locked,
    /// The file belongs to another network.
    #[error("this wallet is for the {found} network, not {expected}; pass --network {found}")]
    WrongNetwork {
        /// Network in the file.
        found: Network,
        /// Network asked for.
        expected: Network,
    },
    /// A key could not be derived from the seed.
    #[error(transparent)]
    Derivation(#[from] hd::HdError),
    /// Reading or writing failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done, naming the kind of file.
        action: &'static str,
        /// The file (or directory) that failed.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Most memory the Argon2id parameters of a wallet file may ask for, in KiB: 256 MiB, 13 times
/// what `create` writes (19 MiB).
const MAX_KDF_M_COST: u32 = 256 * 1024;

/// Most Argon2id work a wallet file may ask for, memory (KiB) times passes: 512 MiB·passes,
/// 13 times what `create` writes (19 MiB, 2 passes), well under a second.
const MAX_KDF_WORK: u64 = 512 * 1024;

/// Most Argon2id lanes a wallet file may ask for (`create` writes 1).
const MAX_KDF_P_COST: u32 = 16;

/// Argon2id parameters and salt, stored with encrypted keys.
#[derive(Serialize, Deserialize, Debug, Clone)]
struct Kdf {
    /// Memory in KiB.
    m_cost: u32,
    /// Iterations.
    t_cost: u32,
    /// Lanes.
    p_cost: u32,
    /// Salt, hex.
    salt: String,
}

impl Kdf {
    /// The Argon2id parameters, if Argon2 accepts them and they stay within
    /// [`MAX_KDF_M_COST`], [`MAX_KDF_WORK`] and [`MAX_KDF_P_COST`]: a damaged file must not
    /// make `unlock` allocate or run without bound (`m_cost` comes straight from the file).
    fn params(&self) -> Result<argon2::Params, String> {
        let work = u64::from(self.m_cost) * u64::from(self.t_cost);
        if self.m_cost > MAX_KDF_M_COST || work > MAX_KDF_WORK || self.p_cost > MAX_KDF_P_COST {
            return Err(format!(
                "Argon2id parameters m_cost {} KiB, t_cost {}, p_cost {} exceed the limits of \
                 {MAX_KDF_M_COST} KiB, {MAX_KDF_WORK} KiB times passes and {MAX_KDF_P_COST} lanes",
                self.m_cost, self.t_cost, self.p_cost
            ));
        }
        argon2::Params::new(self.m_cost, self.t_cost, self.p_cost, Some(32))
            .map_err(|e| format!("Argon2id parameters: {e}"))
    }
}

/// One address the wallet owns.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The address.
    pub address: String,
    /// A user label.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    /// Made for change (for a derived key: on the change chain).
    #[serde(default)]
    pub change: bool,
    /// Index on its chain (receive, or change when `change`) of a key derived from the seed;
    /// absent for random and imported keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
}

impl Entry {
    fn chain(&self) -> Chain {
        if self.change {
            Chain::Change
        } else {
            Chain::Receive
        }
    }
}

/// The file as stored.
#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    version: u32,
    network: Network,
    /// Version 2: the BIP44-style account path the derived keys hang from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    account: Option<String>,
    addresses: Vec<Entry>,
    /// Hex of the 32-byte keys of the entries without an `index`, in `addresses` order, when
    /// not encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keys: Option<Vec<String>>,
    /// Version 2, not encrypted: hex of the 64-byte BIP39 seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seed: Option<String>,
    /// Encrypted secrets: KDF, nonce and ciphertext of (version 2: the seed, then) the
    /// concatenated 32-byte keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encrypted: Option<Encrypted>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Encrypted {
    kdf: Kdf,
    nonce: String,
    ciphertext: String,
}

/// Secrets once available: the seed and its account (HD wallets), and a key per entry.
struct Secrets {
    hd: Option<(Seed, Account)>,
    /// In `entries` order.
    keys: Vec<PrivateKey>,
}

/// A wallet in memory.
pub struct Keystore {
    /// Network of every address.
    pub network: Network,
    /// Owned addresses, in creation order.
    pub entries: Vec<Entry>,
    /// HD (version 2) or random-key (version 1) wallet.
    hd: bool,
    /// Seed and keys, once unlocked (or always, if not encrypted).
    secrets: Option<Secrets>,
    /// Encryption parameters and the derived key, if the file is encrypted.
    encryption: Option<(Kdf, Zeroizing<[u8; 32]>)>,
    /// Stored ciphertext, kept until the keys are unlocked (so saving never loses them).
    sealed: Option<Encrypted>,
    /// The file it was loaded from, for errors (empty for a new wallet).
    source: String,
}

impl Keystore {
    /// A new HD wallet from a BIP39 seed, with its first receiving address; encrypted if
    /// `passphrase` is given.
    pub fn create_hd(
        network: Network,
        seed: Seed,
        passphrase: Option<&str>,
    ) -> Result<Keystore, KeystoreError> {
        let account = Account::new(&seed, network)?;
        let mut ks = Keystore {
            network,
            entries: Vec::new(),
            hd: true,
            secrets: Some(Secrets {
                hd: Some((seed, account)),
                keys: Vec::new(),
            }),
            encryption: passphrase.map(|p| {
                let mut salt = [0u8; 16];
                OsRng.fill_bytes(&mut salt);
                let kdf = Kdf {
                    m_cost: 19 * 1024,
                    t_cost: 2,
                    p_cost: 1,
                    salt: hex::encode(salt),
                };
                let key = derive(&kdf, p).expect("fixed Argon2 parameters are valid");
                (kdf, key)
            }),
            sealed: None,
            source: String::new(),
        };
        ks.new_address(Chain::Receive, String::new())?;
        Ok(ks)
    }

    /// True for an HD wallet (keys derived from a BIP39 seed).
    pub fn is_hd(&self) -> bool {
        self.hd
    }

    /// True if keys are encrypted at rest.
    pub fn is_encrypted(&self) -> bool {
        self.encryption.is_some() || self.sealed.is_some()
    }

    /// True if the private keys are available.
    pub fn is_unlocked(&self) -> bool {
        self.secrets.is_some()
    }

    /// The derivation path of `entry`'s key, if it is derived from the seed.
    pub fn path_of(&self, entry: &Entry) -> Option<String> {
        entry
            .index
            .map(|i| hd::key_path(self.network, entry.chain(), i))
    }

    /// How many addresses of `chain` were derived: the next index to use on it.
    pub fn next_index(&self, chain: Chain) -> u32 {
        self.entries
            .iter()
            .filter(|e| e.chain() == chain)
            .filter_map(|e| e.index)
            .map(|i| i + 1)
            .max()
            .unwrap_or(0)
    }

    /// Decrypts the secrets with `passphrase`.
    pub fn unlock(&mut self, passphrase: &str) -> Result<(), KeystoreError> {
        let Some(sealed) = self.sealed.clone() else {
            return Ok(());
        };
        let key = derive(&sealed.kdf, passphrase).ok_or(KeystoreError::WrongPassphrase)?;
        let nonce = hex::decode(&sealed.nonce).map_err(|_| KeystoreError::WrongPassphrase)?;
        let ciphertext =
            hex::decode(&sealed.ciphertext).map_err(|_| KeystoreError::WrongPassphrase)?;
        let nonce: [u8; 12] = nonce
            .try_into()
            .map_err(|_| KeystoreError::WrongPassphrase)?;
        let plain = Zeroizing::new(
            ChaCha20Poly1305::new(&Key::from(*key))
                .decrypt(&Nonce::from(nonce), ciphertext.as_slice())
                .map_err(|_| KeystoreError::WrongPassphrase)?,
        );
        let (seed, keys) = if self.hd {
            if plain.len() < SEED_LEN {
                return Err(KeystoreError::WrongPassphrase);
            }
            plain.split_at(SEED_LEN)
        } else {
            plain.split_at(0)
        };
        let secrets = open_secrets(self.hd.then_some(seed), keys, self.network, &self.entries)
            // The passphrase is right (the ciphertext authenticated), so the file is wrong.
            .map_err(|why| KeystoreError::Corrupted {
                path: self.source.clone(),
                why,
            })?;
        self.secrets = Some(secrets);
        self.encryption = Some((sealed.kdf, key));
        self.sealed = None;
        Ok(())
    }

    /// Adds the next address of `chain`: derived from the seed in an HD wallet, a new random
    /// key in a version 1 wallet. The wallet must be unlocked. Returns the address.
    pub fn new_address(&mut self, chain: Chain, label: String) -> Result<String, KeystoreError> {
        let index = self.next_index(chain);
        let secrets = self.secrets.as_mut().ok_or(KeystoreError::Locked)?;
        let (key, index) = match &secrets.hd {
            Some((_, account)) => (account.key(chain, index)?, Some(index)),
            None => (PrivateKey::generate(), None),
        };
        let address = Address::p2pkh(key.public_key().pubkey_hash(), self.network).to_string();
        secrets.keys.push(key);
        self.entries.push(Entry {
            address: address.clone(),
            label,
            change: chain == Chain::Change,
            index,
        });
        Ok(address)
    }

    /// Adds an outside key (kept in the file next to the seed, if any); the wallet must be
    /// unlocked. A key the wallet already has is not added twice. Returns its address.
    pub fn import_key(&mut self, key: PrivateKey, label: String) -> Result<String, KeystoreError> {
        let address = Address::p2pkh(key.public_key().pubkey_hash(), self.network).to_string();
        let secrets = self.secrets.as_mut().ok_or(KeystoreError::Locked)?;
        if !self.entries.iter().any(|e| e.address == address) {
            secrets.keys.push(key);
            self.entries.push(Entry {
                address: address.clone(),
                label,
                change: false,
                index: None,
            });
        }
        Ok(address)
    }

    /// The private key of `address`, if owned and unlocked.
    pub fn key_for(&self, address: &str) -> Option<&PrivateKey> {
        let i = self.entries.iter().position(|e| e.address == address)?;
        self.secrets.as_ref()?.keys.get(i)
    }

    /// Reads a wallet file for `network`.
    pub fn load(path: &Path, network: Network) -> Result<Keystore, KeystoreError> {
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeystoreError::Missing(shown))
            }
            Err(source) => {
                return Err(KeystoreError::Io {
                    action: "read wallet file",
                    path: shown,
                    source,
                })
            }
        };
        Keystore::from_json(&text, network, shown)
    }

    /// Parses the text of a wallet file for `network`, as [`Keystore::load`] does after reading
    /// it; `source` names the file in errors. Checks everything that can be checked without the
    /// passphrase: the version, network and account path, every address, and (unencrypted) that
    /// every key and the seed give the stored addresses.
    pub fn from_json(
        text: &str,
        network: Network,
        source: String,
    ) -> Result<Keystore, KeystoreError> {
        let corrupted = |why: String| KeystoreError::Corrupted {
            path: source.clone(),
            why,
        };
        let file: FileFormat = serde_json::from_str(text).map_err(|e| corrupted(e.to_string()))?;
        let hd = match file.version {
            LEGACY_VERSION => false,
            HD_VERSION => true,
            v => return Err(corrupted(format!("unknown format version {v}"))),
        };
        if file.network != network {
            return Err(KeystoreError::WrongNetwork {
                found: file.network,
                expected: network,
            });
        }
        let expected_account = hd.then(|| hd::account_path(network));
        if file.account != expected_account {
            return Err(corrupted(format!(
                "account path {:?} where {:?} belongs",
                file.account, expected_account
            )));
        }
        for e in &file.addresses {
            Address::parse(&e.address, network)
                .map_err(|err| corrupted(format!("address {}: {err}", e.address)))?;
        }
        let (secrets, sealed) = match (file.keys, file.seed, file.encrypted) {
            (Some(keys), seed, None) if seed.is_some() == hd => {
                let mut plain = Zeroizing::new(Vec::new());
                for h in &keys {
                    plain.extend(hex::decode(h).map_err(|_| corrupted("key is not hex".into()))?);
                }
                let seed = seed
                    .map(|s| hex::decode(s).map_err(|_| corrupted("seed is not hex".into())))
                    .transpose()?
                    .map(Zeroizing::new);
                let secrets = open_secrets(
                    seed.as_deref().map(Vec::as_slice),
                    &plain,
                    network,
                    &file.addresses,
                )
                .map_err(corrupted)?;
                (Some(secrets), None)
            }
            (None, None, Some(enc)) => {
                enc.kdf.params().map_err(corrupted)?;
                (None, Some(enc))
            }
            _ if hd => {
                return Err(corrupted(
                    "needs exactly one of `seed` (with `keys`) and `encrypted`".into(),
                ))
            }
            _ => {
                return Err(corrupted(
                    "needs exactly one of `keys` and `encrypted`".into(),
                ))
            }
        };
        Ok(Keystore {
            network,
            entries: file.addresses,
            hd,
            secrets,
            encryption: None,
            sealed,
            source,
        })
    }

    /// Writes the wallet atomically: a temp file of its own (mode 0600) in the same directory,
    /// fsync, rename over `path`, fsync of the directory. `create_new` refuses to replace an
    /// existing file (the rename is then a link that fails if `path` exists).
    pub fn save(&self, path: &Path, create_new: bool) -> Result<(), KeystoreError> {
        let shown = path.display().to_string();
        let (keys, seed, encrypted) = match (&self.secrets, &self.encryption, &self.sealed) {
            (_, _, Some(sealed)) => (None, None, Some(sealed.clone())),
            (Some(secrets), None, None) => {
                let (keys, seed) = secrets.to_stored(&self.entries);
                (
                    Some(keys.iter().map(hex::encode).collect()),
                    seed.map(hex::encode),
                    None,
                )
            }
            (Some(secrets), Some((kdf, key)), None) => {
                let (keys, seed) = secrets.to_stored(&self.entries);
                let mut plain = Zeroizing::new(Vec::new());
                plain.extend(seed.iter().flat_map(|s| s.iter()));
                plain.extend(keys.iter().flat_map(|k| k.iter()));
                let mut nonce = [0u8; 12];
                OsRng.fill_bytes(&mut nonce);
                let ciphertext = ChaCha20Poly1305::new(&Key::from(**key))
                    .encrypt(&Nonce::from(nonce), plain.as_slice())
                    .map_err(|_| KeystoreError::WrongPassphrase)?;
                let enc = Encrypted {
                    kdf: kdf.clone(),
                    nonce: hex::encode(nonce),
                    ciphertext: hex::encode(ciphertext),
                };
                (None, None, Some(enc))
            }
            (None, _, None) => return Err(KeystoreError::Locked),
        };
        let file = FileFormat {
            version: if self.hd { HD_VERSION } else { LEGACY_VERSION },
            network: self.network,
            account: self.hd.then(|| hd::account_path(self.network)),
            addresses: self.entries.clone(),
            keys,
            seed,
            encrypted,
        };
        let text = Zeroizing::new(serde_json::to_string_pretty(&file).map_err(|e| {
            KeystoreError::Corrupted {
                path: shown.clone(),
                why: e.to_string(),
            }
        })?);
        write_atomically(path, text.as_bytes(), create_new)
    }
}

impl Secrets {
    /// What the file stores: the keys of the entries not derived from the seed, and the seed.
    fn to_stored(&self, entries: &[Entry]) -> (Vec<Zeroizing<[u8; 32]>>, Option<&Seed>) {
        let keys = entries
            .iter()
            .zip(&self.keys)
            .filter(|(e, _)| e.index.is_none())
            .map(|(_, k)| Zeroizing::new(k.to_bytes()))
            .collect();
        (keys, self.hd.as_ref().map(|(seed, _)| seed))
    }
}

/// Writes `bytes` to a new temp file next to `path`, syncs it, renames it over `path` (or,
/// with `create_new`, links it there only if nothing is there) and syncs the directory.
/// Every error names the file that failed; the temp file is removed on failure.
fn write_atomically(path: &Path, bytes: &[u8], create_new: bool) -> Result<(), KeystoreError> {
    let shown = path.display().to_string();
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => std::path::PathBuf::from("."),
    };
    let io = |action, path: &Path| {
        let path = path.display().to_string();
        move |source| KeystoreError::Io {
            action,
            path,
            source,
        }
    };
    std::fs::create_dir_all(&dir).map_err(io("create the wallet directory", &dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "wallet".into());
    // tempfile creates the file with mode 0600 and a random name: two writers never share it.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(io("create a temporary wallet file in", &dir))?;
    let tmp_path = tmp.path().to_path_buf();
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(io("write temporary wallet file", &tmp_path))?;
    if create_new {
        tmp.persist_noclobber(path)
            .map_err(|e| match e.error.kind() {
                std::io::ErrorKind::AlreadyExists => KeystoreError::Exists(shown.clone()),
                _ => KeystoreError::Io {
                    action: "create wallet file",
                    path: shown.clone(),
                    source: e.error,
                },
            })?;
    } else {
        tmp.persist(path).map_err(|e| KeystoreError::Io {
            action: "replace wallet file",
            path: shown.clone(),
            source: e.error,
        })?;
    }
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync the wallet directory", &dir))
}

/// Argon2id of `passphrase` with the stored parameters; `None` if they are unusable.
fn derive(kdf: &Kdf, passphrase: &str) -> Option<Zeroizing<[u8; 32]>> {
    let salt = hex::decode(&kdf.salt).ok()?;
    let params = kdf.params().ok()?;
    let argon = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.as_bytes(), &salt, &mut *out)
        .ok()?;
    Some(out)
}

/// Rebuilds the key of every entry: derived entries from `seed` (which an HD wallet has and a
/// random-key wallet does not), the others from the concatenated 32-byte `keys` in order. Each
/// key must match its entry's address and every stored key must be used.
fn open_secrets(
    seed: Option<&[u8]>,
    keys: &[u8],
    network: Network,
    entries: &[Entry],
) -> Result<Secrets, String> {
    let hd = match seed {
        Some(bytes) => {
            let seed: [u8; SEED_LEN] = bytes
                .try_into()
                .map_err(|_| format!("the seed is {} bytes, not {SEED_LEN}", bytes.len()))?;
            let seed = Zeroizing::new(seed);
            let account = Account::new(&seed, network).map_err(|e| e.to_string())?;
            Some((seed, account))
        }
        None => None,
    };
    let stored = entries.iter().filter(|e| e.index.is_none()).count();
    if keys.len() != stored * 32 {
        return Err(format!("{} key bytes for {stored} stored keys", keys.len()));
    }
    let mut chunks = keys.chunks_exact(32);
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let key = match (entry.index, &hd) {
            (Some(i), Some((_, account))) => {
                account.key(entry.chain(), i).map_err(|e| e.to_string())?
            }
            (Some(_), None) => {
                return Err(format!(
                    "address {} claims a derived key but the wallet has no seed",
                    entry.address
                ))
            }
            (None, _) => {
                let chunk = chunks.next().ok_or("too few keys")?;
                let bytes: &[u8; 32] = chunk.try_into().map_err(|_| "bad key length")?;
                PrivateKey::from_bytes(bytes).map_err(|e| e.to_string())?
            }
        };
        let address = Address::p2pkh(key.public_key().pubkey_hash(), network).to_string();
        if address != entry.address {
            return Err(format!("key does not match address {}", entry.address));
        }
        out.push(key);
    }
    Ok(Secrets { hd, keys: out })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("cc-wallet-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("wallet.json")
    }

    /// The seed of the first Trezor BIP39 vector's words, without a passphrase.
    fn test_seed() -> Seed {
        let words = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
        hd::seed(&hd::parse_mnemonic(words).unwrap(), "")
    }

    fn data(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name)
    }

    #[test]
    fn hd_file_round_trip_derives_the_same_keys() {
        let path = temp("hd");
        let mut ks = Keystore::create_hd(Network::Regtest, test_seed(), None).unwrap();
        let account = Account::new(&test_seed(), Network::Regtest).unwrap();
        let address = |chain, i| {
            let key = account.key(chain, i).unwrap();
            Address::p2pkh(key.public_key().pubkey_hash(), Network::Regtest).to_string()
        };
        assert_eq!(ks.entries[0].address, address(Chain::Receive, 0));
        let r1 = ks.new_address(Chain::Receive, "savings".into()).unwrap();
        let c0 = ks.new_address(Chain::Change, String::new()).unwrap();
        assert_eq!(r1, address(Chain::Receive, 1));
        assert_eq!(c0, address(Chain::Change, 0));
        let imported = PrivateKey::generate();
        let ia = ks.import_key(imported.clone(), "imported".into()).unwrap();
        assert_eq!(ks.next_index(Chain::Receive), 2);
        assert_eq!(ks.next_index(Chain::Change), 1);
        ks.save(&path, true).unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"version\": 2") && text.contains("m/44'/1'/0'"));
        assert!(
            text.contains(&hex::encode(*test_seed())),
            "a plain HD file keeps the seed"
        );
        let back = Keystore::load(&path, Network::Regtest).unwrap();
        assert!(back.is_hd());
        assert_eq!(back.entries, ks.entries);
        for e in &ks.entries {
            assert_eq!(
                back.key_for(&e.address).unwrap().to_bytes(),
                ks.key_for(&e.address).unwrap().to_bytes()
            );
        }
        assert_eq!(back.key_for(&ia).unwrap().to_bytes(), imported.to_bytes());
        assert_eq!(
            back.path_of(&back.entries[2]).as_deref(),
            Some("m/44'/1'/0'/1/0")
        );
        assert_eq!(back.path_of(&back.entries[3]), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            ks.save(&path, true),
            Err(KeystoreError::Exists(_))
        ));
        assert!(matches!(
            Keystore::load(&path, Network::Main),
            Err(KeystoreError::WrongNetwork { .. })
        ));
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec!["wallet.json"], "no temp file left behind");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn encrypted_hd_round_trip_and_wrong_passphrase() {
        let path = temp("enc");
        let ks = Keystore::create_hd(Network::Regtest, test_seed(), Some("correct horse")).unwrap();
        let addr = ks.entries[0].address.clone();
        let secret = ks.key_for(&addr).unwrap().to_bytes();
        ks.save(&path, true).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&hex::encode(secret)), "no clear key on disk");
        assert!(
            !text.contains(&hex::encode(*test_seed())),
            "no clear seed on disk"
        );

        let mut locked = Keystore::load(&path, Network::Regtest).unwrap();
        assert!(locked.is_encrypted() && !locked.is_unlocked());
        assert!(matches!(
            locked.new_address(Chain::Receive, String::new()),
            Err(KeystoreError::Locked)
        ));
        assert!(matches!(
            locked.unlock("wrong"),
            Err(KeystoreError::WrongPassphrase)
        ));
        // Saving while locked keeps the ciphertext.
        locked.save(&path, false).unwrap();
        let mut again = Keystore::load(&path, Network::Regtest).unwrap();
        again.unlock("correct horse").unwrap();
        assert_eq!(again.key_for(&addr).unwrap().to_bytes(), secret);
        // A derived and an imported key, saved: both come back after unlocking.
        let c0 = again.new_address(Chain::Change, String::new()).unwrap();
        let ia = again
            .import_key(PrivateKey::generate(), String::new())
            .unwrap();
        again.save(&path, false).unwrap();
        let mut third = Keystore::load(&path, Network::Regtest).unwrap();
        third.unlock("correct horse").unwrap();
        assert!(third.key_for(&c0).is_some() && third.key_for(&ia).is_some());
        // Addresses are stored in the clear: one swapped for another is caught on unlock, as
        // a corrupted file rather than a wrong passphrase.
        let other = Address::p2pkh([9; 20], Network::Regtest).to_string();
        let text = std::fs::read_to_string(&path).unwrap().replace(&c0, &other);
        std::fs::write(&path, text).unwrap();
        let mut tampered = Keystore::load(&path, Network::Regtest).unwrap();
        assert!(matches!(
            tampered.unlock("correct horse"),
            Err(KeystoreError::Corrupted { .. })
        ));
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn version_1_files_still_open_and_stay_version_1() {
        let path = temp("legacy");
        // Written by the wallet before HD wallets existed (see tests/data/README.md).
        std::fs::copy(data("legacy_v1_plain.json"), &path).unwrap();
        let mut ks = Keystore::load(&path, Network::Regtest).unwrap();
        assert!(!ks.is_hd() && !ks.is_encrypted());
        assert_eq!(ks.entries.len(), 2);
        assert_eq!(ks.entries[1].label, "savings");
        let first = ks.entries[0].address.clone();
        let key = ks.key_for(&first).unwrap().to_bytes();
        let change = ks.new_address(Chain::Change, String::new()).unwrap();
        assert_eq!(ks.path_of(&ks.entries[2]), None, "a random change key");
        ks.save(&path, false).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"version\": 1") && !text.contains("seed"));
        let back = Keystore::load(&path, Network::Regtest).unwrap();
        assert_eq!(back.key_for(&first).unwrap().to_bytes(), key);
        assert!(back.key_for(&change).is_some());

        let enc_path = path.with_file_name("enc.json");
        std::fs::copy(data("legacy_v1_encrypted.json"), &enc_path).unwrap();
        let mut enc = Keystore::load(&enc_path, Network::Regtest).unwrap();
        assert!(!enc.is_hd() && enc.is_encrypted());
        enc.unlock("legacy passphrase").unwrap();
        let added = enc.new_address(Chain::Receive, String::new()).unwrap();
        enc.save(&enc_path, false).unwrap();
        let mut enc_back = Keystore::load(&enc_path, Network::Regtest).unwrap();
        enc_back.unlock("legacy passphrase").unwrap();
        assert!(enc_back.key_for(&added).is_some());
        assert_eq!(enc_back.entries.len(), 2);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn corrupted_files_are_refused_and_left_alone() {
        let path = temp("corrupt");
        for junk in ["", "{", "{\"version\":1}", "[1,2,3]"] {
            std::fs::write(&path, junk).unwrap();
            assert!(matches!(
                Keystore::load(&path, Network::Regtest),
                Err(KeystoreError::Corrupted { .. })
            ));
            assert_eq!(std::fs::read_to_string(&path).unwrap(), junk);
        }
        // A stored key that does not match its address.
        let mut ks = Keystore::create_hd(Network::Regtest, test_seed(), None).unwrap();
        let imported = ks
            .import_key(PrivateKey::generate(), String::new())
            .unwrap();
        ks.save(&path, false).unwrap();
        let good = std::fs::read_to_string(&path).unwrap();
        let key_hex = hex::encode(ks.key_for(&imported).unwrap().to_bytes());
        // A seed that does not derive the stored addresses, a missing seed, a foreign account.
        let other_seed = hex::encode([7u8; 64]);
        for bad in [
            good.replace(&key_hex, &"11".repeat(32)),
            good.replace(&hex::encode(*test_seed()), &other_seed),
            good.replace(
                &format!("\"seed\": \"{}\"", hex::encode(*test_seed())),
                "\"seed\": null",
            ),
            good.replace("m/44'/1'/0'", "m/44'/0'/0'"),
            good.replace("\"version\": 2", "\"version\": 3"),
        ] {
            assert_ne!(bad, good);
            std::fs::write(&path, &bad).unwrap();
            assert!(
                matches!(
                    Keystore::load(&path, Network::Regtest),
                    Err(KeystoreError::Corrupted { .. })
                ),
                "{bad}"
            );
            assert_eq!(std::fs::read_to_string(&path).unwrap(), bad);
        }
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    /// Found by the `wallet_file` fuzz target (fuzz/regressions/wallet_file/): an encrypted
    /// file whose `m_cost` was damaged to 888,888,888 KiB made `unlock` abort the process
    /// ("memory allocation of 910222221312 bytes failed") instead of reporting the file. Such
    /// parameters are now refused when the file is loaded, before any passphrase is asked.
    #[test]
    fn kdf_costs_past_the_limits_are_refused_at_load() {
        let path = temp("kdf");
        let ks = Keystore::create_hd(Network::Regtest, test_seed(), Some("pw")).unwrap();
        ks.save(&path, true).unwrap();
        let good = std::fs::read_to_string(&path).unwrap();
        assert!(good.contains("\"m_cost\": 19456") && good.contains("\"t_cost\": 2"));
        for bad in [
            good.replace("\"m_cost\": 19456", "\"m_cost\": 888888888"),
            good.replace("\"t_cost\": 2", "\"t_cost\": 4294967295"),
            good.replace("\"p_cost\": 1", "\"p_cost\": 16777215"),
            good.replace("\"m_cost\": 19456", "\"m_cost\": 4"),
        ] {
            assert!(
                matches!(
                    Keystore::from_json(&bad, Network::Regtest, "w".into()),
                    Err(KeystoreError::Corrupted { .. })
                ),
                "{bad}"
            );
        }
        // Costlier than `create` writes but within the limits: loads (and fails to unlock
        // only because the key derived differs).
        let dearer = good.replace("\"m_cost\": 19456", "\"m_cost\": 65536");
        let mut ks = Keystore::from_json(&dearer, Network::Regtest, "w".into()).unwrap();
        assert!(matches!(
            ks.unlock("pw"),
            Err(KeystoreError::WrongPassphrase)
        ));
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn write_errors_name_the_file() {
        let dir = temp("readonly").parent().unwrap().to_path_buf();
        // A wallet path inside a directory that is a file cannot be written.
        let blocker = dir.join("not-a-dir");
        std::fs::write(&blocker, b"x").unwrap();
        let ks = Keystore::create_hd(Network::Regtest, test_seed(), None).unwrap();
        let err = ks
            .save(&blocker.join("w.json"), true)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&blocker.display().to_string()), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
