//! A tracing session: drains the ring buffer, keeps the process tree and the trace file up to
//! date, and ends with the summary. Shared by `run` and `record`.
use std::future::Future;
use std::time::{Duration, Instant};

use aya::maps::{MapData, RingBuf};
use phasebox_common::kind;
use tokio::io::{Interest, unix::AsyncFd};

use phasebox_core::{
    event::{self, Event},
    learn::Learner,
    process::ProcessTree,
    summary::Summary,
    tracefile::{TraceFooter, TraceWriter},
};

use crate::{probe::Probe, procfs};

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Every traced process is gone.
    TreeExited,
    /// Ctrl-C or SIGTERM.
    Signal(&'static str),
    /// `--duration` ran out.
    Duration,
}

enum Wake {
    Stop(Stop),
    Data,
    Tick,
}

/// How often the ring buffer is drained when the kernel does not wake the reader, and how often
/// /proc is asked whether traced processes still live.
const DRAIN_EVERY: Duration = Duration::from_millis(20);
const LIVENESS_EVERY: Duration = Duration::from_millis(200);

/// Which processes a session started from.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    /// Launched or attached to.
    pub roots: Vec<u32>,
    /// Already running when tracing began.
    pub attached: Vec<u32>,
}

pub struct Session {
    probe: Probe,
    ring: AsyncFd<RingBuf<MapData>>,
    pub tree: ProcessTree,
    writer: Option<TraceWriter>,
    learner: Option<Learner>,
    origin: Origin,
    events: u64,
    bad_records: u64,
    /// The kernel sends first uses per phase and marker calls, not every call.
    summary_mode: bool,
}

/// What a session leaves.
pub struct Finished {
    pub summary: Summary,
    pub tree: ProcessTree,
    pub learner: Option<Learner>,
}

impl Session {
    /// Must be called inside the tokio runtime.
    pub fn new(
        probe: Probe,
        ring: RingBuf<MapData>,
        tree: ProcessTree,
        writer: Option<TraceWriter>,
        learner: Option<Learner>,
        origin: Origin,
    ) -> anyhow::Result<Session> {
        // SAFETY: the ring buffer owns its fd, which stays open until the AsyncFd is dropped.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|e| anyhow::anyhow!("cannot watch the ring buffer: {e}"))?;
        Ok(Session {
            probe,
            ring,
            tree,
            writer,
            learner,
            origin,
            events: 0,
            bad_records: 0,
            summary_mode: false,
        })
    }

    /// Reads every record waiting in the ring buffer.
    fn drain(&mut self) -> anyhow::Result<()> {
        let ring = self.ring.get_mut();
        while let Some(item) = ring.next() {
            let bytes: &[u8] = &item;
            self.events += 1;
            if let Some(w) = self.writer.as_mut() {
                w.record(bytes)?;
            }
            // Without a learner, syscall records only matter here for telling new processes
            // from threads, and are not decoded.
            let k = event::peek_kind(bytes);
            if self.learner.is_none() && (k == Ok(kind::SYSCALL) || k == Ok(kind::PATH)) {
                let tgid = u32::from_ne_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
                self.tree.note_tgid(tgid);
                continue;
            }
            match event::decode(bytes) {
                Ok(ev) => {
                    if let Event::Exec(e) = &ev
                        && e.new_root
                    {
                        let ppid = procfs::stat(e.tgid).map_or(0, |s| s.ppid);
                        self.tree.add(
                            e.tgid,
                            ppid,
                            e.filename.clone(),
                            e.comm.clone(),
                            Some(e.ts_ns),
                        );
                        self.origin.roots.push(e.tgid);
                        if let Some(l) = self.learner.as_mut() {
                            l.add_root(e.tgid);
                        }
                    }
                    if let Event::Exit(r) = &ev
                        && r.group_dead != 0
                    {
                        self.probe.untrack(r.header.tgid);
                        if self.summary_mode {
                            self.probe.forget(r.header.tgid);
                        }
                    }
                    self.tree.apply(&ev);
                    if let Some(l) = self.learner.as_mut() {
                        l.observe(&ev, &self.tree);
                    }
                }
                Err(_) => self.bad_records += 1,
            }
        }
        // Once per batch, not per event: the kernel learns of phase changes a batch later.
        if let (true, Some(l)) = (self.summary_mode, self.learner.as_mut()) {
            for (tgid, epoch, markers_left) in l.take_phase_changes() {
                self.probe.set_epoch(tgid, epoch, !markers_left);
            }
        }
        Ok(())
    }

    /// Asks /proc which traced processes still live; returns how many do.
    fn check_liveness(&mut self) -> usize {
        let mut alive = 0;
        for pid in self.tree.live_pids() {
            if procfs::is_alive(pid) {
                alive += 1;
            } else if self.tree.is_candidate(pid) {
                self.tree.drop_candidate(pid);
            } else {
                self.tree.mark_exited(pid, 0);
                self.probe.untrack(pid);
            }
        }
        alive
    }

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
                r = self.ring.readable() => {
                    r?.clear_ready();
                    Wake::Data
                }
                _ = tick.tick() => Wake::Tick,
            };
            self.drain()?;
            match wake {
                Wake::Stop(s) => return Ok(s),
                Wake::Data => {}
                Wake::Tick => {
                    if end_when_gone && last_check.elapsed() >= LIVENESS_EVERY {
                        last_check = Instant::now();
                        if self.check_liveness() == 0 {
                            self.drain()?;
                            return Ok(Stop::TreeExited);
                        }
                    }
                }
            }
        }
    }

    /// Summary mode: the kernel reports first uses per phase and marker calls; this passes the
    /// learner's phase changes and markers to it.
    pub fn use_summary_mode(&mut self) -> anyhow::Result<()> {
        self.summary_mode = true;
        if let Some(l) = &self.learner {
            let markers = l.marker_syscalls();
            self.probe.set_markers(&markers)?;
        }
        Ok(())
    }

    pub fn learner(&self) -> Option<&Learner> {
        self.learner.as_ref()
    }

    pub fn probe_mut(&mut self) -> &mut Probe {
        &mut self.probe
    }

    pub fn probe(&self) -> &Probe {
        &self.probe
    }

    /// Records delivered so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Final drain, exact counters, and the trace file's footer.
    pub fn finish(mut self) -> anyhow::Result<Finished> {
        self.drain()?;
        let counts = self.probe.counts()?;
        let losses = self.probe.losses()?;
        for key in counts.keys() {
            self.tree.note_tgid(key.tgid);
        }
        if self.bad_records > 0 {
            eprintln!(
                "phasebox: {} records could not be decoded and were skipped",
                self.bad_records
            );
        }
        let summary = Summary::build(&self.tree, &counts, losses, self.events);
        if let Some(w) = self.writer.take() {
            let footer = TraceFooter {
                summary: summary.clone(),
                root_pids: self.origin.roots.clone(),
                attached_pids: self.origin.attached.clone(),
            };
            w.finish(&footer)?;
        }
        Ok(Finished {
            summary,
            tree: self.tree,
            learner: self.learner,
        })
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
