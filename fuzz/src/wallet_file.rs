//! The wallet file parser, plain and encrypted: what a damaged or tampered wallet file reaches.
//!
//! Input: the file's bytes. As `Keystore::load` does, bytes that are not UTF-8 are refused;
//! the text is parsed for each network (a file names its own, so one of them goes deep), and
//! an encrypted wallet that parses is unlocked with [`PASSPHRASE`], the passphrase the seed
//! corpus's encrypted files were written with, so mutations of their clear parts (addresses,
//! indexes, labels, KDF parameters) reach the code behind the decryption.
//!
//! Checked: no panic, and an unlocked wallet has the key of every address it lists.

use chaincore::Network;
use chaincore_wallet::keystore::Keystore;

/// The passphrase of the encrypted files in the seed corpus.
pub const PASSPHRASE: &str = "fuzz";

/// Runs one input (see the module docs).
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for network in Network::ALL {
        let Ok(mut wallet) = Keystore::from_json(text, network, "fuzz input".into()) else {
            continue;
        };
        if wallet.is_encrypted() {
            let _ = wallet.unlock(PASSPHRASE);
        }
        if wallet.is_unlocked() {
            for entry in &wallet.entries {
                assert!(
                    wallet.key_for(&entry.address).is_some(),
                    "an unlocked wallet without the key of {}",
                    entry.address
                );
            }
        }
    }
}
