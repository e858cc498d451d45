//! What the traced programs do: calls and failed calls by role, phase and syscall, and the
//! phase each role is in.
use std::collections::HashMap;

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use super::births::{Births, Renderings};
use super::series::{Series, SeriesLimits};
use super::{BY_CALL, MetricsError, counter_vec, growth, registered};
use crate::learn::{Place, Total};

/// Which calls a count is of: where they were made and the syscall (the program is the
/// session's).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CallKey {
    place: Place,
    syscall: String,
}

/// The totals of one [`CallKey`] last pushed.
#[derive(Clone, Copy, Debug, Default)]
struct CallTotals {
    calls: u64,
    errors: u64,
}

/// What the traced programs do: their calls, their failed calls, and the phase each role
/// is in.
pub(super) struct CallMetrics {
    syscalls: IntCounterVec,
    errors: IntCounterVec,
    phase_info: IntGaugeVec,
    /// The totals last pushed, by where the calls were made (before `series` maps them).
    last: HashMap<CallKey, CallTotals>,
    series: Series,
    new_calls: Births<CallKey>,
    new_errors: Births<CallKey>,
}

impl CallMetrics {
    pub(super) fn register(
        registry: &Registry,
        limits: SeriesLimits,
    ) -> Result<CallMetrics, MetricsError> {
        Ok(CallMetrics {
            syscalls: counter_vec(
                registry,
                "phasebox_syscalls_total",
                "System calls, by the role and phase the calling process was in when it made them.",
                &BY_CALL,
            )?,
            errors: counter_vec(
                registry,
                "phasebox_syscall_errors_total",
                "Failed system calls (agent --errors or --stream), by role and phase.",
                &BY_CALL,
            )?,
            phase_info: registered(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "phasebox_phase_info",
                        "The phase each role is in now (value 1).",
                    ),
                    &["program", "container_id", "role", "phase"],
                )?,
            )?,
            last: HashMap::new(),
            series: Series::new(limits),
            new_calls: Births::default(),
            new_errors: Births::default(),
        })
    }

    /// Adds the growth of the learner's totals; a series appears at 0 with its first call,
    /// and counts it once a client has seen the 0.
    pub(super) fn update(
        &mut self,
        program: &str,
        totals: &[Total],
        phases: &[Place],
        r: Renderings,
    ) {
        for t in totals {
            let key = CallKey {
                place: t.place.clone(),
                syscall: t.syscall.clone(),
            };
            let last = self.last.entry(key.clone()).or_default();
            let (calls, errors) = (
                growth(&mut last.calls, t.calls),
                growth(&mut last.errors, t.errors),
            );
            let (p, syscall) = self.series.of(&key.place, &key.syscall);
            let labels = [program, &p.container, &p.role, &p.phase, &syscall];
            let shown = CallKey {
                place: p.clone(),
                syscall: syscall.clone(),
            };
            if let Some(n) = self.new_calls.add(shown.clone(), calls, r) {
                self.syscalls.with_label_values(&labels).inc_by(n);
            }
            if let Some(n) = self.new_errors.add(shown, errors, r) {
                self.errors.with_label_values(&labels).inc_by(n);
            }
        }
        self.phase_info.reset();
        for p in phases {
            let p = self.series.place(p);
            self.phase_info
                .with_label_values(&[program, &p.container, &p.role, &p.phase])
                .set(1);
        }
    }

    /// How many label sets the limit folded into `_other`.
    pub(super) fn folded(&self) -> usize {
        self.series.folded()
    }
}
