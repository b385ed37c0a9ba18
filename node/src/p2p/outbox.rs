//! One peer's outgoing messages: encoded frames queued for the peer's writer task, counted in
//! bytes against a send budget (Bitcoin Core's `-maxsendbuffer` idea).
//!
//! While more than [`SEND_BUDGET`] bytes wait, the peer's session stops reading its messages
//! and stops serving its `getdata` (it waits, dropping nothing); a peer that takes no bytes
//! for [`WRITE_TIMEOUT`] is dropped. So what a peer can make us hold is bounded: the budget,
//! plus the one message that crossed it (at most a block), plus at most [`SEND_QUEUE`] small
//! messages (announcements) that other tasks queue meanwhile.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, Notify};
use tokio_util::codec::Encoder;

use super::message::{Codec, Message};

/// Bytes queued for one peer past which it is served no more until it reads (Core: 5 MB).
pub const SEND_BUDGET: usize = 5_000_000;
/// Messages queued for one peer at most, whatever their size.
pub const SEND_QUEUE: usize = 1_000;
/// A peer that accepts no bytes of a pending message for this long is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a message could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// [`SEND_QUEUE`] messages already wait: the peer is far behind.
    #[error("send queue full (peer too slow)")]
    Full,
    /// The writer task has ended (the connection is gone).
    #[error("connection closed")]
    Closed,
}

/// The sending side of one peer connection; clones share the queue and its byte count.
#[derive(Clone)]
pub struct Outbox {
    frames: mpsc::Sender<Bytes>,
    magic: [u8; 4],
    queued: Arc<AtomicUsize>,
    drained: Arc<Notify>,
}

impl Outbox {
    /// An outbox whose frames a new task writes to `write`, counting what it writes in
    /// `traffic`; `dead` is notified when that writer stops because the peer took nothing for
    /// [`WRITE_TIMEOUT`] or the write failed.
    pub fn spawn(
        write: OwnedWriteHalf,
        magic: [u8; 4],
        dead: Arc<Notify>,
        traffic: Arc<super::traffic::Traffic>,
    ) -> (Outbox, tokio::task::JoinHandle<()>) {
        let (frames, mut rx) = mpsc::channel::<Bytes>(SEND_QUEUE);
        let outbox = Outbox {
            frames,
            magic,
            queued: Arc::new(AtomicUsize::new(0)),
            drained: Arc::new(Notify::new()),
        };
        let (queued, drained) = (outbox.queued.clone(), outbox.drained.clone());
        let mut write = write;
        let task = tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                // The timeout restarts whenever the peer takes some bytes: a slow reader is
                // fine, one that takes nothing is not.
                let mut rest = &frame[..];
                while !rest.is_empty() {
                    match tokio::time::timeout(WRITE_TIMEOUT, write.write(rest)).await {
                        Ok(Ok(n)) if n > 0 => {
                            traffic.add_sent(n);
                            rest = &rest[n..];
                        }
                        _ => {
                            dead.notify_one();
                            return;
                        }
                    }
                }
                queued.fetch_sub(frame.len(), Ordering::AcqRel);
                drained.notify_waiters();
            }
        });
        (outbox, task)
    }

    /// Encodes `msg` and queues it, however full the budget (callers that serve requests
    /// wait for [`Outbox::below_budget`] first).
    pub fn push(&self, msg: Message) -> Result<(), OutboxError> {
        let mut frame = BytesMut::new();
        let label = crate::metrics::message_label(&msg);
        // Encoding into memory cannot fail: the codec's only error is the writer's I/O.
        Codec::new(self.magic)
            .encode(msg, &mut frame)
            .map_err(|_| OutboxError::Closed)?;
        let frame = frame.freeze();
        let len = frame.len();
        crate::metrics::get().sent(label, len);
        self.queued.fetch_add(len, Ordering::AcqRel);
        self.frames.try_send(frame).map_err(|e| {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            match e {
                mpsc::error::TrySendError::Full(_) => OutboxError::Full,
                mpsc::error::TrySendError::Closed(_) => OutboxError::Closed,
            }
        })
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Returns once at most [`SEND_BUDGET`] bytes wait (at once if they already do).
    pub async fn below_budget(&self) {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.queued_bytes() <= SEND_BUDGET {
                return;
            }
            drained.await;
        }
    }
}

#[cfg(test)]
impl Outbox {
    /// An outbox without a writer task: its frames wait in the returned receiver.
    pub fn for_test(magic: [u8; 4]) -> (Outbox, mpsc::Receiver<Bytes>) {
        let (frames, rx) = mpsc::channel(SEND_QUEUE);
        let outbox = Outbox {
            frames,
            magic,
            queued: Arc::new(AtomicUsize::new(0)),
            drained: Arc::new(Notify::new()),
        };
        (outbox, rx)
    }
}
