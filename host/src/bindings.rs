//! The host side of the `sluice:task` WIT package: the one place bindings are generated.

wasmtime::component::bindgen!({
    world: "task-environment",
    path: "../wit",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "sluice:task/data.file-reader": crate::engine::data_host::FileReaderHandle,
        "sluice:task/data.file-writer": crate::engine::data_host::FileWriterHandle,
        "sluice:task/data.dir-writer": crate::engine::data_host::DirWriterHandle,
        "sluice:task/data.frame-reader": crate::engine::data_host::FrameReaderHandle,
        "sluice:task/data.frame-writer": crate::engine::data_host::FrameWriterHandle,
    },
});

pub use exports::sluice::task::environment;
pub use sluice::task::{data, log, tasks, trace, types};
