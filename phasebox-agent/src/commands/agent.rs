//! `phasebox agent -p PID`: long-running. Attaches like `record` (or finds programs by name at
//! their exec), learns roles and phases in summary mode by default, refreshes Prometheus
//! metrics every second, checkpoints the learned profile, and in monitor mode counts (or has
//! the kernel kill) calls outside the expected phase.
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use phasebox_core::{
    atomic_file::write_atomic,
    metrics::{BpfCost, BuildInfo, Counters, Metrics},
    monitor::{Monitor, UnknownRole},
    phase::Detector,
    sysnames,
};

use crate::{
    cli::{AgentArgs, OnViolation, UnknownRoles},
    containers,
    probe::stats::{Sampling, StatsSampler},
    procfs,
    session::{Mode, OutputPaths, Session, Signals, Stop},
};

const REFRESH: Duration = Duration::from_secs(1);

pub async fn agent(args: AgentArgs) -> anyhow::Result<i32> {
    crate::logging::init();
    // Before any output exists: no signal ends the agent with a file half-written.
    let mut signals = Signals::catch()?;
    let open_files = crate::fdlimit::raise();
    let detector = Detector::load(&args.phases)?;
    let monitor = monitor(&args, &detector)?;
    if !args.listen.ip().is_loopback() {
        log::warn!(
            "--listen {} is not a loopback address: /metrics can be read from the network",
            args.listen
        );
    }
    let container = args
        .container
        .as_deref()
        .map(containers::find)
        .transpose()?;
    let mut session = start(&args, detector, container.clone(), monitor.is_some())?;
    let mut r = Refresher::new(&args, monitor)?;
    let limits = crate::serve::Limits {
        max_connections: args.max_connections as usize,
        header_timeout: args.header_timeout,
        idle_timeout: args.idle_timeout,
    };
    limits.check_descriptors(open_files);
    let server = crate::serve::start(args.listen, limits, r.page.clone(), r.metrics.http())?;
    // A first page right away: /metrics is never empty once the agent says it is up.
    r.refresh(&mut session)?;
    let what = match (&args.exec_name, session.container_state()) {
        (Some(name), _) => format!("waiting for {name} to start"),
        (None, Some((spec, true))) => format!("tracing container {spec}"),
        (None, Some((spec, false))) => format!("waiting for container {spec} to start"),
        (None, None) => format!("tracing pid {} and descendants", join(&args.pids)),
    };
    crate::say!(
        "phasebox agent: {what}; metrics on http://{}/metrics",
        server.addr()
    );
    // With --exec-name or --container, the agent waits for the next start when a program ends.
    let wait = args.exec_name.is_some() || container.is_some();
    let why = loop {
        let tick = async {
            tokio::select! {
                s = signals.next() => s.for_agent(),
                _ = tokio::time::sleep(REFRESH) => Stop::Duration,
            }
        };
        let why = session.run(tick, !wait).await?;
        r.refresh(&mut session)?;
        match why {
            Stop::Duration => {}
            Stop::Checkpoint(signal) => r.checkpoint_now(&mut session, signal)?,
            _ => break why,
        }
    };
    match why {
        Stop::Signal(s) => log::info!("{s}, writing what was learned"),
        _ => log::info!("the traced processes have exited"),
    }
    drop(server);
    session.finish()?;
    Ok(0)
}

/// Monitor mode's profile, when asked for (it needs phase rules).
fn monitor(args: &AgentArgs, detector: &Detector) -> anyhow::Result<Option<Monitor>> {
    let auto = matches!(detector, Detector::Auto(_));
    if !args.stream && auto {
        anyhow::bail!("--phases auto needs every call: use it with --stream");
    }
    let kill = args.on_violation == OnViolation::Kill;
    match &args.monitor {
        Some(_) if auto => {
            anyhow::bail!(
                "monitor mode needs phase rules (generic, nginx or a rule file), not auto"
            )
        }
        Some(p) => {
            let mut m = Monitor::load(p, kill)?;
            m.unknown = match args.unknown_roles {
                UnknownRoles::Violation => UnknownRole::Violation,
                UnknownRoles::Ignore => UnknownRole::Ignore,
            };
            Ok(Some(m))
        }
        None => Ok(None),
    }
}

