//! `cargo xtask bench --scale`: the agent (summary mode) with many processes and many
//! containers. Each workload gets agents of its own, started before it:
//!
//! - the swarm test program (`tests/fixtures/swarm.c`) under `phasebox agent -p PARENT`:
//!   1,000 and then 10,000 live children, each having made exactly [`swarm::CALLS`] getppid
//!   calls; then 10,000 live with [`swarm::CHURN_PER_MIN`] of them replaced a minute
//!   (`swarm.rs`);
//! - 100 containers of a one-file image (the `tiny_init` test program, `calls N`) in a private
//!   dockerd, under three agents started with `--exec-name`: the defaults,
//!   `--metrics.without container_id` and `--metrics.max-series` (`containers.rs`).
//!
//! While each workload is live, once the agent has settled: its memory, CPU, /metrics times,
//! series, events, drops, full maps and kernel maps (`reading.rs`); then its counts are held
//! against what the workload knows it did. A configuration that fails is a row saying why
//! (`report.rs`), and the others still run. Each agent's last /metrics page is kept in
//! target/bench-scale/, for a look at what a row's numbers came from.
mod containers;
mod reading;
mod report;
mod swarm;

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::{measure::load, util};
use reading::{End, Live};

pub const BEGIN: &str = "<!-- bench:scale:begin -->";
pub const END: &str = "<!-- bench:scale:end -->";

/// The targets: the agent's peak resident memory, and the time to serve /metrics.
const MEMORY_TARGET_MIB: f64 = 150.0;
const SCRAPE_TARGET_MS: f64 = 250.0;

/// One configuration: its name, the agent's arguments, and what was measured or why not.
pub struct Row {
    name: String,
    agent: String,
    outcome: Result<Measured, String>,
}

/// What one configuration measured.
pub struct Measured {
    /// Live processes of the workload (for containers, their first processes).
    processes: u64,
    /// Seconds from its start until every process was ready (forked or started, calls made).
    ready_s: f64,
    /// Processes that exited and were replaced, a minute (churn only).
    exited_per_min: Option<f64>,
    live: Live,
    end: End,
    check: Check,
    /// Lines of the agent's log with a warning or an error.
    warnings: Vec<String>,
}

/// A count on the agent's page held against the one the workload knows.
pub struct Check {
    /// What is counted, and where the expected number comes from.
    what: String,
    counted: f64,
    expected: f64,
}

pub fn run(bin: &Path) -> anyhow::Result<String> {
    let t0 = Instant::now();
    let load_before = load();
    let mut rows = Vec::new();
    for (live, per_min) in [(1_000, 0), (10_000, 0), (10_000, swarm::CHURN_PER_MIN)] {
        let (name, agent) = swarm::describe(live, per_min);
        eprintln!("scale: {name}");
        let outcome = guarded(|| swarm::run(bin, live, per_min));
        if let Err(e) = &outcome {
            eprintln!("scale: {name} failed: {e}");
        }
        rows.push(Row {
            name,
            agent,
            outcome,
        });
    }
    eprintln!("scale: {} containers", containers::CONTAINERS);
    rows.extend(containers::run(bin));
    let pages = keep_pages(&rows)?;
    eprintln!("scale: the agents' last pages are in {}", pages.display());
    Ok(report::render(&rows, t0.elapsed(), &load_before))
}

/// Writes each measured row's last /metrics page to target/bench-scale/ROW.prom (ROW its
/// number in the table); the directory.
fn keep_pages(rows: &[Row]) -> anyhow::Result<PathBuf> {
    let dir = util::root().join("target/bench-scale");
    std::fs::create_dir_all(&dir)?;
    for (i, r) in rows.iter().enumerate() {
        let path = dir.join(format!("{}.prom", i + 1));
        match &r.outcome {
            Ok(m) => std::fs::write(&path, &m.end.page)?,
            Err(_) => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    Ok(dir)
}

/// Runs `f`, a configuration's measurement; its error or panic as a sentence. The guards of
/// what it started (processes, containers, dockerd) stop them while a panic unwinds.
fn guarded<T>(f: impl FnOnce() -> anyhow::Result<T>) -> Result<T, String> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(panic) => Err(panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic".into())),
    }
}

/// `n` with thousands separated by commas.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
