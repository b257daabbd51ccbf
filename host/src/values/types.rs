//! Type descriptors: what a task's inputs and outputs look like, their canonical encoding and the
//! interface hash.
//!
//! Guests send a descriptor as a flat table of nodes that point at each other by index (WIT has no
//! recursive types); [`TypeDesc::from_table`] turns it into a tree, refusing dangling indices and
//! cycles. The canonical encoding (see [`TypeDesc::canonical`]) ignores the table layout, record
//! field order and enum variant order, so the same interface written in Rust, Python or JS hashes
//! the same.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{msgpack, Value, ValueError};

/// Deepest type accepted from a guest's descriptor table.
pub const MAX_TYPE_DEPTH: usize = 64;

/// One node of a guest's descriptor table (mirrors `sluice:task/types.type-node`).
#[derive(Debug, Clone, PartialEq)]
pub enum TableNode {
    None,
    Bool,
    Int,
    Float,
    String,
    Bytes,
    Datetime,
    Duration,
    List(u32),
    Map(u32),
    Record(Vec<(String, u32)>),
    Enum(Vec<String>),
    Optional(u32),
    Union(Vec<u32>),
    File {
        format: Option<String>,
    },
    Dir,
    DataFrame {
        format: Option<String>,
        columns: Vec<(String, String)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: TypeDesc,
}

/// A type, as a tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TypeDesc {
    None,
    Bool,
    Int,
    Float,
    String,
    Bytes,
    Datetime,
    Duration,
    List {
        of: Box<TypeDesc>,
    },
    Map {
        of: Box<TypeDesc>,
    },
    Record {
        fields: Vec<Field>,
    },
    Enum {
        variants: Vec<String>,
    },
    Optional {
        of: Box<TypeDesc>,
    },
    Union {
        variants: Vec<TypeDesc>,
    },
    File {
        format: Option<String>,
    },
    Dir,
    DataFrame {
        format: Option<String>,
        columns: Vec<(String, String)>,
    },
}

impl TypeDesc {
    /// Builds the tree rooted at `root` of a guest's table. `what` names the place in errors.
    pub fn from_table(nodes: &[TableNode], root: u32, what: &str) -> Result<TypeDesc, ValueError> {
        let mut on_path = HashSet::new();
        build(nodes, root, what, &mut on_path, 0)
    }

    /// The canonical form as a value; [`TypeDesc::canonical_bytes`] encodes it.
    /// Each type is a list whose first item is the kind name:
    /// `["int"]`, `["list", T]`, `["map", T]`, `["optional", T]`, `["record", {field: T}]`,
    /// `["enum", [sorted names]]`, `["union", [T, ...]]` (order kept: it decides decoding),
    /// `["file", format|nil]`, `["dir"]`, `["dataframe", format|nil, [[column, type], ...]]`.
    pub fn canonical(&self) -> Value {
        let tag = |s: &str| Value::String(s.to_string());
        let items = match self {
            TypeDesc::List { of } => vec![tag("list"), of.canonical()],
            TypeDesc::Map { of } => vec![tag("map"), of.canonical()],
            TypeDesc::Optional { of } => vec![tag("optional"), of.canonical()],
            TypeDesc::Record { fields } => vec![
                tag("record"),
                Value::record(fields.iter().map(|f| (f.name.clone(), f.ty.canonical()))),
            ],
            TypeDesc::Enum { variants } => {
                let mut names = variants.clone();
                names.sort();
                vec![
                    tag("enum"),
                    Value::List(names.into_iter().map(Value::String).collect()),
                ]
            }
            TypeDesc::Union { variants } => vec![
                tag("union"),
                Value::List(variants.iter().map(TypeDesc::canonical).collect()),
            ],
            TypeDesc::File { format } => vec![tag("file"), optional_string(format)],
            TypeDesc::DataFrame { format, columns } => vec![
                tag("dataframe"),
                optional_string(format),
                Value::List(
                    columns
                        .iter()
                        .map(|(n, t)| Value::List(vec![tag(n), tag(t)]))
                        .collect(),
                ),
            ],
            simple => vec![tag(simple.kind_name())],
        };
        Value::List(items)
    }

    pub fn canonical_bytes(&self) -> Vec<u8> {
        msgpack::encode(&self.canonical())
    }

