//! The column-batch view of a frame, for guests without Arrow (Python and JavaScript: pyarrow
//! does not run in WebAssembly). A batch crosses the boundary as a MessagePack document: a list
//! of `[column name, [values...]]` pairs in column order (a map would lose the order). Values
//! are sluice values: int, float, bool, string, bytes, datetime, duration, or nil for null.
//!
//! Reading turns Arrow arrays into such lists. Writing builds Arrow arrays from them: with the
//! types the frame declared, else the first batch's types (inferred from its values: int ->
//! Int64, float -> Float64 (ints mixed in are widened), bool -> Boolean, string -> Utf8,
//! bytes -> Binary, datetime -> Timestamp(µs, UTC), duration -> Duration(µs); a column of
//! nils only -> Utf8), so every batch of a frame has one schema.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, DurationMicrosecondArray, Float32Array,
    Float64Array, Int16Array, Int32Array, Int64Array, Int8Array, LargeStringArray, NullArray,
    RecordBatch, StringArray, TimestampMicrosecondArray, TimestampMillisecondArray,
    TimestampNanosecondArray, TimestampSecondArray, UInt16Array, UInt32Array, UInt64Array,
    UInt8Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::values::{msgpack, Duration, Timestamp, Value};

/// Why a batch could not be converted; the caller adds the frame's URI.
#[derive(Debug, thiserror::Error)]
pub enum ColumnsError {
    #[error("column batch: {0}")]
    Shape(String),
    #[error("column {column:?}: {message}")]
    Column { column: String, message: String },
}

fn column_error(column: &str, message: impl Into<String>) -> ColumnsError {
    ColumnsError::Column {
        column: column.to_string(),
        message: message.into(),
    }
}

/// A record batch as a column-batch document.
pub fn batch_to_document(batch: &RecordBatch) -> Result<Vec<u8>, ColumnsError> {
    let schema = batch.schema();
    let mut pairs = Vec::with_capacity(batch.num_columns());
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        let values = (0..array.len())
            .map(|row| cell(array, row).map_err(|m| column_error(field.name(), m)))
            .collect::<Result<Vec<_>, _>>()?;
        pairs.push(Value::List(vec![
            Value::String(field.name().clone()),
            Value::List(values),
        ]));
    }
    Ok(msgpack::encode(&Value::List(pairs)))
}

fn cell(array: &ArrayRef, row: usize) -> Result<Value, String> {
    if array.is_null(row) {
        return Ok(Value::None);
    }
    let int = |v: i64| Value::Int(v);
    Ok(match array.data_type() {
        DataType::Null => Value::None,
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Int8 => int(array.as_primitive::<Int8Type>().value(row).into()),
        DataType::Int16 => int(array.as_primitive::<Int16Type>().value(row).into()),
        DataType::Int32 => int(array.as_primitive::<Int32Type>().value(row).into()),
        DataType::Int64 => int(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => int(array.as_primitive::<UInt8Type>().value(row).into()),
        DataType::UInt16 => int(array.as_primitive::<UInt16Type>().value(row).into()),
        DataType::UInt32 => int(array.as_primitive::<UInt32Type>().value(row).into()),
        DataType::UInt64 => {
            let v = array.as_primitive::<UInt64Type>().value(row);
            int(i64::try_from(v).map_err(|_| format!("row {row}: {v} does not fit in an int"))?)
        }
        DataType::Float16 => Value::Float(array.as_primitive::<Float16Type>().value(row).into()),
        DataType::Float32 => Value::Float(array.as_primitive::<Float32Type>().value(row).into()),
        DataType::Float64 => Value::Float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Value::String(array.as_string::<i64>().value(row).to_string()),
        DataType::Utf8View => Value::String(array.as_string_view().value(row).to_string()),
        DataType::Binary => Value::Bytes(array.as_binary::<i32>().value(row).to_vec()),
        DataType::LargeBinary => Value::Bytes(array.as_binary::<i64>().value(row).to_vec()),
        DataType::BinaryView => Value::Bytes(array.as_binary_view().value(row).to_vec()),
        DataType::Timestamp(unit, _) => {
            let v = match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row),
                TimeUnit::Millisecond => {
                    array.as_primitive::<TimestampMillisecondType>().value(row)
                }
                TimeUnit::Microsecond => {
                    array.as_primitive::<TimestampMicrosecondType>().value(row)
                }
                TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(row),
            };
            let (seconds, nanos) = split(v, *unit);
            Value::Datetime(Timestamp { seconds, nanos })
        }
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row);
            Value::Datetime(Timestamp {
                seconds: i64::from(days) * 86_400,
                nanos: 0,
            })
        }
        DataType::Date64 => {
            let ms = array.as_primitive::<Date64Type>().value(row);
            let (seconds, nanos) = split(ms, TimeUnit::Millisecond);
            Value::Datetime(Timestamp { seconds, nanos })
        }
        DataType::Duration(unit) => {
            let v = match unit {
                TimeUnit::Second => array.as_primitive::<DurationSecondType>().value(row),
                TimeUnit::Millisecond => array.as_primitive::<DurationMillisecondType>().value(row),
                TimeUnit::Microsecond => array.as_primitive::<DurationMicrosecondType>().value(row),
                TimeUnit::Nanosecond => array.as_primitive::<DurationNanosecondType>().value(row),
            };
            let (seconds, nanos) = split(v, *unit);
            Value::Duration(Duration { seconds, nanos })
        }
        other => {
            return Err(format!(
                "type {other} has no column-batch view (read this frame as Arrow batches)"
            ))
        }
    })
}

