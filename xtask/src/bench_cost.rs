//! The per-syscall cost benchmark: what a tracer adds to each syscall of the process it traces
//! ("traced") and of every other process on the host ("others"), in ns per call.
//!
//! A getppid loop pinned to one CPU (tests/fixtures/syscall_loop.c) is timed without a tracer,
//! with the tracer attached to the loop, and with the tracer attached to an idle process while
//! the loop runs untraced; each tracer's numbers are differences against untraced runs just
//! before and after, and every tracer is measured in the same run, rounds alternated. The floor
//! is an empty program on raw_syscalls/sys_enter: what any tracer there pays. The kernel's own
//! per-program run time is measured in a separate pass with BPF statistics on (they add their
//! own cost, so never during the timed runs).
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use phasebox_tests::fixture;

use crate::measure::median;

pub const BEGIN: &str = "<!-- bench:cost:begin -->";
pub const END: &str = "<!-- bench:cost:end -->";

/// The loop, waiting for a number of calls on stdin.
struct Loop {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Loop {
    /// The loop on `cpu`, making `call` ("getppid" or "fcntl").
    fn start(cpu: u32, call: &str) -> anyhow::Result<Loop> {
        let mut child = Command::new(fixture("syscall_loop"))
            .arg(cpu.to_string())
            .arg(call)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the syscall loop")?;
        let stdin = child.stdin.take().context("loop stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("loop stdout")?);
        Ok(Loop {
            child,
            stdin,
            stdout,
        })
    }

    /// ns per call of `calls` calls.
    fn time(&mut self, calls: u64) -> anyhow::Result<f64> {
        writeln!(self.stdin, "{calls}")?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        line.trim()
            .parse()
            .with_context(|| format!("the loop said {line:?}"))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One tracer configuration.
#[derive(Clone, Copy)]
struct Config {
    name: &'static str,
    what: &'static str,
    /// The command, with `{pid}` for the traced process; empty for no tracer.
    argv: &'static [&'static str],
    /// Text the tracer prints when it is attached.
    ready: &'static str,
}

const CONFIGS: &[Config] = &[
    Config {
        name: "floor",
        what: "an empty program on raw_syscalls/sys_enter (`phasebox floor`)",
        argv: &["{bin}", "floor"],
        ready: "attached",
    },
    Config {
        name: "floor + pid",
        what: "the floor and `bpf_get_current_pid_tgid` (`phasebox floor --step pid`)",
        argv: &["{bin}", "floor", "--step", "pid"],
        ready: "attached",
    },
    Config {
        name: "floor + pid + 1 word",
        what: "the floor, the pid and one word of a pid bitmap (`phasebox floor --step bit`): \
               a filter by pid; the agent's filter reads two words where its thread cache \
               misses (or is off)",
        argv: &["{bin}", "floor", "--step", "bit"],
        ready: "attached",
    },
    Config {
        name: "floor, enter + exit",
        what: "empty programs on raw_syscalls/sys_enter and sys_exit (`phasebox floor --step \
               exit`): what any tracer that sees each call's return pays",
        argv: &["{bin}", "floor", "--step", "exit"],
        ready: "attached",
    },
    Config {
        name: "bpftrace",
        what: "bpftrace `tracepoint:raw_syscalls:sys_enter /pid == P/ { @[args->id] = count(); }`",
        argv: &[
            "bpftrace",
            "-e",
            "tracepoint:raw_syscalls:sys_enter /pid == {pid}/ { @[args->id] = count(); }",
        ],
        ready: "Attaching",
    },
    Config {
        name: "agent",
        what: "`phasebox agent -p P` (summary mode)",
        argv: &[
            "{bin}",
            "agent",
            "-p",
            "{pid}",
            "--listen",
            "127.0.0.1:0",
            "--bpf-stats-every",
            "off",
        ],
        ready: "metrics on",
    },
    Config {
        name: "agent --no-args",
        what: "`phasebox agent -p P --no-args` (summary mode, no arguments recorded)",
        argv: &[
            "{bin}",
            "agent",
            "-p",
            "{pid}",
            "--no-args",
            "--listen",
            "127.0.0.1:0",
            "--bpf-stats-every",
            "off",
        ],
        ready: "metrics on",
    },
    Config {
        name: "agent --errors",
        what: "`phasebox agent -p P --errors` (summary mode and failed calls: an exit program too)",
        argv: &[
            "{bin}",
            "agent",
            "-p",
            "{pid}",
            "--errors",
            "--listen",
            "127.0.0.1:0",
            "--bpf-stats-every",
            "off",
        ],
        ready: "metrics on",
    },
    Config {
        name: "record",
        what: "`phasebox record -p P` (every call streamed)",
        argv: &["{bin}", "record", "-q", "-p", "{pid}"],
        ready: "tracing pid",
    },
    Config {
        name: "record --entry-only",
        what: "`phasebox record -p P --entry-only` (every call streamed at its entry: no exit program)",
        argv: &["{bin}", "record", "-q", "-p", "{pid}", "--entry-only"],
        ready: "tracing pid",
    },
    Config {
        name: "record --profile",
        what: "`phasebox record -p P --profile F` (streamed with paths, phases learned)",
        argv: &[
            "{bin}",
            "record",
            "-q",
            "-p",
            "{pid}",
            "--profile",
            "{profile}",
        ],
        ready: "tracing pid",
    },
];

/// A tracer running.
struct Running {
    child: Child,
}

impl Running {
    fn start(c: &Config, bin: &Path, pid: u32, dir: &Path) -> anyhow::Result<Running> {
        let profile = dir.join("cost.profile.json");
        let argv: Vec<String> = c
            .argv
            .iter()
            .map(|a| {
                a.replace("{bin}", &bin.display().to_string())
                    .replace("{pid}", &pid.to_string())
                    .replace("{profile}", &profile.display().to_string())
            })
            .collect();
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", argv[0]))?;
        wait_ready(&mut child, c.ready).with_context(|| format!("{} did not attach", c.name))?;
        Ok(Running { child })
    }

    fn stop(mut self) -> anyhow::Result<()> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("a tracer did not stop");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

/// Reads the tracer's stdout and stderr until one says `ready`.
fn wait_ready(child: &mut Child, ready: &str) -> anyhow::Result<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        let ready = ready.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if line.contains(&ready) {
                    let _ = tx.send(());
                }
            }
        });
    }
    rx.recv_timeout(Duration::from_secs(60))
        .context("no ready line within 60 s")
}

