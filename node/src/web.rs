//! The unauthenticated, read-only side of the RPC port, like Bitcoin Core's `-rest`:
//! Core-style REST under `/rest/` ([`rest`]), a Server-Sent Events stream of the tip and the
//! mempool at `/rest/events` ([`events`]), Prometheus metrics at `/metrics`
//! ([`crate::metrics`]), and the browser dashboard and explorer at `/` ([`pages`]). The block-range export ([`export`]) is shared by
//! `/rest/blocks/<from>/<to>.<format>` and the `export` command.
//!
//! `rpc::server` decides who gets here (loopback or `--rpcallowip`, and only with REST on)
//! and hands each request the request permit and connection marks it must hold until its
//! answer is written: [`Web::serve`] moves them into a streamed body, so a long export holds
//! its permit while it streams and an idle socket never holds one.

pub mod events;
pub mod export;
pub mod pages;
pub mod rest;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{Full, StreamBody};
use hyper::body::Frame;
use jsonrpsee::server::HttpBody;
use tokio::sync::{mpsc, Semaphore};

use crate::node::Node;
use crate::p2p::P2pHandle;
use crate::rpc::Rpc;

/// Most `/rest/events` streams open at once (they hold a socket each, not a request permit).
pub const MAX_EVENT_STREAMS: usize = 64;

/// Path of the event stream.
pub const EVENTS_PATH: &str = "/rest/events";

/// True for the paths this module serves without authentication, whatever the method.
pub fn is_web_path(path: &str) -> bool {
    path.starts_with("/rest/") || path == "/metrics"
}

/// True for the requests this module serves without authentication: those to
/// [`is_web_path`] paths, and page loads (GET or HEAD of a [`pages::is_page_path`] path that
/// is not a WebSocket upgrade; JSON-RPC, a POST or an upgrade to `/`, stays with RPC).
pub fn is_web_request<B>(req: &http::Request<B>) -> bool {
    let path = req.uri().path();
    is_web_path(path)
        || ((req.method() == http::Method::GET || req.method() == http::Method::HEAD)
            && pages::is_page_path(path)
            && !jsonrpsee::server::ws::is_upgrade_request(req))
}

/// Whatever must live until an answer has been written (the request permit, the connection's
/// in-flight mark).
pub type Keep = Box<dyn Send + Sync + 'static>;

/// The REST and metrics handler (cheap to clone).
#[derive(Clone)]
pub struct Web {
    rpc: Rpc,
    node: Arc<Node>,
    p2p: P2pHandle,
    event_streams: Arc<Semaphore>,
    /// Mempool samples for the dashboard's chart.
    samples: Arc<pages::Samples>,
    /// Miner and size of blocks the pages have shown.
    facts: Arc<pages::FactCache>,
}

/// An answer body before it becomes HTTP.
pub enum Reply {
    /// A complete body of the given content type.
    Full(&'static str, Vec<u8>),
    /// A body produced in chunks by a task, of the given content type.
    Stream(&'static str, mpsc::Receiver<Bytes>),
}

/// A refused request: status and a one-line text body, as Core's `RESTERR` answers.
#[derive(Debug)]
pub struct RestError {
    /// HTTP status.
    pub status: http::StatusCode,
    /// Text body (a newline is added).
    pub message: String,
}

impl RestError {
    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> RestError {
        RestError {
            status: http::StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> RestError {
        RestError {
            status: http::StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// 500, for failures of the node rather than of the request.
    pub fn internal(message: impl Into<String>) -> RestError {
        RestError {
            status: http::StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }
}

impl Web {
    /// Serves `node` (answering through the same builders as `rpc`); starts sampling the
    /// mempool for the dashboard (so it must run on the Tokio runtime).
    pub fn new(rpc: Rpc, node: Arc<Node>, p2p: P2pHandle) -> Web {
        Web {
            rpc,
            samples: pages::Samples::start(node.clone()),
            node,
            p2p,
            event_streams: Arc::new(Semaphore::new(MAX_EVENT_STREAMS)),
            facts: Default::default(),
        }
    }

    /// Answers one request that [`is_web_request`] accepted: GET under `/rest/` or
    /// `/metrics`, or a page; `keep` is held until the whole answer has been produced.
    pub async fn serve<B>(&self, req: &http::Request<B>, keep: Keep) -> http::Response<HttpBody> {
        if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
            return text(
                http::StatusCode::METHOD_NOT_ALLOWED,
                "REST and metrics are read-only: use GET\n".into(),
            );
        }
        let path = req.uri().path();
        let query = req.uri().query().unwrap_or("");
        if !is_web_path(path) {
            let _keep = keep;
            return pages::serve(self, path, query).await;
        }
        let answer = if path == "/metrics" {
            self.metrics().await
        } else if path == EVENTS_PATH {
            match self.event_streams.clone().try_acquire_owned() {
                Ok(slot) => Ok(events::stream(&self.node, Box::new((slot, keep)))),
                Err(_) => Err(RestError {
                    status: http::StatusCode::SERVICE_UNAVAILABLE,
                    message: format!("{MAX_EVENT_STREAMS} event streams already open"),
                }),
            }
        } else {
            let route = path.strip_prefix("/rest/").unwrap_or(path);
            rest::route(self, route, query, keep).await
        };
        match answer {
            Ok(Reply::Full(kind, body)) => {
                let mut r = http::Response::new(HttpBody::new(Full::new(Bytes::from(body))));
                set_type(&mut r, kind);
                r
            }
            Ok(Reply::Stream(kind, chunks)) => {
                let stream = futures_util::stream::unfold(chunks, |mut rx| async move {
                    let chunk = rx.recv().await?;
                    Some((Ok::<_, Infallible>(Frame::data(chunk)), rx))
                });
                let mut r = http::Response::new(HttpBody::new(StreamBody::new(stream)));
                set_type(&mut r, kind);
                r
            }
            Err(e) => text(e.status, format!("{}\n", e.message)),
        }
    }

    async fn metrics(&self) -> Result<Reply, RestError> {
        let body = crate::metrics::get()
            .render(&self.node, &self.p2p)
            .await
            .map_err(|e| RestError::internal(format!("cannot encode metrics: {e}")))?;
        Ok(Reply::Full(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            body.into_bytes(),
        ))
    }
}

fn set_type(r: &mut http::Response<HttpBody>, kind: &'static str) {
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(kind),
    );
}

/// A plain-text answer with `status`.
pub fn text(status: http::StatusCode, body: String) -> http::Response<HttpBody> {
    let mut r = http::Response::new(HttpBody::from(body));
    *r.status_mut() = status;
    set_type(&mut r, "text/plain; charset=utf-8");
    r
}

/// A `std::io::Write` that sends what is written, in chunks of about [`ChunkWriter::CHUNK`]
/// bytes, to a streamed body; writing fails once the client has gone (the receiver dropped),
/// which ends the producer. For blocking producers (`spawn_blocking`) only.
pub struct ChunkWriter {
    buf: Vec<u8>,
    tx: mpsc::Sender<Bytes>,
}

impl ChunkWriter {
    /// Bytes gathered before a chunk is sent.
    pub const CHUNK: usize = 64 * 1024;

    /// A writer and the receiver to stream from (a few chunks of buffer between them).
    pub fn new() -> (ChunkWriter, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(4);
        (
            ChunkWriter {
                buf: Vec::with_capacity(Self::CHUNK),
                tx,
            },
            rx,
        )
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(Self::CHUNK),
        ));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= Self::CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}
