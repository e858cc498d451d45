//! The section for BENCHMARKS.md: the method, one row per configuration with its verdict,
//! and what the agents logged.
use std::time::Duration;

use super::containers::{CALLS as CONTAINER_CALLS, PARALLEL, PROGRAM};
use super::reading::{CPU_WINDOW, SCRAPES};
use super::swarm::{CALLS, CHURN_FOR, CHURN_WARMUP};
use super::{MEMORY_TARGET_MIB, Measured, Row, SCRAPE_TARGET_MS, thousands};

/// The columns of the table.
const HEADER: [&str; 14] = [
    "configuration",
    "agent",
    "live processes (ready in)",
    "exited / min",
    "RSS, peak MiB",
    "/metrics ms, median (max)",
    "series (page KiB)",
    "events",
    "dropped, map full",
    "CPU % of a core",
    "kernel maps MiB",
    "PB_COUNTS, PB_PROCS entries",
    "count on the page",
    "verdict",
];

pub fn render(rows: &[Row], took: Duration, load_before: &str) -> String {
    let mut table = format!(
        "| {} |\n|{}\n",
        HEADER.join(" | "),
        "---|".repeat(HEADER.len())
    );
    for r in rows {
        let cells = match &r.outcome {
            Ok(m) => cells(m),
            Err(e) => {
                let mut c = vec!["-".to_string(); HEADER.len() - 3];
                c.push(format!(
                    "**FAIL**: {}",
                    e.replace('\n', " ").replace('|', "/")
                ));
                c
            }
        };
        table += &format!("| {} | {} | {} |\n", r.name, r.agent, cells.join(" | "));
    }
    format!(
        "## The agent at scale\n\n\
         `cargo xtask bench --scale` (only when named; {:.1} minutes in this run). Targets: \
         10,000 live processes and 100 containers traced with the agent's memory under \
         {MEMORY_TARGET_MIB:.0} MiB and /metrics served in under {SCRAPE_TARGET_MS:.0} ms; no \
         event dropped, no full map, every call counted.\n\n{}\n\n{table}{}",
        took.as_secs_f64() / 60.0,
        method(load_before),
        logged(rows),
    )
}

/// How the numbers are taken, in a paragraph.
fn method(load_before: &str) -> String {
    format!(
        "The swarm program (`tests/fixtures/swarm.c`) forks N children that each make exactly \
         {CALLS} getppid calls and then block on a pipe, under `phasebox agent -p PARENT` \
         attached before it forks; the churn row replaces its oldest children (SIGKILL, then a \
         new child making its calls too) for {} s, and the containers run a one-file image \
         (the `tiny_init` test program as `{PROGRAM} calls {}`) in a private dockerd, started \
         {PARALLEL} at a time after three agents (`--exec-name {PROGRAM}`, one per row) that \
         watch the same containers. Once an agent's counters have settled (the churn: after \
         {} s of it), its CPU use is read from /proc/PID/stat over {} s with nothing scraping \
         it, then {SCRAPES} plain HTTP GETs of /metrics are timed from connect to the page's \
         last byte; its memory is VmRSS then and VmHWM (peak) at the end, its kernel maps the \
         `memlock` of its map descriptors and the entries of its hash maps, and the count the \
         sum over the page's series once settled, held against the number the workload knows \
         it made. One run on a 2-core machine (load average {load_before} at the start), \
         release build, BPF statistics off.",
        CHURN_FOR.as_secs(),
        thousands(CONTAINER_CALLS),
        CHURN_WARMUP.as_secs(),
        CPU_WINDOW.as_secs(),
    )
}

