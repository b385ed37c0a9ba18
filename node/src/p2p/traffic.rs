//! Bytes on the wire in both directions, for all peers together (`getnettotals`): the
//! writer side counts what each write took, [`Counted`] counts what each read gave.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// Totals since the node started.
#[derive(Default)]
pub struct Traffic {
    /// Bytes read from peers.
    pub received: AtomicU64,
    /// Bytes written to peers.
    pub sent: AtomicU64,
}

impl Traffic {
    /// Counts `n` bytes written.
    pub fn add_sent(&self, n: usize) {
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// A reader that adds what it reads to [`Traffic::received`] and to its own total.
pub struct Counted<R> {
    inner: R,
    traffic: Arc<Traffic>,
    total: u64,
}

impl<R> Counted<R> {
    /// Counts what `inner` reads into `traffic`.
    pub fn new(inner: R, traffic: Arc<Traffic>) -> Counted<R> {
        Counted {
            inner,
            traffic,
            total: 0,
        }
    }

    /// Bytes this reader has read.
    pub fn total(&self) -> u64 {
        self.total
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Counted<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        self.total += read as u64;
        self.traffic
            .received
            .fetch_add(read as u64, Ordering::Relaxed);
        polled
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[test]
    fn what_is_read_is_counted() {
        let traffic = Arc::new(Traffic::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut reader = Counted::new(&b"twelve bytes"[..], traffic.clone());
        let mut out = Vec::new();
        rt.block_on(reader.read_to_end(&mut out)).unwrap();
        assert_eq!(traffic.received.load(Ordering::Relaxed), 12);
        traffic.add_sent(5);
        assert_eq!(traffic.sent.load(Ordering::Relaxed), 5);
    }
}
