//! `sluice runs list` and `sluice runs show <run>`

use std::collections::{BTreeMap, HashMap};

use clap::Subcommand;
use sluice_host::records::heartbeat::{RunHost, HEARTBEAT_STALE_AFTER};
use sluice_host::records::{ActionRecord, AttemptRecord, EventRecord, RunFilter, PHASE_RUNNING};
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
        /// List every child action (by default the first 20 under each action, then counts).
        #[arg(long)]
        all: bool,
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
            // A name no run can have is a typo: say so rather than list nothing.
            for (what, name) in [("project", &project), ("domain", &domain)] {
                if let Some(name) = name {
                    sluice_host::data::check_scope_name(what, name)
                        .map_err(|e| Failure::usage(e.to_string()))?;
                }
            }
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
                    // Running in the records, but its process is gone: it waits for --resume.
                    if r.host_gone { "stopped" } else { &r.phase },
                    human_time(r.created_at),
                    took,
                    error
                );
            }
            Ok(exit::OK)
        }
        Command::Show { run, json, all } => {
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
            // The host is judged once here (not through `host_gone` and again through
            // `host_now`, which could read `/proc` and the clock differently).
            match (r.phase == PHASE_RUNNING).then(|| r.host_now()) {
                Some(RunHost::Exited) => println!(
                    "phase    stopped (recorded running, but the process running it is gone; \
                     continue it with `sluice run --resume {}`)",
                    r.id
                ),
                Some(RunHost::Gone) => println!(
                    "phase    stopped (recorded running, but its host has not reported for \
                     more than {} s; continue it with `sluice run --resume {}`)",
                    HEARTBEAT_STALE_AFTER.as_secs(),
                    r.id
                ),
                Some(RunHost::Reporting { seconds_ago }) => println!(
                    "phase    running (on another machine; its host reported {seconds_ago} s ago)"
                ),
                _ => println!("phase    {}", r.phase),
            }
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
            let failed = d.actions.iter().filter(|a| a.phase == "failed").count();
            match failed {
                0 => println!("actions  {}", d.actions.len()),
                _ => println!("actions  {} ({failed} failed)", d.actions.len()),
            }
            Tree::new(&d, all).print(None, 1);
            if let Some(log) = &d.log {
                println!("log:\n{}", log.trim_end());
            }
            Ok(exit::OK)
        }
    }
}

/// Children listed under one action by `runs show` unless `--all` is given.
const CHILDREN_SHOWN: usize = 20;

/// The run's actions, attempts and events grouped for printing as a tree.
struct Tree<'a> {
    children: HashMap<Option<&'a str>, Vec<&'a ActionRecord>>,
    attempts: HashMap<&'a str, Vec<&'a AttemptRecord>>,
    events: HashMap<&'a str, Vec<&'a EventRecord>>,
    show_all: bool,
}

impl<'a> Tree<'a> {
    fn new(d: &'a sluice_host::RunDetails, show_all: bool) -> Self {
        let mut tree = Tree {
            children: HashMap::new(),
            attempts: HashMap::new(),
            events: HashMap::new(),
            show_all,
        };
        for a in &d.actions {
            tree.children
                .entry(a.parent_id.as_deref())
                .or_default()
                .push(a);
        }
        for a in &d.attempts {
            tree.attempts
                .entry(a.action_id.as_str())
                .or_default()
                .push(a);
        }
        for e in &d.events {
            tree.events.entry(e.action_id.as_str()).or_default().push(e);
        }
        tree
    }

    /// Prints the actions under `parent` (the root when none), each with its attempts and
    /// events; past `CHILDREN_SHOWN` of them, a count by phase of the rest.
    fn print(&self, parent: Option<&str>, depth: usize) {
        let indent = "  ".repeat(depth);
        let Some(actions) = self.children.get(&parent) else {
            return;
        };
        let shown = if self.show_all || parent.is_none() {
            actions.len()
        } else {
            actions.len().min(CHILDREN_SHOWN)
        };
        for action in &actions[..shown] {
            self.print_action(action, &indent);
            self.print(Some(&action.id), depth + 1);
        }
        let rest = &actions[shown..];
        if !rest.is_empty() {
            let mut phases: BTreeMap<&str, usize> = BTreeMap::new();
            for a in rest {
                *phases.entry(a.phase.as_str()).or_default() += 1;
            }
            let counts: Vec<String> = phases.iter().map(|(p, n)| format!("{n} {p}")).collect();
            println!(
                "{indent}... {} more ({}; --all lists them)",
                rest.len(),
                counts.join(", ")
            );
        }
    }

    fn print_action(&self, action: &ActionRecord, indent: &str) {
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
        for a in self.attempts.get(action.id.as_str()).into_iter().flatten() {
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
        for e in self.events.get(action.id.as_str()).into_iter().flatten() {
            println!(
                "{indent}  {} {:<16} {}",
                human_time(e.at),
                e.kind,
                e.detail.as_deref().unwrap_or("")
            );
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
