//! Benchmarks of phase detection (`cargo xtask bench --phases`): `phasebox analyze` on a large
//! trace with automatic phases against rule sets, and learning phases live on nginx under wrk.
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::bail;
use phasebox_tests::{TempDir, nginx::Nginx};

use crate::measure::{Settings, load, median, run_measured, wrk};

pub const BEGIN: &str = "<!-- bench:phases:begin -->";
pub const END: &str = "<!-- bench:phases:end -->";

/// nginx for these measurements listens here.
const PORT: u16 = 18290;

/// Phase detectors compared: a rule set with few markers, nginx's, and automatic phases.
const DETECTORS: [&str; 3] = ["generic", "nginx", "auto"];

/// nginx launched by `phasebox run -o`, served under wrk until the trace holds at least
/// `events` events; returns the trace and how many events it holds.
fn record(bin: &Path, dir: &TempDir, events: u64) -> anyhow::Result<(std::path::PathBuf, u64)> {
    let trace = dir.path("nginx.pbtrace");
    let summary = dir.path("record-summary.json");
    // Events per request, estimated low at first, then from what the last try recorded.
    let mut per_request = 8.0;
    for _ in 0..3 {
        let b = bin.to_str().unwrap();
        let mut nginx = Nginx::start_under_on(
            &[
                b,
                "run",
                "-q",
                "-o",
                trace.to_str().unwrap(),
                "--summary",
                summary.to_str().unwrap(),
                "--",
            ],
            PORT,
        );
        let mut requests = 0.0;
        while requests * per_request < events as f64 * 1.05 {
            requests += wrk(&nginx.url("/index.html"), 5)? * 5.0;
        }
        if !nginx.quit().success() {
            bail!("nginx under phasebox run did not quit cleanly");
        }
        let got = phasebox_tests::read_json(&summary)["events"]
            .as_u64()
            .unwrap_or(0);
        if got >= events {
            return Ok((trace, got));
        }
        per_request = got as f64 / requests;
    }
    bail!("could not record {events} events from nginx")
}

pub fn run(bin: &Path, s: &Settings) -> anyhow::Result<String> {
    let dir = TempDir::new("bench-phases");
    let load_before = load();
    let (trace, events) = record(bin, &dir, s.trace_events)?;
    let size = std::fs::metadata(&trace)?.len();
    let (mut secs, mut rss) = (vec![vec![]; 3], vec![vec![]; 3]);
    for round in 0..s.rounds {
        for k in 0..DETECTORS.len() {
            let m = (k + round) % DETECTORS.len();
            let prof = dir.path(&format!("{}.json", DETECTORS[m]));
            let t0 = Instant::now();
            let (_, kib) = run_measured(Command::new(bin).args([
                "analyze",
                trace.to_str().unwrap(),
                "--phases",
                DETECTORS[m],
                "--profile",
                prof.to_str().unwrap(),
            ]))?;
            let t = t0.elapsed().as_secs_f64();
            eprintln!(
                "bench: round {} analyze --phases {}: {t:.2} s",
                round + 1,
                DETECTORS[m]
            );
            secs[m].push(t);
            rss[m].push(kib as f64 / 1024.0);
        }
    }
    let base = median(&mut secs[0].clone());
    let mut out = format!(
        "## Phases: analysis of a large trace\n\n\
         `phasebox analyze TRACE --phases P --profile FILE` on one trace of {events} events \
         ({:.0} MiB): nginx launched by `phasebox run -o`, its startup, then `wrk -t1 -c32` on \
         /index.html. The time includes reading the file. {} rounds, detectors alternated; \
         the machine's load average was {load_before} before and {} after.\n\n\
         | phases | median time | events/s | vs. generic | peak RSS |\n|---|---|---|---|---|\n",
        size as f64 / (1 << 20) as f64,
        s.rounds,
        load()
    );
    for (m, name) in DETECTORS.iter().enumerate() {
        let t = median(&mut secs[m]);
        out += &format!(
            "| {name} | {t:.2} s | {:.2} M/s | {:.0}% of its speed | {:.0} MiB |\n",
            events as f64 / t / 1e6,
            100.0 * base / t,
            median(&mut rss[m])
        );
    }
    out += &live(bin, s, &dir)?;
    Ok(out)
}

/// nginx launched under `phasebox run --phases P --profile FILE` and served under wrk, against
/// nginx alone; each round starts a fresh nginx.
fn live(bin: &Path, s: &Settings, dir: &TempDir) -> anyhow::Result<String> {
    let modes = ["no tracer", "nginx", "auto"];
    let mut rps = vec![vec![]; modes.len()];
    let mut counts = vec![(0u64, 0u64); modes.len()];
    let (prof, summary) = (dir.path("live.json"), dir.path("live-summary.json"));
    let b = bin.to_str().unwrap();
    for round in 0..s.rounds {
        for k in 0..modes.len() {
            let m = (k + round) % modes.len();
            let wrapper: Vec<&str> = if m == 0 {
                vec![]
            } else {
                vec![
                    b,
                    "run",
                    "-q",
                    "--phases",
                    modes[m],
                    "--profile",
                    prof.to_str().unwrap(),
                    "--summary",
                    summary.to_str().unwrap(),
                    "--",
                ]
            };
            let mut nginx = Nginx::start_under_on(&wrapper, PORT + 1);
            let url = nginx.url("/index.html");
            wrk(&url, 1)?; // warm-up
            let r = wrk(&url, s.secs)?;
            if !nginx.quit().success() {
                bail!("nginx did not quit cleanly ({})", modes[m]);
            }
            if m > 0 {
                let sm = phasebox_tests::read_json(&summary);
                counts[m].0 += sm["events"].as_u64().unwrap_or(0);
                counts[m].1 += sm["dropped"].as_u64().unwrap_or(0);
            }
            eprintln!("bench: round {} live {}: {r:.0} req/s", round + 1, modes[m]);
            rps[m].push(r);
        }
    }
    let base = median(&mut rps[0].clone());
    let mut out = format!(
        "\n## Phases learned live\n\n\
         nginx launched by `phasebox run --phases P --profile FILE` (every syscall streamed, \
         phases learned as the events arrive, from nginx's execve to its exit), a 1 s warm-up, \
         then `wrk -t1 -c32 -d{}s`; {} rounds, each mode a fresh nginx, alternated with nginx \
         alone. Median requests/s; events and drops summed over the rounds.\n\n\
         | mode | median req/s | vs. no tracer | events delivered | dropped |\n\
         |---|---|---|---|---|\n",
        s.secs, s.rounds
    );
    for (m, name) in modes.iter().enumerate() {
        let med = median(&mut rps[m]);
        let (label, ev, dr) = if m == 0 {
            (name.to_string(), "-".to_string(), "-".to_string())
        } else {
            (
                format!("--phases {name}"),
                counts[m].0.to_string(),
                counts[m].1.to_string(),
            )
        };
        out += &format!(
            "| {label} | {med:.0} | {:.1}% | {ev} | {dr} |\n",
            100.0 * med / base
        );
    }
    Ok(out)
}
