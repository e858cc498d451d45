//! `phasebox agent -p PID`: long-running. Attaches like `record`, learns roles and phases,
//! refreshes Prometheus metrics every second, and checkpoints the learned profile.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{output, record};
use crate::{
    atomic_file::write_atomic,
    cli::{AgentArgs, TraceOptions},
    learn::{Learner, RunInfo},
    metrics::{self, Counters, Metrics},
    phase::Detector,
    probe,
    process::ProcessTree,
    procfs,
    session::{Origin, Session, Stop, interrupted},
    sysnames,
};

const REFRESH: Duration = Duration::from_secs(1);

pub async fn agent(args: AgentArgs) -> anyhow::Result<i32> {
    let pid = args.pid;
    record::check_target(pid)?;
    let detector = Detector::load(&args.phases)?;
    let opts = TraceOptions {
        output: None,
        summary: None,
        ring_bytes: args.ring_bytes,
        quiet: true,
        profile: args.profile.clone(),
        phases: args.phases.clone(),
    };
    // Path arguments feed the phase markers.
    if !args.stream && args.phases == "auto" {
        anyhow::bail!("--phases auto needs every call: use it with --stream");
    }
    // Path arguments feed the phase markers.
    let output::Started {
        outputs,
        mut probe,
        ring,
        writer,
    } = output::start(&opts, "record", Vec::new(), Some(pid), true, args.stream)?;
    let _stats = probe::enable_run_time_stats()?;
    let mut tree = ProcessTree::new();
    record::attach(&mut probe, &mut tree, pid)?;
    let attached: Vec<u32> = tree.processes().iter().map(|p| p.pid).collect();
    let origin = Origin {
        roots: vec![pid],
        attached,
    };
    let learner = outputs
        .learner(&origin)
        .unwrap_or_else(|| Learner::new(detector, &origin.roots, &origin.attached));
    let mut session = Session::new(probe, ring, tree, writer, Some(learner), origin)?;
    if !args.stream {
        session.use_summary_mode()?;
    }

    let page = Arc::new(Mutex::new(String::new()));
    let server = metrics::serve(args.listen, page.clone()).await?;
    let mut metrics = Metrics::new()?;
    eprintln!(
        "phasebox agent: tracing pid {pid} and its descendants; metrics on http://{}/metrics",
        args.listen
    );
    let run = RunInfo {
        name: format!("agent -p {pid}"),
        launched: false,
        started_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        kernel_release: procfs::kernel_release(),
        dropped: 0,
    };
    let mut last_checkpoint = Instant::now();
    let mut prev_calls: std::collections::HashMap<phasebox_common::CountKey, u64> =
        Default::default();
    let mut interrupt = std::pin::pin!(interrupted());
    loop {
        let tick = async {
            tokio::select! {
                s = &mut interrupt => s,
                _ = tokio::time::sleep(REFRESH) => Stop::Duration,
            }
        };
        let why = session.run(tick, true).await?;
        let losses = session.probe().losses()?;
        let run = RunInfo {
            dropped: losses.ringbuf_full,
            ..run.clone()
        };
        if let Some(l) = session.learner() {
            let snapshot = l.snapshot(&session.tree, &run);
            // Exact kernel counters, their growth given to each process's current phase.
            let mut calls = Vec::new();
            for (key, c) in session.probe().counts()? {
                let before = prev_calls.insert(key, c.calls).unwrap_or(0);
                let grew = c.calls.saturating_sub(before);
                if grew == 0 {
                    continue;
                }
                let (role, phase) = l
                    .role_phase_of(key.tgid)
                    .unwrap_or_else(|| ("unknown".into(), "unknown".into()));
                calls.push((role, phase, sysnames::name(key.nr).into_owned(), grew));
            }
            let counters = Counters {
                events: session.events(),
                dropped: losses.ringbuf_full,
                bpf: session.probe().run_stats(),
            };
            let live = session.tree.live_pids().len();
            metrics.update(
                &snapshot.program.comm,
                &calls,
                &l.current_phases(),
                live,
                &counters,
            );
            if let Ok(mut p) = page.lock() {
                *p = metrics.render();
            }
            if let Some(path) = &args.profile
                && last_checkpoint.elapsed() >= args.checkpoint
            {
                write_atomic(path, snapshot.to_json().as_bytes())?;
                last_checkpoint = Instant::now();
            }
        }
        match why {
            Stop::Duration => continue,
            Stop::Signal(s) => eprintln!("phasebox agent: {s}, writing what was learned"),
            Stop::TreeExited => {
                eprintln!("phasebox agent: process {pid} and its descendants have exited")
            }
        }
        break;
    }
    server.abort();
    outputs.finish(session)?;
    Ok(0)
}
