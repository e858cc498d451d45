//! `cargo xtask bench --soak [MINUTES]` (60 by default): the agent as a DaemonSet runs it, for
//! MINUTES. nginx with 2 workers, reloaded every 15 s, served by wrk in short bursts, and a
//! shell beside it running short-lived processes at a steady rate, both under
//! `phasebox agent -p MASTER,SHELL --phases nginx --profile FILE --checkpoint 30s`. The agent's
//! memory, descriptors and kernel maps are sampled along the way, its accept4 count is held
//! against nginx's access log, and its final profile must show and export.
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use phasebox_tests::{
    CARGO_LIBRARY_PATH, Guard, TempDir,
    metrics::{scrape, settled, sum, value},
    nginx::{Nginx, free_port},
};

use crate::measure::{kernel_maps, load, rss_kib, status_kib, terminate};

pub const BEGIN: &str = "<!-- bench:soak:begin -->";
pub const END: &str = "<!-- bench:soak:end -->";

/// nginx is reloaded this often; every other reload is followed by a wrk burst.
const RELOAD_EVERY: Duration = Duration::from_secs(15);
/// Each burst: `wrk -t1 -c2 -d2s`, one request per connection (so one accept4 each).
const BURST: [&str; 5] = ["-t1", "-c2", "-d2s", "-H", "Connection: close"];
/// The short-lived processes: /bin/true and sleep, about ten of each a second.
const CHURN: &str = "while :; do /bin/true; sleep 0.1; done";
/// Memory growth is measured after this warm-up.
const WARMUP_MIN: f64 = 5.0;
/// The target for memory growth after the warm-up, in MB (10^6 bytes) per hour.
const GROWTH_TARGET: f64 = 1.0;

/// The soak's length in minutes: the number after `--soak`, or 60.
pub fn minutes(args: &[String]) -> anyhow::Result<u64> {
    let after = args.iter().skip_while(|a| *a != "--soak").nth(1);
    match after {
        Some(m) if !m.starts_with("--") => m
            .parse()
            .with_context(|| format!("--soak {m}: minutes, a whole number")),
        _ => Ok(60),
    }
}

/// What is measured at one moment.
struct Sample {
    minute: f64,
    rss_kib: f64,
    /// The anonymous part of it: the heap (the rest is the program's pages and the ring
    /// buffer's, mapped whole from the start).
    anon_kib: f64,
    fds: usize,
    /// Entries of each of the agent's hash maps, by name.
    maps: Vec<(String, usize)>,
    dropped: f64,
    map_full: f64,
    accept4: f64,
    execs: f64,
    /// Lines of nginx's access log: one per request served.
    requests: usize,
    profile_kib: u64,
    load: String,
}

/// Everything running during the soak.
struct Soak {
    nginx: Nginx,
    /// Taken (killed) when the soak ends.
    shell: Option<Guard>,
    agent: Guard,
    listen: String,
    profile: PathBuf,
    /// The agent's standard error, read to its end on a thread of its own.
    log: Option<JoinHandle<String>>,
    t0: Instant,
    reloads: u64,
    bursts: u64,
}

pub fn run(bin: &Path, minutes: u64) -> anyhow::Result<String> {
    let dir = TempDir::new("bench-soak");
    let load_before = load();
    let mut soak = start(bin, &dir)?;
    let mut samples = drive(&mut soak, minutes)?;
    samples.push(finish(&mut soak)?);
    let log = soak.log.take().map(|h| h.join().unwrap_or_default());
    let checks = check_profile(bin, &soak.profile, &dir)?;
    Ok(render(
        &soak,
        &samples,
        &checks,
        &log.unwrap_or_default(),
        &load_before,
    ))
}

