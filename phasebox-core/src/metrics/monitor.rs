//! Monitor mode: calls outside the profile, and processes killed for one.
use prometheus::{IntCounter, IntCounterVec, Registry};

use super::births::{Births, Renderings};
use super::series::{Series, SeriesLimits};
use super::{BY_CALL, Counters, MetricsError, counter, counter_vec, growth};
use crate::learn::Place;
use crate::monitor::Violation;

/// Monitor mode: calls outside the profile, and processes killed for one.
pub(super) struct MonitorMetrics {
    violations: IntCounterVec,
    killed: IntCounter,
    last_killed: u64,
    /// Violations by place and syscall: a first violation starts its series at 0.
    new: Births<(String, Place, String)>,
    series: Series,
}

impl MonitorMetrics {
    pub(super) fn register(
        registry: &Registry,
        limits: SeriesLimits,
    ) -> Result<MonitorMetrics, MetricsError> {
        Ok(MonitorMetrics {
            violations: counter_vec(
                registry,
                "phasebox_profile_violations_total",
                "System calls outside the monitored profile's phase their process was in.",
                &BY_CALL,
            )?,
            killed: counter(
                registry,
                "phasebox_processes_killed_total",
                "Processes killed in monitor mode for a syscall outside their phase.",
            )?,
            last_killed: 0,
            new: Births::default(),
            series: Series::new(limits),
        })
    }

    pub(super) fn update(&mut self, c: &Counters) {
        self.killed.inc_by(growth(&mut self.last_killed, c.killed));
    }

    /// Counts the violations `found` in `program`; those held back in a new series are
    /// added once a client saw it at 0, at the next count.
    pub(super) fn count(&mut self, program: &str, found: &[Violation], r: Renderings) {
        for v in found {
            let (p, syscall) = self.series.of(&v.place, &v.syscall);
            let labels = [program, &p.container, &p.role, &p.phase, &syscall];
            if let Some(n) = self.new.add(
                (program.to_string(), p.clone(), syscall.clone()),
                v.calls,
                r,
            ) {
                self.violations.with_label_values(&labels).inc_by(n);
            }
        }
        for ((program, p, syscall), n) in self.new.ripe(r) {
            self.violations
                .with_label_values(&[&program, &p.container, &p.role, &p.phase, &syscall])
                .inc_by(n);
        }
    }

    /// How many label sets the limit folded into `_other`.
    pub(super) fn folded(&self) -> usize {
        self.series.folded()
    }
}
