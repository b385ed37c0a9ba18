//! JSON-RPC 1.0 requests as Bitcoin tools send them (no `"jsonrpc"` member, or
//! `"jsonrpc":"1.0"` as Bitcoin Core's own `curl` examples write), made into JSON-RPC 2.0 for
//! jsonrpsee, and the answers made back into 1.0's `{"result","error","id"}`.
//!
//! The node's RPC server runs every request body through [`is_legacy`] and, when it is one,
//! [`upgrade_legacy`] before jsonrpsee sees it, and [`downgrade_response`] on the answer. These
//! are plain functions of bytes so the RPC fuzz target runs exactly what the server runs.

use std::collections::BTreeMap;

use serde_json::value::{to_raw_value, RawValue};
use serde_json::Value;

/// True if `body` is a JSON-RPC 1.0 style call (or a batch holding one): JSON (so UTF-8), and
/// an object without a `"jsonrpc"` member or with `"jsonrpc":"1.0"` (which Core also takes
/// as 1.0). Parses only that member's value, keeping the others as raw text (possibly
/// megabytes of params), and splits a batch as [`upgrade_legacy`] does, so that every body
/// called 1.0 style here is one it upgrades.
pub fn is_legacy(body: &[u8]) -> bool {
    /// A call's members, each as its JSON text; anything but an object fails to parse as one.
    type Members<'a> = BTreeMap<String, &'a RawValue>;
    let legacy = |call: &str| {
        serde_json::from_str::<Members>(call)
            .is_ok_and(|m| legacy_version(m.get("jsonrpc").copied()))
    };
    // serde_json does not check that the strings it skips are UTF-8: check the whole body.
    let Ok(text) = std::str::from_utf8(body) else {
        return false;
    };
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_str::<Vec<&RawValue>>(text)
            .is_ok_and(|calls| calls.iter().any(|c| legacy(c.get()))),
        _ => legacy(text),
    }
}

/// Rewrites a 1.0 style call (or each one of a batch) as JSON-RPC 2.0 for jsonrpsee: adds
/// `"jsonrpc":"2.0"`, drops `"version"`, and gives a missing `id` the value null. Member values
/// are moved as raw JSON text, never parsed, so every body that [`is_legacy`] calls 1.0 style
/// is upgraded, numbers too large for an `f64` (`1e400`) included, and big params are not
/// built into values. A body that is not JSON is returned unchanged.
pub fn upgrade_legacy(body: &[u8]) -> Vec<u8> {
    /// A call's members, each as its JSON text.
    type Call = BTreeMap<String, Box<RawValue>>;
    fn fix(call: &mut Call) {
        if legacy_version(call.get("jsonrpc").map(|v| &**v)) {
            call.remove("version");
            call.insert("jsonrpc".into(), raw(r#""2.0""#));
            call.entry("id".into()).or_insert_with(|| raw("null"));
        }
    }
    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_string()).expect("a JSON literal")
    }
    let upgraded = match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice::<Vec<Box<RawValue>>>(body)
            .ok()
            .map(|calls| {
                let calls: Vec<Box<RawValue>> = calls
                    .into_iter()
                    .map(|c| match serde_json::from_str::<Call>(c.get()) {
                        Ok(mut call) => {
                            fix(&mut call);
                            to_raw_value(&call).unwrap_or(c)
                        }
                        Err(_) => c,
                    })
                    .collect();
                serde_json::to_vec(&calls)
            }),
        _ => serde_json::from_slice::<Call>(body).ok().map(|mut call| {
            fix(&mut call);
            serde_json::to_vec(&call)
        }),
    };
    match upgraded {
        Some(Ok(bytes)) => bytes,
        _ => body.to_vec(),
    }
}

/// True for a call's `"jsonrpc"` member (as JSON text) that makes it 1.0 style: none, or the
/// string `"1.0"`.
fn legacy_version(member: Option<&RawValue>) -> bool {
    member.is_none_or(|v| serde_json::from_str::<&str>(v.get()).is_ok_and(|s| s == "1.0"))
}