    /// The short name of this type's kind ("int", "list", "record" ...).
    pub fn kind_name(&self) -> &'static str {
        match self {
            TypeDesc::None => "none",
            TypeDesc::Bool => "bool",
            TypeDesc::Int => "int",
            TypeDesc::Float => "float",
            TypeDesc::String => "string",
            TypeDesc::Bytes => "bytes",
            TypeDesc::Datetime => "datetime",
            TypeDesc::Duration => "duration",
            TypeDesc::List { .. } => "list",
            TypeDesc::Map { .. } => "map",
            TypeDesc::Record { .. } => "record",
            TypeDesc::Enum { .. } => "enum",
            TypeDesc::Optional { .. } => "optional",
            TypeDesc::Union { .. } => "union",
            TypeDesc::File { .. } => "file",
            TypeDesc::Dir => "dir",
            TypeDesc::DataFrame { .. } => "dataframe",
        }
    }
}

fn optional_string(s: &Option<String>) -> Value {
    s.clone().map(Value::String).unwrap_or(Value::None)
}

fn build(
    nodes: &[TableNode],
    index: u32,
    what: &str,
    on_path: &mut HashSet<u32>,
    depth: usize,
) -> Result<TypeDesc, ValueError> {
    let fail = |message: String| ValueError::Descriptor {
        what: what.to_string(),
        message,
    };
    if depth > MAX_TYPE_DEPTH {
        return Err(fail(format!("nested deeper than {MAX_TYPE_DEPTH} levels")));
    }
    let node = nodes.get(index as usize).ok_or_else(|| {
        fail(format!(
            "node {index} does not exist (the table has {} nodes)",
            nodes.len()
        ))
    })?;
    if !on_path.insert(index) {
        return Err(fail(format!(
            "node {index} refers to itself (types cannot be recursive)"
        )));
    }
    let mut child = |i: u32| build(nodes, i, what, on_path, depth + 1).map(Box::new);
    let desc = match node {
        TableNode::None => TypeDesc::None,
        TableNode::Bool => TypeDesc::Bool,
        TableNode::Int => TypeDesc::Int,
        TableNode::Float => TypeDesc::Float,
        TableNode::String => TypeDesc::String,
        TableNode::Bytes => TypeDesc::Bytes,
        TableNode::Datetime => TypeDesc::Datetime,
        TableNode::Duration => TypeDesc::Duration,
        TableNode::List(i) => TypeDesc::List { of: child(*i)? },
        TableNode::Map(i) => TypeDesc::Map { of: child(*i)? },
        TableNode::Optional(i) => TypeDesc::Optional { of: child(*i)? },
        TableNode::Record(fields) => {
            let mut seen = HashSet::new();
            let mut out = Vec::with_capacity(fields.len());
            for (name, i) in fields {
                if !seen.insert(name.as_str()) {
                    return Err(fail(format!("record field {name:?} appears twice")));
                }
                out.push(Field {
                    name: name.clone(),
                    ty: *child(*i)?,
                });
            }
            TypeDesc::Record { fields: out }
        }
        TableNode::Enum(variants) => {
            if variants.is_empty() {
                return Err(fail("enum has no variants".to_string()));
            }
            let unique: HashSet<_> = variants.iter().collect();
            if unique.len() != variants.len() {
                return Err(fail("enum lists a variant twice".to_string()));
            }
            TypeDesc::Enum {
                variants: variants.clone(),
            }
        }
        TableNode::Union(members) => {
            if members.is_empty() {
                return Err(fail("union has no members".to_string()));
            }
            let variants = members
                .iter()
                .map(|i| child(*i).map(|b| *b))
                .collect::<Result<_, _>>()?;
            TypeDesc::Union { variants }
        }
        TableNode::File { format } => TypeDesc::File {
            format: format.clone(),
        },
        TableNode::Dir => TypeDesc::Dir,
        TableNode::DataFrame { format, columns } => TypeDesc::DataFrame {
            format: format.clone(),
            columns: columns.clone(),
        },
    };
    on_path.remove(&index);
    Ok(desc)
}

impl fmt::Display for TypeDesc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypeDesc::List { of } => write!(f, "list<{of}>"),
            TypeDesc::Map { of } => write!(f, "map<string, {of}>"),
            TypeDesc::Optional { of } => write!(f, "optional<{of}>"),
            TypeDesc::Record { fields } => {
                f.write_str("record{")?;
                for (i, field) in fields.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}{}: {}", field.name, field.ty)?;
                }
                f.write_str("}")
            }
            TypeDesc::Enum { variants } => write!(f, "enum({})", variants.join("|")),
            TypeDesc::Union { variants } => {
                let parts: Vec<String> = variants.iter().map(|v| v.to_string()).collect();
                write!(f, "union<{}>", parts.join(" | "))
            }
            TypeDesc::File {
                format: Some(fmt_name),
            } => write!(f, "file({fmt_name})"),
            TypeDesc::DataFrame {
                format: Some(fmt_name),
                ..
            } => {
                write!(f, "dataframe({fmt_name})")
            }
            other => f.write_str(other.kind_name()),
        }
    }
}

