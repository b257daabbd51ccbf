//! Embeds the sluice host: loads the example environment and runs two of its tasks for two
//! tenants, each in its own project and domain.
//!
//! usage: example-embed <orders.wasm> [home]

use sluice_host::values::json::document_to_json;
use sluice_host::{Host, RunRequest, Value};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let component = args
        .next()
        .ok_or("usage: example-embed <orders.wasm> [home]")?;
    let home = args.next().unwrap_or_else(|| ".sluice".to_string());

    let host = Host::builder().home(&home).build().await?;
    let env = host.load_file(&component).await?;
    println!("loaded {} ({} tasks)", env.source_name, env.tasks.len());

    for tenant in ["acme", "globex"] {
        let order = Value::record([
            ("id", Value::from(format!("{tenant}-1"))),
            ("customer", Value::from(tenant)),
            ("amount_cents", Value::Int(10_000)),
            ("status", Value::from("Open")),
        ]);
        let request = RunRequest::new("discount")
            .input("order", order)
            .input("percent", 15i64)
            .scope(tenant, "production");
        let outcome = host.run(&env, request).await?;
        match outcome.outputs {
            Ok(outputs) => println!(
                "{tenant}: run {} -> {}",
                outcome.run_id,
                document_to_json(&outputs)
            ),
            Err(f) => println!(
                "{tenant}: run {} failed ({}): {}",
                outcome.run_id, f.kind, f.message
            ),
        }
    }

    // A user error is recorded like any outcome; the program decides what to do with it.
    let bad = RunRequest::new("advance").input("status", "Lost");
    let outcome = host.run(&env, bad).await?;
    if let Err(f) = outcome.outputs {
        println!("rejected as expected ({}): {}", f.kind, f.message);
    }
    Ok(())
}
