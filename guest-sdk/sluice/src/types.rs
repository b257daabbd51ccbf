//! Type descriptors from Rust types.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::bindings::sluice::task::types::{FieldType, TypeNode};

/// Collects the nodes of a task's type table (shared by its inputs and outputs).
#[derive(Debug, Default)]
pub struct TypeTable {
    nodes: Vec<TypeNode>,
}

impl TypeTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node and returns its index.
    pub fn push(&mut self, node: TypeNode) -> u32 {
        self.nodes.push(node);
        (self.nodes.len() - 1) as u32
    }

    /// Adds the descriptor of `T` and returns the index of its root node.
    pub fn of<T: SluiceType + ?Sized>(&mut self) -> u32 {
        T::describe(self)
    }

    /// A record node from `(field name, type index)` pairs.
    pub fn record(&mut self, fields: Vec<(&str, u32)>) -> u32 {
        let fields = fields
            .into_iter()
            .map(|(name, ty)| FieldType {
                name: name.to_string(),
                ty,
            })
            .collect();
        self.push(TypeNode::Record(fields))
    }

    pub fn into_nodes(self) -> Vec<TypeNode> {
        self.nodes
    }
}

/// A Rust type that sluice can describe. Implemented for the primitives, `String`, `Vec`,
/// `Option`, string-keyed maps, [`Bytes`], [`crate::Datetime`], [`crate::Duration`], and by
/// `#[derive(sluice::Type)]` for user types.
pub trait SluiceType {
    fn describe(table: &mut TypeTable) -> u32;
}

macro_rules! simple {
    ($node:ident: $($t:ty),+) => {
        $(impl SluiceType for $t {
            fn describe(table: &mut TypeTable) -> u32 {
                table.push(TypeNode::$node)
            }
        })+
    };
}

simple!(Int: i8, i16, i32, i64, u8, u16, u32, u64, isize, usize);
simple!(Float: f32, f64);
simple!(Bool: bool);
simple!(String: String, str);
simple!(None: ());
simple!(Bytes: Bytes);
simple!(Datetime: crate::Datetime);
simple!(Duration: crate::Duration);

impl<T: SluiceType> SluiceType for Vec<T> {
    fn describe(table: &mut TypeTable) -> u32 {
        let item = T::describe(table);
        table.push(TypeNode::List(item))
    }
}

impl<T: SluiceType> SluiceType for Option<T> {
    fn describe(table: &mut TypeTable) -> u32 {
        let item = T::describe(table);
        table.push(TypeNode::Optional(item))
    }
}

impl<T: SluiceType + ?Sized> SluiceType for Box<T> {
    fn describe(table: &mut TypeTable) -> u32 {
        T::describe(table)
    }
}

impl<V: SluiceType, S> SluiceType for HashMap<String, V, S> {
    fn describe(table: &mut TypeTable) -> u32 {
        let item = V::describe(table);
        table.push(TypeNode::Map(item))
    }
}

impl<V: SluiceType> SluiceType for BTreeMap<String, V> {
    fn describe(table: &mut TypeTable) -> u32 {
        let item = V::describe(table);
        table.push(TypeNode::Map(item))
    }
}

/// A `bytes` value (a plain `Vec<u8>` is a list of ints).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Bytes(#[serde(with = "serde_bytes")] pub Vec<u8>);

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Bytes(v)
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}
