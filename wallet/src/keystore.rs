//! The wallet file: addresses in the clear, private keys either in the clear or encrypted at
//! rest (Argon2id key derivation, ChaCha20-Poly1305). Written atomically (a temp file of its
//! own name, fsync, rename) with mode 0600; a file that does not parse is refused and never
//! overwritten.

use std::io::Write;
use std::path::Path;

use argon2::Argon2;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use chaincore::key::PrivateKey;
use chaincore::{Address, Network};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

/// Format version written in every file.
const FORMAT_VERSION: u32 = 1;

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
    /// The file belongs to another network.
    #[error("this wallet is for the {found} network, not {expected}; pass --network {found}")]
    WrongNetwork {
        /// Network in the file.
        found: Network,
        /// Network asked for.
        expected: Network,
    },
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

/// One address the wallet owns.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The address.
    pub address: String,
    /// A user label.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    /// Made for change.
    #[serde(default)]
    pub change: bool,
}

/// The file as stored.
#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    version: u32,
    network: Network,
    addresses: Vec<Entry>,
    /// Hex of the 32-byte keys in `addresses` order, when not encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keys: Option<Vec<String>>,
    /// Encrypted keys: KDF, nonce and ciphertext of the concatenated 32-byte keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encrypted: Option<Encrypted>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Encrypted {
    kdf: Kdf,
    nonce: String,
    ciphertext: String,
}

/// A wallet in memory.
pub struct Keystore {
    /// Network of every address.
    pub network: Network,
    /// Owned addresses, in creation order.
    pub entries: Vec<Entry>,
    /// Private keys in `entries` order, once unlocked (or always, if not encrypted).
    keys: Option<Vec<PrivateKey>>,
    /// Encryption parameters and the derived key, if the file is encrypted.
    encryption: Option<(Kdf, [u8; 32])>,
    /// Stored ciphertext, kept until the keys are unlocked (so saving never loses them).
    sealed: Option<Encrypted>,
}

impl Keystore {
    /// A new wallet with one receiving address; encrypted if `passphrase` is given.
    pub fn create(network: Network, passphrase: Option<&str>) -> Keystore {
        let mut ks = Keystore {
            network,
            entries: Vec::new(),
            keys: Some(Vec::new()),
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
        };
        ks.add_key(PrivateKey::generate(), String::new(), false);
        ks
    }

    /// True if keys are encrypted at rest.
    pub fn is_encrypted(&self) -> bool {
        self.encryption.is_some() || self.sealed.is_some()
    }

    /// True if the private keys are available.
    pub fn is_unlocked(&self) -> bool {
        self.keys.is_some()
    }

