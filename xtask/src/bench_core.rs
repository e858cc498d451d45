//! The tracer's core cost: nginx + wrk on loopback under each tracing mode, alternated, and a
//! syscall storm (events per second delivered with no drops, peak RSS).
use std::path::Path;
use std::process::Command;

use anyhow::Context as _;
use phasebox_tests::nginx::Nginx;
use phasebox_tests::{TempDir, fixture};

use crate::measure::{
    Settings, Tracer, median, nginx_version, run_measured, start_phasebox, start_strace, stop, wrk,
};

pub const BEGIN: &str = "<!-- bench:tracer-core:begin -->";

pub const END: &str = "<!-- bench:tracer-core:end -->";

const MODES: &[(&str, &str)] = &[
    ("baseline", "no tracer"),
    (
        "filter",
        "phasebox tracing another process (kernel filter only)",
    ),
    (
        "record",
        "`phasebox record -p MASTER` (every syscall streamed to userspace)",
    ),
    (
        "record-profile",
        "`phasebox record -p MASTER --phases nginx --profile FILE` (streamed with paths, phases learned)",
    ),
    (
        "record-o",
        "`phasebox record -p MASTER -o FILE` (streamed with paths, written to a trace file)",
    ),
    ("strace", "`strace -f -qq -o /dev/null -p MASTER -p WORKER`"),
];

pub fn nginx_bench(bin: &Path, s: &Settings) -> anyhow::Result<String> {
    let nginx = Nginx::start();
    let url = nginx.url("/index.html");
    let dir = TempDir::new("bench");
    let mut other = Command::new("sleep").arg("3600").spawn()?;
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); MODES.len()];
    let mut drops = vec![(0u64, 0u64); MODES.len()];
    wrk(&url, 1)?; // warm-up
    for round in 0..s.rounds {
        for k in 0..MODES.len() {
            // Rotate the order each round so no mode always runs first.
            let m = (k + round) % MODES.len();
            let summary = dir.path(&format!("summary-{m}.json"));
            let trace = dir.path("bench.pbtrace");
            let tracer = match MODES[m].0 {
                "baseline" => Tracer::None,
                "filter" => start_phasebox(bin, other.id(), &[], summary)?,
                "record" => start_phasebox(bin, nginx.pid(), &[], summary)?,
                "record-o" => {
                    start_phasebox(bin, nginx.pid(), &["-o", trace.to_str().unwrap()], summary)?
                }
                "record-profile" => {
                    let prof = dir.path("bench-profile.json");
                    let args = ["--phases", "nginx", "--profile", prof.to_str().unwrap()];
                    start_phasebox(bin, nginx.pid(), &args, summary)?
                }
                _ => Tracer::Strace(start_strace(&nginx)?),
            };
            let rps = wrk(&url, s.secs)?;
            if let Some((events, dropped)) = stop(tracer)? {
                drops[m].0 += events;
                drops[m].1 += dropped;
            }
            let _ = std::fs::remove_file(&trace);
            eprintln!(
                "bench: round {} {:>9}: {rps:.0} req/s",
                round + 1,
                MODES[m].0
            );
            results[m].push(rps);
        }
    }
    let _ = other.kill();
    let _ = other.wait();
    let base = median(&mut results[0].clone());
    let mut out = format!(
        "## nginx + wrk on loopback\n\n\
         nginx {} (one worker, test config), `wrk -t1 -c32 -d{}s` on 127.0.0.1, {} rounds, modes \
         alternated in one run on this 2-core machine. Median requests/s and ratio to the \
         no-tracer median.\n\n\
         | mode | median req/s | vs. baseline | events delivered | dropped |\n|---|---|---|---|---|\n",
        nginx_version(),
        s.secs,
        s.rounds
    );
    for (m, (name, what)) in MODES.iter().enumerate() {
        let med = median(&mut results[m]);
        let (ev, dr) = match *name {
            "record" | "record-profile" | "record-o" | "filter" => {
                (drops[m].0.to_string(), drops[m].1.to_string())
            }
            _ => ("-".into(), "-".into()),
        };
        out += &format!(
            "| {name}: {what} | {med:.0} | {:.1}% | {ev} | {dr} |\n",
            100.0 * med / base
        );
    }
    let rec = median(&mut results[2]);
    let st = median(&mut results[MODES.len() - 1]);
    out += &format!(
        "\n`phasebox record` keeps {:.1}% of nginx's throughput while recording every syscall; \
         strace keeps {:.1}%: phasebox serves {:.1}x the requests strace does.\n",
        100.0 * rec / base,
        100.0 * st / base,
        rec / st
    );
    Ok(out)
}

fn storm_secs(stderr: &str) -> anyhow::Result<f64> {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("storm: "))
        .and_then(|l| l.split(" in ").nth(1))
        .and_then(|t| t.trim_end_matches(" s").parse().ok())
        .with_context(|| format!("no storm timing in: {stderr}"))
}

pub fn storm_bench(bin: &Path, s: &Settings) -> anyhow::Result<String> {
    let storm = fixture("storm");
    let n = s.storm_calls.to_string();
    let dir = TempDir::new("storm");
    let summary = dir.path("storm.json");
    let (mut base, mut traced, mut rss, mut dropped, mut delivered) =
        (vec![], vec![], vec![], 0u64, 0u64);
    for _ in 0..s.rounds {
        let (err, _) = run_measured(Command::new(&storm).arg(&n))?;
        base.push(s.storm_calls as f64 / storm_secs(&err)?);
        let (err, kib) = run_measured(
            Command::new(bin)
                .args(["run", "-q", "--summary"])
                .arg(&summary)
                .arg("--")
                .arg(&storm)
                .arg(&n),
        )?;
        traced.push(s.storm_calls as f64 / storm_secs(&err)?);
        rss.push(kib as f64 / 1024.0);
        let sm = phasebox_tests::read_json(&summary);
        dropped += sm["dropped"].as_u64().unwrap_or(0);
        delivered += sm["events"].as_u64().unwrap_or(0);
    }
    let (b, t) = (median(&mut base), median(&mut traced));
    Ok(format!(
        "\n## Syscall storm\n\n\
         `storm {n}`: one thread calling getppid {n} times; the rate is the program's own loop \
         time. Traced with `phasebox run` (default 8 MiB ring buffer, every syscall streamed), \
         {} rounds alternated with untraced runs.\n\n\
         | | median |\n|---|---|\n\
         | untraced getppid calls/s | {:.2} M/s |\n\
         | traced: events delivered to userspace/s | {:.2} M/s |\n\
         | slowdown of the traced program | {:.1}x |\n\
         | events dropped, all rounds | {dropped} of {delivered} delivered |\n\
         | phasebox peak RSS (wait4 ru_maxrss) | {:.1} MiB |\n",
        s.rounds,
        b / 1e6,
        t / 1e6,
        b / t,
        median(&mut rss)
    ))
}
