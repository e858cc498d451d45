//! Prometheus metrics of a running agent, refreshed from the session once a second and served
//! on /metrics. Label values are bounded: program, role, phase and syscall names, never pids.
use std::collections::HashMap;

use prometheus::{
    CounterVec, Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// The agent's metrics.
pub struct Metrics {
    registry: Registry,
    syscalls: IntCounterVec,
    phase_info: IntGaugeVec,
    tracked: IntGauge,
    dropped: IntCounter,
    events: IntCounter,
    bpf_run_time: CounterVec,
    bpf_runs: IntCounterVec,
    /// Counted by monitor mode (a series appears with the first violation).
    pub violations: IntCounterVec,
    killed: IntCounter,
    /// Last values pushed into each counter, to add only the increase.
    last: HashMap<String, f64>,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

impl Metrics {
    pub fn new() -> anyhow::Result<Metrics> {
        let registry = Registry::new();
        let syscalls = IntCounterVec::new(
            opts(
                "phasebox_syscalls_total",
                "System calls seen, by program, role, phase and syscall.",
            ),
            &["program", "role", "phase", "syscall"],
        )?;
        let phase_info = IntGaugeVec::new(
            opts(
                "phasebox_phase_info",
                "The phase each role is in now (value 1).",
            ),
            &["program", "role", "phase"],
        )?;
        let tracked = IntGauge::new("phasebox_tracked_processes", "Processes traced now.")?;
        let dropped = IntCounter::new(
            "phasebox_events_dropped_total",
            "Events lost because the ring buffer was full (the syscall counters stay exact).",
        )?;
        let events = IntCounter::new("phasebox_events_total", "Events delivered from the kernel.")?;
        let bpf_run_time = CounterVec::new(
            opts(
                "phasebox_bpf_run_time_seconds_total",
                "Time spent in each phasebox kernel program.",
            ),
            &["program"],
        )?;
        let bpf_runs = IntCounterVec::new(
            opts(
                "phasebox_bpf_runs_total",
                "Runs of each phasebox kernel program.",
            ),
            &["program"],
        )?;
        let violations = IntCounterVec::new(
            opts(
                "phasebox_profile_violations_total",
                "System calls outside the monitored profile's current phase.",
            ),
            &["program", "role", "phase", "syscall"],
        )?;
        registry.register(Box::new(syscalls.clone()))?;
        registry.register(Box::new(phase_info.clone()))?;
        registry.register(Box::new(tracked.clone()))?;
        registry.register(Box::new(dropped.clone()))?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(bpf_run_time.clone()))?;
        registry.register(Box::new(bpf_runs.clone()))?;
        registry.register(Box::new(violations.clone()))?;
        let killed = IntCounter::new(
            "phasebox_processes_killed_total",
            "Processes killed in monitor mode for a syscall outside their phase.",
        )?;
        registry.register(Box::new(killed.clone()))?;
        Ok(Metrics {
            registry,
            syscalls,
            phase_info,
            tracked,
            dropped,
            events,
            bpf_run_time,
            bpf_runs,
            violations,
            killed,
            last: HashMap::new(),
        })
    }

    /// How much `key` grew since the last call.
    fn delta(&mut self, key: String, now: f64) -> f64 {
        let last = self.last.insert(key, now).unwrap_or(0.0);
        (now - last).max(0.0)
    }

    /// Takes new calls (role, phase, syscall, how many more), the phase each role is in, how
    /// many processes live, and the session's counters.
    pub fn update(
        &mut self,
        program: &str,
        calls: &[(String, String, String, u64)],
        phases: &[(String, String)],
        live: usize,
        report: &Counters,
    ) {
        for (role, phase, syscall, n) in calls {
            self.syscalls
                .with_label_values(&[program, role, phase, syscall])
                .inc_by(*n);
        }
        self.phase_info.reset();
        for (role, phase) in phases {
            self.phase_info
                .with_label_values(&[program, role.as_str(), phase.as_str()])
                .set(1);
        }
        self.tracked.set(live as i64);
        let d = self.delta("dropped".into(), report.dropped as f64) as u64;
        self.dropped.inc_by(d);
        let d = self.delta("killed".into(), report.killed as f64) as u64;
        self.killed.inc_by(d);
        let d = self.delta("events".into(), report.events as f64) as u64;
        self.events.inc_by(d);
        for (prog, time, runs) in &report.bpf {
            let d = self.delta(format!("t|{prog}"), time.as_secs_f64());
            self.bpf_run_time.with_label_values(&[prog]).inc_by(d);
            let d = self.delta(format!("r|{prog}"), *runs as f64) as u64;
            self.bpf_runs.with_label_values(&[prog]).inc_by(d);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Session counters for `Metrics::update`.
#[derive(Debug, Default)]
pub struct Counters {
    pub events: u64,
    pub dropped: u64,
    pub killed: u64,
    pub bpf: Vec<(&'static str, std::time::Duration, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_grow_by_the_increase_only() {
        let mut m = Metrics::new().unwrap();
        let c = Counters {
            events: 10,
            dropped: 0,
            killed: 0,
            bpf: vec![("pb_sys_enter", std::time::Duration::from_millis(5), 100)],
        };
        let phases = [("worker".to_string(), "serving".to_string())];
        let calls = |n| {
            vec![(
                "worker".to_string(),
                "serving".to_string(),
                "accept4".to_string(),
                n,
            )]
        };
        m.update("nginx", &calls(2), &phases, 2, &c);
        m.update("nginx", &calls(3), &phases, 2, &c);
        let text = m.render();
        assert!(text.contains(r#"phasebox_syscalls_total{phase="serving",program="nginx",role="worker",syscall="accept4"} 5"#), "{text}");
        assert!(
            text.contains(
                r#"phasebox_phase_info{phase="serving",program="nginx",role="worker"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("phasebox_tracked_processes 2"), "{text}");
        assert!(text.contains("phasebox_events_total 10"), "{text}");
        assert!(
            text.contains(r#"phasebox_bpf_runs_total{program="pb_sys_enter"} 100"#),
            "{text}"
        );
    }
}
