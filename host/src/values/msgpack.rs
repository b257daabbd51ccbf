//! Canonical MessagePack encoding of [`Value`]s.
//!
//! Canonical means: integers in their shortest form, floats always as f64, map keys sorted
//! (bytewise, which `BTreeMap<String, _>` gives), timestamps in the shortest of MessagePack's three
//! timestamp layouts, and nothing after the value. Two equal values always give equal bytes, so a
//! hash of the bytes is a hash of the value.

use std::collections::BTreeMap;

use rmp::encode;

use super::{ext, Duration, RefKind, Reference, Timestamp, Value, ValueError};

/// Deepest nesting accepted when decoding a guest's or user's document; deeper documents are
/// refused rather than risking the host's stack.
pub const MAX_DEPTH: usize = 128;

/// Encodes a value canonically.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write_value(&mut out, value);
    out
}

/// Encodes a document (a map from input or output name to value) canonically.
pub fn encode_document(doc: &BTreeMap<String, Value>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write_map(&mut out, doc);
    out
}

// Writing into a Vec<u8> cannot fail (its error type is Infallible); these helpers say so once.
fn write_map(out: &mut Vec<u8>, map: &BTreeMap<String, Value>) {
    let _ = encode::write_map_len(out, map.len() as u32);
    for (k, v) in map {
        let _ = encode::write_str(out, k);
        write_value(out, v);
    }
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::None => {
            let _ = encode::write_nil(out);
        }
        Value::Bool(b) => {
            let _ = encode::write_bool(out, *b);
        }
        Value::Int(i) => {
            let _ = encode::write_sint(out, *i);
        }
        Value::Float(f) => {
            let _ = encode::write_f64(out, *f);
        }
        Value::String(s) => {
            let _ = encode::write_str(out, s);
        }
        Value::Bytes(b) => {
            let _ = encode::write_bin(out, b);
        }
        Value::Datetime(ts) => write_timestamp(out, *ts),
        Value::Duration(d) => {
            let _ = encode::write_ext_meta(out, 12, ext::DURATION);
            out.extend_from_slice(&d.seconds.to_be_bytes());
            out.extend_from_slice(&d.nanos.to_be_bytes());
        }
        Value::List(items) => {
            let _ = encode::write_array_len(out, items.len() as u32);
            for item in items {
                write_value(out, item);
            }
        }
        Value::Map(map) => write_map(out, map),
        Value::Ref(r) => {
            let _ = encode::write_ext_meta(out, r.payload.len() as u32, r.kind.ext_code());
            out.extend_from_slice(&r.payload);
        }
    }
}

fn write_timestamp(out: &mut Vec<u8>, ts: Timestamp) {
    // The three layouts of the MessagePack timestamp extension, shortest first.
    if ts.nanos == 0 && (0..=u32::MAX as i64).contains(&ts.seconds) {
        let _ = encode::write_ext_meta(out, 4, ext::TIMESTAMP);
        out.extend_from_slice(&(ts.seconds as u32).to_be_bytes());
    } else if (0..(1i64 << 34)).contains(&ts.seconds) {
        let _ = encode::write_ext_meta(out, 8, ext::TIMESTAMP);
        let packed = ((ts.nanos as u64) << 34) | ts.seconds as u64;
        out.extend_from_slice(&packed.to_be_bytes());
    } else {
        let _ = encode::write_ext_meta(out, 12, ext::TIMESTAMP);
        out.extend_from_slice(&ts.nanos.to_be_bytes());
        out.extend_from_slice(&ts.seconds.to_be_bytes());
    }
}

/// Decodes one value. `what` names the document in errors (e.g. "inputs of task add").
pub fn decode(bytes: &[u8], what: &str) -> Result<Value, ValueError> {
    let err = |message: String| ValueError::Decode {
        what: what.to_string(),
        message,
    };
    let mut cursor = bytes;
    let raw = rmpv::decode::read_value_with_max_depth(&mut cursor, MAX_DEPTH)
        .map_err(|e| err(e.to_string()))?;
    if !cursor.is_empty() {
        return Err(err(format!("{} bytes left after the value", cursor.len())));
    }
    from_rmpv(raw).map_err(err)
}

/// Decodes a document: a map from names to values.
pub fn decode_document(bytes: &[u8], what: &str) -> Result<BTreeMap<String, Value>, ValueError> {
    match decode(bytes, what)? {
        Value::Map(map) => Ok(map),
        other => Err(ValueError::Decode {
            what: what.to_string(),
            message: format!(
                "expected a map of names to values, got {}",
                other.kind_name()
            ),
        }),
    }
}

fn from_rmpv(raw: rmpv::Value) -> Result<Value, String> {
    Ok(match raw {
        rmpv::Value::Nil => Value::None,
        rmpv::Value::Boolean(b) => Value::Bool(b),
        rmpv::Value::Integer(i) => match i.as_i64() {
            Some(v) => Value::Int(v),
            None => return Err(format!("integer {i} does not fit in 64 signed bits")),
        },
        rmpv::Value::F32(f) => Value::Float(f as f64),
        rmpv::Value::F64(f) => Value::Float(f),
        rmpv::Value::String(s) => match s.into_str() {
            Some(s) => Value::String(s),
            None => return Err("string is not valid UTF-8".to_string()),
        },
        rmpv::Value::Binary(b) => Value::Bytes(b),
        rmpv::Value::Array(items) => {
            Value::List(items.into_iter().map(from_rmpv).collect::<Result<_, _>>()?)
        }
        rmpv::Value::Map(entries) => {
            let mut map = BTreeMap::new();
            for (k, v) in entries {
                let key = match k {
                    rmpv::Value::String(s) => s
                        .into_str()
                        .ok_or_else(|| "map key is not valid UTF-8".to_string())?,
                    other => return Err(format!("map keys must be strings, found {other}")),
                };
                if map.insert(key.clone(), from_rmpv(v)?).is_some() {
                    return Err(format!("map key {key:?} appears twice"));
                }
            }
            Value::Map(map)
        }
        rmpv::Value::Ext(code, data) => decode_ext(code, data)?,
    })
}