fn per_second(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    }
}

/// A count of `unit`s as (seconds, nanoseconds in 0..1e9).
fn split(v: i64, unit: TimeUnit) -> (i64, u32) {
    let per = per_second(unit);
    let nanos_per_unit = 1_000_000_000 / per;
    (
        v.div_euclid(per),
        (v.rem_euclid(per) * nanos_per_unit) as u32,
    )
}

/// Seconds and nanoseconds as a count of `unit`s (finer digits are dropped).
fn join(seconds: i64, nanos: u32, unit: TimeUnit) -> Option<i64> {
    let per = per_second(unit);
    seconds
        .checked_mul(per)?
        .checked_add(i64::from(nanos) / (1_000_000_000 / per))
}

/// A column-batch document as (column name, values) in column order.
pub fn parse_document(bytes: &[u8]) -> Result<Vec<(String, Vec<Value>)>, ColumnsError> {
    let shape = |m: &str| ColumnsError::Shape(m.to_string());
    let doc = msgpack::decode(bytes, "column batch").map_err(|e| shape(&e.to_string()))?;
    let Value::List(pairs) = doc else {
        return Err(shape("expected a list of [column name, values] pairs"));
    };
    let mut columns: Vec<(String, Vec<Value>)> = Vec::with_capacity(pairs.len());
    for pair in pairs {
        let Value::List(pair) = pair else {
            return Err(shape("each column must be a [name, values] pair"));
        };
        match <[Value; 2]>::try_from(pair) {
            Ok([Value::String(name), Value::List(values)]) => {
                if columns.iter().any(|(n, _)| *n == name) {
                    return Err(column_error(&name, "appears twice"));
                }
                if let Some((first, v)) = columns.first() {
                    if v.len() != values.len() {
                        return Err(column_error(
                            &name,
                            format!(
                                "has {} values but column {first:?} has {}",
                                values.len(),
                                v.len()
                            ),
                        ));
                    }
                }
                columns.push((name, values));
            }
            _ => return Err(shape("each column must be a [name, values] pair")),
        }
    }
    if columns.is_empty() {
        return Err(shape("a batch needs at least one column"));
    }
    Ok(columns)
}

