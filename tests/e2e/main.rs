//! End-to-end tests: fixture components run through the host, outcomes read back from records.

mod failures;
mod values;
