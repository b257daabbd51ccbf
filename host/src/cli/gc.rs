//! `sluice gc --older-than 30d [--dry-run]`

use std::time::Duration;

use sluice_host::Host;

use super::{exit, Failure};

#[derive(clap::Args)]
pub struct Args {
    /// Purge runs that ended longer ago than this: a number and a unit (s, m, h, d), e.g. 30d.
    #[arg(long, value_parser = parse_age)]
    older_than: Duration,
    /// Only report what would be removed.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
}

/// `90s`, `15m`, `12h`, `30d`.
fn parse_age(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?}: expected a number and a unit (s, m, h, d), e.g. 30d");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    number
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

pub async fn run(host: &Host, args: Args) -> Result<u8, Failure> {
    let report = host.gc(args.older_than, args.dry_run).await?;
    for skipped in &report.skipped {
        eprintln!("sluice: gc skipped run {}: {}", skipped.run, skipped.reason);
    }
    // Runs left behind mean the host could not do all it was asked.
    let code = match report.skipped.is_empty() {
        true => exit::OK,
        false => exit::HOST_FAILURE,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return Ok(code);
    }
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    println!(
        "{verb} {} object(s), {} bytes, of {} run(s), and {} cache entr{}",
        report.objects,
        report.bytes,
        report.runs.len(),
        report.cache_entries,
        if report.cache_entries == 1 {
            "y"
        } else {
            "ies"
        }
    );
    Ok(code)
}