/// The agent's session, attached to what it was asked to trace.
fn start(
    args: &AgentArgs,
    detector: Detector,
    container: Option<containers::Found>,
    monitoring: bool,
) -> anyhow::Result<Session> {
    // Programs found by name or in a container often run under a seccomp filter (a
    // container engine's): the calls it denies are noticed.
    let filtered = args.exec_name.is_some()
        || container.is_some()
        || args.pids.iter().any(|&p| procfs::under_seccomp(p));
    let mut builder = Session::builder(Mode::Agent)
        .ring_bytes(args.ring_bytes)
        .stream(args.stream)
        .errors(args.errors)
        .filtered(filtered)
        .keep_exited(false)
        .kill(args.on_violation == OnViolation::Kill && monitoring)
        .exec_name(args.exec_name.clone())
        .phases(detector)
        .outputs(OutputPaths {
            profile: args.profile.clone(),
            quiet: true,
            ..Default::default()
        });
    let in_container = container.is_some();
    if let Some(c) = container {
        builder = builder.container(c);
    }
    let mut session = builder.start()?;
    if !args.pids.is_empty() {
        session.attach(&args.pids)?;
    }
    if in_container {
        session.attach_container()?;
    }
    if monitoring {
        session.keep_attributed();
    }
    Ok(session)
}

fn join(pids: &[u32]) -> String {
    let v: Vec<String> = pids.iter().map(u32::to_string).collect();
    v.join(", ")
}

/// What the agent carries from one refresh to the next.
struct Refresher {
    metrics: Metrics,
    page: Arc<Mutex<String>>,
    monitor: Option<Monitor>,
    stats: Option<StatsSampler>,
    checkpoint: Option<(std::path::PathBuf, Duration)>,
    last_checkpoint: Instant,
}

