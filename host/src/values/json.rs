//! JSON as users write and read values on the command line.
//!
//! JSON has fewer kinds than the value model, so reading is guided by the declared type:
//! `datetime` from an RFC 3339 string, `duration` from seconds or a string such as "1h30m" or
//! "250ms", `bytes` from base64, a `float` from any number. Writing needs no type: datetimes come
//! out as RFC 3339, durations as "1h30m0.5s", bytes as base64, references as their URI (a file,
//! directory or frame input is given by its URI too).

use std::collections::BTreeMap;

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value as Json;

use super::reference::RefMeta;
use super::types::Param;
use super::{
    msgpack, Duration, RefKind, Reference, Timestamp, TypeDesc, Value, ValueError, ValuePath,
};

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Reads a document of named JSON values against the task's parameters (missing or undeclared
/// names are left for validation to report, with the same messages as any other document).
pub fn document_from_json(
    given: BTreeMap<String, Json>,
    params: &[Param],
    side: &str,
) -> Result<BTreeMap<String, Value>, ValueError> {
    let root = ValuePath::root(side);
    let mut out = BTreeMap::new();
    for (name, json) in given {
        let path = root.field(&name);
        let value = match params.iter().find(|p| p.name == name) {
            Some(param) => from_json(json, &param.ty, &path)?,
            None => untyped_from_json(json),
        };
        out.insert(name, value);
    }
    Ok(out)
}

/// Reads one JSON value as the given type.
pub fn from_json(json: Json, ty: &TypeDesc, path: &ValuePath) -> Result<Value, ValueError> {
    let mismatch = |json: &Json| ValueError::TypeMismatch {
        path: path.clone(),
        expected: ty.to_string(),
        got: json_kind(json).to_string(),
    };
    let invalid = |message: String| ValueError::Invalid {
        path: path.clone(),
        message,
    };
    Ok(match (ty, json) {
        (TypeDesc::None, Json::Null) => Value::None,
        (TypeDesc::Bool, Json::Bool(b)) => Value::Bool(b),
        (TypeDesc::Int, Json::Number(n)) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => return Err(invalid(format!("{n} is not a 64-bit integer"))),
        },
        (TypeDesc::Float, Json::Number(n)) => match n.as_f64() {
            Some(f) => Value::Float(f),
            None => return Err(invalid(format!("{n} is not a float"))),
        },
        (TypeDesc::String, Json::String(s)) => Value::String(s),
        (TypeDesc::Bytes, Json::String(s)) => match BASE64.decode(s.as_bytes()) {
            Ok(b) => Value::Bytes(b),
            Err(e) => return Err(invalid(format!("bytes are given as base64: {e}"))),
        },
        (TypeDesc::Datetime, Json::String(s)) => match DateTime::parse_from_rfc3339(&s) {
            Ok(t) => Value::Datetime(Timestamp {
                seconds: t.timestamp(),
                nanos: t.timestamp_subsec_nanos(),
            }),
            Err(e) => return Err(invalid(format!("{s:?} is not an RFC 3339 datetime: {e}"))),
        },
        (TypeDesc::Duration, Json::Number(n)) => match n.as_f64().and_then(duration_from_secs) {
            Some(d) => Value::Duration(d),
            None => return Err(invalid(format!("{n} seconds is out of range"))),
        },
        (TypeDesc::Duration, Json::String(s)) => match parse_duration(&s) {
            Some(d) => Value::Duration(d),
            None => {
                return Err(invalid(format!(
                    "{s:?} is not a duration (write seconds, or e.g. \"1h30m\", \"250ms\")"
                )))
            }
        },
        (TypeDesc::List { of }, Json::Array(items)) => Value::List(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| from_json(item, of, &path.index(i)))
                .collect::<Result<_, _>>()?,
        ),
        (TypeDesc::Map { of }, Json::Object(entries)) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let item = from_json(v, of, &path.key(&k))?;
                    Ok((k, item))
                })
                .collect::<Result<_, ValueError>>()?,
        ),
        (TypeDesc::Record { fields }, Json::Object(entries)) => {
            let mut out = BTreeMap::new();
            for (k, v) in entries {
                let value = match fields.iter().find(|f| f.name == k) {
                    Some(field) => from_json(v, &field.ty, &path.field(&k))?,
                    None => untyped_from_json(v),
                };
                out.insert(k, value);
            }
            Value::Map(out)
        }
        (TypeDesc::Enum { .. }, Json::String(s)) => Value::String(s),
        (TypeDesc::Optional { .. }, Json::Null) => Value::None,
        (TypeDesc::Optional { of }, json) => from_json(json, of, path)?,
        (TypeDesc::Union { variants }, json) => {
            for member in variants {
                if let Ok(v) = from_json(json.clone(), member, path) {
                    return Ok(v);
                }
            }
            return Err(mismatch(&json));
        }
        (TypeDesc::File { .. } | TypeDesc::Dir | TypeDesc::DataFrame { .. }, json) => {
            ref_from_json(json, ty, path)?
        }
        (_, json) => return Err(mismatch(&json)),
    })
}

