//! `sluice run <component.wasm> <task> --in name=JSON ... | --inputs file.json`
//!
//! A file, directory or frame input is given by URI (`--in data=s3://bucket/key`) or uploaded
//! from the local disk (`--in data=@path/to/file.csv`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use sluice_host::values::json::{document_from_json, document_to_json};
use sluice_host::values::types::Param;
use sluice_host::values::validate::conform_document;
use sluice_host::values::{RefKind, TypeDesc, ValueError};
use sluice_host::{Host, RunRequest};

use super::progress::{Bar, Mode};
use super::{exit, runs, Failure};
use sluice_host::executor::Progress;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// The component file.
    #[arg(required_unless_present = "resume")]
    component: Option<PathBuf>,
    /// The task to run.
    #[arg(required_unless_present = "resume")]
    task: Option<String>,
    /// Continue a run whose host stopped before it ended (nothing that succeeded runs again).
    #[arg(long, value_name = "RUN", conflicts_with_all = ["inputs", "inputs_file"])]
    resume: Option<String>,
    /// Run even when the cache holds an entry for these inputs, and replace the entry.
    #[arg(long)]
    overwrite_cache: bool,
    /// An input as name=JSON (a value that is not JSON is taken as a string: --in name=Ada).
    #[arg(long = "in", value_name = "NAME=JSON")]
    inputs: Vec<String>,
    /// A JSON file holding an object of all inputs (--in values are applied on top).
    #[arg(long = "inputs", value_name = "FILE")]
    inputs_file: Option<PathBuf>,
    #[arg(long, default_value = "default")]
    project: String,
    #[arg(long, default_value = "development")]
    domain: String,
    /// Print the whole run record as JSON instead of the outputs.
    #[arg(long)]
    json: bool,
    /// Store URL for the files and directories this run creates (default: the host's store).
    #[arg(long, value_name = "URL")]
    raw_data_path: Option<String>,
    /// Another component whose tasks this run's tasks call as `<environment>.<task>`
    /// (repeatable; components loaded before are found in the records too).
    #[arg(long = "with", value_name = "COMPONENT")]
    with: Vec<PathBuf>,
    /// The live line of child tasks done / total, failures and elapsed time, on stderr.
    #[arg(long, value_enum, default_value = "auto")]
    progress: Mode,
}

fn read_inputs(args: &Args) -> Result<BTreeMap<String, Json>, Failure> {
    let mut given = BTreeMap::new();
    if let Some(path) = &args.inputs_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
        let json: Json = serde_json::from_str(&text)
            .map_err(|e| Failure::usage(format!("{}: not JSON: {e}", path.display())))?;
        let Json::Object(map) = json else {
            return Err(Failure::usage(format!(
                "{}: expected a JSON object of input names to values",
                path.display()
            )));
        };
        given.extend(map);
    }
    // `--in` overrides the same name in the `--inputs` file, but a name given twice with
    // `--in` is a mistake: which value was meant is not ours to guess.
    let mut named = std::collections::BTreeSet::new();
    for item in &args.inputs {
        let Some((name, raw)) = item.split_once('=') else {
            return Err(Failure::usage(format!("--in {item:?}: expected NAME=JSON")));
        };
        if !named.insert(name) {
            return Err(Failure::usage(format!(
                "--in {name:?}: given more than once"
            )));
        }
        let value = serde_json::from_str(raw).unwrap_or_else(|_| Json::String(raw.to_string()));
        given.insert(name.to_string(), value);
    }
    Ok(given)
}

/// The reference kind an input declares (looking through `optional`), if it is one.
fn reference_kind(ty: &TypeDesc) -> Option<RefKind> {
    match ty {
        TypeDesc::File { .. } => Some(RefKind::File),
        TypeDesc::Dir => Some(RefKind::Dir),
        TypeDesc::DataFrame { .. } => Some(RefKind::DataFrame),
        TypeDesc::Optional { of } => reference_kind(of),
        _ => None,
    }
}

/// Replaces each `"@path"` given for a file, directory or frame input by the URI of the
/// uploaded copy.
async fn upload_local_inputs(
    host: &Host,
    mut given: BTreeMap<String, Json>,
    params: &[Param],
    args: &Args,
) -> Result<BTreeMap<String, Json>, Failure> {
    for param in params {
        let Some(kind) = reference_kind(&param.ty) else {
            continue;
        };
        let Some(Json::String(text)) = given.get(&param.name) else {
            continue;
        };
        let Some(local) = text.strip_prefix('@') else {
            continue;
        };
        let meta = host
            .upload(Path::new(local), kind, &args.project, &args.domain)
            .await
            .map_err(|e| Failure::usage(format!("inputs.{}: {e}", param.name)))?;
        let mut object = serde_json::Map::new();
        object.insert("uri".into(), Json::String(meta.uri));
        object.insert("size".into(), meta.size.into());
        object.insert("sha256".into(), meta.sha256.into());
        object.insert("format".into(), meta.format.into());
        given.insert(param.name.clone(), Json::Object(object));
    }
    Ok(given)
}