/// Rewrites JSON-RPC 2.0 answers to the 1.0 shape `{"result","error","id"}`.
pub fn downgrade_response(body: &[u8]) -> Vec<u8> {
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        return body.to_vec();
    };
    let fix = |answer: &mut Value| {
        if let Some(obj) = answer.as_object_mut() {
            obj.remove("jsonrpc");
            obj.entry("result").or_insert(Value::Null);
            obj.entry("error").or_insert(Value::Null);
            obj.entry("id").or_insert(Value::Null);
        }
    };
    match &mut value {
        Value::Array(answers) => answers.iter_mut().for_each(fix),
        answer => fix(answer),
    }
    serde_json::to_vec(&value).unwrap_or_else(|_| body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_requests_are_upgraded_and_answers_downgraded() {
        let call = br#"{"method":"getblockcount","params":[],"id":0,"version":"1.1"}"#;
        assert!(is_legacy(call));
        let v: Value = serde_json::from_slice(&upgrade_legacy(call)).unwrap();
        assert_eq!(v["jsonrpc"], "2.0");
        assert!(v.get("version").is_none());
        let batch = br#" [{"jsonrpc":"2.0","method":"x","id":1},{"method":"y","id":2}]"#;
        assert!(is_legacy(batch));
        let v: Value = serde_json::from_slice(&upgrade_legacy(batch)).unwrap();
        assert_eq!(v[1]["jsonrpc"], "2.0");
        assert!(!is_legacy(
            br#"{"jsonrpc":"2.0","method":"x","params":["ab"],"id":1}"#
        ));
        assert!(!is_legacy(br#"[{"jsonrpc":"2.0","method":"x","id":1}]"#));
        assert!(!is_legacy(b"not json"));
        // A batch with a non-object element still has its 1.0 calls upgraded.
        let mixed = br#"[1, {"method":"getblockcount","id":3}]"#;
        assert!(is_legacy(mixed));
        let v: Value = serde_json::from_slice(&upgrade_legacy(mixed)).unwrap();
        assert_eq!(v[1]["jsonrpc"], "2.0");
        // A present "jsonrpc" member, even null, is not 1.0 style...
        assert!(!is_legacy(br#"{"jsonrpc":null,"method":"x","id":1}"#));
        // ...except "1.0", as Core's help texts write their curl examples.
        let curl =
            br#"{"jsonrpc": "1.0", "id": "curltest", "method": "getblockcount", "params": []}"#;
        assert!(is_legacy(curl));
        let v: Value = serde_json::from_slice(&upgrade_legacy(curl)).unwrap();
        assert_eq!(v["jsonrpc"], "2.0");
        assert!(!is_legacy(&upgrade_legacy(curl)));
        let out = downgrade_response(br#"{"jsonrpc":"2.0","result":5,"id":0}"#);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v, serde_json::json!({"result": 5, "error": null, "id": 0}));
        let out =
            downgrade_response(br#"[{"jsonrpc":"2.0","error":{"code":-1,"message":"m"},"id":1}]"#);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v[0]["result"], Value::Null);
        assert_eq!(v[0]["error"]["code"], -1);
    }

    /// Found while writing the `rpc_request` fuzz target, whose check that an upgraded body is
    /// no longer 1.0 style it fails, and by the target itself 70 s into its first run (the
    /// inputs are in fuzz/regressions/rpc_request/): a number
    /// past `f64`'s range passes `is_legacy` (which skips values) but stopped the upgrade, which
    /// parsed the whole body into a `Value`, so jsonrpsee got the 1.0 body and answered with an
    /// invalid-request error instead of the method's answer.
    #[test]
    fn numbers_past_f64_range_are_upgraded_too() {
        for body in [
            &br#"{"method":"getblockhash","params":[1e400],"id":1}"#[..],
            br#"{"method":"getblockcount","id":1e400}"#,
        ] {
            assert!(is_legacy(body));
            let up = upgrade_legacy(body);
            assert!(!is_legacy(&up), "{}", String::from_utf8_lossy(&up));
            assert!(String::from_utf8_lossy(&up).contains("e400"));
        }
    }

    /// Found by the `rpc_request` fuzz target (its first run's 109 crashes: 99 of this kind,
    /// 4 of the next; inputs in fuzz/regressions/rpc_request/): a body with bytes that are not
    /// UTF-8 inside a string was called 1.0 style, since serde_json skips such strings
    /// unchecked, yet could not be upgraded. Such a body is not JSON, and jsonrpsee answers it
    /// with a parse error as it answers any other body that is not JSON.
    #[test]
    fn bodies_that_are_not_utf8_are_not_legacy() {
        // 0xe3 starts a three-byte UTF-8 sequence that `c` does not continue.
        let body = b"{\"id\":0,\"jsonr\xe3c\":\"2.0\",\"method\":\"getblockcount\"}";
        assert!(!is_legacy(body));
        assert!(!is_legacy(b"[{\"method\":\"x\",\"params\":[\"\xff\"]}]"));
    }

    /// Found by the `rpc_request` fuzz target (4 of its first run's crashes): a batch element
    /// `[]` was called a 1.0 call, because a derived struct also deserializes from an empty
    /// sequence, yet the upgrade, rightly, changes only objects. Only objects are calls now.
    #[test]
    fn only_objects_are_calls() {
        for body in [
            &b"[[]]"[..],
            b"\t[ [] ]",
            b"[]",
            b"[1, \"x\", null]",
            b"[[{\"method\":\"x\"}]]",
        ] {
            assert!(!is_legacy(body), "{}", String::from_utf8_lossy(body));
        }
        assert!(is_legacy(b"[[], {\"method\":\"x\"}]"));
    }
}
