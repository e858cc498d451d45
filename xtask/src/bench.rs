//! Benchmarks, written to BENCHMARKS.md. Every configuration is measured side by side with its
//! baseline in the same run, alternating, and reported as medians and ratios.
//!
//! - nginx + wrk on loopback: no tracer; phasebox tracing another process (the cost of the
//!   kernel filter alone); `phasebox record` on nginx (every syscall streamed); the same with a
//!   trace file; `strace -f` on nginx.
//! - syscall storm: events per second delivered to userspace with no drops, and peak RSS.
//! - nginx under its learned seccomp profiles; the agent on nginx.
//! - phase detection (`bench_phases.rs`): analyzing a large trace, learning phases live.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use phasebox_tests::{TempDir, fixture, nginx::Nginx};

use crate::{bench_cost, bench_deploy, bench_phases, bench_static, util};

const BEGIN: &str = "<!-- bench:tracer-core:begin -->";
const END: &str = "<!-- bench:tracer-core:end -->";

/// How long and how often to measure.
pub struct Settings {
    pub rounds: usize,
    pub secs: u64,
    storm_calls: u64,
    /// Events in the trace the phase detectors analyze.
    pub trace_events: u64,
}

fn settings(args: &[String]) -> Settings {
    let quick = args.iter().any(|a| a == "--quick");
    Settings {
        rounds: if quick { 2 } else { 5 },
        secs: if quick { 2 } else { 5 },
        storm_calls: if quick { 2_000_000 } else { 10_000_000 },
        trace_events: if quick { 2_000_000 } else { 10_000_000 },
    }
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let bin = util::build_phasebox()?;
    let s = settings(args);
    // A section flag runs only the sections named; none runs them all.
    const SECTIONS: [&str; 7] = [
        "--core",
        "--seccomp",
        "--agent",
        "--phases",
        "--cost",
        "--static",
        "--deploy",
    ];
    let only: Vec<&str> = SECTIONS
        .into_iter()
        .filter(|f| args.iter().any(|a| a == f))
        .collect();
    let want = |f: &str| only.is_empty() || only.contains(&f);
    let mut sections = Vec::new();
    if want("--core") {
        let nginx = nginx_bench(&bin, &s)?;
        let storm = storm_bench(&bin, &s)?;
        sections.push((BEGIN, END, format!("{nginx}\n{storm}")));
    }
    if want("--seccomp") {
        sections.push((SECCOMP_BEGIN, SECCOMP_END, seccomp_bench(&bin, &s)?));
    }
    if want("--agent") {
        sections.push((AGENT_BEGIN, AGENT_END, agent_bench(&bin, &s)?));
    }
    if want("--phases") {
        let phases = bench_phases::run(&bin, &s)?;
        sections.push((bench_phases::BEGIN, bench_phases::END, phases));
    }
    if want("--cost") {
        let cost = bench_cost::run(&bin, s.rounds, s.storm_calls / 2)?;
        sections.push((bench_cost::BEGIN, bench_cost::END, cost));
    }
    if want("--static") {
        let stat = bench_static::bench(&bin, s.rounds)?;
        sections.push((bench_static::BEGIN, bench_static::END, stat));
    }
    if want("--deploy") {
        let table = bench_deploy::run(&bin, s.rounds.min(3))?;
        sections.push((bench_deploy::BEGIN, bench_deploy::END, table));
    }
    let path = util::root().join("BENCHMARKS.md");
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
    for (begin, end, body) in &sections {
        let section = format!("{begin}\n{body}{end}");
        text = util::replace_section(&text, begin, end, &section);
        println!("{section}\n");
    }
    std::fs::write(&path, text)?;
    println!("bench: results written to {}", path.display());
    Ok(())
}

const AGENT_BEGIN: &str = "<!-- bench:agent:begin -->";
const AGENT_END: &str = "<!-- bench:agent:end -->";
const SECCOMP_BEGIN: &str = "<!-- bench:seccomp:begin -->";
const SECCOMP_END: &str = "<!-- bench:seccomp:end -->";

/// The median (NaN for none).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Requests per second from wrk's output.
pub fn wrk(url: &str, secs: u64) -> anyhow::Result<f64> {
    let out = util::output("wrk", &["-t1", "-c32", &format!("-d{secs}s"), url])?;
    out.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk output:\n{out}"))
}

/// A tracer attached for one measurement.
enum Tracer {
    None,
    Phasebox(Child, PathBuf),
    Strace(Child),
}