/// The schema a first batch implies when the frame declared none.
pub fn infer_schema(columns: &[(String, Vec<Value>)]) -> Result<SchemaRef, ColumnsError> {
    let fields = columns
        .iter()
        .map(|(name, values)| Ok(Field::new(name, infer_type(name, values)?, true)))
        .collect::<Result<Vec<_>, ColumnsError>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

fn infer_type(name: &str, values: &[Value]) -> Result<DataType, ColumnsError> {
    let mut found: Option<DataType> = None;
    for (row, v) in values.iter().enumerate() {
        let ty = match v {
            Value::None => continue,
            Value::Int(_) => DataType::Int64,
            Value::Float(_) => DataType::Float64,
            Value::Bool(_) => DataType::Boolean,
            Value::String(_) => DataType::Utf8,
            Value::Bytes(_) => DataType::Binary,
            Value::Datetime(_) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Value::Duration(_) => DataType::Duration(TimeUnit::Microsecond),
            other => {
                return Err(column_error(
                    name,
                    format!("row {row}: a {} cannot be a cell", other.kind_name()),
                ))
            }
        };
        found = match found {
            None => Some(ty),
            Some(f) if f == ty => Some(f),
            // Ints among floats: the column is float.
            Some(DataType::Int64) | Some(DataType::Float64)
                if matches!(ty, DataType::Int64 | DataType::Float64) =>
            {
                Some(DataType::Float64)
            }
            Some(f) => {
                return Err(column_error(
                    name,
                    format!("row {row}: a {} in a column of {f}", v.kind_name()),
                ))
            }
        };
    }
    Ok(found.unwrap_or(DataType::Utf8))
}

/// Builds a record batch of `schema` from parsed columns (which must be exactly its columns).
pub fn build_batch(
    schema: &SchemaRef,
    columns: Vec<(String, Vec<Value>)>,
) -> Result<RecordBatch, ColumnsError> {
    let mut by_name: HashMap<String, Vec<Value>> = columns.into_iter().collect();
    let mut arrays = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let values = by_name
            .remove(field.name())
            .ok_or_else(|| column_error(field.name(), "missing from the batch"))?;
        arrays.push(build_array(field.name(), field.data_type(), &values)?);
    }
    if let Some(extra) = by_name.keys().next() {
        return Err(column_error(extra, "is not a column of this frame"));
    }
    RecordBatch::try_new(schema.clone(), arrays).map_err(|e| ColumnsError::Shape(e.to_string()))
}