/// A task's inputs and outputs, in declaration order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub inputs: Vec<Param>,
    pub outputs: Vec<Param>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Param {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc: Option<String>,
    #[serde(rename = "type")]
    pub ty: TypeDesc,
}

impl Interface {
    /// Canonical bytes: `{"inputs": {name: type}, "outputs": {name: type}}`, every map sorted.
    /// Docs and declaration order are left out: they do not change what a task accepts.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let side = |params: &[Param]| {
            Value::record(params.iter().map(|p| (p.name.clone(), p.ty.canonical())))
        };
        let mut doc = BTreeMap::new();
        doc.insert("inputs".to_string(), side(&self.inputs));
        doc.insert("outputs".to_string(), side(&self.outputs));
        msgpack::encode_document(&doc)
    }

    /// SHA-256 of [`Interface::canonical_bytes`], lowercase hex.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person_table(field_order_swapped: bool) -> (Vec<TableNode>, u32) {
        // Same record laid out two ways: fields swapped and nodes in another order.
        if field_order_swapped {
            let nodes = vec![
                TableNode::Record(vec![("age".into(), 2), ("name".into(), 1)]),
                TableNode::String,
                TableNode::Int,
            ];
            (nodes, 0)
        } else {
            let nodes = vec![
                TableNode::Int,
                TableNode::String,
                TableNode::Record(vec![("name".into(), 1), ("age".into(), 0)]),
            ];
            (nodes, 2)
        }
    }

    fn interface_of(t: TypeDesc) -> Interface {
        Interface {
            inputs: vec![Param {
                name: "p".into(),
                doc: Some("a doc".into()),
                ty: t.clone(),
            }],
            outputs: vec![Param {
                name: "o0".into(),
                doc: None,
                ty: t,
            }],
        }
    }

    #[test]
    fn table_layout_and_field_order_do_not_change_the_hash() {
        let (a, ra) = person_table(false);
        let (b, rb) = person_table(true);
        let ta = TypeDesc::from_table(&a, ra, "t").unwrap();
        let tb = TypeDesc::from_table(&b, rb, "t").unwrap();
        assert_eq!(ta.canonical_bytes(), tb.canonical_bytes());
        assert_eq!(interface_of(ta).hash(), interface_of(tb).hash());
    }

    #[test]
    fn different_types_hash_differently_and_the_hash_is_stable() {
        let int = interface_of(TypeDesc::Int);
        let float = interface_of(TypeDesc::Float);
        assert_ne!(int.hash(), float.hash());
        // Pinned: changing the canonical encoding invalidates every cache entry, so it must be
        // a deliberate act that updates this value.
        assert_eq!(
            hex::encode(int.canonical_bytes()),
            "82a6696e7075747381a17091a3696e74a76f75747075747381a26f3091a3696e74"
        );
    }

    #[test]
    fn union_order_matters_but_enum_order_does_not() {
        let u1 = TypeDesc::Union {
            variants: vec![TypeDesc::Int, TypeDesc::String],
        };
        let u2 = TypeDesc::Union {
            variants: vec![TypeDesc::String, TypeDesc::Int],
        };
        assert_ne!(u1.canonical_bytes(), u2.canonical_bytes());
        let e1 = TypeDesc::Enum {
            variants: vec!["a".into(), "b".into()],
        };
        let e2 = TypeDesc::Enum {
            variants: vec!["b".into(), "a".into()],
        };
        assert_eq!(e1.canonical_bytes(), e2.canonical_bytes());
    }

    #[test]
    fn broken_tables_are_refused() {
        let err = TypeDesc::from_table(&[TableNode::List(3)], 0, "task t: inputs.x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "task t: inputs.x: type descriptor: node 3 does not exist (the table has 1 nodes)"
        );
        let err = TypeDesc::from_table(&[TableNode::List(0)], 0, "t").unwrap_err();
        assert!(err.to_string().contains("cannot be recursive"), "{err}");
        let dup = [
            TableNode::Record(vec![("a".into(), 1), ("a".into(), 1)]),
            TableNode::Int,
        ];
        assert!(TypeDesc::from_table(&dup, 0, "t").is_err());
    }

    #[test]
    fn shared_nodes_are_not_mistaken_for_cycles() {
        let nodes = [
            TableNode::Record(vec![("a".into(), 1), ("b".into(), 1)]),
            TableNode::Int,
        ];
        assert!(TypeDesc::from_table(&nodes, 0, "t").is_ok());
    }
}
