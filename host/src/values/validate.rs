//! Checking values against their declared types at the boundary.
//!
//! [`conform`] walks a value and its type together and returns the value in normal form: an int
//! given for a float becomes a float, a missing optional record field becomes `none`. Anything
//! that does not fit fails with the path of the offending part.

use std::collections::BTreeMap;

use super::reference::{schema_difference, RefMeta};
use super::types::Param;
use super::{TypeDesc, Value, ValueError, ValuePath};

/// Checks and normalises a whole document (inputs or outputs) against its parameters.
/// `side` is the root of every path in errors ("inputs" or "outputs").
pub fn conform_document(
    doc: BTreeMap<String, Value>,
    params: &[Param],
    side: &str,
) -> Result<BTreeMap<String, Value>, ValueError> {
    let named = params.iter().map(|p| (p.name.as_str(), &p.ty));
    conform_named(doc, named, &ValuePath::root(side))
}

/// The rule shared by documents and records: every declared name present (a missing optional
/// becomes `none`), each value conformed to its type, nothing undeclared.
fn conform_named<'a>(
    mut entries: BTreeMap<String, Value>,
    declared: impl Iterator<Item = (&'a str, &'a TypeDesc)> + Clone,
    path: &ValuePath,
) -> Result<BTreeMap<String, Value>, ValueError> {
    let mut out = BTreeMap::new();
    for (name, ty) in declared.clone() {
        let item_path = path.field(name);
        let value = match entries.remove(name) {
            Some(v) => v,
            None if matches!(ty, TypeDesc::Optional { .. }) => Value::None,
            None => return Err(ValueError::Missing { path: item_path }),
        };
        out.insert(name.to_string(), conform(value, ty, &item_path)?);
    }
    if let Some(extra) = entries.keys().next() {
        let names: Vec<&str> = declared.map(|(name, _)| name).collect();
        return Err(ValueError::Unexpected {
            path: path.field(extra),
            declared: names.join(", "),
        });
    }
    Ok(out)
}