impl Refresher {
    fn new(args: &AgentArgs, monitor: Option<Monitor>) -> anyhow::Result<Refresher> {
        let metrics = Metrics::new(&BuildInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            kernel: procfs::kernel_release(),
            arch: sysnames::ARCH.into(),
            mode: if args.stream { "stream" } else { "summary" }.into(),
        })?;
        metrics.registry().register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let stats = (!args.bpf_stats_every.is_zero()).then(|| {
            let sampling = Sampling {
                every: args.bpf_stats_every,
                window: args.bpf_stats_window.min(args.bpf_stats_every),
            };
            StatsSampler::new(sampling, Instant::now())
        });
        Ok(Refresher {
            metrics,
            page: Arc::new(Mutex::new(String::new())),
            monitor,
            stats,
            checkpoint: args.profile.clone().map(|p| (p, args.checkpoint)),
            last_checkpoint: Instant::now(),
        })
    }

    /// Metrics, monitor mode and checkpoints, once per refresh.
    fn refresh(&mut self, session: &mut Session) -> anyhow::Result<()> {
        session.harvest()?;
        let Some(l) = session.learner() else {
            return Ok(());
        };
        let program = session
            .tree()
            .processes()
            .find(|p| !p.ignored)
            .map(|p| p.comm.clone())
            .unwrap_or_default();
        let totals = l.totals();
        let phases = l.current_phases();
        let places = l.places();
        let counters = self.counters(session)?;
        self.metrics.update(&program, &totals, &phases, &counters);
        self.watch(session, &program, &places)?;
        if let Ok(mut p) = self.page.lock() {
            *p = self.metrics.render();
        }
        self.checkpoint(session)
    }

    fn counters(&mut self, session: &Session) -> anyhow::Result<Counters> {
        let losses = session.losses()?;
        let window_closed = match self.stats.as_mut() {
            Some(s) => s.tick(Instant::now())?,
            None => false,
        };
        // Programs' run times only grow while statistics are on: read them when a window
        // closes, and keep the last reading otherwise.
        let bpf = if window_closed {
            session
                .probe()
                .run_stats()
                .into_iter()
                .map(|s| BpfCost {
                    program: s.name,
                    run_time_s: s.run_time.as_secs_f64(),
                    runs: s.runs,
                })
                .collect()
        } else {
            Vec::new()
        };
        let full = session.probe().map_full();
        Ok(Counters {
            events: session.events(),
            dropped: losses.ringbuf_full,
            killed: session.probe().kills()?,
            live: session.live(),
            bpf,
            bpf_sampled_s: self
                .stats
                .as_ref()
                .map_or(0.0, |s| s.sampled().as_secs_f64()),
            rejected: session.rejected(),
            map_full: vec![
                ("counters", losses.counter_map_full),
                ("processes", losses.process_map_full),
                ("set_requests", full.set_requests),
                ("allowed", full.allowed),
                ("verdicts", full.verdicts),
            ],
        })
    }

    /// Monitor mode: violations counted and logged once per (role, phase, syscall); in kill
    /// mode, each process's allowed set follows its phase.
    fn watch(
        &mut self,
        session: &mut Session,
        program: &str,
        places: &[phasebox_core::learn::ProcessPlace],
    ) -> anyhow::Result<()> {
        let Some(m) = self.monitor.as_mut() else {
            return Ok(());
        };
        let attributed = session.take_attributed();
        let Some(l) = session.learner() else {
            return Ok(());
        };
        let found = m.check(&attributed, l);
        self.metrics.violations(program, &found);
        for v in found.iter().filter(|v| v.first) {
            log::warn!(
                "violation: pid {} ({}, phase {}{}) called {}, which the profile does not allow there",
                v.pid,
                v.place.role,
                v.place.phase,
                if v.place.container.is_empty() {
                    String::new()
                } else {
                    format!(", container {}", v.place.container)
                },
                v.syscall
            );
        }
        if m.kill {
            m.retain(places);
            for k in m.kill_sets(places) {
                session.probe_mut().set_allowed(k.tgid, k.instance, k.bits);
            }
        }
        Ok(())
    }

    /// Writes the profile every `--checkpoint`; a failed write is logged and counted, and the
    /// agent goes on.
    fn checkpoint(&mut self, session: &mut Session) -> anyhow::Result<()> {
        match &self.checkpoint {
            Some((_, every)) if self.last_checkpoint.elapsed() >= *every => {
                self.write_checkpoint(session).map(drop)
            }
            _ => Ok(()),
        }
    }

    /// Writes the profile now, as `signal` asked (SIGHUP, SIGUSR1); without --profile, says so.
    fn checkpoint_now(&mut self, session: &mut Session, signal: &str) -> anyhow::Result<()> {
        match self.write_checkpoint(session)? {
            Some(path) => log::info!("{signal}: checkpoint written to {}", path.display()),
            None if self.checkpoint.is_none() => {
                log::info!("{signal}: no --profile to write a checkpoint to")
            }
            None => {}
        }
        Ok(())
    }

    /// Writes the profile learned so far; where, when it was written.
    fn write_checkpoint(&mut self, session: &mut Session) -> anyhow::Result<Option<PathBuf>> {
        let Some((path, _)) = &self.checkpoint else {
            return Ok(None);
        };
        self.last_checkpoint = Instant::now();
        let Some(profile) = session.snapshot()? else {
            return Ok(None);
        };
        if let Err(e) = write_atomic(path, profile.to_json().as_bytes()) {
            self.metrics.checkpoint_failed();
            log::error!("checkpoint not written: {e:#}");
            return Ok(None);
        }
        Ok(Some(path.clone()))
    }
}
