//! BPF run-time statistics, sampled. While they are on, every BPF program on the host (not
//! only phasebox's) pays two clock reads per run, so a long-running agent turns them on for a
//! short window now and then (as bpftop does only while someone watches), never for good.
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use super::ProbeError;

/// When statistics are on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sampling {
    /// A window starts this often…
    pub every: Duration,
    /// …and lasts this long.
    pub window: Duration,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            every: Duration::from_secs(60),
            window: Duration::from_secs(1),
        }
    }
}

/// Turns statistics on and off on schedule and adds up how long they were on.
pub struct StatsSampler {
    sampling: Sampling,
    on: Option<(OwnedFd, Instant)>,
    next: Instant,
    /// Time statistics were on, windows closed so far.
    sampled: Duration,
}

impl StatsSampler {
    /// The first window starts at once, so a fresh agent reports its cost early.
    pub fn new(sampling: Sampling, now: Instant) -> StatsSampler {
        StatsSampler {
            sampling,
            on: None,
            next: now,
            sampled: Duration::ZERO,
        }
    }

    /// Opens or closes a window when it is time; returns whether a window just closed (the
    /// programs' counters then hold that window's runs).
    pub fn tick(&mut self, now: Instant) -> Result<bool, ProbeError> {
        match &self.on {
            None if now >= self.next => {
                let fd =
                    aya::sys::enable_stats(aya::sys::Stats::RunTime).map_err(ProbeError::Stats)?;
                self.on = Some((fd, now));
                self.next = now + self.sampling.every;
                Ok(false)
            }
            Some((_, since)) if now.duration_since(*since) >= self.sampling.window => {
                self.sampled += now.duration_since(*since);
                self.on = None; // closing the fd turns them off
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// How long statistics have been on, in closed windows.
    pub fn sampled(&self) -> Duration {
        self.sampled
    }
}
