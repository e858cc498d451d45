//! Monitor mode: calls outside the profile, and processes killed for one.
use prometheus::{IntCounter, IntCounterVec, Registry};

use super::{BY_CALL, Counters, MetricsError, counter, counter_vec, growth};
use crate::monitor::Violation;

/// Monitor mode: calls outside the profile, and processes killed for one.
pub(super) struct MonitorMetrics {
    violations: IntCounterVec,
    killed: IntCounter,
    last_killed: u64,
}

impl MonitorMetrics {
    pub(super) fn register(registry: &Registry) -> Result<MonitorMetrics, MetricsError> {
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
        })
    }

    pub(super) fn update(&mut self, c: &Counters) {
        self.killed.inc_by(growth(&mut self.last_killed, c.killed));
    }

    /// Counts the violations `found` in `program`.
    pub(super) fn count(&self, program: &str, found: &[Violation]) {
        for v in found {
            let p = &v.place;
            self.violations
                .with_label_values(&[program, &p.container, &p.role, &p.phase, &v.syscall])
                .inc_by(v.calls);
        }
    }
}
