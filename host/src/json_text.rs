//! JSON text as the original server prints it: `JSON.stringify(v, null, 2)`.
//! Agents and scripts compare our text with the original's, so numbers follow
//! JavaScript's rules: integral values without `.0`, plain decimals from 1e-7
//! up to 1e21 (`0.0000285`, not `2.85e-5`), exponents only outside that range.

use serde_json::Value;
use serde_json::ser::{Formatter, PrettyFormatter};
use std::io;

/// Pretty-prints `value` with two-space indentation and JavaScript numbers.
pub fn to_js_pretty(value: &Value) -> String {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, JsFormatter(PrettyFormatter::with_indent(b"  ")));
    // Serialising a Value into a Vec cannot fail (no I/O errors, string keys).
    if serde::Serialize::serialize(value, &mut ser).is_err() {
        return value.to_string();
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Compact JSON with JavaScript numbers: `JSON.stringify(v)`.
pub fn to_js_compact(value: &Value) -> String {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, JsCompact);
    if serde::Serialize::serialize(value, &mut ser).is_err() {
        return value.to_string();
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The first `max_bytes` bytes (at least) of [`to_js_compact`], cut at a
/// character boundary; `true` when that is the whole text. Serialization
/// stops once the limit is passed, so a summary of a large value costs
/// what its beginning costs.
pub fn to_js_compact_prefix(value: &Value, max_bytes: usize) -> (String, bool) {
    let mut out = Capped { buf: Vec::with_capacity(max_bytes.min(4096) + 8), max: max_bytes };
    let complete = {
        let mut ser = serde_json::Serializer::with_formatter(&mut out, JsCompact);
        serde::Serialize::serialize(value, &mut ser).is_ok()
    };
    let text = match String::from_utf8(out.buf) {
        Ok(text) => text,
        Err(e) => {
            // Cut inside a character: keep the valid prefix.
            let valid = e.utf8_error().valid_up_to();
            let mut bytes = e.into_bytes();
            bytes.truncate(valid);
            String::from_utf8(bytes).unwrap_or_default()
        }
    };
    (text, complete)
}

/// A byte sink that refuses writes once it holds more than `max` bytes.
struct Capped {
    buf: Vec<u8>,
    max: usize,
}

impl io::Write for Capped {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() > self.max {
            return Err(io::Error::other("enough"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct JsCompact;

impl Formatter for JsCompact {
    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        writer.write_all(js_number(value).as_bytes())
    }
    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(writer, f64::from(value))
    }
}

/// Formats an f64 as JavaScript's `Number.prototype.toString` does; JSON
/// has no NaN or infinities, so those print as `null` (as `JSON.stringify`).
pub fn js_number(x: f64) -> String {
    if x.is_finite() {
        omniroute_tool_contract::coerce::js_number(x)
    } else {
        "null".to_owned()
    }
}

struct JsFormatter(PrettyFormatter<'static>);

impl Formatter for JsFormatter {
    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        writer.write_all(js_number(value).as_bytes())
    }
    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(writer, f64::from(value))
    }
    fn begin_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_array(writer)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_array(writer)
    }
    fn begin_array_value<W: ?Sized + io::Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_array_value(writer, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_array_value(writer)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_object(writer)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object(writer)
    }
    fn begin_object_key<W: ?Sized + io::Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_object_key(writer, first)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_object_value(writer)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object_value(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_match_javascript() {
        // The formatting itself is the contract's (its tests hold every
        // case); here: it is used, and JSON has no NaN or infinities.
        for (x, want) in [(1.0, "1"), (0.0000285, "0.0000285"), (1e21, "1e+21"), (-2.5, "-2.5")] {
            assert_eq!(js_number(x), want, "{x:e}");
        }
        for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(js_number(x), "null");
        }
    }

    #[test]
    fn pretty_like_json_stringify() {
        let v = json!({"a": 1.0, "b": [], "c": {}, "d": [1, {"e": 0.0000285}], "f": null, "g": "x\"y"});
        let want = "{\n  \"a\": 1,\n  \"b\": [],\n  \"c\": {},\n  \"d\": [\n    1,\n    {\n      \"e\": 0.0000285\n    }\n  ],\n  \"f\": null,\n  \"g\": \"x\\\"y\"\n}";
        assert_eq!(to_js_pretty(&v), want);
    }
}
