//! sluice: runs data tasks inside WebAssembly components and moves their data for them.
//!
//! Layers (each uses only those below it): [`values`] (the vocabulary), [`engine`] (wasmtime),
//! [`records`] (the SQL system of record), [`data`] (the object store), and [`executor`], which
//! ties them together behind the embedding API ([`Host`]).

pub mod bindings;
pub mod data;
pub mod engine;
pub mod executor;
pub mod gc;
mod host;
pub mod process;
pub mod records;
pub mod spec;
pub mod traces;
mod transfer;
pub mod values;

pub use data::frames::format_from_name;
pub use executor::{Limits, RunError, RunFailure, RunOutcome, RunRequest, RunTimings};
pub use host::{Host, HostBuilder, HostError, RunDetails, HOME_ENV};
pub use values::Value;
