//! The `sluice` command: a thin client of the host library.

mod cli;

/// Rust's allocations go to mimalloc, not glibc (see `process.rs` for the measured reason).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
