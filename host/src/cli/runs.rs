//! `sluice runs list` and `sluice runs show <run>`

use clap::Subcommand;
use sluice_host::records::RunFilter;
use sluice_host::values::json::document_to_json;
use sluice_host::Host;

use super::{exit, human_duration, human_time, Failure};

#[derive(Subcommand)]
pub enum Command {
    /// Recorded runs, newest first.
    List {
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        domain: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// One run: phase, timing, error, inputs, outputs, attempts and log.
    Show {
        run: String,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(host: &Host, cmd: Command) -> Result<u8, Failure> {
    match cmd {
        Command::List {
            project,
            domain,
            limit,
            json,
        } => {
            let runs = host
                .list_runs(&RunFilter {
                    project,
                    domain,
                    limit,
                })
                .await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&runs).unwrap_or_default()
                );
                return Ok(exit::OK);
            }
            println!(
                "{:<28} {:<16} {:<24} {:<10} {:<20} {:>10}  ERROR",
                "RUN", "TASK", "PROJECT/DOMAIN", "PHASE", "STARTED", "DURATION"
            );
            for r in runs {
                let took = r
                    .ended_at
                    .map(|e| human_duration(e - r.created_at))
                    .unwrap_or_else(|| "-".into());
                let error = r.error_text.as_deref().unwrap_or("");
                let error: String = error.chars().take(60).collect();
                println!(
                    "{:<28} {:<16} {:<24} {:<10} {:<20} {:>10}  {}",
                    r.id,
                    r.task,
                    format!("{}/{}", r.project, r.domain),
                    r.phase,
                    human_time(r.created_at),
                    took,
                    error
                );
            }
            Ok(exit::OK)
        }
        Command::Show { run, json } => {
            if json {
                return print_run_json(host, &run).await.map(|_| exit::OK);
            }
            let Some(d) = host.run_details(&run).await? else {
                return Err(Failure::usage(format!("no run {run:?}")));
            };
            let r = &d.run;
            println!("run      {}", r.id);
            println!(
                "task     {} (component {})",
                r.task,
                &r.component_digest[..16]
            );
            println!("scope    {}/{}", r.project, r.domain);
            println!("phase    {}", r.phase);
            println!("started  {}", human_time(r.created_at));
            if let Some(end) = r.ended_at {
                println!("took     {}", human_duration(end - r.created_at));
            }
            if let (Some(kind), Some(text)) = (&r.error_kind, &r.error_text) {
                println!("error    ({kind}) {text}");
            }
            let pretty = |doc: &Option<_>| match doc {
                Some(doc) => {
                    serde_json::to_string_pretty(&document_to_json(doc)).unwrap_or_default()
                }
                None => "-".to_string(),
            };
            println!("inputs   {}", pretty(&d.inputs));
            println!("outputs  {}", pretty(&d.outputs));
            for a in &d.attempts {
                let took = a
                    .ended_at
                    .map(|e| human_duration(e - a.started_at))
                    .unwrap_or_else(|| "-".into());
                println!(
                    "attempt  {}/{} {} in {} (instantiate {}, call {})",
                    a.action_id,
                    a.attempt,
                    a.phase,
                    took,
                    a.instantiate_us.map(human_duration).unwrap_or_default(),
                    a.call_us.map(human_duration).unwrap_or_default(),
                );
            }
            if let Some(log) = &d.log {
                println!("log:\n{}", log.trim_end());
            }
            Ok(exit::OK)
        }
    }
}

/// Prints the whole record of a run as JSON (used by `runs show --json` and `run --json`).
pub async fn print_run_json(host: &Host, run_id: &str) -> Result<(), Failure> {
    let Some(d) = host.run_details(run_id).await? else {
        return Err(Failure::usage(format!("no run {run_id:?}")));
    };
    let mut json = serde_json::to_value(&d).unwrap_or_default();
    if let Some(obj) = json.as_object_mut() {
        obj.insert(
            "inputs".into(),
            d.inputs.as_ref().map(document_to_json).into(),
        );
        obj.insert(
            "outputs".into(),
            d.outputs.as_ref().map(document_to_json).into(),
        );
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&json).unwrap_or_default()
    );
    Ok(())
}
