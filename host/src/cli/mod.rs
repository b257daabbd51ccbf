//! Command-line parsing and dispatch. Every command is a few calls into [`sluice_host::Host`].

mod cache;
mod describe;
mod gc;
mod objects;
mod progress;
mod run;
mod runs;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluice_host::engine::EngineError;
use sluice_host::{Host, HostError, HOME_ENV};

/// Exit codes: what a script calling `sluice` can tell apart.
pub mod exit {
    /// The task ran and succeeded.
    pub const OK: u8 = 0;
    /// The task failed with a user error (its own error, or inputs that do not fit it).
    pub const USER_ERROR: u8 = 1;
    /// The command was wrong: bad arguments, unknown task or run, unreadable file.
    pub const USAGE: u8 = 2;
    /// The task failed for a system reason: trap, deadline, memory, invalid outputs.
    pub const TASK_FAILURE: u8 = 3;
    /// The host could not work: database or store unavailable, component not loadable.
    pub const HOST_FAILURE: u8 = 4;
}

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Run data tasks in WebAssembly components"
)]
struct Cli {
    /// Home of the default database, store and compile cache.
    #[arg(long, global = true, env = HOME_ENV, default_value = ".sluice")]
    home: PathBuf,
    /// Database URL (default: sqlite file in the home).
    #[arg(long = "db", global = true)]
    db: Option<String>,
    /// Object store URL (default: file:// directory in the home).
    #[arg(long = "store", global = true)]
    store: Option<String>,
    /// A URL prefix runs may take inputs from without copying (repeatable).
    #[arg(long = "allow-prefix", global = true, value_name = "URL")]
    allow_prefix: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the tasks of a component and their interfaces.
    Describe(describe::Args),
    /// Run a task with typed inputs.
    Run(run::Args),
    /// List and inspect recorded runs.
    #[command(subcommand)]
    Runs(runs::Command),
    /// Print a file a run produced (by its URI) to stdout.
    Cat(objects::CatArgs),
    /// Download a file or directory a run produced (by its URI) to a local path.
    Get(objects::GetArgs),
    /// List or clear cache entries.
    #[command(subcommand)]
    Cache(cache::Command),
    /// Remove the objects of old finished runs and the cache entries pointing at them.
    Gc(gc::Args),
}

/// An error for the user, with the exit code it should end the process with.
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: exit::USAGE,
            message: message.into(),
        }
    }
}

impl From<HostError> for Failure {
    fn from(e: HostError) -> Self {
        let e = match e {
            HostError::Run(e) => return run::run_error(e),
            other => other,
        };
        let code = match e {
            HostError::Io { .. } | HostError::Engine(EngineError::NotAComponent { .. }) => {
                exit::USAGE
            }
            _ => exit::HOST_FAILURE,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

async fn open_host(cli: &Cli) -> Result<Host, Failure> {
    let (cli_home, db, store) = (&cli.home, &cli.db, &cli.store);
    let mut builder = Host::builder().home(cli_home);
    for prefix in &cli.allow_prefix {
        builder = builder.allow_prefix(prefix);
    }
    if let Some(db) = db {
        builder = builder.database_url(db);
    }
    if let Some(store) = store {
        builder = builder.store_url(store);
    }
    Ok(builder.build().await?)
}

pub fn main() -> ExitCode {
    // Die quietly when the reader of stdout goes away (`sluice runs list | head`), as Unix
    // tools do, instead of panicking on the failed write.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    sluice_host::process::keep_freed_buffers();
    sluice_host::process::sqlite_without_memory_statistics();
    #[cfg(feature = "mimalloc")]
    sluice_host::process::sqlite_on_mimalloc();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sluice: starting the runtime: {e}");
            return ExitCode::from(exit::HOST_FAILURE);
        }
    };
    let result = runtime.block_on(async {
        let host = open_host(&cli).await?;
        match cli.command {
            Command::Describe(args) => describe::run(&host, args).await,
            Command::Run(args) => run::run(&host, args).await,
            Command::Runs(cmd) => runs::run(&host, cmd).await,
            Command::Cat(args) => objects::cat(&host, args).await,
            Command::Get(args) => objects::get(&host, args).await,
            Command::Cache(cmd) => cache::run(&host, cmd).await,
            Command::Gc(args) => gc::run(&host, args).await,
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("sluice: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// `1.2 ms`, `3.4 s`: durations for people.
pub fn human_duration(micros: i64) -> String {
    if micros < 1_000 {
        format!("{micros} µs")
    } else if micros < 1_000_000 {
        format!("{:.1} ms", micros as f64 / 1e3)
    } else {
        format!("{:.2} s", micros as f64 / 1e6)
    }
}

/// An RFC 3339 time (UTC, seconds) from microseconds since the epoch.
pub fn human_time(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| micros.to_string())
}
