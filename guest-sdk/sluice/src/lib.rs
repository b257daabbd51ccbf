//! Write sluice tasks in Rust.
//!
//! A task is a plain function with an attribute; one macro exports the environment:
//!
//! ```ignore
//! /// Adds two numbers.
//! #[sluice::task]
//! fn add(x: i64, y: i64) -> i64 {
//!     x + y
//! }
//!
//! sluice::export_environment!(add);
//! ```
//!
//! Inputs and outputs are serde types; their type descriptors come from [`SluiceType`], which
//! `#[derive(sluice::Type)]` implements for your structs (records) and enums (unit variants become
//! an enum, single-value variants an untagged union). A task that returns `Result<T, E>` reports
//! `Err` as a user error (`E: Into<sluice::Error>`); a panic traps and the host reports it.
//! The function stays an ordinary function, so it can be unit-tested directly.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "task-environment",
        pub_export_macro: true,
        export_macro_name: "__export_task_environment",
        default_bindings_module: "::sluice::bindings",
    });
}

mod error;
mod files;
#[cfg(feature = "dataframe")]
mod frames;
mod lend;
pub mod log;
pub mod tasks;
mod time;
mod trace;
mod types;

pub use error::{Error, Result};
pub use files::{
    AnyFormat, ArrowIpc, Csv, Dir, DirBuilder, File, FileReader, FileWriter, Format, Json, Parquet,
    Text,
};
#[cfg(feature = "dataframe")]
pub use frames::{Batches, DataFrame, FrameRead, FrameWriter};
pub use sluice_macros::{task, Type};
pub use tasks::{as_completed, call, map, submit, CallError, Map, Pending};
pub use time::{Datetime, Duration};
pub use trace::{attempt, trace, trace_iter, try_trace, Traced};
pub use types::{Bytes, SluiceType, TypeTable};
#[cfg(feature = "dataframe")]
pub use {arrow_array, arrow_schema};

/// Items the macros expand to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::exports::sluice::task::environment::Guest;
    pub use crate::bindings::sluice::task::types::{
        CachePolicy, CacheScope, CacheVersion, Param, RetryPolicy, TaskError, TaskSpec, UserError,
    };
    pub use rmp_serde;
    pub use serde;

    /// What `#[sluice::task]` implements for each task.
    pub trait TaskDef {
        const NAME: &'static str;
        fn spec() -> TaskSpec;
        fn run(inputs: &[u8]) -> Result<Vec<u8>, TaskError>;
    }

    pub fn decode_inputs<'a, T: serde::Deserialize<'a>>(
        task: &str,
        bytes: &'a [u8],
    ) -> Result<T, TaskError> {
        rmp_serde::from_slice(bytes)
            .map_err(|e| TaskError::Failure(format!("task {task}: decoding inputs: {e}")))
    }

    pub fn encode_outputs<T: serde::Serialize>(
        task: &str,
        outputs: &T,
    ) -> Result<Vec<u8>, TaskError> {
        rmp_serde::to_vec_named(outputs)
            .map_err(|e| TaskError::Failure(format!("task {task}: encoding outputs: {e}")))
    }

    pub fn user_error(error: crate::Error) -> TaskError {
        TaskError::User(UserError {
            message: error.message,
            retryable: error.retryable,
        })
    }

    pub fn unknown_task(name: &str, known: &[&str]) -> TaskError {
        TaskError::Failure(format!(
            "no task named {name:?} in this environment (it has: {})",
            known.join(", ")
        ))
    }
}

/// Exports the environment: the listed `#[sluice::task]` functions, described and runnable.
/// Use it once per component. The environment is named after the crate (`CARGO_PKG_NAME`), or
/// `export_environment!(name = "etl"; clean, join)`; tasks are known as `<environment>.<task>`.
#[macro_export]
macro_rules! export_environment {
    (name = $name:literal; $($($task:ident)::+),+ $(,)?) => {
        $crate::export_environment!(@with_name $name; $($($task)::+),+);
    };
    ($($($task:ident)::+),+ $(,)?) => {
        $crate::export_environment!(@with_name ::std::env!("CARGO_PKG_NAME"); $($($task)::+),+);
    };
    (@with_name $name:expr; $($($task:ident)::+),+) => {
        #[doc(hidden)]
        struct __SluiceEnvironment;

        impl $crate::__private::Guest for __SluiceEnvironment {
            fn name() -> ::std::string::String {
                ::std::string::String::from($name)
            }

            fn describe() -> ::std::vec::Vec<$crate::__private::TaskSpec> {
                ::std::vec![$(<$($task)::+::Task as $crate::__private::TaskDef>::spec()),+]
            }

            fn run(
                task: ::std::string::String,
                inputs: ::std::vec::Vec<u8>,
            ) -> ::std::result::Result<::std::vec::Vec<u8>, $crate::__private::TaskError> {
                $(
                    if task == <$($task)::+::Task as $crate::__private::TaskDef>::NAME {
                        return <$($task)::+::Task as $crate::__private::TaskDef>::run(&inputs);
                    }
                )+
                ::std::result::Result::Err($crate::__private::unknown_task(
                    &task,
                    &[$(<$($task)::+::Task as $crate::__private::TaskDef>::NAME),+],
                ))
            }
        }

        $crate::bindings::__export_task_environment!(__SluiceEnvironment with_types_in $crate::bindings);
    };
}
