//! The agent: a long-running session that refreshes Prometheus metrics every second, checks
//! monitor mode's profile (and in kill mode tells the kernel each process's allowed calls),
//! samples the kernel programs' run-time statistics, and checkpoints the learned profile.
//! SIGHUP and SIGUSR1 write a checkpoint; SIGINT and SIGTERM end it.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use phasebox_core::{
    atomic_file::write_atomic,
    metrics::{BpfCost, BuildInfo, Counters, HttpMetrics, Metrics, SeriesLimits, SharedPage},
    monitor::Monitor,
    sysnames,
};

use super::{Session, Signals, Stop};
use crate::{
    own_process,
    probe::stats::{Sampling, StatsSampler},
    procfs,
};

/// How often the metrics, the monitor and the checkpoints are refreshed.
const REFRESH: Duration = Duration::from_secs(1);

/// What the agent does besides tracing.
#[derive(Clone, Debug)]
pub struct AgentSettings {
    /// Every call sent (stream mode), for the build info metric.
    pub stream: bool,
    /// Where the profile is checkpointed, and how often.
    pub profile: Option<PathBuf>,
    pub checkpoint: Duration,
    /// BPF run-time statistics sampled so (None: never on).
    pub bpf_stats: Option<Sampling>,
    /// `-e trace=`: series only for these syscalls (the profile and the monitor see all).
    pub shown: Option<phasebox_core::trace_filter::TraceFilter>,
    /// The bound on the per-call series (`--metrics.without`, `--metrics.max-series`).
    pub series: SeriesLimits,
    /// The series' `program` label when it is known at start (`--exec-name`); else the first
    /// traced process's name. It never changes: a traced process that executes another
    /// program does not rename the series of the others.
    pub program: Option<String>,
}

/// A session that runs as the agent.
pub struct Agent {
    session: Session,
    refresher: Refresher,
}

impl Agent {
    /// The agent over `session`, with a first refresh done (its metrics page is never empty).
    pub fn new(
        mut session: Session,
        settings: &AgentSettings,
        monitor: Option<Monitor>,
    ) -> anyhow::Result<Agent> {
        let mut refresher = Refresher::new(settings, monitor)?;
        refresher.refresh(&mut session)?;
        Ok(Agent { session, refresher })
    }

    /// The session traced.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The latest rendering of the metrics, for the HTTP server.
    pub fn page(&self) -> SharedPage {
        self.refresher.metrics.page()
    }

    /// The metrics the HTTP server keeps about itself.
    pub fn http_metrics(&self) -> HttpMetrics {
        self.refresher.metrics.http()
    }

    /// Traces, refreshing once a second, until a signal ends it or (with `end_when_gone`)
    /// the traced processes are gone; SIGHUP and SIGUSR1 write a checkpoint on the way.
    pub async fn run(
        &mut self,
        signals: &mut Signals,
        end_when_gone: bool,
    ) -> anyhow::Result<Stop> {
        loop {
            let tick = async {
                tokio::select! {
                    s = signals.next() => s.for_agent(),
                    _ = tokio::time::sleep(REFRESH) => Stop::Duration,
                }
            };
            let why = self.session.run(tick, end_when_gone).await?;
            self.refresher.refresh(&mut self.session)?;
            match why {
                Stop::Duration => {}
                Stop::Checkpoint(signal) => {
                    self.refresher.checkpoint_now(&mut self.session, signal)?
                }
                _ => return Ok(why),
            }
        }
    }

    /// Writes what was learned and detaches.
    pub fn finish(self) -> anyhow::Result<()> {
        self.session.finish().map(drop)
    }
}

/// What the agent carries from one refresh to the next.
struct Refresher {
    metrics: Metrics,
    monitor: Option<Monitor>,
    stats: Option<StatsSampler>,
    checkpoint: Option<(std::path::PathBuf, Duration)>,
    last_checkpoint: Instant,
    shown: Option<phasebox_core::trace_filter::TraceFilter>,
    max_series: usize,
    program: Option<String>,
    /// The first fold into `_other` was logged.
    warned_folded: bool,
}

impl Refresher {
    fn new(settings: &AgentSettings, monitor: Option<Monitor>) -> anyhow::Result<Refresher> {
        let metrics = Metrics::new(
            &BuildInfo {
                version: env!("CARGO_PKG_VERSION").into(),
                kernel: procfs::kernel_release(),
                arch: sysnames::ARCH.into(),
                mode: if settings.stream { "stream" } else { "summary" }.into(),
            },
            &settings.series,
        )?;
        let stats = settings
            .bpf_stats
            .map(|sampling| StatsSampler::new(sampling, Instant::now()));
        Ok(Refresher {
            metrics,
            monitor,
            stats,
            checkpoint: settings.profile.clone().map(|p| (p, settings.checkpoint)),
            last_checkpoint: Instant::now(),
            shown: settings.shown.clone(),
            max_series: settings.series.max,
            program: settings.program.clone(),
            warned_folded: false,
        })
    }

    /// Metrics, monitor mode and checkpoints, once per refresh.
    fn refresh(&mut self, session: &mut Session) -> anyhow::Result<()> {
        session.harvest()?;
        let Some(l) = session.learner() else {
            return Ok(());
        };
        if self.program.is_none() {
            self.program = session
                .tree()
                .processes()
                .find(|p| !p.ignored && !p.comm.is_empty())
                .map(|p| p.comm.clone());
        }
        let program = self.program.clone().unwrap_or_default();
        let mut totals = l.totals();
        if let Some(f) = &self.shown {
            totals.retain(|t| f.selects_name(&t.syscall));
        }
        let phases = l.current_phases();
        let places = l.places();
        let counters = self.counters(session)?;
        self.metrics.update(&program, &totals, &phases, &counters);
        self.watch(session, &program, &places)?;
        if !self.warned_folded && self.metrics.folded() > 0 {
            self.warned_folded = true;
            log::warn!(
                "a per-call metric reached --metrics.max-series {}: calls of further label \
                 sets are counted in its _other series (phasebox_series_folded)",
                self.max_series
            );
        }
        self.metrics.publish(Instant::now());
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
            process: own_process::sample(),
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
