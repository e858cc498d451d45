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
    /// Ctrl-C, SIGTERM or SIGHUP (the agent: SIGINT or SIGTERM).
    Signal(&'static str),
    /// A duration ran out.
    Duration,
    /// A signal asked for the profile learned so far: written, tracing goes on.
    Checkpoint(&'static str),
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
                    if self.last_sweep.elapsed() >= SWEEP_EVERY {
                        self.last_sweep = Instant::now();
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
    /// many of those in the session's scope live (with `any`, it stops at the first one found
    /// alive: enough to know the session goes on). A process /proc cannot answer for
    /// (phasebox out of descriptors, say) counts as living: only "no such process" ends one
    /// here, and the kernel's exit records end the others.
    fn check_liveness(&mut self, any: bool) -> usize {
        use std::sync::atomic::{AtomicBool, Ordering};
        // Logged once per stretch of failures, not every 200 ms.
        static UNANSWERED: AtomicBool = AtomicBool::new(false);
        let mut alive = 0;
        let mut failed = None;
        for pid in self.tree.live_pids() {
            let in_scope = self.tree.get(pid).is_none_or(|p| !p.ignored);
            match procfs::is_alive(pid) {
                Ok(true) => alive += usize::from(in_scope),
                Err(e) => {
                    alive += usize::from(in_scope);
                    failed.get_or_insert((pid, e));
                }
                Ok(false) if self.tree.is_candidate(pid) => self.tree.drop_candidate(pid),
                Ok(false) => {
                    let instance = self.tree.get(pid).map_or(0, |p| p.instance);
                    self.tree.mark_exited(pid, 0);
                    self.probe.untrack(pid);
                    self.probe.release_slot(pid, instance);
                }
            }
            if any && alive > 0 {
                break;
            }
        }
        match failed {
            Some((pid, e)) if !UNANSWERED.swap(true, Ordering::Relaxed) => log::warn!(
                "cannot read /proc/{pid}/stat ({}): taking the traced processes for running",
                phasebox_core::sysnames::describe_io(&e)
            ),
            Some(_) => {}
            None => UNANSWERED.store(false, Ordering::Relaxed),
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
