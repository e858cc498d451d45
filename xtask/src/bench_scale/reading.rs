//! An agent under measurement, and what is read of it: while its workload is live (CPU,
//! memory, timed scrapes, kernel maps) and once its counters have settled (its page, its peak
//! memory).
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use phasebox_tests::{
    Guard,
    lines::Lines,
    metrics::{parse, settled, sum, value},
    nginx::free_port,
};

use crate::measure::{
    cpu_seconds, kernel_maps, map_memlock_kib, median, rss_kib, status_kib, terminate,
};

/// Timed GETs of /metrics per agent, this far apart.
pub const SCRAPES: usize = 10;
const SCRAPE_GAP: Duration = Duration::from_millis(500);
/// How long the agent's CPU use is measured, with nothing scraping it.
pub const CPU_WINDOW: Duration = Duration::from_secs(20);
/// The counters have settled when two scrapes this far apart show the same calls.
const SETTLE_GAP: Duration = Duration::from_secs(2);
const SETTLE_LIMIT: Duration = Duration::from_secs(120);

/// `phasebox agent`, killed on drop, its standard error followed.
pub struct Agent {
    process: Guard,
    listen: String,
    port: u16,
    log: Lines,
}

impl Agent {
    /// Starts `phasebox agent ARGS` on a free loopback port (BPF statistics off: the cost
    /// section measures them) and waits until it says where it serves.
    pub fn start(bin: &Path, args: &[&str]) -> anyhow::Result<Agent> {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(bin);
        cmd.arg("agent")
            .args(args)
            .args(["--listen", &listen, "--bpf-stats-every", "off"]);
        let (process, err, line) = phasebox_tests::spawn_agent_command(cmd);
        if !line.contains("metrics on") {
            bail!("the agent did not start: {line}");
        }
        Ok(Agent {
            process,
            listen,
            port,
            log: Lines::follow(err),
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Where it serves /metrics (`127.0.0.1:PORT`).
    pub fn listen(&self) -> &str {
        &self.listen
    }

    /// Stops the agent (SIGTERM), which must exit with status 0 (it may have ended by
    /// itself, its processes gone); the lines of its log with a warning or an error.
    pub fn stop(mut self) -> anyhow::Result<Vec<String>> {
        let status = terminate(&mut self.process, Duration::from_secs(60))?;
        let log = self.log.rest(Duration::from_secs(5));
        if !status.success() {
            bail!("the agent exited with {status}: {log}");
        }
        Ok(log
            .lines()
            .filter(|l| l.contains("warn") || l.contains("error"))
            .map(String::from)
            .collect())
    }
}

/// What is measured of an agent while its workload is live.
pub struct Live {
    /// CPU time over [`CPU_WINDOW`], in percent of one core.
    pub cpu_pct: f64,
    pub rss_mib: f64,
    /// The timed GETs of /metrics, in ms.
    pub scrape_ms: Vec<f64>,
    /// Kernel memory of its BPF maps.
    pub maps_mib: f64,
    /// Entries of its hash maps, by name.
    pub entries: Vec<(String, usize)>,
}

impl Live {
    pub fn scrape_median(&self) -> f64 {
        median(&mut self.scrape_ms.clone())
    }

    pub fn scrape_max(&self) -> f64 {
        self.scrape_ms.iter().copied().fold(f64::NAN, f64::max)
    }
}

/// The agents' CPU use over one window (together, nothing scraping them), then for each in
/// turn: [`SCRAPES`] timed GETs of /metrics (connect to the last byte of the page), its
/// resident memory and its kernel maps.
pub fn live(agents: &[&Agent]) -> anyhow::Result<Vec<Live>> {
    let before: Vec<f64> = agents.iter().map(|a| cpu_seconds(a.pid())).collect();
    let t0 = Instant::now();
    std::thread::sleep(CPU_WINDOW);
    let secs = t0.elapsed().as_secs_f64();
    let used: Vec<f64> = agents
        .iter()
        .zip(before)
        .map(|(a, b)| 100.0 * (cpu_seconds(a.pid()) - b) / secs)
        .collect();
    agents
        .iter()
        .zip(used)
        .map(|(a, cpu_pct)| {
            let mut scrape_ms = Vec::new();
            for _ in 0..SCRAPES {
                let t = Instant::now();
                let (status, _) = phasebox_tests::http::request(a.port, "GET", "/metrics")
                    .map_err(anyhow::Error::msg)?;
                scrape_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                if status != 200 {
                    bail!("/metrics answered {status}");
                }
                std::thread::sleep(SCRAPE_GAP);
            }
            Ok(Live {
                cpu_pct,
                rss_mib: rss_kib(a.pid()) / 1024.0,
                scrape_ms,
                maps_mib: map_memlock_kib(a.pid()) / 1024.0,
                entries: kernel_maps(a.pid()),
            })
        })
        .collect()
}

/// What the agent's page says once its call counters have settled, and its peak memory.
pub struct End {
    pub page: String,
    pub hwm_mib: f64,
}

impl End {
    /// Waits until the agent's call counters no longer move (a panic, which fails the row,
    /// when they still move after [`SETTLE_LIMIT`]).
    pub fn settle(agent: &Agent) -> anyhow::Result<End> {
        let page = settled(
            &agent.listen,
            "phasebox_syscalls_total",
            SETTLE_GAP,
            SETTLE_LIMIT,
        );
        let hwm = status_kib(agent.pid(), "VmHWM:");
        if hwm.is_nan() {
            bail!("the agent is gone");
        }
        Ok(End {
            page,
            hwm_mib: hwm / 1024.0,
        })
    }

    /// Series of per-call counts on the page.
    pub fn series(&self) -> usize {
        parse(&self.page)
            .iter()
            .filter(|s| s.name == "phasebox_syscalls_total")
            .count()
    }

    pub fn page_kib(&self) -> f64 {
        self.page.len() as f64 / 1024.0
    }

    /// The sum of `name`'s samples whose labels include every `with`.
    pub fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        // + 0.0: an empty sum is -0.0.
        sum(&self.page, name, with) + 0.0
    }

    /// The value of an unlabelled metric of the agent's own (NaN when missing).
    pub fn own(&self, name: &str) -> f64 {
        value(&self.page, name, &[]).unwrap_or(f64::NAN)
    }

    /// Writes refused by a full kernel map, by map (the maps that refused any).
    pub fn map_full(&self) -> Vec<(String, f64)> {
        parse(&self.page)
            .into_iter()
            .filter(|s| s.name == "phasebox_map_full_total" && s.value > 0.0)
            .map(|s| (s.labels.get("map").cloned().unwrap_or_default(), s.value))
            .collect()
    }

    /// Label sets of the per-call counts folded into `_other` by `--metrics.max-series`.
    pub fn folded(&self) -> f64 {
        self.sum(
            "phasebox_series_folded",
            &[("metric", "phasebox_syscalls_total")],
        )
    }
}

/// A line of a workload's output that says `word N`: N.
pub fn number_after(lines: &mut Lines, word: &str, limit: Duration) -> anyhow::Result<u64> {
    let line = lines
        .wait_for(&format!("{word} "), limit)
        .map_err(anyhow::Error::msg)?;
    line.trim()
        .strip_prefix(word)
        .and_then(|n| n.trim().parse().ok())
        .with_context(|| format!("not `{word} N`: {line}"))
}