    /// Decrypts the keys with `passphrase`.
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
        let plain = ChaCha20Poly1305::new(&Key::from(key))
            .decrypt(&Nonce::from(nonce), ciphertext.as_slice())
            .map_err(|_| KeystoreError::WrongPassphrase)?;
        let keys = parse_keys(&plain, self.entries.len(), self.network, &self.entries)
            .map_err(|_| KeystoreError::WrongPassphrase)?;
        self.keys = Some(keys);
        self.encryption = Some((sealed.kdf, key));
        self.sealed = None;
        Ok(())
    }

    /// Adds a key (the wallet must be unlocked); returns its address.
    pub fn add_key(&mut self, key: PrivateKey, label: String, change: bool) -> String {
        let address = Address::p2pkh(key.public_key().pubkey_hash(), self.network).to_string();
        if let Some(keys) = &mut self.keys {
            if !self.entries.iter().any(|e| e.address == address) {
                keys.push(key);
                self.entries.push(Entry {
                    address: address.clone(),
                    label,
                    change,
                });
            }
        }
        address
    }

    /// The private key of `address`, if owned and unlocked.
    pub fn key_for(&self, address: &str) -> Option<&PrivateKey> {
        let i = self.entries.iter().position(|e| e.address == address)?;
        self.keys.as_ref()?.get(i)
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
        let corrupted = |why: String| KeystoreError::Corrupted {
            path: shown.clone(),
            why,
        };
        let file: FileFormat = serde_json::from_str(&text).map_err(|e| corrupted(e.to_string()))?;
        if file.version != FORMAT_VERSION {
            return Err(corrupted(format!(
                "unknown format version {}",
                file.version
            )));
        }
        if file.network != network {
            return Err(KeystoreError::WrongNetwork {
                found: file.network,
                expected: network,
            });
        }
        for e in &file.addresses {
            Address::parse(&e.address, network)
                .map_err(|err| corrupted(format!("address {}: {err}", e.address)))?;
        }
        let (keys, sealed) = match (file.keys, file.encrypted) {
            (Some(hexes), None) => {
                let mut plain = Vec::with_capacity(hexes.len() * 32);
                for h in &hexes {
                    plain.extend(hex::decode(h).map_err(|_| corrupted("key is not hex".into()))?);
                }
                let keys = parse_keys(&plain, file.addresses.len(), network, &file.addresses)
                    .map_err(corrupted)?;
                (Some(keys), None)
            }
            (None, Some(enc)) => (None, Some(enc)),
            _ => {
                return Err(corrupted(
                    "needs exactly one of `keys` and `encrypted`".into(),
                ))
            }
        };
        Ok(Keystore {
            network,
            entries: file.addresses,
            keys,
            encryption: None,
            sealed,
        })
    }

    /// Writes the wallet atomically: a temp file of its own (mode 0600) in the same directory,
    /// fsync, rename over `path`, fsync of the directory. `create_new` refuses to replace an
    /// existing file (the rename is then a link that fails if `path` exists).
    pub fn save(&self, path: &Path, create_new: bool) -> Result<(), KeystoreError> {
        let shown = path.display().to_string();
        let (keys, encrypted) = match (&self.keys, &self.encryption, &self.sealed) {
            (_, _, Some(sealed)) => (None, Some(sealed.clone())),
            (Some(keys), None, None) => (
                Some(keys.iter().map(|k| hex::encode(k.to_bytes())).collect()),
                None,
            ),
            (Some(keys), Some((kdf, key)), None) => {
                let plain: Vec<u8> = keys.iter().flat_map(|k| k.to_bytes()).collect();
                let mut nonce = [0u8; 12];
                OsRng.fill_bytes(&mut nonce);
                let ciphertext = ChaCha20Poly1305::new(&Key::from(*key))
                    .encrypt(&Nonce::from(nonce), plain.as_slice())
                    .map_err(|_| KeystoreError::WrongPassphrase)?;
                let enc = Encrypted {
                    kdf: kdf.clone(),
                    nonce: hex::encode(nonce),
                    ciphertext: hex::encode(ciphertext),
                };
                (None, Some(enc))
            }
            (None, _, None) => return Err(KeystoreError::WrongPassphrase),
        };
        let file = FileFormat {
            version: FORMAT_VERSION,
            network: self.network,
            addresses: self.entries.clone(),
            keys,
            encrypted,
        };
        let text = serde_json::to_string_pretty(&file).map_err(|e| KeystoreError::Corrupted {
            path: shown.clone(),
            why: e.to_string(),
        })?;
        write_atomically(path, text.as_bytes(), create_new)
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
fn derive(kdf: &Kdf, passphrase: &str) -> Option<[u8; 32]> {
    let salt = hex::decode(&kdf.salt).ok()?;
    let params = argon2::Params::new(kdf.m_cost, kdf.t_cost, kdf.p_cost, Some(32)).ok()?;
    let argon = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    argon
        .hash_password_into(passphrase.as_bytes(), &salt, &mut out)
        .ok()?;
    Some(out)
}

/// Splits concatenated 32-byte keys and checks each matches its address.
fn parse_keys(
    plain: &[u8],
    n: usize,
    network: Network,
    entries: &[Entry],
) -> Result<Vec<PrivateKey>, String> {
    if plain.len() != n * 32 {
        return Err(format!("{} key bytes for {n} addresses", plain.len()));
    }
    plain
        .chunks_exact(32)
        .zip(entries)
        .map(|(chunk, entry)| {
            let bytes: &[u8; 32] = chunk.try_into().map_err(|_| "bad key length".to_string())?;
            let key = PrivateKey::from_bytes(bytes).map_err(|e| e.to_string())?;
            let address = Address::p2pkh(key.public_key().pubkey_hash(), network).to_string();
            if address != entry.address {
                return Err(format!("key does not match address {}", entry.address));
            }
            Ok(key)
        })
        .collect()
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

    #[test]
    fn plain_file_round_trip() {
        let path = temp("plain");
        let mut ks = Keystore::create(Network::Regtest, None);
        let a2 = ks.add_key(PrivateKey::generate(), "savings".into(), false);
        ks.save(&path, true).unwrap();
        let back = Keystore::load(&path, Network::Regtest).unwrap();
        assert_eq!(back.entries, ks.entries);
        assert_eq!(
            back.key_for(&a2).unwrap().to_bytes(),
            ks.key_for(&a2).unwrap().to_bytes()
        );
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
    fn write_errors_name_the_file() {
        let dir = temp("readonly").parent().unwrap().to_path_buf();
        // A wallet path inside a directory that is a file cannot be written.
        let blocker = dir.join("not-a-dir");
        std::fs::write(&blocker, b"x").unwrap();
        let ks = Keystore::create(Network::Regtest, None);
        let err = ks
            .save(&blocker.join("w.json"), true)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&blocker.display().to_string()), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn encryption_round_trip_and_wrong_passphrase() {
        let path = temp("enc");
        let ks = Keystore::create(Network::Regtest, Some("correct horse"));
        let addr = ks.entries[0].address.clone();
        let secret = ks.key_for(&addr).unwrap().to_bytes();
        ks.save(&path, true).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&hex::encode(secret)), "no clear key on disk");

        let mut locked = Keystore::load(&path, Network::Regtest).unwrap();
        assert!(locked.is_encrypted() && !locked.is_unlocked());
        assert!(matches!(
            locked.unlock("wrong"),
            Err(KeystoreError::WrongPassphrase)
        ));
        // Saving while locked keeps the ciphertext.
        locked.save(&path, false).unwrap();
        let mut again = Keystore::load(&path, Network::Regtest).unwrap();
        again.unlock("correct horse").unwrap();
        assert_eq!(again.key_for(&addr).unwrap().to_bytes(), secret);
        // Adding a key and saving re-encrypts both.
        let a2 = again.add_key(PrivateKey::generate(), String::new(), true);
        again.save(&path, false).unwrap();
        let mut third = Keystore::load(&path, Network::Regtest).unwrap();
        third.unlock("correct horse").unwrap();
        assert!(third.key_for(&a2).is_some());
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
        // A key that does not match its address.
        let ks = Keystore::create(Network::Regtest, None);
        ks.save(&path, false).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let key_hex = hex::encode(ks.key_for(&ks.entries[0].address).unwrap().to_bytes());
        std::fs::write(&path, text.replace(&key_hex, &"11".repeat(32))).unwrap();
        assert!(matches!(
            Keystore::load(&path, Network::Regtest),
            Err(KeystoreError::Corrupted { .. })
        ));
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
