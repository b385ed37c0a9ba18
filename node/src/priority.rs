//! The scheduling priority of the node's background threads. RPC, P2P relay and the writer
//! run at the normal priority; below them:
//!
//! - [`lower`] (about niceness 10): the block signature pool, the coins cache's merges and the
//!   dropping of replaced snapshots. The writer waits for the first two, and memory waits for
//!   the third, so they must never starve.
//! - [`idle`] (Linux `SCHED_IDLE`): the indexer, which nothing waits on (index RPCs wait a
//!   bounded time, then answer with the height the index reached). A niced thread, once the
//!   scheduler picks it, keeps its core for a whole tick (4 ms on a 250 Hz kernel) while a relay
//!   thread waits; an idle-policy thread gives the core up as soon as another thread wants it.
//!   The miner's hashing threads run at the same policy, as cpuminer's do, so an index still
//!   advances on a machine that mines.

/// Their priority on the `thread_priority` crate's 0–99 scale: about niceness 10 on Linux (the
/// rest of the node runs at 0).
const BACKGROUND_PRIORITY: u8 = 25;

/// Lowers the calling thread's scheduling priority to [`BACKGROUND_PRIORITY`] (for good: an
/// unprivileged process cannot raise it again); a failure only costs latency elsewhere.
pub fn lower() {
    use thread_priority::{set_current_thread_priority, ThreadPriority, ThreadPriorityValue};
    let set = ThreadPriorityValue::try_from(BACKGROUND_PRIORITY)
        .map_err(|e| format!("{e:?}"))
        .and_then(|v| {
            set_current_thread_priority(ThreadPriority::Crossplatform(v))
                .map_err(|e| format!("{e:?}"))
        });
    if let Err(e) = set {
        tracing::debug!("thread priority unchanged: {e}");
    }
}

/// Moves the calling thread to the idle scheduling policy (Linux `SCHED_IDLE`, for good); where
/// there is none, or the call fails, [`lower`] instead.
pub fn idle() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
            ThreadPriority, ThreadSchedulePolicy,
        };
        let set = set_thread_priority_and_policy(
            thread_native_id(),
            ThreadPriority::Min,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
        );
        match set {
            Ok(()) => return,
            Err(e) => tracing::debug!("idle scheduling policy refused: {e:?}"),
        }
    }
    lower();
}
