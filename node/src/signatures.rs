//! Signature checks, the node's heaviest work, on two pools of their own, one thread per core
//! each, outside the writer:
//!
//! - [`transaction_pool`] checks a relayed or RPC-submitted transaction in full against a
//!   snapshot before the writer sees it (`crate::node`): one request's work on one thread, at
//!   normal priority, so it costs what it costs and no more.
//! - [`block_pool`] checks a block's transactions on every core while the writer runs the
//!   block's coin pass ([`BlockChecks`]), at a lower scheduling priority, so RPC and P2P
//!   handlers still get a core while a large block is verified.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use chaincore::validation::{self, RuleError};
use chaincore::{Script, Transaction, Txid};

use crate::chain::{ChainError, Rejection};

/// The pool for transactions: one thread per core at normal priority.
pub fn transaction_pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| build("txcheck", false))
}

/// The pool for blocks: one thread per core at a lower priority (see the module docs).
pub fn block_pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| build("blockcheck", true))
}

fn build(name: &'static str, low_priority: bool) -> rayon::ThreadPool {
    let mut builder = rayon::ThreadPoolBuilder::new()
        .num_threads(num_cpus::get())
        .thread_name(move |i| format!("{name}-{i}"));
    if low_priority {
        builder = builder.start_handler(|_| crate::priority::lower());
    }
    builder.build().expect("the signature pool's threads start")
}

/// Signature checks of one block, spawned on the pool while its coin pass goes on.
#[derive(Default)]
pub struct BlockChecks {
    /// The first failure found, with its transaction and input.
    failure: Mutex<Option<Rejection>>,
    /// Set on a failure or by [`BlockChecks::give_up`]: checks not yet run are skipped.
    give_up: AtomicBool,
}

impl BlockChecks {
    /// Checks the inputs of `tx` (`txid`) against the scripts of the coins they spend, on
    /// `scope`.
    pub fn spawn<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        tx: &'s Transaction,
        txid: Txid,
        scripts: Vec<Script>,
    ) {
        scope.spawn(move |_| {
            for (input, script) in scripts.iter().enumerate() {
                if self.give_up.load(Ordering::Relaxed) {
                    return;
                }
                if let Err(e) = validation::verify_input(tx, input, script) {
                    self.give_up.store(true, Ordering::Relaxed);
                    if let Ok(mut first) = self.failure.lock() {
                        first.get_or_insert_with(|| Rejection {
                            txid: Some(txid),
                            input: tx.input.get(input).map(|i| (input, i.previous_output)),
                            ..RuleError::Script(e).into()
                        });
                    }
                    return;
                }
            }
        });
    }

    /// Skips the checks not yet run (the block failed otherwise).
    pub fn give_up(&self) {
        self.give_up.store(true, Ordering::Relaxed);
    }

    /// The first failure, once every spawned check has ended.
    pub fn outcome(self) -> Result<(), ChainError> {
        match self.failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(rejection) => Err(rejection.into()),
            None => Ok(()),
        }
    }
}
