//! The agent's own process, as the standard `process_*` metrics name it: CPU seconds (not
//! rounded to whole seconds), open and allowed descriptors, memory, threads, start time.
use prometheus::{Counter, Gauge, Opts, Registry};

use super::{MetricsError, growth_s, registered};

/// What the agent's process uses, read from /proc/self.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessSample {
    /// User and system CPU time.
    pub cpu_seconds: f64,
    pub open_fds: u64,
    /// The open-files limit (None: unlimited).
    pub max_fds: Option<u64>,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub threads: u64,
    /// Since the Unix epoch.
    pub start_time_seconds: f64,
}

/// A gauge and the field of a sample it shows.
type SampleGauge = (Gauge, fn(&ProcessSample) -> f64);

pub(super) struct ProcessMetrics {
    cpu: Counter,
    last_cpu: f64,
    gauges: [SampleGauge; 6],
}

fn gauge(registry: &Registry, name: &str, help: &str) -> Result<Gauge, MetricsError> {
    registered(registry, Gauge::with_opts(Opts::new(name, help))?)
}

impl ProcessMetrics {
    pub(super) fn register(registry: &Registry) -> Result<ProcessMetrics, MetricsError> {
        let g = |name, help| gauge(registry, name, help);
        Ok(ProcessMetrics {
            cpu: registered(
                registry,
                Counter::new(
                    "process_cpu_seconds_total",
                    "Total user and system CPU time spent in seconds.",
                )?,
            )?,
            last_cpu: 0.0,
            gauges: [
                (
                    g("process_open_fds", "Number of open file descriptors.")?,
                    |s| s.open_fds as f64,
                ),
                (
                    g(
                        "process_max_fds",
                        "Maximum number of open file descriptors.",
                    )?,
                    |s| s.max_fds.map_or(f64::INFINITY, |m| m as f64),
                ),
                (
                    g(
                        "process_resident_memory_bytes",
                        "Resident memory size in bytes.",
                    )?,
                    |s| s.resident_bytes as f64,
                ),
                (
                    g(
                        "process_virtual_memory_bytes",
                        "Virtual memory size in bytes.",
                    )?,
                    |s| s.virtual_bytes as f64,
                ),
                (
                    g("process_threads", "Number of OS threads in the process.")?,
                    |s| s.threads as f64,
                ),
                (
                    g(
                        "process_start_time_seconds",
                        "Start time of the process since unix epoch in seconds.",
                    )?,
                    |s| s.start_time_seconds,
                ),
            ],
        })
    }

    pub(super) fn update(&mut self, s: &ProcessSample) {
        self.cpu.inc_by(growth_s(&mut self.last_cpu, s.cpu_seconds));
        for (g, value) in &self.gauges {
            g.set(value(s));
        }
    }
}