/// A reference from JSON: its URI as a string, or an object with `uri` and optionally `size`,
/// `sha256` and `format` (what `sluice runs show --json` prints).
fn ref_from_json(json: Json, ty: &TypeDesc, path: &ValuePath) -> Result<Value, ValueError> {
    let kind = match ty {
        TypeDesc::File { .. } => RefKind::File,
        TypeDesc::Dir => RefKind::Dir,
        _ => RefKind::DataFrame,
    };
    match json {
        Json::String(uri) if uri.contains("://") => Ok(RefMeta::new(kind, uri).to_value()),
        Json::String(other) => Err(ValueError::Invalid {
            path: path.clone(),
            message: format!(
                "a {} is given by URI (scheme://...) or uploaded with @path, got {other:?}",
                ty.kind_name()
            ),
        }),
        Json::Object(fields) => {
            let payload = untyped_from_json(Json::Object(fields));
            let r = Reference {
                kind,
                payload: msgpack::encode(&payload),
            };
            Ok(RefMeta::from_reference(&r, path)?.to_value())
        }
        other => Err(ValueError::TypeMismatch {
            path: path.clone(),
            expected: ty.to_string(),
            got: json_kind(&other).to_string(),
        }),
    }
}

/// Reads JSON with no declared type (for names the task does not declare, so that validation
/// reports them instead of the JSON reader).
fn untyped_from_json(json: Json) -> Value {
    match json {
        Json::Null => Value::None,
        Json::Bool(b) => Value::Bool(b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::String(s),
        Json::Array(items) => Value::List(items.into_iter().map(untyped_from_json).collect()),
        Json::Object(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (k, untyped_from_json(v)))
                .collect(),
        ),
    }
}

/// Writes a value as JSON for people to read.
pub fn to_json(value: &Value) -> Json {
    match value {
        Value::None => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        // JSON has no NaN or infinities; write them as strings rather than lose them.
        Value::Float(f) if f.is_finite() => Json::from(*f),
        Value::Float(f) => Json::String(f.to_string()),
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(b) => Json::String(BASE64.encode(b)),
        Value::Datetime(ts) => Json::String(format_timestamp(*ts)),
        Value::Duration(d) => Json::String(format_duration(*d)),
        Value::List(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect(),
        ),
        // A reference is shown as its URI (which is also how it is given as an input).
        Value::Ref(r) => match RefMeta::from_reference(r, &ValuePath::root("reference")) {
            Ok(meta) => Json::String(meta.uri),
            Err(e) => Json::String(format!("<{e}>")),
        },
    }
}

