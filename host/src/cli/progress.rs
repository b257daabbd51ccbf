//! The live progress line of `sluice run`: child actions done / total, failures, elapsed.
//! Shown on long runs only (after `SHOW_AFTER`), on stderr, and only when stderr is a terminal
//! unless `--progress always` asks for it.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_host::executor::{Progress, ProgressSnapshot};

/// A run shorter than this shows no progress line.
const SHOW_AFTER: Duration = Duration::from_secs(1);
/// How often the line is redrawn.
const REDRAW_EVERY: Duration = Duration::from_millis(200);
/// Width of the bar in characters.
const BAR_WIDTH: u64 = 30;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// On a terminal, for runs longer than a second.
    Auto,
    /// Always (also when stderr is a file), for runs longer than a second.
    Always,
    Never,
}

/// A running progress line; [`Bar::finish`] draws it a last time and ends the line.
pub struct Bar {
    progress: Arc<Progress>,
    started: Instant,
    stop: Arc<AtomicBool>,
    shown: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Bar {
    pub fn start(mode: Mode, progress: Arc<Progress>) -> Bar {
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let shown = Arc::new(AtomicBool::new(false));
        let enabled = match mode {
            Mode::Auto => std::io::stderr().is_terminal(),
            Mode::Always => true,
            Mode::Never => false,
        };
        let task = enabled.then(|| {
            let (progress, stop, shown) = (progress.clone(), stop.clone(), shown.clone());
            tokio::spawn(async move {
                tokio::time::sleep(SHOW_AFTER).await;
                while !stop.load(Ordering::Relaxed) {
                    draw(&progress.snapshot(), started.elapsed(), false);
                    shown.store(true, Ordering::Relaxed);
                    tokio::time::sleep(REDRAW_EVERY).await;
                }
            })
        });
        Bar {
            progress,
            started,
            stop,
            shown,
            task,
        }
    }

    pub async fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        if self.shown.load(Ordering::Relaxed) {
            draw(&self.progress.snapshot(), self.started.elapsed(), true);
        }
    }
}

/// `[#######-------]  700/1000 tasks  2 failed  1.4s`
pub fn line(p: &ProgressSnapshot, elapsed: Duration) -> String {
    let filled = (p.done * BAR_WIDTH).checked_div(p.total).unwrap_or(0);
    let bar: String = (0..BAR_WIDTH)
        .map(|i| if i < filled { '#' } else { '-' })
        .collect();
    let mut text = format!("[{bar}] {}/{} tasks", p.done, p.total);
    if p.failed > 0 {
        text.push_str(&format!("  {} failed", p.failed));
    }
    if p.reused > 0 {
        text.push_str(&format!("  {} reused", p.reused));
    }
    text.push_str(&format!("  {:.1}s", elapsed.as_secs_f64()));
    text
}

fn draw(p: &ProgressSnapshot, elapsed: Duration, last: bool) {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r{}", line(p, elapsed));
    if last {
        let _ = writeln!(err);
    }
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_counts_done_failed_and_reused() {
        let p = ProgressSnapshot {
            total: 10,
            done: 5,
            failed: 1,
            reused: 2,
        };
        let text = line(&p, Duration::from_millis(1500));
        assert!(text.starts_with(&format!("[{}{}]", "#".repeat(15), "-".repeat(15))));
        assert!(
            text.contains("5/10 tasks  1 failed  2 reused  1.5s"),
            "{text}"
        );
        let empty = line(&ProgressSnapshot::default(), Duration::ZERO);
        assert!(empty.contains("0/0 tasks"), "{empty}");
    }
}
