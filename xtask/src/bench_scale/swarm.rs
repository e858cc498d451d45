//! Many live processes: the swarm test program under `phasebox agent -p PARENT`, attached
//! before the parent forks.
use std::io::Write as _;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use phasebox_tests::{CARGO_LIBRARY_PATH, Guard, fixture, lines::Lines};

use super::reading::{Agent, End, live, number_after};
use super::{Check, Measured, thousands};

/// getppid calls each child makes before it waits.
pub const CALLS: u64 = 100;
/// Children replaced a minute in the churn configuration.
pub const CHURN_PER_MIN: u64 = 10_000;
/// The churn runs this long before the agent is measured, and this long in all.
pub const CHURN_WARMUP: Duration = Duration::from_secs(15);
pub const CHURN_FOR: Duration = Duration::from_secs(120);
/// Bounds on the swarm's own steps: forking every child, and ending them.
const FORK_LIMIT: Duration = Duration::from_secs(180);
const END_LIMIT: Duration = Duration::from_secs(60);

/// The row's name and the agent's arguments for `live` children, `per_min` replaced a minute.
pub fn describe(live: u64, per_min: u64) -> (String, String) {
    let name = if per_min == 0 {
        format!("{} live processes", thousands(live))
    } else {
        format!(
            "{} live processes, {} replaced a minute",
            thousands(live),
            thousands(per_min)
        )
    };
    (name, "`-p PARENT`".into())
}

/// `swarm LIVE CALLS PER_MIN` under an agent attached to its parent before it forks; the
/// agent is measured once every child is ready (and the churn has run a while), and its
/// getppid count held against the children the parent forked.
pub fn run(bin: &Path, live_children: u64, per_min: u64) -> anyhow::Result<Measured> {
    let mut swarm = Guard::group(
        Command::new(fixture("swarm"))
            .args([live_children, CALLS, per_min].map(|n| n.to_string()))
            .env_remove(CARGO_LIBRARY_PATH)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .context("the swarm program starts")?,
    );
    let mut out = Lines::follow(swarm.stdout.take().context("swarm's stdout")?);
    let mut input = swarm.stdin.take().context("swarm's stdin")?;
    let agent = Agent::start(bin, &["-p", &swarm.id().to_string()])?;
    let t0 = Instant::now();
    writeln!(input, "go")?;
    number_after(&mut out, "ready", FORK_LIMIT)?;
    let ready_s = t0.elapsed().as_secs_f64();
    eprintln!("scale: {live_children} children ready in {ready_s:.1} s");
    let churn_start = Instant::now();
    if per_min > 0 {
        std::thread::sleep(CHURN_WARMUP);
    } else {
        End::settle(&agent)?;
    }
    let measured = live(&[&agent])?.remove(0);
    if per_min > 0 {
        std::thread::sleep(CHURN_FOR.saturating_sub(churn_start.elapsed()));
        writeln!(input, "stop")?;
    }
    let children = number_after(&mut out, "children", FORK_LIMIT)?;
    let minutes = churn_start.elapsed().as_secs_f64() / 60.0;
    let end = End::settle(&agent)?;
    // The end of its input ends the swarm: its children, then itself.
    drop(input);
    out.wait_for("done", END_LIMIT)
        .map_err(anyhow::Error::msg)?;
    let warnings = agent.stop()?;
    if !warnings.is_empty() {
        eprintln!("scale: the agent warned: {}", warnings.join("\n"));
    }
    Ok(Measured {
        processes: live_children,
        ready_s,
        exited_per_min: (per_min > 0).then(|| (children - live_children) as f64 / minutes),
        check: Check {
            what: format!("getppid = {} children × {CALLS}", thousands(children)),
            counted: end.sum(
                "phasebox_syscalls_total",
                &[("program", "swarm"), ("syscall", "getppid")],
            ),
            expected: (children * CALLS) as f64,
        },
        live: measured,
        end,
        warnings,
    })
}