/// Differences against the untraced runs around each traced one, per round.
#[derive(Default)]
struct Deltas {
    traced: Vec<f64>,
    others: Vec<f64>,
}

/// Times the loop before, with `c` attached to `target`, and after; returns with minus the
/// mean of before and after.
fn delta(
    lp: &mut Loop,
    c: &Config,
    bin: &Path,
    target: u32,
    calls: u64,
    dir: &Path,
) -> anyhow::Result<(f64, f64)> {
    let before = lp.time(calls)?;
    let t = Running::start(c, bin, target, dir)?;
    let with = lp.time(calls)?;
    t.stop()?;
    let after = lp.time(calls)?;
    Ok((with - (before + after) / 2.0, (before + after) / 2.0))
}

/// Run time per run of each new BPF program while `c` traces `target` and the loop runs
/// (statistics on for this pass only); also their sizes.
fn kernel_cost(
    lp: &mut Loop,
    c: &Config,
    bin: &Path,
    target: u32,
    dir: &Path,
) -> anyhow::Result<Vec<(String, f64, u64, u64)>> {
    let before: BTreeSet<u64> = progs()?.iter().filter_map(|p| p["id"].as_u64()).collect();
    util_sysctl("kernel.bpf_stats_enabled", "1")?;
    let t = Running::start(c, bin, target, dir);
    let result = (|| -> anyhow::Result<Vec<(String, f64, u64, u64)>> {
        let t = t?;
        let _ = lp.time(2_000_000)?;
        let mut out = Vec::new();
        for p in progs()? {
            let id = p["id"].as_u64().unwrap_or(0);
            let name = p["name"].as_str().unwrap_or("?").to_string();
            let runs = p["run_cnt"].as_u64().unwrap_or(0);
            if before.contains(&id)
                || runs == 0
                || !name.contains("sys_e") && !name.starts_with("pb_floor")
            {
                continue;
            }
            let ns = p["run_time_ns"].as_u64().unwrap_or(0) as f64 / runs as f64;
            let xlated = p["bytes_xlated"].as_u64().unwrap_or(0) / 8;
            let jited = p["bytes_jited"].as_u64().unwrap_or(0);
            out.push((name, ns, xlated, jited));
        }
        t.stop()?;
        Ok(out)
    })();
    util_sysctl("kernel.bpf_stats_enabled", "0")?;
    result
}

