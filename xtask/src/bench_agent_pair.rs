//! The agent on nginx, side by side: two nginx instances share one CPU, each under its own
//! wrk at the same moment, and the tracer watches the first one only. The scheduler gives
//! both the same CPU time, so the ratio of their request rates is the inverse ratio of their
//! costs per request, taken at the same moment: the machine's noise, which moves rounds run
//! one after the other by up to a fifth, moves both alike.
use std::path::Path;

use anyhow::anyhow;
use phasebox_tests::TempDir;
use phasebox_tests::nginx::Nginx;

use crate::bench_agent::{NGINX_CPU, WRK_CPU, pin_nginx, spread_points, start_agent};
use crate::measure::{Settings, interrupt, median, nginx_version, start_phasebox, stop, wrk};

/// Rounds go on until the 95% confidence half-width of every ratio is under this many
/// points, or MAX_ROUNDS.
const SPREAD_POINTS: f64 = 1.0;
const MAX_ROUNDS: usize = 30;

/// What watches the first nginx.
enum Tracer {
    Nothing,
    Agent(&'static [&'static str]),
    Record(&'static [&'static str]),
}

const MODES: [(&str, Tracer); 5] = [
    ("no tracer", Tracer::Nothing),
    ("agent (summary mode)", Tracer::Agent(&[])),
    (
        "agent --errors (and an exit program)",
        Tracer::Agent(&["--errors"]),
    ),
    ("record (stream mode)", Tracer::Record(&[])),
    (
        "record --entry-only (stream mode, no exit program)",
        Tracer::Record(&["--entry-only"]),
    ),
];

/// Both nginx instances under wrk at once: their requests/s.
fn both(first: &str, second: &str, secs: u64) -> anyhow::Result<(f64, f64)> {
    std::thread::scope(|s| {
        let other = s.spawn(|| wrk(second, secs));
        let a = wrk(first, secs)?;
        let b = other
            .join()
            .map_err(|_| anyhow!("wrk's thread panicked"))??;
        Ok((a, b))
    })
}

/// One measurement: `tracer` on `first`, both under wrk.
fn measure(
    bin: &Path,
    tracer: &Tracer,
    first: &Nginx,
    second: &Nginx,
    s: &Settings,
    dir: &TempDir,
) -> anyhow::Result<(f64, f64)> {
    let urls = (first.url("/index.html"), second.url("/index.html"));
    match tracer {
        Tracer::Nothing => both(&urls.0, &urls.1, s.secs),
        Tracer::Agent(extra) => {
            let (mut agent, _, _) = start_agent(bin, first.pid(), extra)?;
            let rps = both(&urls.0, &urls.1, s.secs);
            interrupt(&mut agent, true)?;
            rps
        }
        Tracer::Record(extra) => {
            let t = start_phasebox(bin, first.pid(), extra, dir.path("summary.json"))?;
            let rps = both(&urls.0, &urls.1, s.secs);
            stop(t)?;
            rps
        }
    }
}

/// The side-by-side section (this process already on WRK_CPU).
pub fn side_by_side(bin: &Path, s: &Settings) -> anyhow::Result<String> {
    let (first, second) = (Nginx::start(), Nginx::start());
    pin_nginx(&first)?;
    pin_nginx(&second)?;
    let dir = TempDir::new("bench-agent-pair");
    // rps[mode] = (first, second) per round.
    let mut rps: Vec<Vec<(f64, f64)>> = vec![Vec::new(); MODES.len()];
    both(&first.url("/"), &second.url("/"), 1)?;
    let mut round = 0;
    loop {
        let settled = (1..MODES.len()).all(|m| spread_points(&relative(&rps, m)) < SPREAD_POINTS);
        if round >= s.rounds && (settled || round >= MAX_ROUNDS || s.quick) {
            break;
        }
        for k in 0..MODES.len() {
            let m = (k + round) % MODES.len();
            let (a, b) = measure(bin, &MODES[m].1, &first, &second, s, &dir)?;
            eprintln!(
                "bench: side by side, round {} {}: {a:.0} and {b:.0} req/s",
                round + 1,
                MODES[m].0
            );
            rps[m].push((a, b));
        }
        round += 1;
    }
    let mut raw: Vec<f64> = rps[0].iter().map(|(a, b)| a / b).collect();
    let mut out = format!(
        "\n### Side by side\n\n\
         Two nginx {} (one worker each) share CPU {NGINX_CPU}, each under its own `wrk -t1 \
         -c32 -d{}s` at the same moment (both on CPU {WRK_CPU}); the tracer watches the first \
         one only. The scheduler gives both the same CPU time, so the ratio of their request \
         rates is the inverse ratio of their costs per request, taken at the same moment: the \
         noise that moves the rounds above moves both alike. Each round's ratio is divided by \
         the same round's ratio with no tracer (the two instances' own difference: median \
         {:.3}). {round} rounds of every mode alternated, until the 95% confidence half-width \
         of every ratio was under {SPREAD_POINTS} point (at most {MAX_ROUNDS}). The second \
         nginx pays what every untraced process pays under the same tracer (the per-syscall \
         section: the agent's untraced path, and record's exit program).\n\n\
         | tracer on the first nginx | traced / untraced (median) | 95% half-width | first req/s | second req/s |\n\
         |---|---|---|---|---|\n",
        nginx_version(),
        s.secs,
        median(&mut raw),
    );
    for (m, (name, _)) in MODES.iter().enumerate().skip(1) {
        let mut r = relative(&rps, m);
        let spread = spread_points(&r);
        let mut a: Vec<f64> = rps[m].iter().map(|p| p.0).collect();
        let mut b: Vec<f64> = rps[m].iter().map(|p| p.1).collect();
        out += &format!(
            "| {name} | {:.3} | {spread:.1} points | {:.0} | {:.0} |\n",
            median(&mut r),
            median(&mut a),
            median(&mut b)
        );
    }
    Ok(out)
}

/// Each round's first/second ratio under `mode` over the same round's with no tracer.
fn relative(rps: &[Vec<(f64, f64)>], mode: usize) -> Vec<f64> {
    rps[mode]
        .iter()
        .zip(&rps[0])
        .map(|((a, b), (a0, b0))| (a / b) / (a0 / b0))
        .collect()
}
