//! The kernel programs' cost while BPF statistics were sampled.
use std::collections::HashMap;

use prometheus::{Counter, CounterVec, IntCounterVec, Opts, Registry};

use super::{Counters, MetricsError, counter_vec, growth, growth_s, registered};

/// The totals of one kernel program last pushed.
#[derive(Clone, Copy, Debug, Default)]
struct BpfTotals {
    run_time_s: f64,
    runs: u64,
}

/// The cost of the kernel programs: their run time and runs while BPF statistics were
/// sampled, and how long they were.
pub(super) struct BpfMetrics {
    run_time: CounterVec,
    runs: IntCounterVec,
    sampled: Counter,
    last: HashMap<&'static str, BpfTotals>,
    last_sampled_s: f64,
}

impl BpfMetrics {
    pub(super) fn register(registry: &Registry) -> Result<BpfMetrics, MetricsError> {
        Ok(BpfMetrics {
            run_time: registered(
                registry,
                CounterVec::new(
                    Opts::new(
                        "phasebox_bpf_run_time_seconds_total",
                        "Time spent in each phasebox kernel program while BPF statistics were sampled \
                         (see phasebox_bpf_stats_sampled_seconds_total).",
                    ),
                    &["program"],
                )?,
            )?,
            runs: counter_vec(
                registry,
                "phasebox_bpf_runs_total",
                "Runs of each phasebox kernel program while BPF statistics were sampled.",
                &["program"],
            )?,
            sampled: registered(
                registry,
                Counter::new(
                    "phasebox_bpf_stats_sampled_seconds_total",
                    "Seconds BPF run-time statistics were on (they tax every BPF program on the host, \
                     so the agent samples them).",
                )?,
            )?,
            last: HashMap::new(),
            last_sampled_s: 0.0,
        })
    }

    /// Every program the session names gets its series, even at 0.
    pub(super) fn update(&mut self, c: &Counters) {
        self.sampled
            .inc_by(growth_s(&mut self.last_sampled_s, c.bpf_sampled_s));
        for b in &c.bpf {
            let last = self.last.entry(b.program).or_default();
            let run_time = growth_s(&mut last.run_time_s, b.run_time_s);
            let runs = growth(&mut last.runs, b.runs);
            self.run_time
                .with_label_values(&[b.program])
                .inc_by(run_time);
            self.runs.with_label_values(&[b.program]).inc_by(runs);
        }
    }
}
