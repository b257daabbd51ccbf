//! The procedural macros of the sluice Rust guest SDK. See the `sluice` crate for how to use them.

mod derive_type;
mod task;

use proc_macro::TokenStream;

/// Turns a plain function into a sluice task. See the `sluice` crate documentation.
///
/// Settings: `name = "..."`, `cache = "disable" | "auto" | "<version>"`,
/// `ignored_inputs = "a,b"`, `serialize = true`, `cache_max_age = "30d"` (ms, s, m, h, d),
/// `cache_scope = "project" | "global"`, `retries = N`, `backoff_ms = N`,
/// `timeout_ms = N`, `inline_limit = BYTES`, `memory_limit = BYTES`.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    task::expand(attr.into(), item.into())
        .unwrap_or_else(|e| e.to_compile_error())
        .into()
}

/// Implements `sluice::SluiceType` for a struct (a record), an enum of unit variants (an enum),
/// or an `#[serde(untagged)]` enum of single-value variants (a union).
#[proc_macro_derive(Type, attributes(serde))]
pub fn derive_type(item: TokenStream) -> TokenStream {
    derive_type::expand(item.into())
        .unwrap_or_else(|e| e.to_compile_error())
        .into()
}
