//! `sluice describe <component.wasm>`

use std::path::PathBuf;

use sluice_host::engine::CompileSource;
use sluice_host::spec::CacheVersion;
use sluice_host::Host;

use super::{exit, Failure};

#[derive(clap::Args)]
pub struct Args {
    /// The component file.
    component: PathBuf,
    /// Print the task specs as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(host: &Host, args: Args) -> Result<u8, Failure> {
    let env = host.load_file(&args.component).await?;
    if args.json {
        let json = serde_json::json!({
            "component": env.source_name,
            "digest": env.digest,
            "size_bytes": env.size_bytes,
            "tasks": env.tasks,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
        return Ok(exit::OK);
    }
    let how = match env.compile_source {
        CompileSource::Compiled => "compiled now",
        CompileSource::DiskCache => "from the compile cache",
    };
    println!(
        "component {} (sha256 {}, {} KiB, {how})",
        env.source_name,
        &env.digest[..16],
        env.size_bytes / 1024
    );
    for task in &env.tasks {
        println!();
        match &task.doc {
            Some(doc) => println!("task {}: {}", task.name, doc.lines().next().unwrap_or("")),
            None => println!("task {}", task.name),
        }
        for (side, params) in [
            ("inputs", &task.interface.inputs),
            ("outputs", &task.interface.outputs),
        ] {
            let list: Vec<String> = params
                .iter()
                .map(|p| format!("{}: {}", p.name, p.ty))
                .collect();
            let list = if list.is_empty() {
                "(none)".to_string()
            } else {
                list.join(", ")
            };
            println!("  {side:<8} {list}");
        }
        let cache = match &task.cache.version {
            CacheVersion::Disable => "off".to_string(),
            CacheVersion::Auto => "auto".to_string(),
            CacheVersion::Override { value } => format!("version {value}"),
        };
        let or_default = |v: Option<u64>, unit: &str| {
            v.map(|n| format!("{n} {unit}"))
                .unwrap_or_else(|| "host default".into())
        };
        println!(
            "  settings cache {cache}; retries {}; timeout {}; inline limit {}; memory {}",
            task.retry.retries,
            or_default(task.timeout_ms, "ms"),
            or_default(task.inline_limit_bytes, "bytes"),
            or_default(task.memory_limit_bytes, "bytes"),
        );
        println!("  interface {}", &task.interface_hash[..16]);
    }
    Ok(exit::OK)
}
