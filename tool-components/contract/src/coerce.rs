//! Reading loosely typed gateway JSON, and numbers as JavaScript prints them.
//!
//! Gateway responses are read defensively: a missing or mistyped field is
//! `None`/`null` (or, for the original server's documented rules, a named
//! fallback) instead of failing the whole call. All helpers take `&Value` so
//! they combine with `serde_json`'s indexing, which yields `Value::Null` for
//! anything absent: `coerce::string_or_null(&combo["name"])`.
//!
//! The number helpers are the one home of JavaScript number formatting
//! ([`js_number`], [`number`]), of [`round_cost`] and of the USD text of
//! budget messages ([`usd`]); the host formats its JSON text with them too.

use std::sync::OnceLock;

use serde_json::{Map, Number, Value};

/// `str(v, fb)`: `v` if it is a JSON string, else `fb`. Numbers are not converted.
pub fn str<'a>(v: &'a Value, fallback: &'a str) -> &'a str {
    v.as_str().unwrap_or(fallback)
}

/// A JSON string that is not blank, trimmed; `None` otherwise.
pub fn non_blank(v: &Value) -> Option<&str> {
    v.as_str().map(str::trim).filter(|s| !s.is_empty())
}

/// A finite JSON number; `None` for anything else (strings are not converted).
pub fn finite(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite())
}

/// A finite JSON number or a non-blank numeric string (`" 2.5 "`); `None`
/// for anything else.
pub fn finite_a(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => parse_number(s),
        _ => finite(v),
    }
}

/// `num(v, fb)`: a finite JSON number, else `fb` (the original server's
/// rule, for the few documented fallbacks; prefer [`finite`]).
pub fn num(v: &Value, fallback: f64) -> f64 {
    finite(v).unwrap_or(fallback)
}

/// `numA(v, fb)`: like [`num`] but also accepts a non-blank numeric string
/// (prefer [`finite_a`]).
pub fn num_a(v: &Value, fallback: f64) -> f64 {
    finite_a(v).unwrap_or(fallback)
}

/// Like [`num`] but keeps the gateway's own JSON number (so `1` stays `1`),
/// or renders the fallback with [`number`].
pub fn num_value(v: &Value, fallback: f64) -> Value {
    match v {
        Value::Number(_) => v.clone(),
        _ => number(fallback),
    }
}

/// A JSON number, or `null` when `v` is not one: for "copy the gateway's
/// number or say we don't know".
pub fn number_or_null(v: &Value) -> Value {
    match v {
        Value::Number(_) => v.clone(),
        _ => Value::Null,
    }
}

/// A JSON array, or `null` when `v` is not one: a list the gateway did not
/// send is unknown, not empty.
pub fn array_or_null(v: &Value) -> Value {
    match v {
        Value::Array(_) => v.clone(),
        _ => Value::Null,
    }
}

/// A JSON string, or `null` when `v` is not one.
pub fn string_or_null(v: &Value) -> Value {
    match v {
        Value::String(_) => v.clone(),
        _ => Value::Null,
    }
}