/// A required input left out, or a name the task does not declare, is the command line's
/// mistake, as a wrongly typed value is: refused before a run is recorded. (The host would
/// record the run as failed with the same message; other input errors, such as a frame whose
/// schema differs, are left to it.)
fn refuse_missing_or_undeclared(
    inputs: &BTreeMap<String, sluice_host::values::Value>,
    params: &[Param],
) -> Result<(), Failure> {
    match conform_document(inputs.clone(), params, "inputs") {
        Err(e @ (ValueError::Missing { .. } | ValueError::Unexpected { .. })) => {
            Err(Failure::usage(e.to_string()))
        }
        _ => Ok(()),
    }
}

pub(super) fn run_error(e: sluice_host::RunError) -> Failure {
    Failure {
        code: match e {
            // A project or domain the command named badly is the command's mistake.
            sluice_host::RunError::Data(sluice_host::data::DataError::BadName { .. }) => {
                exit::USAGE
            }
            sluice_host::RunError::Data(_)
            | sluice_host::RunError::Records(_)
            | sluice_host::RunError::TakenOver(_) => exit::HOST_FAILURE,
            _ => exit::USAGE,
        },
        message: e.to_string(),
    }
}

pub async fn run(host: &Host, args: Args) -> Result<u8, Failure> {
    for path in &args.with {
        host.load_file(path).await?;
    }
    let progress = Arc::new(Progress::default());
    if let Some(run_id) = &args.resume {
        let bar = Bar::start(args.progress, progress.clone());
        let outcome = match &args.component {
            Some(path) => {
                let env = host.load_file(path).await?;
                let resumed = host.resume_with(&env, run_id, Some(progress.clone()));
                interruptible(resumed, &progress, &args)
                    .await
                    .map_err(run_error)
            }
            None => interruptible(host.resume(run_id), &progress, &args)
                .await
                .map_err(Failure::from),
        };
        bar.finish().await;
        return report(host, &args, outcome?).await;
    }
    let (Some(component), Some(task)) = (&args.component, &args.task) else {
        return Err(Failure::usage(
            "give a component and a task, or --resume RUN",
        ));
    };
    let given = read_inputs(&args)?;
    let env = host.load_file(component).await?;
    let Some(spec) = env.task(task) else {
        let known: Vec<&str> = env.tasks.iter().map(|t| t.name.as_str()).collect();
        return Err(Failure::usage(format!(
            "no task named {task:?} in {} (it has: {})",
            component.display(),
            known.join(", ")
        )));
    };
    let given = upload_local_inputs(host, given, &spec.interface.inputs, &args).await?;
    let inputs = document_from_json(given, &spec.interface.inputs, "inputs")
        .map_err(|e| Failure::usage(e.to_string()))?;
    refuse_missing_or_undeclared(&inputs, &spec.interface.inputs)?;
    let mut request = RunRequest::new(task)
        .inputs(inputs)
        .scope(&args.project, &args.domain)
        .overwrite_cache(args.overwrite_cache);
    if let Some(url) = &args.raw_data_path {
        request = request.raw_data_path(url);
    }
    let bar = Bar::start(args.progress, progress.clone());
    let running = host.run(&env, request.progress(progress.clone()));
    let outcome = interruptible(running, &progress, &args).await;
    bar.finish().await;
    report(host, &args, outcome.map_err(run_error)?).await
}

/// The shell's exit code for a command stopped by SIGINT (128 + 2).
const INTERRUPTED: i32 = 130;

/// Runs `work` to its end, unless Ctrl-C comes first: then the command says which run it
/// stopped and how to continue it, and exits at once. The records stay as a stopped host leaves
/// them (the run `running`, its finished actions kept), which is what `--resume` continues.
async fn interruptible<T>(
    work: impl std::future::Future<Output = T>,
    progress: &Progress,
    args: &Args,
) -> T {
    tokio::select! {
        done = work => done,
        Ok(()) = tokio::signal::ctrl_c() => {
            let component = args
                .component
                .as_ref()
                .map(|p| format!(" {}", p.display()))
                .unwrap_or_default();
            match progress.run_id.get().or(args.resume.as_ref()) {
                Some(id) => eprintln!(
                    "\nsluice: interrupted: run {id} stopped where it was; continue it with \
                     `sluice run{component} --resume {id}`"
                ),
                None => eprintln!("\nsluice: interrupted before the run was recorded"),
            }
            std::process::exit(INTERRUPTED)
        }
    }
}

/// Prints a run's outputs (or its whole record) and picks the exit code.
async fn report(host: &Host, args: &Args, outcome: sluice_host::RunOutcome) -> Result<u8, Failure> {
    if args.json {
        runs::print_run_json(host, &outcome.run_id).await?;
    }
    match &outcome.outputs {
        Ok(outputs) => {
            if !args.json {
                let text = serde_json::to_string_pretty(&document_to_json(outputs));
                println!("{}", text.unwrap_or_default());
            }
            Ok(exit::OK)
        }
        Err(failure) => {
            eprintln!(
                "sluice: run {} failed ({}): {}",
                outcome.run_id, failure.kind, failure.message
            );
            Ok(if failure.is_user_error() {
                exit::USER_ERROR
            } else {
                exit::TASK_FAILURE
            })
        }
    }
}
