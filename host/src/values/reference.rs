//! What a reference says about the object it points at.
//!
//! A reference travels as a MessagePack extension value (type 2 file, 3 dir, 4 dataframe) whose
//! payload is a map: `uri` (required), `size`, `sha256` (lowercase hex), `format`, and for frames
//! `rows` and `columns` (a list of `[name, arrow type name]` pairs). The host keeps
//! the payload canonical (sorted keys, absent fields left out) so that equal references give equal
//! bytes, as every other value does.

use std::collections::BTreeMap;

use super::{msgpack, RefKind, Reference, Value, ValueError, ValuePath};

/// The decoded payload of a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefMeta {
    pub kind: RefKind,
    pub uri: String,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    pub format: Option<String>,
    /// Frames: number of rows, when known.
    pub rows: Option<u64>,
    /// Frames: (name, Arrow type name) of each column; empty when unknown.
    pub columns: Vec<(String, String)>,
}

impl RefMeta {
    pub fn new(kind: RefKind, uri: impl Into<String>) -> Self {
        RefMeta {
            kind,
            uri: uri.into(),
            size: None,
            sha256: None,
            format: None,
            rows: None,
            columns: Vec::new(),
        }
    }

    /// Reads a reference's payload; `path` locates it in errors.
    pub fn from_reference(r: &Reference, path: &ValuePath) -> Result<RefMeta, ValueError> {
        let invalid = |message: String| ValueError::Invalid {
            path: path.clone(),
            message,
        };
        let fields = match msgpack::decode(&r.payload, "reference") {
            Ok(Value::Map(fields)) => fields,
            Ok(other) => {
                return Err(invalid(format!(
                    "{} reference payload must be a map, got {}",
                    r.kind.name(),
                    other.kind_name()
                )))
            }
            Err(e) => return Err(invalid(format!("{} reference payload: {e}", r.kind.name()))),
        };
        let mut meta = RefMeta::new(r.kind, String::new());
        for (key, value) in fields {
            match (key.as_str(), value) {
                ("uri", Value::String(s)) if !s.is_empty() => meta.uri = s,
                ("size", Value::Int(n)) if n >= 0 => meta.size = Some(n as u64),
                ("sha256", Value::String(s)) if is_sha256_hex(&s) => meta.sha256 = Some(s),
                ("format", Value::String(s)) => meta.format = Some(s),
                ("rows", Value::Int(n)) if n >= 0 => meta.rows = Some(n as u64),
                ("columns", Value::List(items)) => meta.columns = columns_from(items, r, path)?,
                (_, Value::None) => {}
                (key, value) => {
                    return Err(invalid(format!(
                        "{} reference: bad field {key:?} ({})",
                        r.kind.name(),
                        value.kind_name()
                    )))
                }
            }
        }
        if meta.uri.is_empty() {
            return Err(invalid(format!(
                "{} reference without a uri",
                r.kind.name()
            )));
        }
        Ok(meta)
    }

    /// The canonical extension value.
    pub fn to_reference(&self) -> Reference {
        let mut fields = BTreeMap::new();
        fields.insert("uri".to_string(), Value::String(self.uri.clone()));
        if let Some(size) = self.size {
            fields.insert("size".to_string(), Value::Int(size as i64));
        }
        if let Some(hash) = &self.sha256 {
            fields.insert("sha256".to_string(), Value::String(hash.clone()));
        }
        if let Some(format) = &self.format {
            fields.insert("format".to_string(), Value::String(format.clone()));
        }
        if let Some(rows) = self.rows {
            fields.insert("rows".to_string(), Value::Int(rows as i64));
        }
        if !self.columns.is_empty() {
            let columns = self
                .columns
                .iter()
                .map(|(name, ty)| {
                    Value::List(vec![Value::String(name.clone()), Value::String(ty.clone())])
                })
                .collect();
            fields.insert("columns".to_string(), Value::List(columns));
        }
        Reference {
            kind: self.kind,
            payload: msgpack::encode(&Value::Map(fields)),
        }
    }

    pub fn to_value(&self) -> Value {
        Value::Ref(self.to_reference())
    }
}

fn columns_from(
    items: Vec<Value>,
    r: &Reference,
    path: &ValuePath,
) -> Result<Vec<(String, String)>, ValueError> {
    items
        .into_iter()
        .map(|item| match item {
            Value::List(pair) => match <[Value; 2]>::try_from(pair) {
                Ok([Value::String(name), Value::String(ty)]) => Ok((name, ty)),
                _ => Err(()),
            },
            _ => Err(()),
        })
        .collect::<Result<_, ()>>()
        .map_err(|()| ValueError::Invalid {
            path: path.clone(),
            message: format!(
                "{} reference: columns must be [name, type] pairs of strings",
                r.kind.name()
            ),
        })
}

