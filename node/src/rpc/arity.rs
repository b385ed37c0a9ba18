//! Parameter counts checked before a method runs, as Bitcoin Core does: too many parameters, or
//! too few of the required ones, answer `-1` with the method's usage (`help <method>`'s text)
//! instead of jsonrpsee's generic `-32602`. The counts come from each method's usage line in
//! `chaincore::rpc::help`. Named parameters (an object) are left to the method.

use std::future::Future;

use chaincore::rpc::{code, help};
use jsonrpsee::core::middleware::{Batch, BatchEntry, BatchEntryErr, Notification, RpcServiceT};
use jsonrpsee::types::{ErrorObjectOwned, Request};
use jsonrpsee::MethodResponse;
use serde::de::IgnoredAny;

/// The layer that puts [`CheckArity`] in front of the RPC service.
#[derive(Clone, Copy, Debug, Default)]
pub struct ArityLayer;

impl<S> tower::Layer<S> for ArityLayer {
    type Service = CheckArity<S>;

    fn layer(&self, inner: S) -> CheckArity<S> {
        CheckArity { inner }
    }
}

/// The middleware: checks parameter counts before `inner` sees a call.
#[derive(Clone)]
pub struct CheckArity<S> {
    inner: S,
}

/// Core's usage error for `method` called with `params` (raw JSON), or `None` if the count
/// fits, the parameters are named, or the method is unknown (the server answers that).
fn arity_error(method: &str, params: Option<&str>) -> Option<ErrorObjectOwned> {
    let usage = help::find(method)?;
    let count = match params {
        None => 0,
        Some(raw) => serde_json::from_str::<Vec<IgnoredAny>>(raw).ok()?.len(),
    };
    let (required, most) = usage.arity();
    if (required..=most).contains(&count) {
        return None;
    }
    let text = help::describe(method).unwrap_or_else(|| usage.usage.to_string());
    Some(ErrorObjectOwned::owned(code::MISC_ERROR, text, None::<()>))
}

impl<S> RpcServiceT for CheckArity<S>
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
        let refused = arity_error(req.method_name(), req.params.as_ref().map(|p| p.get()));
        let inner = self.inner.clone();
        async move {
            match refused {
                Some(e) => MethodResponse::error(req.id(), e),
                None => inner.call(req).await,
            }
        }
    }

    fn batch<'a>(&self, mut batch: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        for entry in batch.iter_mut() {
            let refused = match &*entry {
                Ok(BatchEntry::Call(req)) => {
                    arity_error(req.method_name(), req.params.as_ref().map(|p| p.get()))
                        .map(|e| (req.id(), e))
                }
                _ => None,
            };
            if let Some((id, e)) = refused {
                *entry = Err(BatchEntryErr::new(id, e));
            }
        }
        self.inner.batch(batch)
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl Future<Output = MethodResponse> + Send + 'a {
        self.inner.notification(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_outside_the_usage_are_refused_with_it() {
        assert!(arity_error("getblockcount", None).is_none());
        assert!(arity_error("getblockcount", Some("[]")).is_none());
        let e = arity_error("getblockcount", Some("[1]")).unwrap();
        assert_eq!(e.code(), -1);
        assert!(
            e.message().starts_with("getblockcount\n"),
            "{}",
            e.message()
        );
        assert!(arity_error("getblockhash", Some("[]")).is_some());
        assert!(arity_error("gettxout", Some(r#"["ab", 1, null]"#)).is_none());
        assert!(arity_error("gettxout", Some(r#"["ab", 1, true, 4]"#)).is_some());
        assert!(arity_error("gettxout", Some(r#"{"txid": "ab"}"#)).is_none());
        assert!(arity_error("nosuchmethod", Some("[1]")).is_none());
    }
}
