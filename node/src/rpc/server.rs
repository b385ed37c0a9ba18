//! The RPC listener: HTTP and WebSocket on one port, in front of jsonrpsee.
//!
//! Per connection: the client IP must be loopback or in `--rpcallowip`; at most
//! [`MAX_SOCKETS`] open, and when a new one comes past that, the idle connection that is
//! serving nothing (never-authenticated ones first, then the longest idle) is closed for it. A
//! connection that has not sent a complete request within [`HEAD_DEADLINE`] of opening or of
//! its last answer, while it has never authenticated, is closed; an authenticated one after
//! [`IDLE_TIMEOUT`] (WebSocket subscriptions excepted). Per request: at most
//! [`MAX_CONNECTIONS`] requests are served at once (a permit per request, never per idle
//! socket; others wait for one); HTTP Basic credentials compared in constant time
//! (a wrong one gets 401 after 250 ms); bodies over [`MAX_REQUEST_BYTES`] get 413; JSON-RPC 1.0
//! requests (no `"jsonrpc"` member, as Bitcoin tools send) are upgraded for jsonrpsee and their
//! answers turned back into `{"result","error","id"}`.
//!
//! `GET /rest/…`, `/metrics` and the dashboard's pages (`GET /`, see [`crate::web::pages`])
//! skip authentication, like Core's `-rest`, while `--rest` is on
//! (else 404): they are read-only and go to [`crate::web`], each with a request permit held
//! until its answer has been produced (streamed ones until the stream ends); `/rest/events`
//! streams hold none, only a socket and one of [`crate::web::MAX_EVENT_STREAMS`] slots.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use chaincore::rpc::legacy::{downgrade_response, is_legacy, upgrade_legacy};
use http_body_util::{BodyExt, Limited};
use jsonrpsee::server::middleware::rpc::RpcServiceBuilder;
use jsonrpsee::server::{
    serve_with_graceful_shutdown, stop_channel, BatchRequestConfig, HttpBody, Methods, Server,
    ServerConfig, ServerHandle, StopHandle, TowerServiceBuilder,
};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tower::layer::util::{Identity, Stack};
use tower::Service;

use crate::config::{Config, IpNet, RpcAuth};
use crate::node::Node;
use crate::rpc::arity::ArityLayer;
use crate::rpc::timing::TimingLayer;
use crate::rpc::Rpc;
use crate::web::{self, Web};

/// Largest request body accepted.
pub const MAX_REQUEST_BYTES: usize = 2 * 1024 * 1024;
/// Largest response body produced.
pub const MAX_RESPONSE_BYTES: u32 = 16 * 1024 * 1024;
/// Most calls in one batch.
pub const MAX_BATCH: u32 = 100;
/// Most requests served at once.
pub const MAX_CONNECTIONS: usize = 32;
/// Most open RPC sockets.
pub const MAX_SOCKETS: usize = 256;
/// How long a connection that never authenticated may go without a complete request head.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(10);
/// How long an authenticated connection may stay idle between requests.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Delay before answering a request with wrong credentials.
const AUTH_FAILURE_DELAY: Duration = Duration::from_millis(250);

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
type ResponseFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<http::Response<HttpBody>, BoxError>> + Send>,
>;

/// A running RPC server.
pub struct RpcServerHandle {
    handle: ServerHandle,
    cookie: Option<PathBuf>,
}

impl RpcServerHandle {
    /// Stops accepting, lets requests finish, and removes the cookie file.
    pub async fn stop(self) {
        let _ = self.handle.stop();
        self.handle.stopped().await;
        if let Some(cookie) = self.cookie {
            let _ = std::fs::remove_file(cookie);
        }
    }
}

