//! The agent's own work and bounds: processes traced, events, checkpoints, processes found
//! outside the scope, writes a full kernel map refused.
use std::collections::HashMap;

use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};

use super::{Counters, MetricsError, counter, counter_vec, growth, registered};

/// The agent's own work: processes traced, events delivered and dropped, checkpoints that
/// failed.
pub(super) struct AgentMetrics {
    tracked: IntGauge,
    dropped: IntCounter,
    events: IntCounter,
    checkpoint_failures: IntCounter,
    /// Dropped and delivered events last pushed.
    last_dropped: u64,
    last_events: u64,
}

impl AgentMetrics {
    pub(super) fn register(registry: &Registry) -> Result<AgentMetrics, MetricsError> {
        Ok(AgentMetrics {
            tracked: registered(
                registry,
                IntGauge::new("phasebox_tracked_processes", "Processes traced now.")?,
            )?,
            dropped: counter(
                registry,
                "phasebox_events_dropped_total",
                "Events lost because the ring buffer was full (the syscall counters stay exact).",
            )?,
            events: counter(
                registry,
                "phasebox_events_total",
                "Events delivered from the kernel.",
            )?,
            checkpoint_failures: counter(
                registry,
                "phasebox_checkpoint_failures_total",
                "Checkpoints of the learned profile that could not be written.",
            )?,
            last_dropped: 0,
            last_events: 0,
        })
    }

    /// A checkpoint could not be written.
    pub(super) fn checkpoint_failed(&self) {
        self.checkpoint_failures.inc();
    }

    pub(super) fn update(&mut self, c: &Counters) {
        self.tracked.set(c.live as i64);
        self.dropped
            .inc_by(growth(&mut self.last_dropped, c.dropped));
        self.events.inc_by(growth(&mut self.last_events, c.events));
    }
}

/// What keeps the agent bounded: processes found at exec but outside its scope, and writes
/// a full kernel map refused.
pub(super) struct BoundMetrics {
    rejected: IntCounter,
    map_full: IntCounterVec,
    last_rejected: u64,
    /// Refused writes last pushed, by map.
    last_map_full: HashMap<&'static str, u64>,
}

impl BoundMetrics {
    pub(super) fn register(registry: &Registry) -> Result<BoundMetrics, MetricsError> {
        Ok(BoundMetrics {
            rejected: counter(
                registry,
                "phasebox_processes_rejected_total",
                "Processes the kernel found at their exec (--exec-name, --container) that are outside \
                 the agent's scope (another program with the same first 15 characters, another \
                 container): untracked, nothing of them learned.",
            )?,
            map_full: counter_vec(
                registry,
                "phasebox_map_full_total",
                "Entries a full kernel map refused: counters (a call uncounted), processes (calls \
                 counted without phases), set_requests (more phase segments than needed), allowed \
                 (a process not enforced), verdicts (a found process left unconfirmed).",
                &["map"],
            )?,
            last_rejected: 0,
            last_map_full: HashMap::new(),
        })
    }

    /// Every map the session names gets its series, even at 0.
    pub(super) fn update(&mut self, c: &Counters) {
        self.rejected
            .inc_by(growth(&mut self.last_rejected, c.rejected));
        for &(map, n) in &c.map_full {
            let grew = growth(self.last_map_full.entry(map).or_default(), n);
            self.map_full.with_label_values(&[map]).inc_by(grew);
        }
    }
}