fn decode_ext(code: i8, data: Vec<u8>) -> Result<Value, String> {
    match code {
        ext::TIMESTAMP => decode_timestamp(&data).map(Value::Datetime),
        ext::DURATION => {
            let bytes: [u8; 12] = data
                .as_slice()
                .try_into()
                .map_err(|_| format!("duration must be 12 bytes, found {}", data.len()))?;
            let seconds = i64::from_be_bytes(bytes[..8].try_into().unwrap_or_default());
            let nanos = u32::from_be_bytes(bytes[8..].try_into().unwrap_or_default());
            if nanos >= 1_000_000_000 {
                return Err(format!("duration nanoseconds {nanos} out of range"));
            }
            Ok(Value::Duration(Duration { seconds, nanos }))
        }
        other => match RefKind::from_ext_code(other) {
            Some(kind) => Ok(Value::Ref(Reference {
                kind,
                payload: data,
            })),
            None => Err(format!("unknown extension type {other}")),
        },
    }
}

fn decode_timestamp(data: &[u8]) -> Result<Timestamp, String> {
    let ts = match data.len() {
        4 => Timestamp {
            seconds: u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as i64,
            nanos: 0,
        },
        8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(data);
            let packed = u64::from_be_bytes(b);
            Timestamp {
                seconds: (packed & ((1u64 << 34) - 1)) as i64,
                nanos: (packed >> 34) as u32,
            }
        }
        12 => {
            let mut n = [0u8; 4];
            n.copy_from_slice(&data[..4]);
            let mut s = [0u8; 8];
            s.copy_from_slice(&data[4..]);
            Timestamp {
                seconds: i64::from_be_bytes(s),
                nanos: u32::from_be_bytes(n),
            }
        }
        n => return Err(format!("timestamp must be 4, 8 or 12 bytes, found {n}")),
    };
    if ts.nanos >= 1_000_000_000 {
        return Err(format!("timestamp nanoseconds {} out of range", ts.nanos));
    }
    Ok(ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, Value)]) -> Value {
        Value::record(pairs.iter().cloned())
    }

    #[test]
    fn equal_maps_give_equal_bytes_whatever_the_insertion_order() {
        let a = map(&[("b", Value::Int(2)), ("a", Value::Int(1))]);
        let b = map(&[("a", Value::Int(1)), ("b", Value::Int(2))]);
        assert_eq!(encode(&a), encode(&b));
    }

    #[test]
    fn foreign_key_order_is_canonicalised_on_the_way_through() {
        // {"z": 1, "a": 2} written by a guest in field order, not sorted.
        let unsorted = [0x82, 0xa1, b'z', 0x01, 0xa1, b'a', 0x02];
        let value = decode(&unsorted, "doc").unwrap();
        assert_eq!(
            encode(&value),
            vec![0x82, 0xa1, b'a', 0x02, 0xa1, b'z', 0x01]
        );
    }

    #[test]
    fn integers_take_their_shortest_form_and_f32_widens() {
        // 1 written as a u64 by some encoder, 1.5 as f32.
        let wide_one = [0xcf, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(encode(&decode(&wide_one, "x").unwrap()), vec![0x01]);
        let f32_value = [0xca, 0x3f, 0xc0, 0, 0];
        assert_eq!(decode(&f32_value, "x").unwrap(), Value::Float(1.5));
    }

    #[test]
    fn every_kind_round_trips() {
        let value = map(&[
            ("none", Value::None),
            ("bool", Value::Bool(true)),
            ("int", Value::Int(-40_000_000_000)),
            ("float", Value::Float(0.25)),
            ("string", Value::String("héllo".into())),
            ("bytes", Value::Bytes(vec![0, 255])),
            (
                "t32",
                Value::Datetime(Timestamp {
                    seconds: 1_700_000_000,
                    nanos: 0,
                }),
            ),
            (
                "t64",
                Value::Datetime(Timestamp {
                    seconds: 1_700_000_000,
                    nanos: 5,
                }),
            ),
            (
                "t96",
                Value::Datetime(Timestamp {
                    seconds: -5,
                    nanos: 7,
                }),
            ),
            (
                "dur",
                Value::Duration(Duration {
                    seconds: -2,
                    nanos: 500_000_000,
                }),
            ),
            ("list", Value::List(vec![Value::Int(1), Value::None])),
            (
                "file",
                Value::Ref(Reference {
                    kind: RefKind::File,
                    payload: vec![0x80],
                }),
            ),
        ]);
        let bytes = encode(&value);
        assert_eq!(decode(&bytes, "x").unwrap(), value);
    }

    #[test]
    fn bad_documents_are_refused_with_the_reason() {
        let err = decode(&[0x81, 0x01, 0x02], "inputs").unwrap_err();
        assert!(
            err.to_string().contains("map keys must be strings"),
            "{err}"
        );
        let err = decode(&[0x01, 0x02], "inputs").unwrap_err();
        assert_eq!(
            err.to_string(),
            "inputs: not valid MessagePack: 1 bytes left after the value"
        );
        let huge = [0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(decode(&huge, "x")
            .unwrap_err()
            .to_string()
            .contains("64 signed bits"));
        let mut deep = vec![0x91; MAX_DEPTH + 10];
        deep.push(0xc0);
        assert!(decode(&deep, "x").is_err());
    }
}
