//! The lower scheduling priority of the node's background threads: the block signature pool,
//! the indexer, the coins cache's merges and the dropping of replaced snapshots. A core is
//! still theirs whenever nothing else wants it, while RPC, P2P relay and the writer come first.

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