/// Describes how a written schema differs from the declared columns, or none if it matches.
pub fn schema_difference(
    declared: &[(String, String)],
    actual: &[(String, String)],
) -> Option<String> {
    if declared.is_empty() || declared == actual {
        return None;
    }
    let mut problems = Vec::new();
    for (name, ty) in declared {
        match actual.iter().find(|(n, _)| n == name) {
            None => problems.push(format!("column {name:?} ({ty}) is missing")),
            Some((_, got)) if got != ty => {
                problems.push(format!("column {name:?} is {got}, declared {ty}"))
            }
            Some(_) => {}
        }
    }
    for (name, ty) in actual {
        if !declared.iter().any(|(n, _)| n == name) {
            problems.push(format!("column {name:?} ({ty}) is not declared"));
        }
    }
    if problems.is_empty() {
        problems.push("the columns are in another order than declared".to_string());
    }
    Some(format!(
        "schema differs from the declared one: {}",
        problems.join("; ")
    ))
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Every reference inside a document, with where it sits.
pub fn collect_refs(
    doc: &BTreeMap<String, Value>,
    side: &str,
) -> Result<Vec<(ValuePath, RefMeta)>, ValueError> {
    let mut found = Vec::new();
    let root = ValuePath::root(side);
    for (name, value) in doc {
        walk(value, &root.field(name), &mut found)?;
    }
    Ok(found)
}

fn walk(
    value: &Value,
    path: &ValuePath,
    found: &mut Vec<(ValuePath, RefMeta)>,
) -> Result<(), ValueError> {
    match value {
        Value::Ref(r) => found.push((path.clone(), RefMeta::from_reference(r, path)?)),
        Value::List(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &path.index(i), found)?;
            }
        }
        Value::Map(entries) => {
            for (key, item) in entries {
                walk(item, &path.field(key), found)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Replaces every reference in a document by `replace(path, meta)`'s result.
pub fn map_refs(
    doc: BTreeMap<String, Value>,
    side: &str,
    replace: &mut impl FnMut(&ValuePath, RefMeta) -> Result<RefMeta, ValueError>,
) -> Result<BTreeMap<String, Value>, ValueError> {
    let root = ValuePath::root(side);
    doc.into_iter()
        .map(|(name, value)| {
            let path = root.field(&name);
            Ok((name, map_value(value, &path, replace)?))
        })
        .collect()
}

fn map_value(
    value: Value,
    path: &ValuePath,
    replace: &mut impl FnMut(&ValuePath, RefMeta) -> Result<RefMeta, ValueError>,
) -> Result<Value, ValueError> {
    Ok(match value {
        Value::Ref(r) => {
            let meta = RefMeta::from_reference(&r, path)?;
            replace(path, meta)?.to_value()
        }
        Value::List(items) => Value::List(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| map_value(item, &path.index(i), replace))
                .collect::<Result<_, _>>()?,
        ),
        Value::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, item)| {
                    let p = path.field(&k);
                    Ok((k, map_value(item, &p, replace)?))
                })
                .collect::<Result<_, ValueError>>()?,
        ),
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_canonically_and_bad_ones_name_the_path() {
        let mut meta = RefMeta::new(RefKind::File, "memory:///p/d/x.csv");
        meta.size = Some(12);
        meta.format = Some("csv".into());
        let r = meta.to_reference();
        let path = ValuePath::root("inputs").field("data");
        assert_eq!(RefMeta::from_reference(&r, &path).unwrap(), meta);

        let bad = Reference {
            kind: RefKind::File,
            payload: msgpack::encode(&Value::record([("size", Value::Int(1))])),
        };
        let err = RefMeta::from_reference(&bad, &path).unwrap_err();
        assert_eq!(err.to_string(), "inputs.data: file reference without a uri");
    }

    #[test]
    fn references_are_found_anywhere_in_a_document() {
        let file = RefMeta::new(RefKind::File, "memory:///a").to_value();
        let dir = RefMeta::new(RefKind::Dir, "memory:///d").to_value();
        let doc: BTreeMap<String, Value> = [
            ("files".to_string(), Value::List(vec![Value::Int(1), file])),
            ("rec".to_string(), Value::record([("d", dir)])),
        ]
        .into();
        let found = collect_refs(&doc, "inputs").unwrap();
        let paths: Vec<String> = found.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(paths, ["inputs.files[1]", "inputs.rec.d"]);
    }
}
