//! `sluice run <component.wasm> <task> --in name=JSON ... | --inputs file.json`

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value as Json;
use sluice_host::values::json::{document_from_json, document_to_json};
use sluice_host::{Host, RunRequest};

use super::{exit, runs, Failure};

#[derive(clap::Args)]
pub struct Args {
    /// The component file.
    component: PathBuf,
    /// The task to run.
    task: String,
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
    for item in &args.inputs {
        let Some((name, raw)) = item.split_once('=') else {
            return Err(Failure::usage(format!("--in {item:?}: expected NAME=JSON")));
        };
        let value = serde_json::from_str(raw).unwrap_or_else(|_| Json::String(raw.to_string()));
        given.insert(name.to_string(), value);
    }
    Ok(given)
}

pub async fn run(host: &Host, args: Args) -> Result<u8, Failure> {
    let given = read_inputs(&args)?;
    let env = host.load_file(&args.component).await?;
    let Some(spec) = env.task(&args.task) else {
        let known: Vec<&str> = env.tasks.iter().map(|t| t.name.as_str()).collect();
        return Err(Failure::usage(format!(
            "no task named {:?} in {} (it has: {})",
            args.task,
            args.component.display(),
            known.join(", ")
        )));
    };
    let inputs = document_from_json(given, &spec.interface.inputs, "inputs")
        .map_err(|e| Failure::usage(e.to_string()))?;
    let request = RunRequest::new(&args.task)
        .inputs(inputs)
        .scope(&args.project, &args.domain);
    let outcome = host.run(&env, request).await.map_err(|e| Failure {
        code: match e {
            sluice_host::RunError::Data(_) | sluice_host::RunError::Records(_) => {
                exit::HOST_FAILURE
            }
            _ => exit::USAGE,
        },
        message: e.to_string(),
    })?;
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
