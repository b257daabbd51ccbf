//! The core vocabulary: inline values, type descriptors, validation and canonical encoding.
//!
//! Nothing here knows about wasm, SQL or storage. Values travel as MessagePack documents; the host
//! always re-encodes what it stores in the canonical form of [`msgpack`] so that equal values give
//! equal bytes (the cache hashes them).

pub mod json;
pub mod msgpack;
pub mod reference;
pub mod types;
pub mod validate;

use std::collections::BTreeMap;
use std::fmt;

pub use types::{Field, Interface, TypeDesc};

/// MessagePack extension type codes reserved by sluice (the timestamp type -1 is MessagePack's own).
pub mod ext {
    /// MessagePack's timestamp extension, used for `datetime`.
    pub const TIMESTAMP: i8 = -1;
    /// `duration`: i64 seconds then u32 nanoseconds, big-endian (12 bytes).
    pub const DURATION: i8 = 1;
    /// Reference to a file; the payload is a MessagePack map describing it.
    pub const FILE: i8 = 2;
    /// Reference to a directory.
    pub const DIR: i8 = 3;
    /// Reference to a dataframe.
    pub const DATAFRAME: i8 = 4;
    /// An inline value the host moved to the object store (offloaded).
    pub const OFFLOADED: i8 = 5;
}

/// An instant in UTC with nanosecond precision (seconds may be negative, nanos are 0..1e9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    pub seconds: i64,
    pub nanos: u32,
}

/// A signed span of time: `seconds + nanos / 1e9`, nanos in 0..1e9 (so -1.5 s is -2 s + 0.5e9 ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    pub seconds: i64,
    pub nanos: u32,
}

/// The kinds of reference a value can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefKind {
    File,
    Dir,
    DataFrame,
    Offloaded,
}

impl RefKind {
    pub fn ext_code(self) -> i8 {
        match self {
            RefKind::File => ext::FILE,
            RefKind::Dir => ext::DIR,
            RefKind::DataFrame => ext::DATAFRAME,
            RefKind::Offloaded => ext::OFFLOADED,
        }
    }

    pub fn from_ext_code(code: i8) -> Option<RefKind> {
        match code {
            ext::FILE => Some(RefKind::File),
            ext::DIR => Some(RefKind::Dir),
            ext::DATAFRAME => Some(RefKind::DataFrame),
            ext::OFFLOADED => Some(RefKind::Offloaded),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RefKind::File => "file",
            RefKind::Dir => "dir",
            RefKind::DataFrame => "dataframe",
            RefKind::Offloaded => "offloaded",
        }
    }
}

/// A reference value. Its payload (a MessagePack map: uri, size, hash, format ...) is kept as
/// bytes here; the data plane interprets it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub kind: RefKind,
    pub payload: Vec<u8>,
}

/// An inline value. Records and maps are both `Map` (string keys, kept sorted); enums are the
/// variant name as a `String`; optional is `None` or the value; unions are untagged.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Bytes(Vec<u8>),
    Datetime(Timestamp),
    Duration(Duration),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
    Ref(Reference),
}

impl Value {
    /// The name of this value's kind, as used in error messages ("expected int, got string").
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::None => "none",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::Datetime(_) => "datetime",
            Value::Duration(_) => "duration",
            Value::List(_) => "list",
            Value::Map(_) => "map",
            Value::Ref(r) => r.kind.name(),
        }
    }

    /// A record or map from `(name, value)` pairs.
    pub fn record<K: Into<String>>(fields: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(fields.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v)
    }
}

/// Where a value sits inside a document, for error messages: `inputs.people[2].age`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValuePath(String);

impl ValuePath {
    pub fn root(name: &str) -> Self {
        ValuePath(name.to_string())
    }
    pub fn field(&self, name: &str) -> Self {
        ValuePath(format!("{}.{}", self.0, name))
    }
    pub fn index(&self, i: usize) -> Self {
        ValuePath(format!("{}[{}]", self.0, i))
    }
    pub fn key(&self, key: &str) -> Self {
        ValuePath(format!("{}[{:?}]", self.0, key))
    }
}

impl fmt::Display for ValuePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Everything that can be wrong with a value or a descriptor. Each variant names where.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum ValueError {
    #[error("{path}: expected {expected}, got {got}")]
    TypeMismatch {
        path: ValuePath,
        expected: String,
        got: String,
    },
    #[error("{path}: missing")]
    Missing { path: ValuePath },
    #[error("{path}: not declared by the task (declared: {declared})")]
    Unexpected { path: ValuePath, declared: String },
    #[error("{path}: {message}")]
    Invalid { path: ValuePath, message: String },
    #[error("{what}: not valid MessagePack: {message}")]
    Decode { what: String, message: String },
    #[error("{what}: type descriptor: {message}")]
    Descriptor { what: String, message: String },
}
