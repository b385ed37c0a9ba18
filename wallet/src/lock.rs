//! The wallet lock: an exclusive `flock` on `<wallet file>.lock` (Bitcoin Core's
//! `.walletlock`, one per wallet file). Every command that changes the wallet holds it from
//! loading the file until it has saved it and broadcast what it signed, so two commands on one
//! file run one after the other and neither overwrites the keys the other added.
//!
//! The lock file is never deleted: removing it while another process waits on it would let a
//! third process lock a new file of the same name at the same time.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often a waiting command tries the lock again.
const RETRY: Duration = Duration::from_millis(25);

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process held the lock for the whole wait.
    #[error(
        "another chaincore-wallet command holds the wallet {wallet} (lock file {lock}); waited {waited_secs} s: \
         try again when it has finished, or wait longer with --lock-timeout"
    )]
    Busy {
        /// The wallet file.
        wallet: String,
        /// The lock file.
        lock: String,
        /// Seconds waited.
        waited_secs: u64,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock the wallet {wallet}: lock file {lock}: {source}")]
    Io {
        /// The wallet file.
        wallet: String,
        /// The lock file.
        lock: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The held lock; released when dropped (or when the process ends, however it ends).
#[derive(Debug)]
pub struct WalletLock {
    _file: File,
}

/// The lock file of `wallet`: the same name with `.lock` appended, in the same directory.
pub fn lock_path(wallet: &Path) -> PathBuf {
    let mut name = wallet.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl WalletLock {
    /// Takes the lock of `wallet`, creating the lock file (and its directory) if needed. If
    /// another process holds it, calls `waiting` once and tries again until `timeout` has
    /// passed.
    pub fn acquire(
        wallet: &Path,
        timeout: Duration,
        waiting: impl FnOnce(&Path),
    ) -> Result<WalletLock, LockError> {
        let lock = lock_path(wallet);
        let io = |source| LockError::Io {
            wallet: wallet.display().to_string(),
            lock: lock.display().to_string(),
            source,
        };
        if let Some(dir) = lock.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&lock).map_err(io)?;
        let start = Instant::now();
        let mut waiting = Some(waiting);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(WalletLock { _file: file }),
                Err(TryLockError::Error(e)) => return Err(io(e)),
                Err(TryLockError::WouldBlock) => {
                    if start.elapsed() >= timeout {
                        return Err(LockError::Busy {
                            wallet: wallet.display().to_string(),
                            lock: lock.display().to_string(),
                            waited_secs: start.elapsed().as_secs(),
                        });
                    }
                    if let Some(tell) = waiting.take() {
                        tell(&lock);
                    }
                    std::thread::sleep(RETRY.min(timeout.saturating_sub(start.elapsed())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_then_gives_up_naming_the_files() {
        let dir = std::env::temp_dir().join(format!("cc-wallet-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let wallet = dir.join("w.json");
        assert_eq!(lock_path(&wallet), dir.join("w.json.lock"));

        let held = WalletLock::acquire(&wallet, Duration::ZERO, |_| {}).unwrap();
        let mut told = 0;
        let err =
            WalletLock::acquire(&wallet, Duration::from_millis(100), |_| told += 1).unwrap_err();
        assert_eq!(told, 1, "told once that it waits");
        let text = err.to_string();
        assert!(
            text.contains("another chaincore-wallet command holds"),
            "{text}"
        );
        assert!(text.contains(&wallet.display().to_string()), "{text}");
        assert!(text.contains("w.json.lock"), "{text}");

        drop(held);
        let again = WalletLock::acquire(&wallet, Duration::ZERO, |_| {});
        assert!(again.is_ok(), "free again once dropped");
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