/// `rec(v)`: `v` if it is a non-array object, else an empty object.
pub fn rec(v: &Value) -> &Map<String, Value> {
    static EMPTY: OnceLock<Map<String, Value>> = OnceLock::new();
    v.as_object().unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

/// `arr(v)`: `v` if it is an array, else an empty slice.
pub fn arr(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// The listed keys of `obj`, in the listed order, each copied as-is or
/// `null` when absent: a fixed output shape over a gateway object that may
/// grow or lose fields between versions.
pub fn pick(obj: &Value, keys: &[&str]) -> Value {
    Value::Object(
        keys.iter()
            .map(|k| (k.to_string(), obj[*k].clone()))
            .collect(),
    )
}

/// An `f64` as JSON the way JavaScript would print it as far as the value
/// goes: integral values become JSON integers (`1`, not `1.0`), non-finite
/// values become `null` (as `JSON.stringify` does).
pub fn number(x: f64) -> Value {
    const MAX_SAFE: f64 = 9_007_199_254_740_992.0; // 2^53
    if !x.is_finite() {
        Value::Null
    } else if x.fract() == 0.0 && x.abs() <= MAX_SAFE {
        Value::Number(Number::from(x as i64))
    } else {
        Number::from_f64(x)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

/// An `f64` as text the way JavaScript's `String(x)` prints it: shortest
/// round-trip digits, plain decimals from 1e-6 up to 1e21 (`0.0000285`, not
/// `2.85e-5`), exponent form outside (`1e-7`, `1e+21`). For numbers inside
/// messages such as budget warnings, and for the host's JSON text.
pub fn js_number(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if x == 0.0 {
        return "0".to_string();
    }
    // `{:e}` gives the shortest round-trip digits, like JS.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let k = digits.len() as i32;
    let n = exp + 1; // where the decimal point goes, relative to the digits
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let mantissa = if k == 1 {
            digits.clone()
        } else {
            format!("{}.{}", &digits[..1], &digits[1..])
        };
        format!("{mantissa}e{}{}", if e < 0 { "-" } else { "+" }, e.abs())
    };
    format!("{}{body}", if x < 0.0 { "-" } else { "" })
}

/// A decimal number in text (a header value such as `"0.0000285000"` or
/// `"78"`), trimmed; `None` when it is not a finite number.
pub fn parse_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|x| x.is_finite())
}

/// JavaScript's `Math.round`: halves round towards +∞.
fn js_round(x: f64) -> f64 {
    (x + 0.5).floor()
}

/// `roundCost(x) = round(x·1e10)/1e10`: the precision of the
/// gateway's cost header; removes float noise from sums without turning
/// realistic per-request costs such as 0.0000285 into 0.
pub fn round_cost(x: f64) -> f64 {
    js_round(x * 1e10) / 1e10
}

/// Four decimals, for rates and scores (never for costs: see [`round_cost`]).
pub fn round4(x: f64) -> f64 {
    js_round(x * 1e4) / 1e4
}

/// A USD amount in a message (budget texts): JavaScript number formatting
/// after [`round_cost`], e.g. `0.0000285`.
pub fn usd(x: f64) -> String {
    js_number(round_cost(x))
}

/// Serialises an `f64` as [`number`] does (`2`, not `2.0`), for serde
/// types whose JSON must read as JavaScript wrote it.
pub fn serialize_number<S: serde::Serializer>(x: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&number(*x), serializer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn str_only_takes_strings() {
        assert_eq!(str(&json!("a"), "fb"), "a");
        assert_eq!(str(&json!(""), "fb"), "");
        assert_eq!(str(&json!(1), "fb"), "fb");
        assert_eq!(str(&Value::Null, "fb"), "fb");
        assert_eq!(str(&json!({})["missing"], "fb"), "fb");
        assert_eq!(non_blank(&json!("  x ")), Some("x"));
        assert_eq!(non_blank(&json!("   ")), None);
    }

    #[test]
    fn num_only_takes_numbers() {
        assert_eq!(num(&json!(2.5), 0.0), 2.5);
        assert_eq!(num(&json!("2.5"), 7.0), 7.0);
        assert_eq!(num(&json!(null), 7.0), 7.0);
        assert_eq!(num_a(&json!(" 2.5 "), 7.0), 2.5);
        assert_eq!(num_a(&json!(""), 7.0), 7.0);
        assert_eq!(num_a(&json!("abc"), 7.0), 7.0);
        assert_eq!(num_a(&json!("inf"), 7.0), 7.0);
        assert_eq!(num_a(&json!(3), 7.0), 3.0);
        assert_eq!(num_value(&json!(3), 1.0), json!(3));
        assert_eq!(num_value(&json!("3"), 1.0).to_string(), "1");
    }

    #[test]
    fn lists_or_null() {
        assert_eq!(array_or_null(&json!([1])), json!([1]));
        assert_eq!(array_or_null(&json!([])), json!([]));
        assert_eq!(array_or_null(&json!({})), Value::Null);
        assert_eq!(array_or_null(&Value::Null), Value::Null);
    }

    #[test]
    fn finite_numbers_or_none() {
        assert_eq!(finite(&json!(2.5)), Some(2.5));
        assert_eq!(finite(&json!("2.5")), None);
        assert_eq!(finite(&Value::Null), None);
        assert_eq!(finite_a(&json!(" 2.5 ")), Some(2.5));
        assert_eq!(finite_a(&json!("")), None);
        assert_eq!(finite_a(&json!("NaN")), None);
        assert_eq!(finite_a(&json!(3)), Some(3.0));
    }

    #[test]
    fn rec_and_arr() {
        assert!(rec(&json!([1])).is_empty());
        assert_eq!(rec(&json!({"a":1}))["a"], 1);
        assert!(arr(&json!({"a":1})).is_empty());
        assert_eq!(arr(&json!([1, 2])).len(), 2);
    }

    #[test]
    fn pick_keeps_order_and_nulls_missing() {
        let v = json!({"b": 2, "a": 1, "extra": true});
        assert_eq!(
            pick(&v, &["a", "b", "c"]).to_string(),
            r#"{"a":1,"b":2,"c":null}"#
        );
    }

    #[test]
    fn number_prints_like_js() {
        assert_eq!(number(1.0).to_string(), "1");
        assert_eq!(number(-0.0).to_string(), "0");
        assert_eq!(number(12.5).to_string(), "12.5");
        assert_eq!(number(f64::NAN), Value::Null);
        assert_eq!(number(f64::INFINITY), Value::Null);
        assert_eq!(number(1e300).to_string(), "1e+300"); // as JS prints it
    }

    #[test]
    fn rounding() {
        assert_eq!(round_cost(0.1 + 0.2), 0.3);
        assert_eq!(round_cost(0.0000285), 0.0000285);
        assert_eq!(round_cost(0.00000000004), 0.0);
        assert_eq!(round4(0.76086956), 0.7609);
        assert_eq!(js_round(-0.5), 0.0); // JS: Math.round(-0.5) === -0
        assert_eq!(js_round(2.5), 3.0);
        assert_eq!(js_round(-2.5), -2.0);
        assert_eq!(round4(2.0), 2.0);
    }

    #[test]
    fn js_number_text() {
        let cases = [
            (1.0, "1"),
            (0.0, "0"),
            (-0.0, "0"),
            (0.006, "0.006"),
            (0.0000285, "0.0000285"),
            (0.000001, "0.000001"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (0.01, "0.01"),
            (0.0099715, "0.0099715"),
            (1e21, "1e+21"),
            (123456789012345680000.0, "123456789012345680000"),
            (-2.5, "-2.5"),
            (100.0, "100"),
            (0.1 + 0.2, "0.30000000000000004"),
            (521.097520286, "521.097520286"),
            (0.7608695652173914, "0.7608695652173914"),
            (1.25e22, "1.25e+22"),
            (12.5, "12.5"),
        ];
        for (x, want) in cases {
            assert_eq!(js_number(x), want, "{x:e}");
        }
        assert_eq!(js_number(f64::NAN), "NaN");
    }

    #[test]
    fn usd_rounds_then_prints_like_js() {
        assert_eq!(usd(0.0000285), "0.0000285");
        assert_eq!(usd(0.1 + 0.2), "0.3");
        assert_eq!(usd(0.00000000004), "0");
        assert_eq!(usd(2.0), "2");
    }

    #[test]
    fn numbers_in_text() {
        assert_eq!(parse_number("0.0000285000"), Some(0.0000285));
        assert_eq!(parse_number(" 78 "), Some(78.0));
        assert_eq!(parse_number(""), None);
        assert_eq!(parse_number("NaN"), None);
        assert_eq!(parse_number("12ms"), None);
    }
}