/// nginx, the churning shell, then the agent on both.
fn start(bin: &Path, dir: &TempDir) -> anyhow::Result<Soak> {
    let nginx = Nginx::start_with(2, &[]);
    let shell = Guard::group(
        Command::new("/bin/bash")
            .args(["-c", CHURN])
            .env_remove(CARGO_LIBRARY_PATH)
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()?,
    );
    let listen = format!("127.0.0.1:{}", free_port());
    let profile = dir.path("soak.json");
    let pids = format!("{},{}", nginx.pid(), shell.id());
    let mut cmd = Command::new(bin);
    cmd.args(["agent", "-p", &pids, "--phases", "nginx", "--profile"])
        .arg(&profile)
        .args(["--checkpoint", "30s", "--listen", &listen]);
    let (agent, mut err, line) = phasebox_tests::spawn_agent_command(cmd);
    if !line.contains("metrics on") {
        bail!("the agent did not start: {line}");
    }
    let log = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut rest);
        rest
    });
    Ok(Soak {
        nginx,
        shell: Some(shell),
        agent,
        listen,
        profile,
        log: Some(log),
        t0: Instant::now(),
        reloads: 0,
        bursts: 0,
    })
}

/// The soak itself: a reload every 15 s, a burst before every other one, a sample at the
/// start and every few minutes.
fn drive(s: &mut Soak, minutes: u64) -> anyhow::Result<Vec<Sample>> {
    let every = Duration::from_secs(60 * (minutes / 12).clamp(1, 5));
    let total = Duration::from_secs(60 * minutes);
    let t0 = s.t0;
    let mut samples = vec![sample(s)?];
    let mut next_sample = every;
    while t0.elapsed() < total {
        if s.reloads.is_multiple_of(2) {
            crate::util::output(
                "wrk",
                &[&BURST[..], &[&s.nginx.url("/index.html")]].concat(),
            )?;
            s.bursts += 1;
        }
        let next = RELOAD_EVERY * (s.reloads as u32 + 1);
        std::thread::sleep(next.saturating_sub(t0.elapsed()));
        reload(&s.nginx)?;
        s.reloads += 1;
        if s.agent.try_wait()?.is_some() {
            bail!("the agent exited during the soak");
        }
        if t0.elapsed() >= next_sample {
            samples.push(sample(s)?);
            next_sample += every;
        }
    }
    Ok(samples)
}

