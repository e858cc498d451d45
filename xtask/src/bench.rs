//! Benchmarks, written to BENCHMARKS.md. Every configuration is measured side by side with its
//! baseline in the same run, alternating, and reported as medians and ratios.
//!
//! - nginx + wrk on loopback: no tracer; phasebox tracing another process (the cost of the
//!   kernel filter alone); `phasebox record` on nginx (every syscall streamed); the same with a
//!   trace file; `strace -f` on nginx.
//! - syscall storm: events per second delivered to userspace with no drops, and peak RSS.
//! - nginx under its learned seccomp profiles; the agent on nginx.
//! - phase detection (`bench_phases.rs`): analyzing a large trace, learning phases live.
//! - the agent over an hour (`bench_soak.rs`, `--soak [MINUTES]` only): memory, maps, drops.
//! - the agent at scale (`bench_scale.rs`, `--scale` only): 10,000 live processes, churn and
//!   100 containers; memory, /metrics times, series, exact counts.
//! - argument-level policies against attack primitives (`bench_args.rs`).
//! - policies deployed (`bench_deploy/`): six servers learned, exported, run through their
//!   operations and load under the policies, in Docker and under phase-aware enforcement.
//!
//! Each section is a module of its own (`bench_*.rs`), over what they share (`measure.rs`):
//! this file only picks the sections and writes them into BENCHMARKS.md.
use crate::{
    bench_agent, bench_args, bench_core, bench_cost, bench_deploy, bench_phases, bench_scale,
    bench_seccomp, bench_soak, bench_static, measure, util,
};

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let bin = util::build_phasebox()?;
    let s = measure::settings(args);
    // A section flag runs only the sections named; none runs them all.
    const SECTIONS: [&str; 10] = [
        "--core",
        "--args",
        "--seccomp",
        "--agent",
        "--phases",
        "--cost",
        "--static",
        "--deploy",
        "--soak",
        "--scale",
    ];
    let only: Vec<&str> = SECTIONS
        .into_iter()
        .filter(|f| args.iter().any(|a| a == f))
        .collect();
    // The soak (an hour) and the scale section (about 15 minutes) run only when named.
    let named_only = ["--soak", "--scale"];
    let want = |f: &str| (only.is_empty() && !named_only.contains(&f)) || only.contains(&f);
    let mut sections = Vec::new();
    if want("--core") {
        let nginx = bench_core::nginx_bench(&bin, &s)?;
        let storm = bench_core::storm_bench(&bin, &s)?;
        sections.push((
            bench_core::BEGIN,
            bench_core::END,
            format!("{nginx}\n{storm}"),
        ));
    }
    if want("--seccomp") {
        let seccomp = bench_seccomp::seccomp_bench(&bin, &s)?;
        sections.push((bench_seccomp::BEGIN, bench_seccomp::END, seccomp));
    }
    if want("--agent") {
        let agent = bench_agent::agent_bench(&bin, &s)?;
        sections.push((bench_agent::BEGIN, bench_agent::END, agent));
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
    if want("--args") {
        let table = bench_args::run(&bin)?;
        sections.push((bench_args::BEGIN, bench_args::END, table));
    }
    if want("--deploy") {
        let table = bench_deploy::run(&bin, s.rounds.min(3))?;
        sections.push((bench_deploy::BEGIN, bench_deploy::END, table));
    }
    if want("--soak") {
        let soak = bench_soak::run(&bin, bench_soak::minutes(args)?)?;
        sections.push((bench_soak::BEGIN, bench_soak::END, soak));
    }
    if want("--scale") {
        let scale = bench_scale::run(&bin)?;
        sections.push((bench_scale::BEGIN, bench_scale::END, scale));
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
