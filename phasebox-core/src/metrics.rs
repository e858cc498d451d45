//! Prometheus metrics of a running agent, refreshed from the session once a second and served
//! on /metrics. Label values are bounded: program, role, phase and syscall names, never pids.
//! Syscall counts come from the learner, which attributes every call to the phase its
//! process was in when it made it, so a scrape and the profile written at the end agree.
use std::collections::HashMap;

use prometheus::core::Collector;
use prometheus::{
    Counter, CounterVec, Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::{
    learn::{Place, Total},
    monitor::Violation,
};

/// The metrics could not be registered (a name or label the registry refuses).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the metrics")]
pub struct MetricsError(#[from] prometheus::Error);

/// The agent's metrics.
pub struct Metrics {
    registry: Registry,
    syscalls: IntCounterVec,
    errors: IntCounterVec,
    phase_info: IntGaugeVec,
    tracked: IntGauge,
    dropped: IntCounter,
    events: IntCounter,
    bpf_run_time: CounterVec,
    bpf_runs: IntCounterVec,
    bpf_sampled: Counter,
    violations: IntCounterVec,
    killed: IntCounter,
    checkpoint_failures: IntCounter,
    rejected: IntCounter,
    map_full: IntCounterVec,
    http: HttpMetrics,
    /// Last values pushed into each counter, to add only the increase.
    last: HashMap<String, f64>,
}

/// Run time and runs of one kernel program in the sampled windows so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BpfCost {
    pub program: &'static str,
    pub run_time_s: f64,
    pub runs: u64,
}

/// The session's counters for [`Metrics::update`].
#[derive(Debug, Default)]
pub struct Counters {
    pub events: u64,
    pub dropped: u64,
    pub killed: u64,
    pub live: usize,
    pub bpf: Vec<BpfCost>,
    /// Seconds BPF statistics were on (the run times above are from those windows only).
    pub bpf_sampled_s: f64,
    /// Processes found at their exec outside the session's scope, untracked.
    pub rejected: u64,
    /// Writes refused because a kernel map was full, by map.
    pub map_full: Vec<(&'static str, u64)>,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

/// The metrics server's own metrics. The server holds a clone and updates them as it goes
/// (they are shared atomics); the page shows them at its next rendering.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    /// Connections open now.
    pub open: IntGauge,
    /// Connections closed unanswered because the server was at its connection cap.
    pub refused: IntCounter,
    /// Connections closed for sending their request too slowly, or for moving nothing.
    pub timed_out: IntCounter,
    /// Requests for /metrics answered.
    pub requests: IntCounter,
}

impl HttpMetrics {
    fn new(registry: &Registry) -> Result<HttpMetrics, MetricsError> {
        let open = IntGauge::new(
            "phasebox_http_open_connections",
            "Connections to the metrics server open now.",
        )?;
        let refused = IntCounter::new(
            "phasebox_http_connections_refused_total",
            "Connections closed unanswered because --web.max-connections were open (the one \
             that had waited longest for a request made room for the newest).",
        )?;
        let timed_out = IntCounter::new(
            "phasebox_http_connections_timed_out_total",
            "Connections closed because their request headers took longer than \
             --web.header-timeout or nothing moved for --web.idle-timeout (kept-alive \
             connections closed between requests are not counted).",
        )?;
        let requests = IntCounter::new(
            "phasebox_http_requests_total",
            "Requests for /metrics answered.",
        )?;
        Ok(HttpMetrics {
            open: registered(registry, open)?,
            refused: registered(registry, refused)?,
            timed_out: registered(registry, timed_out)?,
            requests: registered(registry, requests)?,
        })
    }
}

/// What the build info metric says.
#[derive(Clone, Debug, Default)]
pub struct BuildInfo {
    pub version: String,
    pub kernel: String,
    pub arch: String,
    /// summary or stream.
    pub mode: String,
}

/// The labels of a count of calls.
const BY_CALL: [&str; 5] = ["program", "container_id", "role", "phase", "syscall"];

/// Registers `c` in `registry` and hands it back.
fn registered<C: Collector + Clone + 'static>(
    registry: &Registry,
    c: C,
) -> Result<C, MetricsError> {
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

/// What the traced programs do: their calls, their failed calls, and the phase each role
/// is in.
fn call_metrics(
    registry: &Registry,
) -> Result<(IntCounterVec, IntCounterVec, IntGaugeVec), MetricsError> {
    let syscalls = IntCounterVec::new(
        opts(
            "phasebox_syscalls_total",
            "System calls, by the role and phase the calling process was in when it made them.",
        ),
        &BY_CALL,
    )?;
    let errors = IntCounterVec::new(
        opts(
            "phasebox_syscall_errors_total",
            "Failed system calls (agent --errors or --stream), by role and phase.",
        ),
        &BY_CALL,
    )?;
    let phase_info = IntGaugeVec::new(
        opts(
            "phasebox_phase_info",
            "The phase each role is in now (value 1).",
        ),
        &["program", "container_id", "role", "phase"],
    )?;
    Ok((
        registered(registry, syscalls)?,
        registered(registry, errors)?,
        registered(registry, phase_info)?,
    ))
}

/// The agent's own work: processes traced, events dropped, events delivered, checkpoints
/// that failed.
fn agent_metrics(
    registry: &Registry,
) -> Result<(IntGauge, IntCounter, IntCounter, IntCounter), MetricsError> {
    let tracked = IntGauge::new("phasebox_tracked_processes", "Processes traced now.")?;
    let dropped = IntCounter::new(
        "phasebox_events_dropped_total",
        "Events lost because the ring buffer was full (the syscall counters stay exact).",
    )?;
    let events = IntCounter::new("phasebox_events_total", "Events delivered from the kernel.")?;
    let checkpoint_failures = IntCounter::new(
        "phasebox_checkpoint_failures_total",
        "Checkpoints of the learned profile that could not be written.",
    )?;
    Ok((
        registered(registry, tracked)?,
        registered(registry, dropped)?,
        registered(registry, events)?,
        registered(registry, checkpoint_failures)?,
    ))
}

/// What keeps the agent bounded: processes found at exec but outside its scope, and writes
/// a full kernel map refused.
fn bound_metrics(registry: &Registry) -> Result<(IntCounter, IntCounterVec), MetricsError> {
    let rejected = IntCounter::new(
        "phasebox_processes_rejected_total",
        "Processes the kernel found at their exec (--exec-name, --container) that are outside \
         the agent's scope (another program with the same first 15 characters, another \
         container): untracked, nothing of them learned.",
    )?;
    let map_full = IntCounterVec::new(
        opts(
            "phasebox_map_full_total",
            "Entries a full kernel map refused: counters (a call uncounted), processes (calls \
             counted without phases), set_requests (more phase segments than needed), allowed \
             (a process not enforced), verdicts (a found process left unconfirmed).",
        ),
        &["map"],
    )?;
    Ok((
        registered(registry, rejected)?,
        registered(registry, map_full)?,
    ))
}

/// The cost of the kernel programs: their run time and runs while BPF statistics were
/// sampled, and how long they were.
fn bpf_metrics(registry: &Registry) -> Result<(CounterVec, IntCounterVec, Counter), MetricsError> {
    let bpf_run_time = CounterVec::new(
        opts(
            "phasebox_bpf_run_time_seconds_total",
            "Time spent in each phasebox kernel program while BPF statistics were sampled \
             (see phasebox_bpf_stats_sampled_seconds_total).",
        ),
        &["program"],
    )?;
    let bpf_runs = IntCounterVec::new(
        opts(
            "phasebox_bpf_runs_total",
            "Runs of each phasebox kernel program while BPF statistics were sampled.",
        ),
        &["program"],
    )?;
    let bpf_sampled = Counter::new(
        "phasebox_bpf_stats_sampled_seconds_total",
        "Seconds BPF run-time statistics were on (they tax every BPF program on the host, \
         so the agent samples them).",
    )?;
    Ok((
        registered(registry, bpf_run_time)?,
        registered(registry, bpf_runs)?,
        registered(registry, bpf_sampled)?,
    ))
}

/// Monitor mode: calls outside the profile, and processes killed for one.
fn monitor_metrics(registry: &Registry) -> Result<(IntCounterVec, IntCounter), MetricsError> {
    let violations = IntCounterVec::new(
        opts(
            "phasebox_profile_violations_total",
            "System calls outside the monitored profile's phase their process was in.",
        ),
        &BY_CALL,
    )?;
    let killed = IntCounter::new(
        "phasebox_processes_killed_total",
        "Processes killed in monitor mode for a syscall outside their phase.",
    )?;
    Ok((
        registered(registry, violations)?,
        registered(registry, killed)?,
    ))
}

/// phasebox's version and where it runs, set once.
fn register_build_info(registry: &Registry, build: &BuildInfo) -> Result<(), MetricsError> {
    let info = IntGaugeVec::new(
        opts(
            "phasebox_build_info",
            "phasebox's version and where it runs (value 1).",
        ),
        &["version", "kernel", "arch", "mode"],
    )?;
    info.with_label_values(&[&build.version, &build.kernel, &build.arch, &build.mode])
        .set(1);
    registry.register(Box::new(info))?;
    Ok(())
}

impl Metrics {
    pub fn new(build: &BuildInfo) -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let (syscalls, errors, phase_info) = call_metrics(&registry)?;
        let (tracked, dropped, events, checkpoint_failures) = agent_metrics(&registry)?;
        let (bpf_run_time, bpf_runs, bpf_sampled) = bpf_metrics(&registry)?;
        let (violations, killed) = monitor_metrics(&registry)?;
        let (rejected, map_full) = bound_metrics(&registry)?;
        register_build_info(&registry, build)?;
        let http = HttpMetrics::new(&registry)?;
        Ok(Metrics {
            registry,
            syscalls,
            errors,
            phase_info,
            tracked,
            dropped,
            events,
            bpf_run_time,
            bpf_runs,
            bpf_sampled,
            violations,
            killed,
            checkpoint_failures,
            rejected,
            map_full,
            http,
            last: HashMap::new(),
        })
    }

    /// The registry, for more collectors (the process's own metrics).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The metrics server's metrics, for the server to update.
    pub fn http(&self) -> HttpMetrics {
        self.http.clone()
    }

    /// How much `key` grew since the last call.
    fn delta(&mut self, key: String, now: f64) -> f64 {
        let last = self.last.insert(key, now).unwrap_or(0.0);
        (now - last).max(0.0)
    }

    /// Takes the learner's totals, the phase each role is in, and the session's counters.
    pub fn update(&mut self, program: &str, totals: &[Total], phases: &[Place], c: &Counters) {
        for t in totals {
            let p = &t.place;
            let key = format!(
                "{}\u{1}{}\u{1}{}\u{1}{}",
                p.container, p.role, p.phase, t.syscall
            );
            let labels = [program, &p.container, &p.role, &p.phase, &t.syscall];
            let d = self.delta(format!("c{key}"), t.calls as f64) as u64;
            if d > 0 {
                self.syscalls.with_label_values(&labels).inc_by(d);
            }
            let d = self.delta(format!("e{key}"), t.errors as f64) as u64;
            if d > 0 {
                self.errors.with_label_values(&labels).inc_by(d);
            }
        }
        self.phase_info.reset();
        for p in phases {
            self.phase_info
                .with_label_values(&[program, &p.container, &p.role, &p.phase])
                .set(1);
        }
        self.tracked.set(c.live as i64);
        let d = self.delta("dropped".into(), c.dropped as f64) as u64;
        self.dropped.inc_by(d);
        let d = self.delta("killed".into(), c.killed as f64) as u64;
        self.killed.inc_by(d);
        let d = self.delta("events".into(), c.events as f64) as u64;
        self.events.inc_by(d);
        let d = self.delta("rejected".into(), c.rejected as f64) as u64;
        self.rejected.inc_by(d);
        for &(map, n) in &c.map_full {
            let d = self.delta(format!("m|{map}"), n as f64) as u64;
            self.map_full.with_label_values(&[map]).inc_by(d);
        }
        let d = self.delta("sampled".into(), c.bpf_sampled_s);
        self.bpf_sampled.inc_by(d);
        for b in &c.bpf {
            let d = self.delta(format!("t|{}", b.program), b.run_time_s);
            self.bpf_run_time.with_label_values(&[b.program]).inc_by(d);
            let d = self.delta(format!("r|{}", b.program), b.runs as f64) as u64;
            self.bpf_runs.with_label_values(&[b.program]).inc_by(d);
        }
    }

    /// Counts violations found by the monitor.
    pub fn violations(&self, program: &str, found: &[Violation]) {
        for v in found {
            let p = &v.place;
            self.violations
                .with_label_values(&[program, &p.container, &p.role, &p.phase, &v.syscall])
                .inc_by(v.calls);
        }
    }

    /// A checkpoint could not be written.
    pub fn checkpoint_failed(&self) {
        self.checkpoint_failures.inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place() -> Place {
        Place {
            container: String::new(),
            role: "worker".into(),
            phase: "serving".into(),
        }
    }

    fn totals(calls: u64, errors: u64) -> Vec<Total> {
        vec![Total {
            place: place(),
            syscall: "accept4".into(),
            calls,
            errors,
        }]
    }

    #[test]
    fn counters_grow_by_the_increase_only() {
        let mut m = Metrics::new(&BuildInfo {
            version: "1".into(),
            kernel: "6.0".into(),
            arch: "x86_64".into(),
            mode: "summary".into(),
        })
        .unwrap();
        let c = Counters {
            events: 10,
            live: 2,
            bpf: vec![BpfCost {
                program: "pb_sys_enter",
                run_time_s: 0.005,
                runs: 100,
            }],
            bpf_sampled_s: 1.0,
            ..Default::default()
        };
        let phases = [place()];
        m.update("nginx", &totals(2, 0), &phases, &c);
        m.update("nginx", &totals(5, 1), &phases, &c);
        let text = m.render();
        assert!(text.contains(r#"phasebox_syscalls_total{container_id="",phase="serving",program="nginx",role="worker",syscall="accept4"} 5"#), "{text}");
        assert!(text.contains(r#"phasebox_syscall_errors_total{container_id="",phase="serving",program="nginx",role="worker",syscall="accept4"} 1"#), "{text}");
        assert!(
            text.contains(
                r#"phasebox_phase_info{container_id="",phase="serving",program="nginx",role="worker"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("phasebox_tracked_processes 2"), "{text}");
        assert!(text.contains("phasebox_events_total 10"), "{text}");
        assert!(
            text.contains("phasebox_bpf_stats_sampled_seconds_total 1"),
            "{text}"
        );
        assert!(
            text.contains(r#"phasebox_bpf_runs_total{program="pb_sys_enter"} 100"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"phasebox_build_info{arch="x86_64",kernel="6.0",mode="summary",version="1"} 1"#
            ),
            "{text}"
        );
        m.checkpoint_failed();
        assert!(m.render().contains("phasebox_checkpoint_failures_total 1"));
        let http = m.http();
        http.refused.inc_by(3);
        http.open.set(2);
        let text = m.render();
        assert!(
            text.contains("phasebox_http_connections_refused_total 3"),
            "{text}"
        );
        assert!(text.contains("phasebox_http_open_connections 2"), "{text}");
        assert!(
            text.contains("phasebox_http_connections_timed_out_total 0"),
            "{text}"
        );
    }
}
