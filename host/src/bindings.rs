//! The host side of the `sluice:task` WIT package: the one place bindings are generated.

wasmtime::component::bindgen!({
    world: "task-environment",
    path: "../wit",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use exports::sluice::task::environment;
pub use sluice::task::{log, types};