/// Checks one value against its type and returns it in normal form.
pub fn conform(value: Value, ty: &TypeDesc, path: &ValuePath) -> Result<Value, ValueError> {
    let mismatch = |value: &Value| ValueError::TypeMismatch {
        path: path.clone(),
        expected: expected_name(ty),
        got: value.kind_name().to_string(),
    };
    match (ty, value) {
        (TypeDesc::None, v @ Value::None)
        | (TypeDesc::Bool, v @ Value::Bool(_))
        | (TypeDesc::Int, v @ Value::Int(_))
        | (TypeDesc::Float, v @ Value::Float(_))
        | (TypeDesc::String, v @ Value::String(_))
        | (TypeDesc::Bytes, v @ Value::Bytes(_))
        | (TypeDesc::Datetime, v @ Value::Datetime(_))
        | (TypeDesc::Duration, v @ Value::Duration(_)) => Ok(v),
        // Languages without a separate float literal (Python, JS) write whole floats as ints.
        (TypeDesc::Float, Value::Int(i)) => Ok(Value::Float(i as f64)),
        (TypeDesc::List { of }, Value::List(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| conform(item, of, &path.index(i)))
            .collect::<Result<_, _>>()
            .map(Value::List),
        (TypeDesc::Map { of }, Value::Map(entries)) => entries
            .into_iter()
            .map(|(k, v)| {
                let item_path = path.key(&k);
                conform(v, of, &item_path).map(|v| (k, v))
            })
            .collect::<Result<_, _>>()
            .map(Value::Map),
        (TypeDesc::Record { fields }, Value::Map(entries)) => {
            let named = fields.iter().map(|f| (f.name.as_str(), &f.ty));
            conform_named(entries, named, path).map(Value::Map)
        }
        (TypeDesc::Enum { variants }, Value::String(s)) => {
            if variants.contains(&s) {
                Ok(Value::String(s))
            } else {
                Err(ValueError::Invalid {
                    path: path.clone(),
                    message: format!("{s:?} is not one of {}", variants.join(", ")),
                })
            }
        }
        (TypeDesc::Optional { .. }, Value::None) => Ok(Value::None),
        (TypeDesc::Optional { of }, v) => conform(v, of, path),
        (TypeDesc::Union { variants }, v) => {
            // Untagged: the first member the value fits is the one.
            for member in variants {
                if let Ok(ok) = conform(v.clone(), member, path) {
                    return Ok(ok);
                }
            }
            Err(mismatch(&v))
        }
        (TypeDesc::File { .. }, Value::Ref(r))
        | (TypeDesc::Dir, Value::Ref(r))
        | (TypeDesc::DataFrame { .. }, Value::Ref(r)) => {
            if r.kind.name() != ty.kind_name() {
                return Err(mismatch(&Value::Ref(r)));
            }
            let meta = RefMeta::from_reference(&r, path)?;
            let declared = match ty {
                TypeDesc::File { format } | TypeDesc::DataFrame { format, .. } => format.as_ref(),
                _ => None,
            };
            if let (Some(want), Some(got)) = (declared, &meta.format) {
                if want != got {
                    return Err(ValueError::Invalid {
                        path: path.clone(),
                        message: format!(
                            "expected a {} in format {want:?}, got format {got:?} ({})",
                            ty.kind_name(),
                            meta.uri
                        ),
                    });
                }
            }
            if let TypeDesc::DataFrame { columns, .. } = ty {
                if let Some(diff) = schema_difference(columns, &meta.columns) {
                    if !meta.columns.is_empty() {
                        return Err(ValueError::Invalid {
                            path: path.clone(),
                            message: format!("{diff} ({})", meta.uri),
                        });
                    }
                }
            }
            // Re-encoded canonically: a guest's payload may order or pad its fields differently.
            Ok(meta.to_value())
        }
        (_, v) => Err(mismatch(&v)),
    }
}

fn expected_name(ty: &TypeDesc) -> String {
    match ty {
        TypeDesc::Union { variants } => {
            let names: Vec<String> = variants.iter().map(expected_name).collect();
            format!("one of {}", names.join(" | "))
        }
        TypeDesc::Enum { .. } => "enum (a variant name string)".to_string(),
        other => other.kind_name().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::types::Field;

    fn person() -> TypeDesc {
        TypeDesc::Record {
            fields: vec![
                Field {
                    name: "name".into(),
                    ty: TypeDesc::String,
                },
                Field {
                    name: "age".into(),
                    ty: TypeDesc::Int,
                },
                Field {
                    name: "nick".into(),
                    ty: TypeDesc::Optional {
                        of: Box::new(TypeDesc::String),
                    },
                },
            ],
        }
    }

    fn params() -> Vec<Param> {
        vec![Param {
            name: "people".into(),
            doc: None,
            ty: TypeDesc::List {
                of: Box::new(person()),
            },
        }]
    }

    fn p(name: &str, age: Value) -> Value {
        Value::record([("name", Value::from(name)), ("age", age)])
    }

    #[test]
    fn the_error_names_the_path_of_the_bad_value() {
        let people = Value::List(vec![
            p("a", Value::Int(1)),
            p("b", Value::Int(2)),
            p("c", Value::from("three")),
        ]);
        let doc = BTreeMap::from([("people".to_string(), people)]);
        let err = conform_document(doc, &params(), "inputs").unwrap_err();
        assert_eq!(
            err.to_string(),
            "inputs.people[2].age: expected int, got string"
        );
    }

    #[test]
    fn missing_optional_fields_become_none_and_missing_required_ones_fail() {
        let ok = conform(p("a", Value::Int(1)), &person(), &ValuePath::root("x")).unwrap();
        let Value::Map(m) = ok else {
            panic!("record expected")
        };
        assert_eq!(m.get("nick"), Some(&Value::None));
        let no_age = Value::record([("name", Value::from("a"))]);
        let err = conform(no_age, &person(), &ValuePath::root("x")).unwrap_err();
        assert_eq!(err.to_string(), "x.age: missing");
    }

    #[test]
    fn undeclared_inputs_and_fields_are_refused() {
        let doc = BTreeMap::from([
            ("people".to_string(), Value::List(vec![])),
            ("peeple".to_string(), Value::Int(1)),
        ]);
        let err = conform_document(doc, &params(), "inputs").unwrap_err();
        assert_eq!(
            err.to_string(),
            "inputs.peeple: not declared by the task (declared: people)"
        );
    }

    #[test]
    fn unions_take_the_first_member_that_fits_and_ints_widen_to_floats() {
        let ty = TypeDesc::Union {
            variants: vec![TypeDesc::Float, TypeDesc::String],
        };
        let path = ValuePath::root("x");
        assert_eq!(
            conform(Value::Int(2), &ty, &path).unwrap(),
            Value::Float(2.0)
        );
        assert_eq!(
            conform(Value::from("s"), &ty, &path).unwrap(),
            Value::from("s")
        );
        let err = conform(Value::Bool(true), &ty, &path).unwrap_err();
        assert_eq!(
            err.to_string(),
            "x: expected one of float | string, got bool"
        );
    }

    #[test]
    fn enums_accept_only_their_variants() {
        let ty = TypeDesc::Enum {
            variants: vec!["red".into(), "green".into()],
        };
        let err = conform(Value::from("blue"), &ty, &ValuePath::root("c")).unwrap_err();
        assert_eq!(err.to_string(), "c: \"blue\" is not one of red, green");
    }
}