fn progs() -> anyhow::Result<Vec<serde_json::Value>> {
    let out = crate::util::output("bpftool", &["-j", "prog", "show"])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    Ok(v.as_array().cloned().unwrap_or_default())
}

fn util_sysctl(key: &str, value: &str) -> anyhow::Result<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    std::fs::write(&path, value).with_context(|| format!("cannot set {key}"))
}

/// Median wall time of `argv`, run `n` times.
fn wall_ms(argv: &[&str], n: usize) -> anyhow::Result<f64> {
    let mut times = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let st = Command::new(argv[0])
            .args(&argv[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !st.success() {
            bail!("{argv:?} failed");
        }
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(median(&mut times))
}

/// The benchmark's Markdown section.
pub fn run(bin: &Path, rounds: usize, calls: u64) -> anyhow::Result<String> {
    let b = bin.to_str().context("UTF-8 path")?;
    let startup = (
        wall_ms(&[b, "run", "-q", "--", "/bin/true"], 20)?,
        wall_ms(&["/bin/true"], 20)?,
    );
    let dir = phasebox_tests::TempDir::new("cost");
    let mut lp = Loop::start(1, "getppid")?;
    let mut idle = Command::new("sleep").arg("3600").spawn()?;
    let idle_pid = idle.id();
    let loop_pid = lp.child.id();
    let _ = lp.time(calls)?; // warm up
    let mut deltas: Vec<Deltas> = CONFIGS.iter().map(|_| Deltas::default()).collect();
    let mut untraced = Vec::new();
    for round in 0..rounds {
        for (i, c) in CONFIGS.iter().enumerate() {
            let (t, base) = delta(&mut lp, c, bin, loop_pid, calls, &dir.0)?;
            let (o, base2) = delta(&mut lp, c, bin, idle_pid, calls, &dir.0)?;
            deltas[i].traced.push(t);
            deltas[i].others.push(o);
            untraced.extend([base, base2]);
            eprintln!(
                "bench: cost round {}/{rounds}: {} traced {t:+.1} ns, others {o:+.1} ns",
                round + 1,
                c.name
            );
        }
    }
    let mut kernel = Vec::new();
    for c in CONFIGS {
        let traced = kernel_cost(&mut lp, c, bin, loop_pid, &dir.0)?;
        let others = kernel_cost(&mut lp, c, bin, idle_pid, &dir.0)?;
        kernel.push((c.name, traced, others));
    }
    let _ = idle.kill();
    let _ = idle.wait();
    let mut s = render(rounds, calls, &mut untraced, &mut deltas, &kernel);
    s.push_str(&recorded_arguments(bin, rounds, calls, &dir.0)?);
    s.push_str(&format!(
        "\n`phasebox run -q -- /bin/true`, wall time from start to exit (loading and verifying \
         the programs, launching; the detach's grace periods are waited for by a child after \
         phasebox has exited): median of 20 runs {:.0} ms (`/bin/true` \
         alone: {:.1} ms).\n",
        startup.0, startup.1
    ));
    Ok(s)
}

/// The agent on a loop of a call whose arguments it records (fcntl), with and without
/// recording them: what recording adds to such a call.
fn recorded_arguments(bin: &Path, rounds: usize, calls: u64, dir: &Path) -> anyhow::Result<String> {
    let mut lp = Loop::start(1, "fcntl")?;
    let pid = lp.child.id();
    let _ = lp.time(calls)?; // warm up
    let configs: Vec<&Config> = CONFIGS
        .iter()
        .filter(|c| c.name == "agent" || c.name == "agent --no-args")
        .collect();
    let mut traced: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    let mut untraced = Vec::new();
    for round in 0..rounds {
        for (i, c) in configs.iter().enumerate() {
            let (t, base) = delta(&mut lp, c, bin, pid, calls, dir)?;
            traced[i].push(t);
            untraced.push(base);
            eprintln!(
                "bench: cost round {}/{rounds}: {} on fcntl traced {t:+.1} ns",
                round + 1,
                c.name
            );
        }
    }
    let mut m: Vec<f64> = traced.iter_mut().map(|v| median(v)).collect();
    let (with, without) = (m.remove(0), m.remove(0));
    Ok(format!(
        "\nA call whose arguments the agent records (a pinned `fcntl(0, F_GETFD)` loop, \
         untraced median {:.1} ns per call, {rounds} rounds alternated as above): the agent \
         adds {with:+.1} ns per call, the agent with `--no-args` {without:+.1} ns: recording \
         the arguments costs {:+.1} ns on such a call. Calls outside the set pay nothing for it \
         (the getppid rows `agent` and `agent --no-args` above).\n",
        median(&mut untraced),
        with - without
    ))
}

type KernelRows<'a> = [(
    &'a str,
    Vec<(String, f64, u64, u64)>,
    Vec<(String, f64, u64, u64)>,
)];