fn build_array(name: &str, ty: &DataType, values: &[Value]) -> Result<ArrayRef, ColumnsError> {
    let bad = |row: usize, v: &Value| {
        column_error(
            name,
            format!("row {row}: expected {ty}, got {}", v.kind_name()),
        )
    };
    macro_rules! collect {
        ($array:ty, $pat:pat => $out:expr) => {{
            let cells = values
                .iter()
                .enumerate()
                .map(|(row, v)| match v {
                    Value::None => Ok(None),
                    $pat => Ok(Some($out)),
                    other => Err(bad(row, other)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Arc::new(<$array>::from(cells)) as ArrayRef
        }};
    }
    macro_rules! ints {
        ($array:ty, $t:ty) => {{
            let cells = values
                .iter()
                .enumerate()
                .map(|(row, v)| match v {
                    Value::None => Ok(None),
                    Value::Int(i) => <$t>::try_from(*i).map(Some).map_err(|_| {
                        column_error(name, format!("row {row}: {i} does not fit {ty}"))
                    }),
                    other => Err(bad(row, other)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Arc::new(<$array>::from(cells)) as ArrayRef
        }};
    }
    let time = |unit: TimeUnit| {
        values
            .iter()
            .enumerate()
            .map(|(row, v)| {
                let (s, n) = match v {
                    Value::None => return Ok(None),
                    Value::Datetime(t) if matches!(ty, DataType::Timestamp(..)) => {
                        (t.seconds, t.nanos)
                    }
                    Value::Duration(d) if matches!(ty, DataType::Duration(_)) => {
                        (d.seconds, d.nanos)
                    }
                    other => return Err(bad(row, other)),
                };
                join(s, n, unit)
                    .map(Some)
                    .ok_or_else(|| column_error(name, format!("row {row}: out of range for {ty}")))
            })
            .collect::<Result<Vec<Option<i64>>, _>>()
    };
    Ok(match ty {
        DataType::Null => Arc::new(NullArray::new(values.len())),
        DataType::Boolean => collect!(BooleanArray, Value::Bool(b) => *b),
        DataType::Int8 => ints!(Int8Array, i8),
        DataType::Int16 => ints!(Int16Array, i16),
        DataType::Int32 => ints!(Int32Array, i32),
        DataType::Int64 => collect!(Int64Array, Value::Int(i) => *i),
        DataType::UInt8 => ints!(UInt8Array, u8),
        DataType::UInt16 => ints!(UInt16Array, u16),
        DataType::UInt32 => ints!(UInt32Array, u32),
        DataType::UInt64 => ints!(UInt64Array, u64),
        DataType::Float32 => collect!(Float32Array, Value::Float(f) => *f as f32),
        DataType::Float64 => {
            let cells = values
                .iter()
                .enumerate()
                .map(|(row, v)| match v {
                    Value::None => Ok(None),
                    Value::Float(f) => Ok(Some(*f)),
                    Value::Int(i) => Ok(Some(*i as f64)),
                    other => Err(bad(row, other)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Arc::new(Float64Array::from(cells))
        }
        DataType::Utf8 => collect!(StringArray, Value::String(s) => s.as_str()),
        DataType::LargeUtf8 => collect!(LargeStringArray, Value::String(s) => s.as_str()),
        DataType::Binary => collect!(BinaryArray, Value::Bytes(b) => b.as_slice()),
        DataType::Timestamp(unit, tz) => {
            let cells = time(*unit)?;
            let array: ArrayRef = match unit {
                TimeUnit::Second => {
                    Arc::new(TimestampSecondArray::from(cells).with_timezone_opt(tz.clone()))
                }
                TimeUnit::Millisecond => {
                    Arc::new(TimestampMillisecondArray::from(cells).with_timezone_opt(tz.clone()))
                }
                TimeUnit::Microsecond => {
                    Arc::new(TimestampMicrosecondArray::from(cells).with_timezone_opt(tz.clone()))
                }
                TimeUnit::Nanosecond => {
                    Arc::new(TimestampNanosecondArray::from(cells).with_timezone_opt(tz.clone()))
                }
            };
            array
        }
        DataType::Duration(TimeUnit::Microsecond) => {
            Arc::new(DurationMicrosecondArray::from(time(TimeUnit::Microsecond)?))
        }
        other => {
            return Err(column_error(
                name,
                format!("type {other} cannot be written from column batches"),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(columns: Vec<(&str, Vec<Value>)>) -> Vec<u8> {
        msgpack::encode(&Value::List(
            columns
                .into_iter()
                .map(|(n, v)| Value::List(vec![Value::String(n.into()), Value::List(v)]))
                .collect(),
        ))
    }

    #[test]
    fn batches_round_trip_in_column_order_with_inferred_types() {
        let when = Value::Datetime(Timestamp {
            seconds: 1_714_564_800,
            nanos: 250_000_000,
        });
        let bytes = doc(vec![
            ("z", vec![Value::Int(1), Value::None]),
            ("a", vec![Value::Float(0.5), Value::Int(2)]),
            ("when", vec![when.clone(), Value::None]),
            ("s", vec![Value::None, Value::String("x".into())]),
        ]);
        let columns = parse_document(&bytes).unwrap();
        let schema = infer_schema(&columns).unwrap();
        let names: Vec<_> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type().to_string()))
            .collect();
        assert_eq!(
            names,
            [
                ("z", "Int64".to_string()),
                ("a", "Float64".to_string()),
                ("when", "Timestamp(µs, \"UTC\")".to_string()),
                ("s", "Utf8".to_string())
            ]
        );
        let batch = build_batch(&schema, columns).unwrap();
        let back = parse_document(&batch_to_document(&batch).unwrap()).unwrap();
        assert_eq!(back[0], ("z".to_string(), vec![Value::Int(1), Value::None]));
        assert_eq!(
            back[1],
            ("a".to_string(), vec![Value::Float(0.5), Value::Float(2.0)])
        );
        assert_eq!(back[2], ("when".to_string(), vec![when, Value::None]));
    }

    #[test]
    fn bad_batches_name_the_column_and_row() {
        let uneven = doc(vec![("a", vec![Value::Int(1)]), ("b", vec![])]);
        assert_eq!(
            parse_document(&uneven).unwrap_err().to_string(),
            "column \"b\": has 0 values but column \"a\" has 1"
        );
        let mixed = doc(vec![("a", vec![Value::Int(1), Value::String("x".into())])]);
        let columns = parse_document(&mixed).unwrap();
        assert_eq!(
            infer_schema(&columns).unwrap_err().to_string(),
            "column \"a\": row 1: a string in a column of Int64"
        );
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int8, true)]));
        let big = parse_document(&doc(vec![("a", vec![Value::Int(300)])])).unwrap();
        assert_eq!(
            build_batch(&schema, big).unwrap_err().to_string(),
            "column \"a\": row 0: 300 does not fit Int8"
        );
        let extra = parse_document(&doc(vec![
            ("a", vec![Value::Int(3)]),
            ("b", vec![Value::Int(3)]),
        ]))
        .unwrap();
        assert_eq!(
            build_batch(&schema, extra).unwrap_err().to_string(),
            "column \"b\": is not a column of this frame"
        );
    }
}