/// Writes a whole document as a JSON object.
pub fn document_to_json(doc: &BTreeMap<String, Value>) -> Json {
    Json::Object(doc.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
}

fn json_kind(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "bool",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

fn format_timestamp(ts: Timestamp) -> String {
    match DateTime::<Utc>::from_timestamp(ts.seconds, ts.nanos) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => format!("{}.{:09}s since 1970", ts.seconds, ts.nanos),
    }
}

const NANOS_PER_SEC: i128 = 1_000_000_000;

fn duration_from_nanos(total: i128) -> Option<Duration> {
    let seconds = i64::try_from(total.div_euclid(NANOS_PER_SEC)).ok()?;
    let nanos = total.rem_euclid(NANOS_PER_SEC) as u32;
    Some(Duration { seconds, nanos })
}

fn duration_from_secs(secs: f64) -> Option<Duration> {
    if !secs.is_finite() {
        return None;
    }
    duration_from_nanos((secs * 1e9).round() as i128)
}

/// Parses "90", "1.5", "1h30m", "-2m", "250ms", "1d2h", "3us", "10ns".
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return duration_from_secs(secs);
    }
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "d" => 86_400e9,
            "h" => 3_600e9,
            "m" => 60e9,
            "s" => 1e9,
            "ms" => 1e6,
            "us" | "µs" => 1e3,
            "ns" => 1.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * nanos_per_unit;
    }
    let total = if negative { -total } else { total };
    duration_from_nanos(total.round() as i128)
}

/// Formats as "1h30m0.5s" (Go's style); zero is "0s".
pub fn format_duration(d: Duration) -> String {
    let total = d.seconds as i128 * NANOS_PER_SEC + d.nanos as i128;
    let sign = if total < 0 { "-" } else { "" };
    let total = total.unsigned_abs();
    let nanos_per_sec = NANOS_PER_SEC as u128;
    let hours = total / (3600 * nanos_per_sec);
    let minutes = (total / (60 * nanos_per_sec)) % 60;
    let secs = (total / nanos_per_sec) % 60;
    let frac = total % nanos_per_sec;
    let mut out = sign.to_string();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    if frac == 0 {
        out.push_str(&format!("{secs}s"));
    } else {
        let frac_text = format!("{frac:09}");
        out.push_str(&format!("{secs}.{}s", frac_text.trim_end_matches('0')));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::types::Field;
    use serde_json::json;

    fn root() -> ValuePath {
        ValuePath::root("inputs")
    }

    #[test]
    fn typed_json_round_trips_through_values() {
        let ty = TypeDesc::Record {
            fields: vec![
                Field {
                    name: "when".into(),
                    ty: TypeDesc::Datetime,
                },
                Field {
                    name: "took".into(),
                    ty: TypeDesc::Duration,
                },
                Field {
                    name: "raw".into(),
                    ty: TypeDesc::Bytes,
                },
                Field {
                    name: "ratio".into(),
                    ty: TypeDesc::Float,
                },
                Field {
                    name: "tags".into(),
                    ty: TypeDesc::Map {
                        of: Box::new(TypeDesc::Int),
                    },
                },
            ],
        };
        let input = json!({
            "when": "2024-05-01T12:00:00.5Z",
            "took": "1h30m0.25s",
            "raw": "AAH/",
            "ratio": 2,
            "tags": {"b": 2, "a": 1}
        });
        let value = from_json(input, &ty, &root()).unwrap();
        let back = to_json(&value);
        assert_eq!(
            back,
            json!({
                "when": "2024-05-01T12:00:00.500Z",
                "took": "1h30m0.25s",
                "raw": "AAH/",
                "ratio": 2.0,
                "tags": {"a": 1, "b": 2}
            })
        );
        // And through MessagePack and back, unchanged.
        let bytes = msgpack::encode(&value);
        assert_eq!(msgpack::decode(&bytes, "x").unwrap(), value);
    }

    #[test]
    fn durations_parse_and_format() {
        let d = |s: &str| parse_duration(s).map(format_duration);
        assert_eq!(d("90").as_deref(), Some("1m30s"));
        assert_eq!(d("250ms").as_deref(), Some("0.25s"));
        assert_eq!(d("-1.5").as_deref(), Some("-1.5s"));
        assert_eq!(d("1d2h").as_deref(), Some("26h0m0s"));
        assert_eq!(d("5 parsecs"), None);
        assert_eq!(d(""), None);
    }

    #[test]
    fn bad_json_names_the_path() {
        let ty = TypeDesc::List {
            of: Box::new(TypeDesc::Int),
        };
        let err = from_json(json!([1, "x"]), &ty, &root()).unwrap_err();
        assert_eq!(err.to_string(), "inputs[1]: expected int, got string");
        let err = from_json(json!("yesterday"), &TypeDesc::Datetime, &root()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("inputs: \"yesterday\" is not an RFC 3339"),
            "{err}"
        );
    }
}
