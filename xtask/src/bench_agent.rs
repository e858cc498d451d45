//! The agent on nginx: throughput against the floor program and no tracer, its RSS, the time
//! to its first metrics page.
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use phasebox_tests::TempDir;
use phasebox_tests::nginx::Nginx;

use crate::measure::{
    Settings, Tracer, interrupt, median, metric_sum, nginx_version, rss_kib, scrape,
    start_phasebox, start_strace, stop, wrk,
};

pub const BEGIN: &str = "<!-- bench:agent:begin -->";

pub const END: &str = "<!-- bench:agent:end -->";

/// nginx's processes run on this CPU, wrk on the other one (the machine has two).
pub const NGINX_CPU: &str = "1";
pub const WRK_CPU: &str = "0";

/// The agent in summary mode on nginx, side by side with no tracer, `record` (stream mode)
/// and strace; time to a non-empty /metrics, the agent's memory and the kernel programs' cost.
/// The agent's own run on nginx: throughput, time to a first page, memory, events sent.
struct AgentRun {
    rps: f64,
    ready_ms: f64,
    rss_mib: f64,
    events: f64,
}

/// `phasebox agent -p PID --phases nginx` (with `extra`), once it serves metrics; its
/// address and the time that took.
pub fn start_agent(bin: &Path, pid: u32, extra: &[&str]) -> anyhow::Result<(Child, String, f64)> {
    let listen = format!("127.0.0.1:{}", phasebox_tests::nginx::free_port());
    let t0 = std::time::Instant::now();
    let mut agent = Command::new(bin)
        .args(["agent", "-p", &pid.to_string(), "--phases", "nginx"])
        .args(["--listen", &listen])
        // Run-time statistics are sampled by default; the cost section measures them apart.
        .args(["--bpf-stats-every", "off"])
        .args(extra)
        .stderr(Stdio::null())
        .spawn()?;
    while !scrape(&listen).contains("phasebox_tracked_processes") {
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = agent.kill();
            let _ = agent.wait();
            bail!("the agent served no metrics");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok((agent, listen, t0.elapsed().as_secs_f64() * 1000.0))
}

/// `phasebox agent -p MASTER` (with `extra`) on nginx while wrk runs.
fn agent_run(
    bin: &Path,
    nginx: &Nginx,
    url: &str,
    secs: u64,
    extra: &[&str],
) -> anyhow::Result<AgentRun> {
    let (mut agent, listen, ready_ms) = start_agent(bin, nginx.pid(), extra)?;
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

/// Pins every thread of nginx's master and workers to NGINX_CPU.
pub fn pin_nginx(nginx: &Nginx) -> anyhow::Result<()> {
    for pid in std::iter::once(nginx.pid()).chain(nginx.workers()) {
        crate::util::output("taskset", &["-a", "-p", "-c", NGINX_CPU, &pid.to_string()])?;
    }
    Ok(())
}

/// Runs `f` with this process (and what it starts: wrk, the tracers) on WRK_CPU only, then
/// gives it back every CPU it had.
fn on_wrk_cpu<T>(f: impl FnOnce() -> T) -> anyhow::Result<T> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity and sched_setaffinity read and write
    // only the set passed, for this thread (pid 0).
    unsafe {
        let mut before: libc::cpu_set_t = std::mem::zeroed();
        let size = size_of::<libc::cpu_set_t>();
        if libc::sched_getaffinity(0, size, &mut before) != 0 {
            bail!("sched_getaffinity: {}", std::io::Error::last_os_error());
        }
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(WRK_CPU.parse()?, &mut one);
        if libc::sched_setaffinity(0, size, &one) != 0 {
            bail!("sched_setaffinity: {}", std::io::Error::last_os_error());
        }
        let out = f();
        libc::sched_setaffinity(0, size, &before);
        Ok(out)
    }
}

/// The 95% confidence half-width of the mean of `ratios`, in points (100 × ratio).
pub fn spread_points(ratios: &[f64]) -> f64 {
    let n = ratios.len() as f64;
    if n < 2.0 {
        return f64::INFINITY;
    }
    let mean = ratios.iter().sum::<f64>() / n;
    let var = ratios.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
    100.0 * 1.96 * (var / n).sqrt()
}

/// Each round's `mode` requests/s over the same round's floor.
fn ratios(results: &[Vec<f64>], mode: usize) -> Vec<f64> {
    results[mode]
        .iter()
        .zip(&results[1])
        .map(|(m, f)| m / f)
        .collect()
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

pub fn agent_bench(bin: &Path, s: &Settings) -> anyhow::Result<String> {
    on_wrk_cpu(|| pinned_bench(bin, s))?
}

/// [`agent_bench`] once this process is on WRK_CPU.
fn pinned_bench(bin: &Path, s: &Settings) -> anyhow::Result<String> {
    let nginx = Nginx::start();
    let url = nginx.url("/index.html");
    let dir = TempDir::new("bench-agent");
    const MODES: [&str; 7] = [
        "baseline: no tracer",
        "floor: an empty program on raw_syscalls/sys_enter",
        "agent (summary mode)",
        "agent --errors (and an exit program)",
        "record (stream mode)",
        "record --entry-only (stream mode, no exit program)",
        "strace -f",
    ];
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); MODES.len()];
    let (mut ready_ms, mut rss, mut events) = (vec![], vec![], vec![]);
    pin_nginx(&nginx)?;
    wrk(&url, 1)?;
    let (agent, record) = (2, 4);
    for round in 0..s.rounds {
        let order = (0..MODES.len()).map(|k| (k + round) % MODES.len());
        for m in order {
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
                4 | 5 => {
                    let summary = dir.path("summary.json");
                    let extra: &[&str] = if m == 5 { &["--entry-only"] } else { &[] };
                    let t = start_phasebox(bin, nginx.pid(), extra, summary)?;
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
    let spreads: Vec<(f64, f64)> = [agent, record]
        .iter()
        .map(|&m| {
            let mut r = ratios(&results, m);
            (median(&mut r), spread_points(&r))
        })
        .collect();
    // Medians of copies: `median` sorts, and the rounds stay paired below.
    let med: Vec<f64> = results.iter().map(|r| median(&mut r.clone())).collect();
    let mut out = format!(
        "## The agent on nginx\n\n\
         `phasebox agent -p MASTER --phases nginx` (summary mode: exact counters per process, \
         segment and syscall in the kernel; only segment openers and each syscall's first use in \
         a segment are sent), nginx {} (master and worker pinned to CPU {NGINX_CPU}), `wrk -t1 \
         -c32 -d{}s` pinned to CPU {WRK_CPU}, {} rounds of every mode alternated, one after \
         the other. Median requests/s; against no tracer and against the floor (what any tracer \
         on the syscall tracepoint costs), the median of each round's ratio to the same \
         round's run. The machine's noise moves rounds by up to a fifth: the side-by-side \
         measurement below is the precise one.\n\n\
         | mode | median req/s | vs. baseline | vs. floor |\n|---|---|---|---|\n",
        nginx_version(),
        s.secs,
        s.rounds,
    );
    for (m, name) in MODES.iter().enumerate() {
        // Each round against the same round's baseline and floor, never median against
        // median.
        let vs = |base: usize| {
            let mut r: Vec<f64> = results[m]
                .iter()
                .zip(&results[base])
                .map(|(x, b)| x / b)
                .collect();
            100.0 * median(&mut r)
        };
        out += &format!(
            "| {name} | {:.0} | {:.1}% | {:.1}% |\n",
            med[m],
            vs(0),
            vs(1)
        );
    }
    out += &format!(
        "\nPer round, over the same round's floor: agent {:.3} (median; 95% half-width {:.1} \
         points), record {:.3} ({:.1} points).\n",
        spreads[0].0, spreads[0].1, spreads[1].0, spreads[1].1
    );
    out += &format!(
        "\n| agent | median |\n|---|---|\n\
         | start to a non-empty /metrics | {:.0} ms |\n\
         | resident memory after a run | {:.1} MiB |\n\
         | events sent to userspace per run (summary mode) | {:.0} |\n",
        median(&mut ready_ms),
        median(&mut rss),
        median(&mut events)
    );
    drop(nginx);
    out += &crate::bench_agent_pair::side_by_side(bin, s)?;
    Ok(out)
}