/// Binds the RPC addresses, writes the cookie if cookie auth is used, and serves `node`.
pub async fn start(
    node: Arc<Node>,
    p2p: crate::p2p::P2pHandle,
    config: &Config,
) -> anyhow::Result<RpcServerHandle> {
    let mut listeners = Vec::new();
    let mut in_use = false;
    let mut failures = Vec::new();
    for addr in &config.rpc_addrs {
        match TcpListener::bind(addr).await {
            Ok(l) => listeners.push(l),
            // ::1 may be missing on some machines; one loopback is enough.
            Err(e) if addr.ip().is_loopback() && config.rpc_addrs.len() > 1 => {
                tracing::warn!("cannot listen for RPC on {addr}: {e}");
                in_use |= e.kind() == std::io::ErrorKind::AddrInUse;
                failures.push(format!("{addr} ({e})"));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => anyhow::bail!(
                "cannot listen for RPC on {addr}: the port is in use (another chaincore-node?); choose another with --rpcport"
            ),
            Err(e) => anyhow::bail!("cannot listen for RPC on {addr}: {e}"),
        }
    }
    if listeners.is_empty() {
        if in_use {
            anyhow::bail!(
                "cannot listen for RPC: port {} is in use (another chaincore-node?); choose another with --rpcport",
                config.rpc_addrs.first().map_or(0, |a| a.port())
            );
        }
        anyhow::bail!("cannot listen for RPC on {}", failures.join(", "));
    }
    // Only once the port is ours: a second node must not overwrite the first one's cookie.
    let (secret, cookie) = match &config.rpc_auth {
        RpcAuth::UserPassword { user, password } => (format!("{user}:{password}"), None),
        RpcAuth::Cookie => {
            let path = config.data_dir.join(".cookie");
            (write_cookie(&path)?, Some(path))
        }
    };
    let addrs = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect::<Vec<_>>();

    let server_config = ServerConfig::builder()
        .max_request_body_size(MAX_REQUEST_BYTES as u32)
        .max_response_body_size(MAX_RESPONSE_BYTES)
        .max_connections(MAX_SOCKETS as u32)
        .set_batch_request_config(BatchRequestConfig::Limit(MAX_BATCH))
        .build();
    let builder = Server::builder()
        .set_config(server_config)
        .set_rpc_middleware(
            RpcServiceBuilder::new()
                .layer(TimingLayer)
                .layer(ArityLayer),
        )
        .to_service_builder();
    let rpc = Rpc::new(node.clone(), p2p.clone());
    let web = config.rest.then(|| Web::new(rpc.clone(), node, p2p));
    let methods: Methods = rpc
        .into_module()
        .context("registering the RPC methods")?
        .into();
    let (stop_handle, handle) = stop_channel();
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let open = Arc::new(OpenConnections::default());
    let secret: Arc<[u8]> = secret.into_bytes().into();
    let allow: Arc<[IpNet]> = config.rpc_allow.clone().into();

    for listener in listeners {
        let (builder, methods, stop_handle, permits, secret, allow, open, web) = (
            builder.clone(),
            methods.clone(),
            stop_handle.clone(),
            permits.clone(),
            secret.clone(),
            allow.clone(),
            open.clone(),
            web.clone(),
        );
        tokio::spawn(async move {
            loop {
                let (sock, remote) = tokio::select! {
                    res = listener.accept() => match res {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!("RPC accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                    _ = stop_handle.clone().shutdown() => break,
                };
                let ip = remote.ip();
                if !ip.is_loopback() && !allow.iter().any(|n| n.contains(ip)) {
                    tracing::warn!("RPC connection from {ip} refused: not in --rpcallowip");
                    continue;
                }
                let Some((id, conn)) = open.admit() else {
                    tracing::warn!(
                        "RPC connection from {ip} refused: {MAX_SOCKETS} sockets open, all busy"
                    );
                    continue;
                };
                let svc = Connection {
                    builder: builder.clone(),
                    methods: methods.clone(),
                    stop: stop_handle.clone(),
                    secret: secret.clone(),
                    permits: permits.clone(),
                    conn: conn.clone(),
                    web: web.clone(),
                };
                let (stop, open) = (stop_handle.clone(), open.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        _ = serve_with_graceful_shutdown(sock, svc, stop.shutdown()) => {}
                        _ = conn.closed() => {}
                    }
                    open.remove(id);
                });
            }
        });
    }
    tracing::info!(
        "RPC listening on {}",
        addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(RpcServerHandle { handle, cookie })
}

/// What the server knows of one open socket, for choosing which to close.
struct OpenConnection {
    /// Requests being served on it now.
    in_flight: AtomicUsize,
    /// It has sent valid credentials at least once.
    authenticated: AtomicBool,
    /// It became a WebSocket (subscriptions): never closed for idling.
    websocket: AtomicBool,
    /// When its last request ended (or it opened).
    idle_since: Mutex<Instant>,
    /// Woken to close it.
    close: Notify,
}

impl OpenConnection {
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 || self.websocket.load(Ordering::Acquire) {
            return None;
        }
        Some(
            self.idle_since
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .elapsed(),
        )
    }

    /// Resolves when the connection is to be closed: told to, or idle past its deadline.
    async fn closed(&self) {
        loop {
            let deadline = if self.authenticated.load(Ordering::Acquire) {
                IDLE_TIMEOUT
            } else {
                HEAD_DEADLINE
            };
            let wait = match self.idle_for() {
                Some(idle) if idle >= deadline => return,
                Some(idle) => deadline - idle,
                None => deadline,
            };
            tokio::select! {
                _ = self.close.notified() => return,
                _ = tokio::time::sleep(wait.min(Duration::from_secs(1))) => {}
            }
        }
    }
}

/// Every open RPC socket.
#[derive(Default)]
struct OpenConnections {
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<OpenConnection>>>,
}

impl OpenConnections {
    /// Registers a new socket, first closing an idle one if [`MAX_SOCKETS`] are open. `None`
    /// if all are busy.
    fn admit(&self) -> Option<(u64, Arc<OpenConnection>)> {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        if conns.len() >= MAX_SOCKETS {
            let evict = conns
                .iter()
                .filter_map(|(id, c)| {
                    c.idle_for()
                        .map(|idle| (!c.authenticated.load(Ordering::Acquire), idle, *id))
                })
                .max()
                .map(|(_, _, id)| id)?;
            if let Some(c) = conns.remove(&evict) {
                c.close.notify_one();
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(OpenConnection {
            in_flight: AtomicUsize::new(0),
            authenticated: AtomicBool::new(false),
            websocket: AtomicBool::new(false),
            idle_since: Mutex::new(Instant::now()),
            close: Notify::new(),
        });
        conns.insert(id, conn.clone());
        Some((id, conn))
    }

    fn remove(&self, id: u64) {
        self.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }
}

/// Marks a request in flight on a connection until dropped.
struct InFlight(Arc<OpenConnection>);

impl InFlight {
    fn new(conn: Arc<OpenConnection>) -> InFlight {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(conn)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.idle_since.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One client connection's HTTP service.
#[derive(Clone)]
struct Connection {
    builder: TowerServiceBuilder<Stack<ArityLayer, Stack<TimingLayer, Identity>>, Identity>,
    methods: Methods,
    stop: StopHandle,
    secret: Arc<[u8]>,
    permits: Arc<Semaphore>,
    conn: Arc<OpenConnection>,
    /// REST and metrics, unless `--rest=false`.
    web: Option<Web>,
}

impl Service<http::Request<hyper::body::Incoming>> for Connection {
    type Response = http::Response<HttpBody>;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<hyper::body::Incoming>) -> ResponseFuture {
        let rpc = self
            .builder
            .clone()
            .build(self.methods.clone(), self.stop.clone());
        let (secret, permits, conn) =
            (self.secret.clone(), self.permits.clone(), self.conn.clone());
        let web = self.web.clone();
        Box::pin(async move {
            if web::is_web_request(&req) {
                let Some(web) = web else {
                    return Ok(status(
                        http::StatusCode::NOT_FOUND,
                        "REST is off on this node (--rest=false)\n",
                    ));
                };
                // Busy while it is answered (streams included), so never closed as idle.
                let in_flight = InFlight::new(conn.clone());
                let keep: web::Keep = if req.uri().path() == web::EVENTS_PATH {
                    Box::new(in_flight)
                } else {
                    Box::new((in_flight, permits.acquire_owned().await?))
                };
                return Ok(web.serve(&req, keep).await);
            }
            // Wrong credentials wait without a permit and without counting as busy, so a
            // client looping on them stays evictable and holds nothing others need.
            if !authorized(&req, &secret) {
                tokio::time::sleep(AUTH_FAILURE_DELAY).await;
                return Ok(status(
                    http::StatusCode::UNAUTHORIZED,
                    "unauthorized: wrong or missing RPC credentials\n",
                ));
            }
            let _in_flight = InFlight::new(conn.clone());
            // A permit while the request is served: idle sockets hold none.
            let _permit = permits.acquire_owned().await?;
            serve_request(rpc, req, &conn).await
        })
    }
}

/// Serves one request that passed authentication.
async fn serve_request<S>(
    mut rpc: S,
    req: http::Request<hyper::body::Incoming>,
    conn: &OpenConnection,
) -> Result<http::Response<HttpBody>, BoxError>
where
    S: Service<http::Request<HttpBody>, Response = http::Response<HttpBody>, Error = BoxError>,
{
    conn.authenticated.store(true, Ordering::Release);
    if jsonrpsee::server::ws::is_upgrade_request(&req) {
        conn.websocket.store(true, Ordering::Release);
        return rpc.call(req.map(HttpBody::new)).await;
    }
    let (mut parts, body) = req.into_parts();
    // Bitcoin tools do not always send a JSON content type; Bitcoin Core accepts any.
    parts.headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    let bytes = match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return Ok(status(
                http::StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large\n",
            ))
        }
    };
    let legacy = is_legacy(&bytes);
    let body = if legacy {
        HttpBody::from(upgrade_legacy(&bytes))
    } else {
        HttpBody::new(http_body_util::Full::new(bytes))
    };
    let response = rpc.call(http::Request::from_parts(parts, body)).await?;
    if !legacy {
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(http::Response::from_parts(
        parts,
        HttpBody::from(downgrade_response(&body)),
    ))
}

fn status(code: http::StatusCode, text: &'static str) -> http::Response<HttpBody> {
    let mut r = http::Response::new(HttpBody::from(text));
    *r.status_mut() = code;
    if code == http::StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Basic realm=\"jsonrpc\""),
        );
    }
    r
}

