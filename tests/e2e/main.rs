//! End-to-end tests: fixture components run through the host, outcomes read back from records.

mod calls;
mod cli;
mod crash;
mod durable;
mod failures;
mod files;
mod frames;
mod languages;
mod languages_data;
mod layout;
mod offload;
mod records;
mod s3;
mod sdk;
mod values;
