//! The agent's own process from /proc/self, for the standard `process_*` metrics.
use phasebox_core::metrics::ProcessSample;
use procfs::process::{LimitValue, Process};

/// What the agent's process uses now (None when /proc/self cannot be read).
pub fn sample() -> Option<ProcessSample> {
    let me = Process::myself().ok()?;
    let stat = me.stat().ok()?;
    let ticks = procfs::ticks_per_second() as f64;
    let boot = procfs::boot_time_secs().ok()? as f64;
    let max_fds = me
        .limits()
        .ok()
        .and_then(|l| match l.max_open_files.soft_limit {
            LimitValue::Value(n) => Some(n),
            LimitValue::Unlimited => None,
        });
    Some(ProcessSample {
        cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
        open_fds: me.fd_count().map_or(0, |n| n as u64),
        max_fds,
        resident_bytes: stat.rss * procfs::page_size(),
        virtual_bytes: stat.vsize,
        threads: stat.num_threads.max(0) as u64,
        start_time_seconds: boot + stat.starttime as f64 / ticks,
    })
}
