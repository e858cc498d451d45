//! What the benchmark sections share: their settings, medians, wrk, a tracer attached to nginx
//! for one measurement, readings of a process (peak RSS of a command, RSS, CPU time, a scrape,
//! the BPF maps it holds), a phasebox command run to its end, and a child stopped by SIGTERM.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use phasebox_tests::nginx::Nginx;

use crate::util;

/// How long and how often to measure.
pub struct Settings {
    pub rounds: usize,
    pub secs: u64,
    pub storm_calls: u64,
    /// Events in the trace the phase detectors analyze.
    pub trace_events: u64,
    /// `--quick`: a look at the numbers, not a measurement (no extra rounds).
    pub quick: bool,
}

pub fn settings(args: &[String]) -> Settings {
    let quick = args.iter().any(|a| a == "--quick");
    Settings {
        rounds: if quick { 2 } else { 5 },
        secs: if quick { 2 } else { 5 },
        storm_calls: if quick { 2_000_000 } else { 10_000_000 },
        trace_events: if quick { 2_000_000 } else { 10_000_000 },
        quick,
    }
}

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
pub enum Tracer {
    None,
    Phasebox(Child, PathBuf),
    Strace(Child),
}

/// Starts `phasebox record` and waits until it says it is tracing.
pub fn start_phasebox(
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
pub fn interrupt(child: &mut Child, must_succeed: bool) -> anyhow::Result<()> {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let st = child.wait()?;
    if must_succeed && !st.success() {
        bail!("tracer exited with {st}");
    }
    Ok(())
}

/// Stops the tracer; returns (events delivered, dropped) for phasebox.
pub fn stop(t: Tracer) -> anyhow::Result<Option<(u64, u64)>> {
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

/// `strace -f` attached to nginx's master and workers.
pub fn start_strace(nginx: &Nginx) -> anyhow::Result<Child> {
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-o", "/dev/null"]);
    for pid in std::iter::once(nginx.pid()).chain(nginx.workers()) {
        cmd.args(["-p", &pid.to_string()]);
    }
    let c = cmd.stderr(Stdio::null()).spawn()?;
    std::thread::sleep(Duration::from_millis(500)); // attach
    Ok(c)
}

pub fn nginx_version() -> String {
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

/// A fresh nginx per mode (label, the command it starts under) and round, modes alternated;
/// each mode's median requests/s.
pub fn nginx_medians(modes: &[(&str, Vec<&str>)], s: &Settings) -> anyhow::Result<Vec<f64>> {
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
pub fn metric_sum(text: &str, prefix: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn scrape(listen: &str) -> String {
    util::output(
        "curl",
        &["-s", "--max-time", "2", &format!("http://{listen}/metrics")],
    )
    .unwrap_or_default()
}

/// KiB of resident memory of `pid` (VmRSS).
pub fn rss_kib(pid: u32) -> f64 {
    status_kib(pid, "VmRSS:")
}

/// A size field of /proc/PID/status (`VmRSS:`, `RssAnon:`…), in KiB (NaN when unreadable).
pub fn status_kib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .map(|v| v.trim().trim_end_matches(" kB").trim().to_string())
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The 1-minute load average: other work on the machine shows in every number.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "?".into())
}

/// Runs phasebox; its stderr. Fails unless `may_fail`.
pub fn phasebox(bin: &Path, args: &[&str], may_fail: bool) -> anyhow::Result<(bool, String)> {
    let out = Command::new(bin)
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .with_context(|| format!("cannot run phasebox {args:?}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() && !may_fail {
        bail!("phasebox {args:?} failed: {stderr}");
    }
    Ok((out.status.success(), stderr))
}

/// Entries of each hash map the agent `pid` holds, by name (arrays are always full, the ring
/// buffer has no entries).
pub fn kernel_maps(pid: u32) -> Vec<(String, usize)> {
    let own = phasebox_tests::bpf_maps_of(pid);
    let all = phasebox_tests::bpftool(&["map", "show"]);
    let mut maps: Vec<(String, usize)> = all
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["type"].as_str().is_some_and(|t| t.contains("hash")))
        .filter_map(|m| {
            let id = u32::try_from(m["id"].as_u64()?).ok()?;
            let name = m["name"].as_str()?.to_string();
            own.contains(&id)
                .then(|| (name, phasebox_tests::map_entries(id)))
        })
        .collect();
    maps.sort();
    maps
}

/// KiB of kernel memory charged to the BPF maps `pid` holds: the `memlock` lines of its map
/// descriptors in /proc/PID/fdinfo, each map counted once.
pub fn map_memlock_kib(pid: u32) -> f64 {
    let mut by_map = std::collections::BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return f64::NAN;
    };
    for e in dir.flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if let (Some(id), Some(bytes)) = (field("map_id:"), field("memlock:")) {
            by_map.insert(id, bytes);
        }
    }
    by_map.values().sum::<u64>() as f64 / 1024.0
}

/// CPU time `pid` has used so far (user and system, from /proc/PID/stat), in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // The fields after the command name: state is the first, utime the 12th, stime the 13th.
    let after = text.rfind(')').map_or("", |i| &text[i + 1..]);
    let ticks: u64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    ticks as f64 / hz as f64
}

/// SIGTERM to a child, then waits at most `limit` for it to exit; its status.
pub fn terminate(child: &mut Child, limit: Duration) -> anyhow::Result<std::process::ExitStatus> {
    if let Some(st) = child.try_wait()? {
        return Ok(st);
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(st);
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "pid {} did not stop within {limit:?} of SIGTERM",
                child.id()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
