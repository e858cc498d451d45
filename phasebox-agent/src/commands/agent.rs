//! `phasebox agent -p PID`: long-running. Attaches like `record`, learns roles and phases (in
//! summary mode by default), refreshes Prometheus metrics every second, checkpoints the learned
//! profile, and in monitor mode counts (or kills) calls outside the expected phase.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use phasebox_common::CountKey;

use super::{
    output::{self, Capture},
    record,
};
use crate::{
    cli::{AgentArgs, OnViolation, TraceOptions},
    probe, procfs,
    session::{Origin, Session, Stop, interrupted},
};
use phasebox_core::{
    atomic_file::write_atomic,
    learn::{Learner, RunInfo},
    metrics::{Counters, Metrics},
    monitor::Monitor,
    phase::Detector,
    process::ProcessTree,
    sysnames,
};

const REFRESH: Duration = Duration::from_secs(1);

/// What the agent carries from one refresh to the next.
struct State {
    metrics: Metrics,
    page: Arc<Mutex<String>>,
    prev_calls: HashMap<CountKey, u64>,
    monitor: Option<Monitor>,
    last_checkpoint: Instant,
    started: Instant,
    run: RunInfo,
}

pub async fn agent(args: AgentArgs) -> anyhow::Result<i32> {
    if let Some(pid) = args.pid {
        record::check_target(pid)?;
    }
    let detector = Detector::load(&args.phases)?;
    if !args.stream && args.phases == "auto" {
        anyhow::bail!("--phases auto needs every call: use it with --stream");
    }
    let kill = args.on_violation == OnViolation::Kill;
    let monitor = args
        .monitor
        .as_deref()
        .map(|p| Monitor::load(p, kill))
        .transpose()?;
    let opts = TraceOptions {
        output: None,
        summary: None,
        ring_bytes: args.ring_bytes,
        quiet: true,
        profile: args.profile.clone(),
        phases: args.phases.clone(),
        exec_name: args.exec_name.clone(),
    };
    // Path arguments feed the phase markers.
    let output::Started {
        outputs,
        mut probe,
        ring,
        writer,
    } = output::start(
        &opts,
        // Programs found by name are seen from their execve, as if launched.
        if args.exec_name.is_some() {
            "run"
        } else {
            "record"
        },
        Vec::new(),
        args.pid,
        Capture {
            stream: args.stream,
            markers_need_paths: true,
            kill,
        },
    )?;
    let _stats = probe::enable_run_time_stats()?;
    let mut tree = ProcessTree::new();
    if let Some(pid) = args.pid {
        record::attach(&mut probe, &mut tree, pid)?;
    }
    let attached: Vec<u32> = tree.processes().iter().map(|p| p.pid).collect();
    let origin = Origin {
        roots: args.pid.into_iter().collect(),
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
    let server = crate::serve::serve(args.listen, page.clone()).await?;
    let mut state = State {
        metrics: Metrics::new()?,
        page,
        prev_calls: HashMap::new(),
        monitor,
        last_checkpoint: Instant::now(),
        started: Instant::now(),
        run: RunInfo {
            name: match (&args.pid, &args.exec_name) {
                (Some(pid), _) => format!("agent -p {pid}"),
                (None, name) => {
                    format!("agent --exec-name {}", name.as_deref().unwrap_or_default())
                }
            },
            // Programs found by name are seen from their execve.
            launched: args.exec_name.is_some(),
            started_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            kernel_release: procfs::kernel_release(),
            dropped: 0,
        },
    };
    // A first page right away: /metrics is never empty once the agent says it is up.
    refresh(&mut session, &mut state, &args)?;
    let what = match (&args.pid, &args.exec_name) {
        (Some(pid), _) => format!("tracing pid {pid} and its descendants"),
        (None, name) => format!(
            "waiting for {} to start",
            name.as_deref().unwrap_or_default()
        ),
    };
    eprintln!(
        "phasebox agent: {what}; metrics on http://{}/metrics",
        args.listen
    );
    let mut interrupt = std::pin::pin!(interrupted());
    loop {
        let tick = async {
            tokio::select! {
                s = &mut interrupt => s,
                _ = tokio::time::sleep(REFRESH) => Stop::Duration,
            }
        };
        // With --exec-name, the agent waits for the next start when a program ends.
        let why = session.run(tick, args.exec_name.is_none()).await?;
        refresh(&mut session, &mut state, &args)?;
        match why {
            Stop::Duration => continue,
            Stop::Signal(s) => eprintln!("phasebox agent: {s}, writing what was learned"),
            Stop::TreeExited => eprintln!("phasebox agent: the traced processes have exited"),
        }
        break;
    }
    server.abort();
    outputs.finish(session)?;
    Ok(0)
}

/// Metrics, monitor mode and checkpoints, once per refresh.
fn refresh(session: &mut Session, st: &mut State, args: &AgentArgs) -> anyhow::Result<()> {
    let losses = session.probe().losses()?;
    st.run.dropped = losses.ringbuf_full;
    let Some(l) = session.learner() else {
        return Ok(());
    };
    let snapshot = l.snapshot(&session.tree, &st.run);
    let program = snapshot.program.comm.clone();
    // Exact kernel counters; their growth goes to each process's current phase.
    let mut calls = Vec::new();
    let mut allowed = Vec::new();
    for (key, c) in session.probe().counts()? {
        let before = st.prev_calls.insert(key, c.calls).unwrap_or(0);
        let grew = c.calls.saturating_sub(before);
        let (role, phase) = l
            .role_phase_of(key.tgid)
            .unwrap_or_else(|| ("unknown".into(), "unknown".into()));
        let syscall = sysnames::name(key.nr).into_owned();
        if let Some(m) = st.monitor.as_mut() {
            if grew > 0 && m.violates(&role, &phase, &syscall) {
                st.metrics
                    .violations
                    .with_label_values(&[&program, &role, &phase, &syscall])
                    .inc_by(grew);
                if m.first_report(&role, &phase, &syscall) {
                    eprintln!(
                        "phasebox agent: {:.1} s: violation: pid {} ({role}, phase {phase}) called {syscall}, \
                         which the profile does not allow there",
                        st.started.elapsed().as_secs_f64(),
                        key.tgid
                    );
                }
            }
            if m.kill
                && let Some(bits) = m.allowed_from(&role, &phase)
                && m.needs_update(key.tgid, bits)
            {
                allowed.push((key.tgid, bits));
            }
        }
        if grew > 0 {
            calls.push((role, phase, syscall, grew));
        }
    }
    let counters = Counters {
        events: session.events(),
        dropped: losses.ringbuf_full,
        killed: session.probe().kills()?,
        bpf: session.probe().run_stats(),
    };
    let phases = l.current_phases();
    let live = session.tree.live_pids().len();
    st.metrics
        .update(&program, &calls, &phases, live, &counters);
    if let Ok(mut p) = st.page.lock() {
        *p = st.metrics.render();
    }
    for (tgid, bits) in allowed {
        session.probe_mut().set_allowed(tgid, bits)?;
    }
    if let Some(path) = &args.profile
        && st.last_checkpoint.elapsed() >= args.checkpoint
    {
        write_atomic(path, snapshot.to_json().as_bytes())?;
        st.last_checkpoint = Instant::now();
    }
    Ok(())
}