/// Checks HTTP Basic credentials against `secret` (`user:password`) in constant time.
fn authorized<B>(req: &http::Request<B>, secret: &[u8]) -> bool {
    let given = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .unwrap_or_default();
    constant_time_eq(&given, secret)
}

/// Compares without an early exit, so timing does not reveal how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

/// Writes `__cookie__:<64 hex digits>` with mode 0600; returns the `user:password` secret.
fn write_cookie(path: &Path) -> anyhow::Result<String> {
    use rand_core::RngCore;
    use std::io::Write;
    let mut random = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut random);
    let secret = format!("__cookie__:{}", hex::encode(random));
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(&tmp)
        .map_err(|e| anyhow::anyhow!("cannot write RPC cookie {}: {e}", tmp.display()))?;
    f.write_all(secret.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_compare_exactly() {
        assert!(constant_time_eq(b"u:p", b"u:p"));
        assert!(!constant_time_eq(b"u:p", b"u:q"));
        assert!(!constant_time_eq(b"u:p", b"u:pp"));
        assert!(!constant_time_eq(b"", b"u:p"));
        let req = http::Request::builder()
            .header("authorization", "Basic dTpw")
            .body(())
            .unwrap();
        assert!(authorized(&req, b"u:p"));
        assert!(!authorized(&req, b"u:x"));
        assert!(!authorized(&http::Request::new(()), b"u:p"));
    }
}
