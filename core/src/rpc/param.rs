//! Parameter decoding with Bitcoin Core's errors, and amounts as JSON coin numbers.
//!
//! jsonrpsee answers a parameter that does not decode with its own `-32602 Invalid params`.
//! Bitcoin Core answers `-3` with "Expected type number, got string". A method parameter
//! declared as [`Param<T>`] always decodes; what it holds is either the value or Core's error,
//! which the method returns with [`Param::get`] before doing anything else.

use jsonrpsee::types::ErrorObjectOwned;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::code;

/// The JSON type a parameter must have, named as Bitcoin Core names it in its type errors.
pub trait JsonType {
    /// `"number"`, `"string"`, `"bool"`, `"array"`, `"object"`, or several joined by " or ".
    const JSON_TYPE: &'static str;
}

macro_rules! json_type {
    ($name:literal: $($t:ty),*) => {
        $(impl JsonType for $t {
            const JSON_TYPE: &'static str = $name;
        })*
    };
}
json_type!("number": u8, u16, u32, u64, usize, i32, i64, f64);
json_type!("string": String);
json_type!("bool": bool);

impl<T> JsonType for Vec<T> {
    const JSON_TYPE: &'static str = "array";
}

/// Core's name for the type of a JSON value (UniValue's `uvTypeName`).
pub fn json_type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A positional or named parameter: the decoded value, or the error Core gives for it.
///
/// A value of the wrong JSON type is `-3` "Expected type X, got Y"; a value of the right type
/// that `T` still refuses (a negative count, a fraction for an integer) is `-8` "Invalid
/// parameter" with what was wrong. A missing optional parameter and `null` are `None` when
/// declared as `Option<Param<T>>`, as in Core.
#[derive(Debug, Clone, PartialEq)]
pub struct Param<T>(Result<T, (i32, String)>);

impl<T> Param<T> {
    /// The value, or the RPC error to answer with.
    pub fn get(self) -> Result<T, ErrorObjectOwned> {
        self.0
            .map_err(|(code, message)| ErrorObjectOwned::owned(code, message, None::<()>))
    }
}

impl<T> Param<T> {
    /// An optional parameter's value: `None` if it was left out (or null), else as
    /// [`Param::get`].
    pub fn optional(p: Option<Param<T>>) -> Result<Option<T>, ErrorObjectOwned> {
        p.map(Param::get).transpose()
    }
}

impl<T> From<T> for Param<T> {
    fn from(v: T) -> Param<T> {
        Param(Ok(v))
    }
}

impl<T: Serialize> Serialize for Param<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Ok(v) => v.serialize(s),
            Err((_, message)) => Err(serde::ser::Error::custom(message)),
        }
    }
}

impl<'de, T: DeserializeOwned + JsonType> Deserialize<'de> for Param<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let got = json_type_of(&v);
        // Taken by value: a megabyte `submitblock` string moves instead of being copied.
        Ok(Param(serde_json::from_value::<T>(v).map_err(|e| {
            if T::JSON_TYPE.split(" or ").any(|t| t == got) {
                (code::INVALID_PARAMETER, format!("Invalid parameter: {e}"))
            } else {
                (
                    code::TYPE_ERROR,
                    format!("Expected type {}, got {got}", T::JSON_TYPE),
                )
            }
        })))
    }
}

/// Serde for an [`Amount`](crate::Amount) as a JSON number of coins (Core's `ValueFromAmount`:
/// `12.50000246`), read back rounded to whole units (Core's `AmountFromValue`).
pub mod coins {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::Amount;

    /// Writes `a` as coins. The quotient of two exact doubles is correctly rounded, so this is
    /// the double nearest the 8-decimal value, as parsing Core's text would give.
    pub fn serialize<S: Serializer>(a: &Amount, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(a.to_units() as f64 / Amount::ONE_COIN.to_units() as f64)
    }

    /// Reads coins, rounded to the nearest unit.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
        let coins = f64::deserialize(d)?;
        let units = (coins * Amount::ONE_COIN.to_units() as f64).round();
        if !units.is_finite() || units.abs() > i64::MAX as f64 {
            return Err(serde::de::Error::custom(format!(
                "amount {coins} out of range"
            )));
        }
        Ok(Amount::from_units(units as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Amount;
    use serde_json::json;

    fn decode<T: DeserializeOwned + JsonType>(v: Value) -> Result<T, (i32, String)> {
        serde_json::from_value::<Param<T>>(v).unwrap().0
    }

    #[test]
    fn wrong_json_type_is_cores_type_error() {
        assert_eq!(
            decode::<i64>(json!("1")),
            Err((-3, "Expected type number, got string".into()))
        );
        assert_eq!(
            decode::<String>(json!(5)),
            Err((-3, "Expected type string, got number".into()))
        );
        assert_eq!(
            decode::<Vec<String>>(json!({})),
            Err((-3, "Expected type array, got object".into()))
        );
        assert_eq!(decode::<bool>(json!(true)), Ok(true));
    }

    #[test]
    fn right_type_wrong_value_is_invalid_parameter() {
        let (code, message) = decode::<u32>(json!(-1)).unwrap_err();
        assert_eq!(code, -8);
        assert!(message.starts_with("Invalid parameter: "), "{message}");
    }

    #[test]
    fn amounts_round_trip_as_coin_numbers() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct A(#[serde(with = "coins")] Amount);
        for units in [0, 1, 12_500_000_246, 2_100_000_000_000_000, -5] {
            let a = A(Amount::from_units(units));
            let text = serde_json::to_string(&a).unwrap();
            let parsed: f64 = text.parse().unwrap();
            let expected: f64 = Amount::from_units(units).to_string().parse().unwrap();
            assert_eq!(parsed, expected, "{units}");
            assert_eq!(serde_json::from_str::<A>(&text).unwrap(), a);
        }
    }
}
