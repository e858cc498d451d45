//! The session's loop: drain the ring buffer when the kernel wakes phasebox or every 20 ms,
//! harvest the counters every second, and stop on a signal, a duration, or the tree's end.
use std::future::Future;
use std::time::{Duration, Instant};

use super::Session;
use crate::procfs;

/// Why a session (or one stretch of it) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Every traced process is gone.
    TreeExited,
    /// Ctrl-C or SIGTERM.
    Signal(&'static str),
    /// A duration ran out.
    Duration,
}

enum Wake {
    Stop(Stop),
    Data,
    Tick,
}

/// How often the ring buffer is drained when the kernel does not wake the reader; how often
/// /proc is asked whether any traced process still lives (when the session ends with its
/// tree); and how often every traced process is checked (an exit whose record was lost, a
/// process outside the scope that the kernel stopped tracking: both are gone from the tree
/// then, whatever the mode).
const DRAIN_EVERY: Duration = Duration::from_millis(20);
const LIVENESS_EVERY: Duration = Duration::from_millis(200);
const SWEEP_EVERY: Duration = Duration::from_secs(5);

impl Session {
    /// Traces until `stop` resolves or, with `end_when_gone`, until no traced process lives.
    pub async fn run(
        &mut self,
        stop: impl Future<Output = Stop>,
        end_when_gone: bool,
    ) -> anyhow::Result<Stop> {
        let mut stop = std::pin::pin!(stop);
        let mut tick = tokio::time::interval(DRAIN_EVERY);
        let mut last_check = Instant::now();
        let mut last_sweep = Instant::now();
        loop {
            let wake = tokio::select! {
                biased;
                s = &mut stop => Wake::Stop(s),
                r = self.stream.readable_mut() => {
                    r?.clear_ready();
                    Wake::Data
                }
                _ = tick.tick() => Wake::Tick,
            };
            self.drain()?;
            if self.last_harvest.elapsed() >= super::HARVEST_EVERY {
                self.harvest()?;
            }
            match wake {
                Wake::Stop(s) => return Ok(s),
                Wake::Data => {}
                Wake::Tick => {
                    if last_sweep.elapsed() >= SWEEP_EVERY {
                        last_sweep = Instant::now();
                        self.check_liveness(false);
                    }
                    if end_when_gone && last_check.elapsed() >= LIVENESS_EVERY {
                        last_check = Instant::now();
                        if self.check_liveness(true) == 0 {
                            self.drain()?;
                            return Ok(Stop::TreeExited);
                        }
                    }
                }
            }
        }
    }

    /// Asks /proc which traced processes still live, marking the others exited; returns how
    /// many of those in the session's scope live. With `any`, it stops at the first one found
    /// alive (enough to know the session goes on).
    fn check_liveness(&mut self, any: bool) -> usize {
        let mut alive = 0;
        for pid in self.tree.live_pids() {
            if procfs::is_alive(pid) {
                let in_scope = self.tree.get(pid).is_none_or(|p| !p.ignored);
                alive += usize::from(in_scope);
                if any && alive > 0 {
                    break;
                }
            } else if self.tree.is_candidate(pid) {
                self.tree.drop_candidate(pid);
            } else {
                self.tree.mark_exited(pid, 0);
                self.probe.untrack(pid);
            }
        }
        alive
    }
}

/// Resolves on the first Ctrl-C or SIGTERM.
pub async fn interrupted() -> Stop {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => Stop::Signal("SIGINT"),
        _ = term.recv() => Stop::Signal("SIGTERM"),
    }
}
