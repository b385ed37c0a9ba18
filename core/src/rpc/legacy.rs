//! JSON-RPC 1.0 requests as Bitcoin tools send them (no `"jsonrpc"` member), made into
//! JSON-RPC 2.0 for jsonrpsee, and the answers made back into 1.0's `{"result","error","id"}`.
//!
//! The node's RPC server runs every request body through [`is_legacy`] and, when it is one,
//! [`upgrade_legacy`] before jsonrpsee sees it, and [`downgrade_response`] on the answer. These
//! are plain functions of bytes so the RPC fuzz target runs exactly what the server runs.

use serde_json::Value;

/// True if `body` is a JSON-RPC 1.0 style call (or a batch holding one): an object without a
/// `"jsonrpc"` member. Only looks for that member, without building the (possibly megabytes
/// of) params.
pub fn is_legacy(body: &[u8]) -> bool {
    use serde::de::{Deserialize, Deserializer, IgnoredAny};
    #[derive(serde::Deserialize)]
    struct Call {
        #[serde(default, deserialize_with = "present")]
        jsonrpc: bool,
    }
    fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        IgnoredAny::deserialize(d).map(|_| true)
    }
    /// A batch element: a call object, or anything else (which jsonrpsee will refuse).
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Element {
        Call(Call),
        Other(IgnoredAny),
    }
    let legacy = |e: &Element| matches!(e, Element::Call(Call { jsonrpc: false }));
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => {
            serde_json::from_slice::<Vec<Element>>(body).is_ok_and(|calls| calls.iter().any(legacy))
        }
        _ => serde_json::from_slice::<Call>(body).is_ok_and(|call| !call.jsonrpc),
    }
}

/// Rewrites a 1.0 style call (or each one of a batch) as JSON-RPC 2.0 for jsonrpsee: adds
/// `"jsonrpc":"2.0"`, drops `"version"`, and gives a missing `id` the value null.
pub fn upgrade_legacy(body: &[u8]) -> Vec<u8> {
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        return body.to_vec();
    };
    let fix = |call: &mut Value| {
        if let Some(obj) = call.as_object_mut() {
            if !obj.contains_key("jsonrpc") {
                obj.remove("version");
                obj.insert("jsonrpc".into(), Value::from("2.0"));
                obj.entry("id").or_insert(Value::Null);
            }
        }
    };
    match &mut value {
        Value::Array(calls) => calls.iter_mut().for_each(fix),
        call => fix(call),
    }
    serde_json::to_vec(&value).unwrap_or_else(|_| body.to_vec())
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
        // A present "jsonrpc" member, even null, is not 1.0 style.
        assert!(!is_legacy(br#"{"jsonrpc":null,"method":"x","id":1}"#));
        let out = downgrade_response(br#"{"jsonrpc":"2.0","result":5,"id":0}"#);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v, serde_json::json!({"result": 5, "error": null, "id": 0}));
        let out =
            downgrade_response(br#"[{"jsonrpc":"2.0","error":{"code":-1,"message":"m"},"id":1}]"#);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v[0]["result"], Value::Null);
        assert_eq!(v[0]["error"]["code"], -1);
    }
}
