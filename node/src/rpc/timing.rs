//! Counts and times every JSON-RPC call by method for `/metrics` (a method the node does not
//! have is counted as `unknown`, so a client cannot grow the label set).

use std::future::Future;
use std::time::Instant;

use chaincore::rpc::help;
use jsonrpsee::core::middleware::{Batch, Notification, RpcServiceT};
use jsonrpsee::types::Request;
use jsonrpsee::MethodResponse;

/// The layer that puts [`Timed`] in front of the RPC service.
#[derive(Clone, Copy, Debug, Default)]
pub struct TimingLayer;

impl<S> tower::Layer<S> for TimingLayer {
    type Service = Timed<S>;

    fn layer(&self, inner: S) -> Timed<S> {
        Timed { inner }
    }
}

/// The middleware: records each call's method and latency in [`crate::metrics`].
#[derive(Clone)]
pub struct Timed<S> {
    inner: S,
}

impl<S> RpcServiceT for Timed<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Send
        + Sync
        + Clone
        + 'static,
{
    type MethodResponse = MethodResponse;
    type NotificationResponse = MethodResponse;
    type BatchResponse = MethodResponse;

    fn call<'a>(&self, req: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let method = help::find(req.method_name()).map_or("unknown", |u| u.name);
        let inner = self.inner.clone();
        async move {
            let start = Instant::now();
            let answer = inner.call(req).await;
            crate::metrics::get().rpc_call(method, start.elapsed());
            answer
        }
    }

    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        self.inner.batch(batch)
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl Future<Output = MethodResponse> + Send + 'a {
        self.inner.notification(n)
    }
}
