//! The `sluice` command: a thin client of the host library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