/// A measured row's cells, after its name and agent.
fn cells(m: &Measured) -> Vec<String> {
    let (live, end) = (&m.live, &m.end);
    let entries = |name: &str| {
        live.entries
            .iter()
            .find(|(n, _)| n == name)
            .map_or("-".into(), |(_, e)| thousands(*e as u64))
    };
    let folded = end.folded();
    let series = if folded > 0.0 {
        format!(
            "{} ({:.0}; {} label sets folded)",
            thousands(end.series() as u64),
            end.page_kib(),
            thousands(folded as u64)
        )
    } else {
        format!("{} ({:.0})", thousands(end.series() as u64), end.page_kib())
    };
    vec![
        format!("{} ({:.1} s)", thousands(m.processes), m.ready_s),
        m.exited_per_min
            .map_or("-".into(), |r| thousands(r.round() as u64)),
        format!("{:.1}, {:.1}", live.rss_mib, end.hwm_mib),
        format!("{:.1} ({:.1})", live.scrape_median(), live.scrape_max()),
        series,
        thousands(end.own("phasebox_events_total") as u64),
        format!(
            "{}, {}",
            thousands(end.own("phasebox_events_dropped_total") as u64),
            thousands(end.sum("phasebox_map_full_total", &[]) as u64)
        ),
        format!("{:.1}", live.cpu_pct),
        format!("{:.1}", live.maps_mib),
        format!("{}, {}", entries("PB_COUNTS"), entries("PB_PROCS")),
        count(m),
        verdict(m),
    ]
}

/// The count against the expected one.
fn count(m: &Measured) -> String {
    let c = &m.check;
    let diff = c.counted - c.expected;
    let counted = thousands(c.counted as u64);
    if diff == 0.0 {
        format!("{counted} ({}): exact", c.what)
    } else {
        format!(
            "{counted} of {} ({}): **{}**",
            thousands(c.expected as u64),
            c.what,
            signed(diff)
        )
    }
}

/// `met`; or the targets not met and the faults (drops, full maps, a wrong count).
fn verdict(m: &Measured) -> String {
    let (live, end) = (&m.live, &m.end);
    let mut not_met = Vec::new();
    if end.hwm_mib.max(live.rss_mib) >= MEMORY_TARGET_MIB {
        not_met.push(format!("memory {:.0} MiB", end.hwm_mib));
    }
    if live.scrape_max().is_nan() || live.scrape_max() >= SCRAPE_TARGET_MS {
        not_met.push(format!("/metrics {:.0} ms", live.scrape_max()));
    }
    let mut faults = Vec::new();
    let dropped = end.own("phasebox_events_dropped_total");
    if dropped != 0.0 {
        faults.push(format!("{} events dropped", thousands(dropped as u64)));
    }
    for (map, n) in end.map_full() {
        faults.push(format!(
            "{} writes to the {map} map refused (full)",
            thousands(n as u64)
        ));
    }
    if m.check.counted != m.check.expected {
        faults.push(format!(
            "count off by {}",
            signed(m.check.counted - m.check.expected)
        ));
    }
    match (not_met.is_empty(), faults.is_empty()) {
        (true, true) => "met".into(),
        (false, true) => format!("**not met**: {}", not_met.join(", ")),
        (true, false) => format!("**FAIL**: {}", faults.join(", ")),
        (false, false) => format!(
            "**not met**: {}; **FAIL**: {}",
            not_met.join(", "),
            faults.join(", ")
        ),
    }
}

/// What the agents logged as warnings or errors, per row (nothing when none did).
fn logged(rows: &[Row]) -> String {
    let lines: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            let w = &r.outcome.as_ref().ok()?.warnings;
            let first = w.first()?;
            Some(format!(
                "- {}: {} with a warning or an error, the first: `{}`\n",
                r.name,
                match w.len() {
                    1 => "one log line".to_string(),
                    n => format!("{n} log lines"),
                },
                first.trim()
            ))
        })
        .collect();
    if lines.is_empty() {
        "\nNo agent logged a warning or an error.\n".into()
    } else {
        format!("\nWhat the agents logged:\n\n{}", lines.concat())
    }
}

/// A whole number with its sign and thousands separated.
fn signed(n: f64) -> String {
    let sign = if n < 0.0 { "-" } else { "+" };
    format!("{sign}{}", thousands(n.abs() as u64))
}