/// Starts `phasebox record` and waits until it says it is tracing.
fn start_phasebox(
    bin: &Path,
    pid: u32,
    extra: &[&str],
    summary: PathBuf,
) -> anyhow::Result<Tracer> {
    let mut child = Command::new(bin)
        .args(["record", "-q", "-p", &pid.to_string(), "--summary"])
        .arg(&summary)
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stderr.take().expect("stderr")).read_line(&mut line)?;
    if !line.contains("tracing pid") {
        bail!("phasebox record did not start: {line}");
    }
    Ok(Tracer::Phasebox(child, summary))
}

/// Ctrl-C for a tracer; phasebox must then end cleanly (strace ends by the signal).
fn interrupt(child: &mut Child, must_succeed: bool) -> anyhow::Result<()> {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let st = child.wait()?;
    if must_succeed && !st.success() {
        bail!("tracer exited with {st}");
    }
    Ok(())
}

/// Stops the tracer; returns (events delivered, dropped) for phasebox.
fn stop(t: Tracer) -> anyhow::Result<Option<(u64, u64)>> {
    match t {
        Tracer::None => Ok(None),
        Tracer::Strace(mut c) => interrupt(&mut c, false).map(|_| None),
        Tracer::Phasebox(mut c, summary) => {
            interrupt(&mut c, true)?;
            let s = phasebox_tests::read_json(&summary);
            Ok(Some((
                s["events"].as_u64().unwrap_or(0),
                s["dropped"].as_u64().unwrap_or(0),
            )))
        }
    }
}

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

fn nginx_bench(bin: &Path, s: &Settings) -> anyhow::Result<String> {
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

/// `strace -f` attached to nginx's master and workers.
fn start_strace(nginx: &Nginx) -> anyhow::Result<Child> {
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-o", "/dev/null"]);
    for pid in std::iter::once(nginx.pid()).chain(nginx.workers()) {
        cmd.args(["-p", &pid.to_string()]);
    }
    let c = cmd.stderr(Stdio::null()).spawn()?;
    std::thread::sleep(Duration::from_millis(500)); // attach
    Ok(c)
}

fn nginx_version() -> String {
    Command::new(phasebox_tests::nginx::nginx_bin())
        .arg("-v")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stderr)
                .trim()
                .trim_start_matches("nginx version: nginx/")
                .to_string()
        })
        .unwrap_or_default()
}

/// Runs a command, returns (stderr, peak RSS in KiB of it and its children).
pub fn run_measured(cmd: &mut Command) -> anyhow::Result<(String, i64)> {
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?;
    let pid = child.id() as i32;
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.expect("stderr"), &mut stderr)?;
    let mut status = 0;
    // SAFETY: zeroed rusage is valid; wait4 on our own child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("{cmd:?} failed: {stderr}");
    }
    Ok((stderr, ru.ru_maxrss))
}

fn storm_secs(stderr: &str) -> anyhow::Result<f64> {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("storm: "))
        .and_then(|l| l.split(" in ").nth(1))
        .and_then(|t| t.trim_end_matches(" s").parse().ok())
        .with_context(|| format!("no storm timing in: {stderr}"))
}

