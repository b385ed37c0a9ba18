//! `/rest/events`: a Server-Sent Events stream (`text/event-stream`) for pages that update
//! live, unauthenticated and read-only: a `tip` event with the active tip first and on every
//! change, a `mempool` event with its size first and at most once a second while it changes,
//! and a comment every [`KEEPALIVE`] so proxies and dead clients are noticed. The WebSocket
//! subscriptions (`subscribenewtip`, `subscribenewtx`) stay behind RPC auth.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chaincore::rpc::rest::ChainEvent;
use tokio::sync::mpsc;

use super::{Keep, Reply};
use crate::node::Node;

/// How often an idle stream sends a comment line.
pub const KEEPALIVE: Duration = Duration::from_secs(15);
/// Least time between two `mempool` events.
pub const MEMPOOL_EVERY: Duration = Duration::from_secs(1);

fn frame(event: &ChainEvent) -> Bytes {
    let (name, data) = match event {
        ChainEvent::Tip { .. } => ("tip", serde_json::to_string(event)),
        ChainEvent::Mempool { .. } => ("mempool", serde_json::to_string(event)),
    };
    Bytes::from(format!(
        "event: {name}\ndata: {}\n\n",
        data.unwrap_or_default()
    ))
}

fn tip_event(node: &Node) -> ChainEvent {
    let tip = *node.tip.borrow();
    ChainEvent::Tip {
        hash: tip.hash,
        height: tip.height,
    }
}

fn mempool_event(node: &Node) -> ChainEvent {
    let snap = node.snapshot();
    ChainEvent::Mempool {
        size: snap.mempool.len(),
        bytes: snap.mempool.bytes(),
    }
}

/// Starts the event stream for one client; `keep` (its stream slot and connection mark)
/// lives as long as the stream.
pub fn stream(node: &Arc<Node>, keep: Keep) -> Reply {
    let (tx, rx) = mpsc::channel(8);
    let node = node.clone();
    tokio::spawn(async move {
        let _keep = keep;
        let mut tips = node.tip.subscribe();
        let mut pool = node.mempool_seq.subscribe();
        for first in [tip_event(&node), mempool_event(&node)] {
            if tx.send(frame(&first)).await.is_err() {
                return;
            }
        }
        tips.mark_unchanged();
        pool.mark_unchanged();
        // When the pending `mempool` event goes out: changes are gathered for MEMPOOL_EVERY
        // meanwhile, and a new tip (a block also changes the pool) still goes out at once.
        let mut pool_due: Option<tokio::time::Instant> = None;
        loop {
            let next = tokio::select! {
                _ = tx.closed() => return,
                changed = tips.changed() => match changed {
                    Ok(()) => { tips.mark_unchanged(); frame(&tip_event(&node)) }
                    Err(_) => return,
                },
                changed = pool.changed(), if pool_due.is_none() => match changed {
                    Ok(()) => {
                        pool_due = Some(tokio::time::Instant::now() + MEMPOOL_EVERY);
                        continue;
                    }
                    Err(_) => return,
                },
                _ = tokio::time::sleep_until(pool_due.unwrap_or_else(tokio::time::Instant::now)),
                    if pool_due.is_some() => {
                    pool_due = None;
                    pool.mark_unchanged();
                    frame(&mempool_event(&node))
                }
                _ = tokio::time::sleep(KEEPALIVE) => Bytes::from_static(b": keepalive\n\n"),
            };
            if tx.send(next).await.is_err() {
                return;
            }
        }
    });
    Reply::Stream("text/event-stream", rx)
}
