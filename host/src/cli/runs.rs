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
            if r.purged_at.is_some() {
                println!("purged   its objects were removed by `sluice gc`");
            }
            println!("actions");
            print_tree(&d, None, 1);
            if let Some(log) = &d.log {
                println!("log:\n{}", log.trim_end());
            }
            Ok(exit::OK)
        }
    }
}

/// Prints the actions under `parent` (the root when none), each with its attempts and events.
fn print_tree(d: &sluice_host::RunDetails, parent: Option<&str>, depth: usize) {
    let indent = "  ".repeat(depth);
    for action in d
        .actions
        .iter()
        .filter(|a| a.parent_id.as_deref() == parent)
    {
        let took = action
            .ended_at
            .map(|e| human_duration(e - action.started_at))
            .unwrap_or_else(|| "-".into());
        let cache = match action.cache_status.as_deref() {
            None | Some("disabled") => String::new(),
            Some(status) => format!(", cache {status}"),
        };
        println!(
            "{indent}{} {} {} in {took}{cache}",
            action.id, action.task, action.phase
        );
        for a in d.attempts.iter().filter(|a| a.action_id == action.id) {
            let took = a
                .ended_at
                .map(|e| human_duration(e - a.started_at))
                .unwrap_or_else(|| "-".into());
            let error = match (&a.error_kind, &a.error_text) {
                (Some(kind), Some(text)) => format!(": ({kind}) {text}"),
                _ => String::new(),
            };
            println!(
                "{indent}  attempt {} {} in {took} (instantiate {}, call {}){error}",
                a.attempt,
                a.phase,
                a.instantiate_us.map(human_duration).unwrap_or_default(),
                a.call_us.map(human_duration).unwrap_or_default(),
            );
        }
        for e in d.events.iter().filter(|e| e.action_id == action.id) {
            println!(
                "{indent}  {} {:<16} {}",
                human_time(e.at),
                e.kind,
                e.detail.as_deref().unwrap_or("")
            );
        }
        print_tree(d, Some(&action.id), depth + 1);
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