fn render(
    rounds: usize,
    calls: u64,
    untraced: &mut [f64],
    deltas: &mut [Deltas],
    kernel: &KernelRows,
) -> String {
    let mut s = String::new();
    s.push_str("## Per-syscall cost: the traced process and every other process\n\n");
    s.push_str(&format!(
        "A getppid loop pinned to CPU 1 (`tests/fixtures/syscall_loop.c`), {calls} calls per \
         timing, untraced: median {:.1} ns per call. Each tracer is attached to the loop \
         (traced) or to an idle process while the loop runs untraced (others); each number is \
         the median over {rounds} rounds of the timing with the tracer minus the mean of the \
         untraced timings just before and after it, all tracers alternated in one run on this \
         2-core machine. The kernel columns come from a separate pass with \
         `kernel.bpf_stats_enabled=1` (run time per run of the tracer's syscall programs, \
         while the loop runs traced, and untraced), never on during the timings.\n\n",
        median(untraced)
    ));
    s.push_str("| tracer | traced: +ns/call | others: +ns/call | kernel ns/run traced | kernel ns/run others | instructions (xlated) | JIT bytes |\n|---|---|---|---|---|---|---|\n");
    for ((c, d), (_, kt, ko)) in CONFIGS.iter().zip(deltas.iter_mut()).zip(kernel) {
        let fmt_runs = |v: &[(String, f64, u64, u64)]| -> String {
            if v.is_empty() {
                return "-".into();
            }
            v.iter()
                .map(|(n, ns, _, _)| format!("{n} {ns:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let sizes = |v: &[(String, f64, u64, u64)]| -> (String, String) {
            let x = v
                .iter()
                .map(|(n, _, x, _)| format!("{n} {x}"))
                .collect::<Vec<_>>();
            let j = v
                .iter()
                .map(|(n, _, _, j)| format!("{n} {j}"))
                .collect::<Vec<_>>();
            (x.join(", "), j.join(", "))
        };
        let (x, j) = sizes(kt);
        s.push_str(&format!(
            "| {} ({}) | {:+.1} | {:+.1} | {} | {} | {} | {} |\n",
            c.name,
            c.what,
            median(&mut d.traced),
            median(&mut d.others),
            fmt_runs(kt),
            fmt_runs(ko),
            x,
            j
        ));
    }
    s
}