fn storm_bench(bin: &Path, s: &Settings) -> anyhow::Result<String> {
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

/// nginx under its exported seccomp profiles: the union (applied by `phasebox validate`, which
/// also traces in summary mode to name each denial's role and phase) against no filter, and
/// phase-aware enforcement (which needs the trace) against tracing alone.
fn seccomp_bench(bin: &Path, s: &Settings) -> anyhow::Result<String> {
    let dir = TempDir::new("bench-seccomp");
    let (union, manifest) = learn_policies(bin, &dir)?;
    let b = bin.to_str().unwrap();
    let modes: [(&str, Vec<&str>); 4] = [
        ("no filter", vec![]),
        (
            "union filter + summary-mode tracing (phasebox validate --seccomp)",
            vec![b, "validate", "--seccomp", union.to_str().unwrap(), "--"],
        ),
        ("traced only (phasebox run)", vec![b, "run", "-q", "--"]),
        (
            "traced + phase-aware (phasebox run --seccomp-phases)",
            vec![
                b,
                "run",
                "-q",
                "--seccomp-phases",
                manifest.to_str().unwrap(),
                "--",
            ],
        ),
    ];
    let med = nginx_medians(&modes, s)?;
    Ok(format!(
        "## nginx under its learned seccomp profiles\n\n\
         nginx {}, its profile learned by `phasebox run --phases nginx` under wrk, exported as the\n\
         union of all roles and phases and per phase. Each mode starts a fresh nginx, warms up 1 s,\n\
         then `wrk -t1 -c32 -d{}s`; {} rounds, modes alternated. Median requests/s. `validate`\n\
         traces as it enforces (to name each denied call's role and phase), so its row holds the\n\
         filter and summary-mode tracing; the filter alone, in Docker against Docker's default\n\
         profile, is in the section on nginx in Docker. `run` streams every call.\n\n\
         | mode | median req/s | ratio |\n|---|---|---|\n\
         | {} | {:.0} | 100% |\n\
         | {} | {:.0} | {:.1}% of no filter |\n\
         | {} | {:.0} | |\n\
         | {} | {:.0} | {:.1}% of traced only |\n",
        nginx_version(),
        s.secs,
        s.rounds,
        modes[0].0,
        med[0],
        modes[1].0,
        med[1],
        100.0 * med[1] / med[0],
        modes[2].0,
        med[2],
        modes[3].0,
        med[3],
        100.0 * med[3] / med[2],
    ))
}

/// nginx's profile, learned by `phasebox run --phases nginx` under wrk, exported in `dir` as
/// one union policy and per phase: the union policy's path and the per-phase manifest's.
fn learn_policies(bin: &Path, dir: &TempDir) -> anyhow::Result<(PathBuf, PathBuf)> {
    let prof = dir.path("nginx.json");
    let b = bin.to_str().unwrap();
    let mut learn = Nginx::start_under(&[
        b,
        "run",
        "-q",
        "--phases",
        "nginx",
        "--profile",
        prof.to_str().unwrap(),
        "--",
    ]);
    wrk(&learn.url("/index.html"), 2)?;
    if !learn.quit().success() {
        bail!("nginx did not quit cleanly while learning");
    }
    drop(learn);
    let union = dir.path("union.json");
    let phases = dir.path("phases");
    for args in [
        vec![
            "export",
            prof.to_str().unwrap(),
            "-o",
            union.to_str().unwrap(),
        ],
        vec![
            "export",
            prof.to_str().unwrap(),
            "--per-phase",
            phases.to_str().unwrap(),
        ],
    ] {
        let out = Command::new(bin).args(&args).output()?;
        if !out.status.success() {
            bail!(
                "phasebox {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Ok((union, phases.join("manifest.json")))
}

/// A fresh nginx per mode (label, the command it starts under) and round, modes alternated;
/// each mode's median requests/s.
fn nginx_medians(modes: &[(&str, Vec<&str>)], s: &Settings) -> anyhow::Result<Vec<f64>> {
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    for round in 0..s.rounds {
        for k in 0..modes.len() {
            let m = (k + round) % modes.len();
            let mut nginx = Nginx::start_under(&modes[m].1);
            let url = nginx.url("/index.html");
            wrk(&url, 1)?; // warm-up, and into the serving phase
            let rps = wrk(&url, s.secs)?;
            if !nginx.quit().success() {
                bail!("nginx did not quit cleanly under {}", modes[m].0);
            }
            eprintln!("bench: round {} {}: {rps:.0} req/s", round + 1, modes[m].0);
            results[m].push(rps);
        }
    }
    Ok(results.iter_mut().map(|r| median(r)).collect())
}

/// A metric's value in a Prometheus text page (summed over its series).
fn metric_sum(text: &str, prefix: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn scrape(listen: &str) -> String {
    util::output(
        "curl",
        &["-s", "--max-time", "2", &format!("http://{listen}/metrics")],
    )
    .unwrap_or_default()
}

/// KiB of resident memory of `pid` (VmRSS).
fn rss_kib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .map(|v| v.trim().trim_end_matches(" kB").trim().to_string())
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The agent in summary mode on nginx, side by side with no tracer, `record` (stream mode)
/// and strace; time to a non-empty /metrics, the agent's memory and the kernel programs' cost.
/// The agent's own run on nginx: throughput, time to a first page, memory, events sent.
struct AgentRun {
    rps: f64,
    ready_ms: f64,
    rss_mib: f64,
    events: f64,
}

/// `phasebox agent -p MASTER` (with `extra`) on nginx while wrk runs.
fn agent_run(
    bin: &Path,
    nginx: &Nginx,
    url: &str,
    secs: u64,
    extra: &[&str],
) -> anyhow::Result<AgentRun> {
    let listen = format!("127.0.0.1:{}", phasebox_tests::nginx::free_port());
    let t0 = std::time::Instant::now();
    let mut agent = Command::new(bin)
        .args(["agent", "-p", &nginx.pid().to_string(), "--phases", "nginx"])
        .args(["--listen", &listen])
        // Run-time statistics are sampled by default; the cost section measures them apart.
        .args(["--bpf-stats-every", "off"])
        .args(extra)
        .stderr(Stdio::null())
        .spawn()?;
    while !scrape(&listen).contains("phasebox_tracked_processes") {
        if t0.elapsed() > Duration::from_secs(20) {
            bail!("the agent served no metrics");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let ready_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let rps = wrk(url, secs)?;
    std::thread::sleep(Duration::from_millis(1200)); // one more refresh
    let rss_mib = rss_kib(agent.id()) / 1024.0;
    let events = metric_sum(&scrape(&listen), "phasebox_events_total", "");
    interrupt(&mut agent, true)?;
    Ok(AgentRun {
        rps,
        ready_ms,
        rss_mib,
        events,
    })
}

/// nginx under `phasebox floor` (an empty program on the syscall tracepoint).
fn floor_run(bin: &Path, url: &str, secs: u64) -> anyhow::Result<f64> {
    let mut floor = Command::new(bin)
        .arg("floor")
        .stderr(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(floor.stderr.take().context("floor stderr")?).read_line(&mut line)?;
    let rps = wrk(url, secs)?;
    interrupt(&mut floor, true)?;
    Ok(rps)
}

fn agent_bench(bin: &Path, s: &Settings) -> anyhow::Result<String> {
    let nginx = Nginx::start();
    let url = nginx.url("/index.html");
    let dir = TempDir::new("bench-agent");
    const MODES: [&str; 6] = [
        "baseline: no tracer",
        "floor: an empty program on raw_syscalls/sys_enter",
        "agent (summary mode)",
        "agent --errors (and an exit program)",
        "record (stream mode)",
        "strace -f",
    ];
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); MODES.len()];
    let (mut ready_ms, mut rss, mut events) = (vec![], vec![], vec![]);
    wrk(&url, 1)?;
    for round in 0..s.rounds {
        for k in 0..MODES.len() {
            let m = (k + round) % MODES.len();
            let rps = match m {
                0 => wrk(&url, s.secs)?,
                1 => floor_run(bin, &url, s.secs)?,
                2 | 3 => {
                    let extra: &[&str] = if m == 3 { &["--errors"] } else { &[] };
                    let r = agent_run(bin, &nginx, &url, s.secs, extra)?;
                    if m == 2 {
                        ready_ms.push(r.ready_ms);
                        rss.push(r.rss_mib);
                        events.push(r.events);
                    }
                    r.rps
                }
                4 => {
                    let summary = dir.path("summary.json");
                    let t = start_phasebox(bin, nginx.pid(), &[], summary)?;
                    let rps = wrk(&url, s.secs)?;
                    stop(t)?;
                    rps
                }
                _ => {
                    let c = start_strace(&nginx)?;
                    let rps = wrk(&url, s.secs)?;
                    stop(Tracer::Strace(c))?;
                    rps
                }
            };
            eprintln!("bench: round {} {}: {rps:.0} req/s", round + 1, MODES[m]);
            results[m].push(rps);
        }
    }
    let med: Vec<f64> = results.iter_mut().map(|r| median(r)).collect();
    let mut out = format!(
        "## The agent on nginx\n\n\
         `phasebox agent -p MASTER --phases nginx` (summary mode: exact counters per process, \
         segment and syscall in the kernel; only segment openers and each syscall's first use in \
         a segment are sent), nginx {}, `wrk -t1 -c32 -d{}s`, {} rounds alternated. Median \
         requests/s, against no tracer and against the floor (what any tracer on the syscall \
         tracepoint costs).\n\n\
         | mode | median req/s | vs. baseline | vs. floor |\n|---|---|---|---|\n",
        nginx_version(),
        s.secs,
        s.rounds
    );
    for (m, name) in MODES.iter().enumerate() {
        out += &format!(
            "| {name} | {:.0} | {:.1}% | {:.1}% |\n",
            med[m],
            100.0 * med[m] / med[0],
            100.0 * med[m] / med[1]
        );
    }
    out += &format!(
        "\n| agent | median |\n|---|---|\n\
         | start to a non-empty /metrics | {:.0} ms |\n\
         | resident memory after a run | {:.1} MiB |\n\
         | events sent to userspace per run (summary mode) | {:.0} |\n",
        median(&mut ready_ms),
        median(&mut rss),
        median(&mut events)
    );
    Ok(out)
}
