//! Prometheus metrics of a running agent, refreshed from the session once a second and served
//! on /metrics. Label values are bounded: program, role, phase and syscall names, never pids.
//! Syscall counts come from the learner, which attributes every call to the phase its
//! process was in when it made it, so a scrape and the profile written at the end agree.
//!
//! The session hands over running totals; each family of counters keeps the totals it last
//! pushed, by its own key, and adds only the growth. A new series of calls or violations
//! starts at 0 (`births.rs`), so that `rate()` and `increase()` see its first calls.
mod agent;
mod births;
mod bpf;
mod calls;
mod http;
mod monitor;
mod page;
mod process;
mod series;

use prometheus::core::Collector;
use prometheus::{Encoder, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::{
    learn::{Place, Total},
    monitor::Violation,
};
use agent::{AgentMetrics, BoundMetrics};
use births::Renderings;
use bpf::BpfMetrics;
use calls::CallMetrics;
pub use http::HttpMetrics;
use monitor::MonitorMetrics;
pub use page::SharedPage;
use process::ProcessMetrics;
pub use process::ProcessSample;
pub use series::{DEFAULT_MAX_SERIES, Label, OTHER, SeriesLimits};

/// The families whose label sets `--metrics.max-series` bounds (calls and failed calls share
/// theirs).
const FOLDABLE: [&str; 2] = [
    "phasebox_syscalls_total",
    "phasebox_profile_violations_total",
];

/// The labels of a count of calls.
const BY_CALL: [&str; 5] = ["program", "container_id", "role", "phase", "syscall"];

/// The metrics could not be registered (a name or label the registry refuses).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the metrics")]
pub struct MetricsError(#[from] prometheus::Error);

/// The agent's metrics, by topic.
pub struct Metrics {
    registry: Registry,
    calls: CallMetrics,
    agent: AgentMetrics,
    bounds: BoundMetrics,
    bpf: BpfMetrics,
    monitor: MonitorMetrics,
    http: HttpMetrics,
    process: ProcessMetrics,
    /// Label sets folded into `_other`, by family.
    folded: IntGaugeVec,
    page: SharedPage,
    /// Renderings put on the page so far.
    rendered: u64,
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
    /// The agent's own process (None: not read).
    pub process: Option<ProcessSample>,
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

/// How much a running total grew since `last`, which becomes `now` (a total that went back
/// adds nothing).
fn growth(last: &mut u64, now: u64) -> u64 {
    let grew = now.saturating_sub(*last);
    *last = now;
    grew
}

/// [`growth`] of a total in seconds.
fn growth_s(last: &mut f64, now: f64) -> f64 {
    let grew = (now - *last).max(0.0);
    *last = now;
    grew
}

/// Registers `c` in `registry` and hands it back.
fn registered<C: Collector + Clone + 'static>(
    registry: &Registry,
    c: C,
) -> Result<C, MetricsError> {
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

/// A counter vector registered in `registry`.
fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, MetricsError> {
    registered(registry, IntCounterVec::new(Opts::new(name, help), labels)?)
}

/// A counter registered in `registry`.
fn counter(registry: &Registry, name: &str, help: &str) -> Result<IntCounter, MetricsError> {
    registered(registry, IntCounter::new(name, help)?)
}

/// phasebox's version and where it runs, set once.
fn register_build_info(registry: &Registry, build: &BuildInfo) -> Result<(), MetricsError> {
    let info = IntGaugeVec::new(
        Opts::new(
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
    /// Every metric registered, `build` shown by phasebox_build_info, the per-call families
    /// bounded by `limits`.
    pub fn new(build: &BuildInfo, limits: &SeriesLimits) -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let calls = CallMetrics::register(&registry, limits.clone())?;
        let agent = AgentMetrics::register(&registry)?;
        let bpf = BpfMetrics::register(&registry)?;
        let monitor = MonitorMetrics::register(&registry, limits.clone())?;
        let folded = registered(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "phasebox_series_folded",
                    "Label sets of a per-call metric folded into its _other series \
                     (--metrics.max-series reached).",
                ),
                &["metric"],
            )?,
        )?;
        for family in FOLDABLE {
            folded.with_label_values(&[family]).set(0);
        }
        let bounds = BoundMetrics::register(&registry)?;
        register_build_info(&registry, build)?;
        let http = HttpMetrics::register(&registry)?;
        let process = ProcessMetrics::register(&registry)?;
        Ok(Metrics {
            registry,
            calls,
            agent,
            bounds,
            bpf,
            monitor,
            http,
            process,
            folded,
            page: SharedPage::default(),
            rendered: 0,
        })
    }

    /// The page the metrics are published on, for the HTTP server.
    pub fn page(&self) -> SharedPage {
        self.page.clone()
    }

    /// The next rendering and the last one a client was given.
    fn renderings(&self) -> Renderings {
        Renderings {
            next: self.rendered + 1,
            served: self.page.served(),
        }
    }

    /// The metrics server's metrics, for the server to update.
    pub fn http(&self) -> HttpMetrics {
        self.http.clone()
    }

    /// Takes the learner's totals, the phase each role is in, and the session's counters.
    pub fn update(&mut self, program: &str, totals: &[Total], phases: &[Place], c: &Counters) {
        self.calls
            .update(program, totals, phases, self.renderings());
        self.agent.update(c);
        self.monitor.update(c);
        self.bounds.update(c);
        self.bpf.update(c);
        if let Some(p) = &c.process {
            self.process.update(p);
        }
        self.show_folded();
    }

    /// Label sets folded into `_other` so far, over the per-call families.
    pub fn folded(&self) -> usize {
        self.calls.folded() + self.monitor.folded()
    }

    fn show_folded(&self) {
        let [calls, violations] = FOLDABLE;
        let set = |family, n: usize| {
            self.folded
                .with_label_values(&[family])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        };
        set(calls, self.calls.folded());
        set(violations, self.monitor.folded());
    }

    /// Counts violations found by the monitor.
    pub fn violations(&mut self, program: &str, found: &[Violation]) {
        let r = self.renderings();
        self.monitor.count(program, found, r);
        self.show_folded();
    }

    /// A checkpoint could not be written.
    pub fn checkpoint_failed(&self) {
        self.agent.checkpoint_failed();
    }

    /// Renders the metrics onto the page, refreshed at `now`.
    pub fn publish(&mut self, now: std::time::Instant) {
        self.rendered += 1;
        self.page.set(self.render(), self.rendered, now);
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

    /// Puts the metrics on their page and has a client read it.
    fn seen(m: &mut Metrics) {
        m.publish(std::time::Instant::now());
        m.page().serve();
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
        let mut m = Metrics::new(
            &BuildInfo {
                version: "1".into(),
                kernel: "6.0".into(),
                arch: "x86_64".into(),
                mode: "summary".into(),
            },
            &SeriesLimits::default(),
        )
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
        seen(&mut m);
        m.update("nginx", &totals(5, 1), &phases, &c);
        seen(&mut m);
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

    #[test]
    fn totals_that_go_back_add_nothing_and_each_family_keeps_its_own() {
        let mut m = Metrics::new(&BuildInfo::default(), &SeriesLimits::default()).unwrap();
        let c = |map_full: u64, runs: u64, run_time_s: f64| Counters {
            dropped: 4,
            map_full: vec![("counters", map_full), ("processes", 0)],
            bpf: vec![BpfCost {
                program: "pb_sys_enter",
                run_time_s,
                runs,
            }],
            ..Default::default()
        };
        m.update("p", &totals(7, 2), &[], &c(3, 10, 0.5));
        seen(&mut m);
        // A session started again: its totals are lower, and nothing is taken back.
        m.update("p", &totals(5, 1), &[], &c(1, 4, 0.25));
        m.update("p", &totals(8, 1), &[], &c(6, 4, 0.75));
        let text = m.render();
        for want in [
            r#"phasebox_syscalls_total{container_id="",phase="serving",program="p",role="worker",syscall="accept4"} 10"#,
            r#"phasebox_syscall_errors_total{container_id="",phase="serving",program="p",role="worker",syscall="accept4"} 2"#,
            r#"phasebox_map_full_total{map="counters"} 8"#,
            r#"phasebox_map_full_total{map="processes"} 0"#,
            r#"phasebox_bpf_runs_total{program="pb_sys_enter"} 10"#,
            r#"phasebox_bpf_run_time_seconds_total{program="pb_sys_enter"} 1"#,
            "phasebox_events_dropped_total 4",
        ] {
            assert!(text.contains(want), "{want} not in {text}");
        }
    }

    #[test]
    fn a_new_series_is_scraped_at_0_before_its_calls() {
        let mut m = Metrics::new(&BuildInfo::default(), &SeriesLimits::default()).unwrap();
        let c = Counters::default();
        let series = r#"phasebox_syscalls_total{container_id="",phase="serving",program="p",role="worker",syscall="accept4"}"#;
        m.update("p", &totals(4, 0), &[], &c);
        m.publish(std::time::Instant::now());
        m.update("p", &totals(6, 0), &[], &c);
        m.publish(std::time::Instant::now());
        assert!(
            m.page().serve().contains(&format!("{series} 0\n")),
            "shown at 0 first"
        );
        m.update("p", &totals(6, 0), &[], &c);
        m.publish(std::time::Instant::now());
        assert!(
            m.page().serve().contains(&format!("{series} 6\n")),
            "then all of it"
        );
    }

    #[test]
    fn a_first_violation_is_scraped_at_0_and_counted_without_another() {
        let mut m = Metrics::new(&BuildInfo::default(), &SeriesLimits::default()).unwrap();
        let v = Violation {
            pid: 1,
            place: place(),
            syscall: "ptrace".into(),
            calls: 2,
            first: true,
        };
        let series = r#"phasebox_profile_violations_total{container_id="",phase="serving",program="p",role="worker",syscall="ptrace"}"#;
        m.violations("p", &[v]);
        seen(&mut m);
        assert!(m.render().contains(&format!("{series} 0\n")));
        m.violations("p", &[]);
        assert!(
            m.render().contains(&format!("{series} 2\n")),
            "{}",
            m.render()
        );
    }

    #[test]
    fn process_cpu_seconds_keep_their_fraction() {
        let mut m = Metrics::new(&BuildInfo::default(), &SeriesLimits::default()).unwrap();
        let sample = |cpu| Counters {
            process: Some(ProcessSample {
                cpu_seconds: cpu,
                open_fds: 12,
                max_fds: Some(1024),
                resident_bytes: 4096,
                virtual_bytes: 8192,
                threads: 3,
                start_time_seconds: 1.7e9,
            }),
            ..Default::default()
        };
        m.update("p", &[], &[], &sample(0.25));
        m.update("p", &[], &[], &sample(0.75));
        let text = m.render();
        for want in [
            "process_cpu_seconds_total 0.75\n",
            "process_open_fds 12\n",
            "process_max_fds 1024\n",
            "process_resident_memory_bytes 4096\n",
            "process_start_time_seconds 1700000000\n",
            "process_threads 3\n",
        ] {
            assert!(text.contains(want), "{want} not in {text}");
        }
    }

    #[test]
    fn the_limits_sum_over_left_out_labels_and_fold_the_rest_exactly() {
        let limits = SeriesLimits {
            without: vec![Label::Container],
            max: 2,
        };
        let mut m = Metrics::new(&BuildInfo::default(), &limits).unwrap();
        let total = |container: &str, syscall: &str, calls| Total {
            place: Place {
                container: container.into(),
                ..place()
            },
            syscall: syscall.into(),
            calls,
            errors: 0,
        };
        let totals = [
            total("aaa", "read", 3),
            total("bbb", "read", 4),
            total("aaa", "write", 5),
            total("aaa", "close", 6),
            total("bbb", "openat", 7),
        ];
        m.update("p", &totals, &[place()], &Counters::default());
        seen(&mut m);
        m.update("p", &totals, &[place()], &Counters::default());
        let text = m.render();
        for want in [
            r#"phasebox_syscalls_total{container_id="",phase="serving",program="p",role="worker",syscall="read"} 7"#,
            r#"phasebox_syscalls_total{container_id="",phase="serving",program="p",role="worker",syscall="write"} 5"#,
            r#"phasebox_syscalls_total{container_id="_other",phase="_other",program="p",role="_other",syscall="_other"} 13"#,
            r#"phasebox_series_folded{metric="phasebox_syscalls_total"} 2"#,
            r#"phasebox_series_folded{metric="phasebox_profile_violations_total"} 0"#,
            r#"phasebox_phase_info{container_id="",phase="serving",program="p",role="worker"} 1"#,
        ] {
            assert!(text.contains(want), "{want} not in {text}");
        }
        assert!(!text.contains("aaa"), "{text}");
        assert_eq!(m.folded(), 2);
    }
}