/// `nginx -s reload`, then waits until both workers are new ones.
fn reload(nginx: &Nginx) -> anyhow::Result<()> {
    let old = nginx.workers();
    nginx.signal("reload");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = nginx.workers();
        if now.len() == 2 && now.iter().all(|p| !old.contains(p)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("no new workers 30 s after a reload: {}", nginx.error_log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The agent's memory, descriptors, maps and metrics, and nginx's requests, now.
fn sample(s: &Soak) -> anyhow::Result<Sample> {
    let pid = s.agent.id();
    let page = scrape(&s.listen);
    if page.is_empty() {
        bail!("the agent's /metrics did not answer");
    }
    let log = std::fs::read(s.nginx.dir.path("access.log")).unwrap_or_default();
    // + 0.0: an empty sum is -0.0.
    let syscalls = |name| sum(&page, "phasebox_syscalls_total", &[("syscall", name)]) + 0.0;
    let sample = Sample {
        minute: s.t0.elapsed().as_secs_f64() / 60.0,
        rss_kib: rss_kib(pid),
        anon_kib: status_kib(pid, "RssAnon:"),
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))?.count(),
        maps: kernel_maps(pid),
        dropped: value(&page, "phasebox_events_dropped_total", &[]).unwrap_or(f64::NAN),
        map_full: sum(&page, "phasebox_map_full_total", &[]) + 0.0,
        accept4: syscalls("accept4"),
        execs: syscalls("execve"),
        requests: log.iter().filter(|&&b| b == b'\n').count(),
        profile_kib: std::fs::metadata(&s.profile).map_or(0, |m| m.len() / 1024),
        load: load(),
    };
    eprintln!(
        "soak: {:.1} min: RSS {:.1} MiB (anonymous {:.1}), {} fds, maps {:?}, {} requests, accept4 {}",
        sample.minute,
        sample.rss_kib / 1024.0,
        sample.anon_kib / 1024.0,
        sample.fds,
        sample.maps,
        sample.requests,
        sample.accept4
    );
    Ok(sample)
}

/// Stops the churn, waits for the agent's counters to settle, takes the last sample, and
/// stops the agent (SIGTERM), which must write its profile and exit 0.
fn finish(s: &mut Soak) -> anyhow::Result<Sample> {
    drop(s.shell.take()); // kills the shell's process group
    let gap = Duration::from_millis(1500);
    settled(
        &s.listen,
        "phasebox_syscalls_total",
        gap,
        Duration::from_secs(60),
    );
    let last = sample(s)?;
    let status = terminate(&mut s.agent, Duration::from_secs(60))?;
    if !status.success() {
        bail!("the agent exited with {status}");
    }
    Ok(last)
}

/// `phasebox profile show` and `phasebox export` of the final profile must succeed; what
/// they say, in a sentence.
fn check_profile(bin: &Path, profile: &Path, dir: &TempDir) -> anyhow::Result<String> {
    let oci = dir.path("soak.oci.json");
    let show = Command::new(bin)
        .arg("profile")
        .arg("show")
        .arg(profile)
        .output()?;
    let export = Command::new(bin)
        .arg("export")
        .arg(profile)
        .arg("-o")
        .arg(&oci)
        .output()?;
    for (what, out) in [("profile show", &show), ("export", &export)] {
        if !out.status.success() {
            bail!(
                "phasebox {what} of the final profile failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let p = phasebox_tests::read_json(profile);
    let roles: Vec<String> = p["roles"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            format!(
                "{} ({} processes)",
                r["name"].as_str().unwrap_or("?"),
                r["processes"]
            )
        })
        .collect();
    let allowed: usize = phasebox_tests::read_json(&oci)["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["action"] == "SCMP_ACT_ALLOW")
        .filter_map(|r| r["names"].as_array().map(Vec::len))
        .sum();
    Ok(format!(
        "`phasebox profile show` succeeds ({} lines; roles {}); `phasebox export` writes an OCI \
         profile allowing {allowed} syscalls ({} KiB of profile)",
        String::from_utf8_lossy(&show.stdout).lines().count(),
        roles.join(", "),
        std::fs::metadata(profile)?.len() / 1024
    ))
}

/// KiB per minute to MB (10^6 bytes) per hour.
fn mb_per_hour(kib_per_min: f64) -> f64 {
    kib_per_min * 1024.0 * 60.0 / 1e6
}

/// The least-squares slope of `kib` (KiB) over minutes, for the samples after the warm-up.
fn growth(samples: &[Sample], kib: fn(&Sample) -> f64) -> f64 {
    let pts: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.minute >= WARMUP_MIN)
        .map(|s| (s.minute, kib(s)))
        .collect();
    let n = pts.len() as f64;
    let (mx, my) = pts
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let sxy: f64 = pts.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = pts.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    if pts.len() < 2 { f64::NAN } else { sxy / sxx }
}

/// The samples, one row each.
fn table(samples: &[Sample]) -> String {
    let names: Vec<&str> = samples[0].maps.iter().map(|(n, _)| n.as_str()).collect();
    let mut out = format!(
        "| minute | RSS MiB | anonymous MiB | fds | {} | processes run | requests | accept4 | dropped | profile KiB | load |\n|{}\n",
        names.join(" | "),
        "---|".repeat(names.len() + 10)
    );
    for s in samples {
        let maps: Vec<String> = names
            .iter()
            .map(|n| entries(s, n).map_or("-".into(), |e| e.to_string()))
            .collect();
        out += &format!(
            "| {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            s.minute,
            s.rss_kib / 1024.0,
            s.anon_kib / 1024.0,
            s.fds,
            maps.join(" | "),
            s.execs,
            s.requests,
            s.accept4,
            s.dropped,
            s.profile_kib,
            s.load
        );
    }
    out
}

/// The most entries each map held in any sample.
fn max_entries(samples: &[Sample]) -> String {
    let last = samples.last().expect("an end sample");
    let max: Vec<String> = last
        .maps
        .iter()
        .map(|(n, _)| {
            let max = samples.iter().filter_map(|x| entries(x, n)).max();
            format!("{n} {}", max.unwrap_or(0))
        })
        .collect();
    max.join(", ")
}

/// Entries of the map `name` in a sample.
fn entries(s: &Sample, name: &str) -> Option<usize> {
    s.maps.iter().find(|(n, _)| n == name).map(|(_, e)| *e)
}

/// met / not met, for a target (n/a for a number a short soak cannot give).
fn verdict(value: f64, target: f64) -> &'static str {
    match value {
        v if v.is_nan() => "n/a",
        v if v <= target => "met",
        _ => "not met",
    }
}

/// The section for BENCHMARKS.md.
fn render(s: &Soak, samples: &[Sample], checks: &str, log: &str, load_before: &str) -> String {
    let last = samples.last().expect("an end sample");
    format!(
        "## The agent over {:.0} minutes (soak)\n\n\
         `cargo xtask bench --soak {:.0}`: nginx with 2 workers on a loopback port and a shell \
         running `{CHURN}` beside it, both under `phasebox agent -p MASTER,SHELL --phases nginx \
         --profile FILE --checkpoint 30s` (release build, defaults otherwise). nginx is reloaded \
         (`nginx -s reload`, the next reload once both workers are new) every {} s, and before \
         every other reload `wrk {}` serves it, one request per connection. Samples at the \
         start, every few minutes and at the end (after the shell is killed and the agent's \
         counters have settled): the agent's resident memory (VmRSS: the program's pages, the \
         8 MiB ring buffer, which the kernel maps whole, twice over, from the start, and the \
         anonymous memory, its heap, shown apart), its open descriptors, the \
         entries of each of its hash maps (found by the map ids in /proc/AGENT/fdinfo, counted \
         with `bpftool map dump`), and from its /metrics the execve calls of the short-lived \
         processes, accept4 calls and dropped events; requests are the lines of nginx's access \
         log; load is the 1-minute load average (the machine's load average was {load_before} \
         at the start: other work ran on it throughout). The agent counts accept4 at its entry, \
         failed calls too: a worker woken for a connection the other worker took gets EAGAIN, \
         and a burst's last connections may close before their request; so accept4 can exceed \
         the requests logged, and falling short of them would be a lost count.\n\n{}\n{}\n\
         The final profile: {checks}.\n",
        last.minute,
        last.minute,
        RELOAD_EVERY.as_secs(),
        BURST
            .join(" ")
            .replace("Connection: close", "'Connection: close'"),
        table(samples),
        derived(s, samples, log),
    )
}

/// The numbers derived from the samples, against their targets.
fn derived(s: &Soak, samples: &[Sample], log: &str) -> String {
    let last = samples.last().expect("an end sample");
    let warm = samples
        .iter()
        .find(|x| x.minute >= WARMUP_MIN)
        .unwrap_or(last);
    let rate = mb_per_hour(growth(samples, |x| x.rss_kib));
    let anon_rate = mb_per_hour(growth(samples, |x| x.anon_kib));
    let fds = samples.iter().map(|x| x.fds);
    let (fmin, fmax) = (fds.clone().min().unwrap_or(0), fds.max().unwrap_or(0));
    let gap = last.accept4 - last.requests as f64;
    let warnings = log
        .lines()
        .filter(|l| l.contains("warn") || l.contains("error"))
        .count();
    format!(
        "| derived | value |\n|---|---|\n\
         | RSS at the start, at {WARMUP_MIN:.0} min, at the end | {:.1}, {:.1}, {:.1} MiB |\n\
         | RSS growth after the first {WARMUP_MIN:.0} minutes (least squares over the samples) | \
         {rate:.2} MB/h (target <= {GROWTH_TARGET}: {}) |\n\
         | of which anonymous memory (the heap) | {anon_rate:.2} MB/h |\n\
         | max entries per map | {} |\n\
         | open descriptors | {fmin} to {fmax} |\n\
         | events dropped | {} (target 0: {}) |\n\
         | writes a full map refused | {} |\n\
         | accept4 counted against requests logged | {} against {} ({gap:+}, {:.3}%) |\n\
         | reloads, wrk bursts, short-lived processes run | {}, {}, {} |\n\
         | agent log lines with a warning or an error | {warnings} |\n",
        samples[0].rss_kib / 1024.0,
        warm.rss_kib / 1024.0,
        last.rss_kib / 1024.0,
        verdict(rate, GROWTH_TARGET),
        max_entries(samples),
        last.dropped,
        verdict(last.dropped, 0.0),
        last.map_full,
        last.accept4,
        last.requests,
        100.0 * gap / last.requests as f64,
        s.reloads,
        s.bursts,
        last.execs,
    )
}
