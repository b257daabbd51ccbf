//! `sluice cache list|clear`

use clap::Subcommand;
use sluice_host::Host;

use super::{exit, human_time, Failure};

#[derive(Subcommand)]
pub enum Command {
    /// Cache entries, newest first.
    List {
        /// Only this task (`<environment>.<task>`).
        #[arg(long)]
        task: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Remove cache entries (the runs and their data stay).
    Clear {
        /// Only this task (`<environment>.<task>`).
        #[arg(long)]
        task: Option<String>,
    },
}

pub async fn run(host: &Host, cmd: Command) -> Result<u8, Failure> {
    match cmd {
        Command::List { task, json } => {
            let entries = host
                .records()
                .cache_list(task.as_deref())
                .await
                .map_err(host_failure)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&entries).unwrap_or_default()
                );
                return Ok(exit::OK);
            }
            println!(
                "{:<32} {:<24} {:<28} {:<20} KEY",
                "TASK", "SCOPE", "RUN", "CREATED"
            );
            for e in entries {
                println!(
                    "{:<32} {:<24} {:<28} {:<20} {}",
                    e.task,
                    e.scope,
                    e.run_id,
                    human_time(e.created_at),
                    &e.cache_key[..16.min(e.cache_key.len())]
                );
            }
            Ok(exit::OK)
        }
        Command::Clear { task } => {
            let n = host
                .records()
                .cache_clear(task.as_deref())
                .await
                .map_err(host_failure)?;
            println!("removed {n} cache entr{}", if n == 1 { "y" } else { "ies" });
            Ok(exit::OK)
        }
    }
}

fn host_failure(e: sluice_host::records::RecordsError) -> Failure {
    Failure {
        code: exit::HOST_FAILURE,
        message: e.to_string(),
    }
}
