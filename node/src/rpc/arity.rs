//! Parameters checked against each method's usage line (`chaincore::rpc::help`) before the
//! method runs, as Bitcoin Core does: too many positional parameters, or a required one missing
//! (positional or named), answer `-1` with the method's usage (`help <method>`'s text), and a
//! named parameter the method does not have answers `-8` "Unknown named parameter …", instead
//! of jsonrpsee's generic `-32602`.

use std::collections::HashMap;
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

/// Core's error for `method` called with `params` (raw JSON), or `None` if they fit, they are
/// not JSON the server can read (it answers that), or the method is unknown (likewise).
fn arity_error(method: &str, params: Option<&str>) -> Option<ErrorObjectOwned> {
    let usage = help::find(method)?;
    let declared = usage.params();
    let usage_error = || {
        let text = help::describe(method).unwrap_or_else(|| usage.usage.to_string());
        Some(ErrorObjectOwned::owned(code::MISC_ERROR, text, None::<()>))
    };
    let raw = params.unwrap_or("[]");
    if let Ok(positional) = serde_json::from_str::<Vec<IgnoredAny>>(raw) {
        let (required, most) = usage.arity();
        return match (required..=most).contains(&positional.len()) {
            true => None,
            false => usage_error(),
        };
    }
    let named = serde_json::from_str::<HashMap<String, IgnoredAny>>(raw).ok()?;
    if let Some(unknown) = named
        .keys()
        .find(|k| !declared.iter().any(|p| &p.name == *k))
    {
        return Some(ErrorObjectOwned::owned(
            code::INVALID_PARAMETER,
            format!("Unknown named parameter {unknown}"),
            None::<()>,
        ));
    }
    match declared
        .iter()
        .any(|p| !p.optional && !named.contains_key(&p.name))
    {
        true => usage_error(),
        false => None,
    }
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
        assert!(arity_error("nosuchmethod", Some("[1]")).is_none());
    }

    #[test]
    fn named_parameters_are_checked_against_the_usage() {
        assert!(arity_error("gettxout", Some(r#"{"txid": "ab", "n": 1}"#)).is_none());
        let missing = arity_error("gettxout", Some(r#"{"txid": "ab"}"#)).unwrap();
        assert_eq!(missing.code(), -1);
        assert!(
            missing.message().starts_with("gettxout "),
            "{}",
            missing.message()
        );
        let unknown = arity_error("getblockhash", Some(r#"{"heigth": 1}"#)).unwrap();
        assert_eq!(unknown.code(), -8);
        assert_eq!(unknown.message(), "Unknown named parameter heigth");
        assert!(arity_error("getblockcount", Some(r#"{"foo": 1}"#)).is_some());
    }
}
