//! The thread that answers a launched command's seccomp notifications, and what it denied:
//! `run --seccomp` (every call outside the profile fails and is recorded), `validate` (the same,
//! and the calls whose errno answer is misread kill their caller) and phase-aware enforcement
//! (startup-only calls allowed until the caller's process serves).
use std::collections::BTreeSet;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::{
    board::PhaseBoard,
    denials::Denied,
    notify::{self, Denial, Verdict},
    phased,
};

/// How notified calls are answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Fail every notified call with this errno, and record it with its role and phase.
    Deny(i32),
    /// Record every notified call; kill the caller of one of these (an errno answer to it is
    /// misread), fail the others with EPERM.
    DenyOrKill(BTreeSet<String>),
    /// Phase-aware enforcement: allow a startup-only call until its process serves, then
    /// fail it with EPERM.
    ByPhase,
}

/// What the supervisor denied.
#[derive(Clone, Debug, Default)]
pub struct Denials {
    /// Denied calls placed in their role and phase (`Deny`, `DenyOrKill`).
    pub placed: Vec<Denied>,
    /// Calls phase-aware enforcement denied.
    pub phase_aware: Vec<Denial>,
}

/// The notification thread, from [`Supervisor::start`] to [`Supervisor::finish`].
#[derive(Default)]
pub struct Supervisor {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Denial>>>,
    placed: Arc<Mutex<Vec<Denied>>>,
}

impl Supervisor {
    /// Answers the notifications on `fd` as `answer` says; the phase of a caller comes from
    /// `board`.
    pub fn start(&mut self, fd: OwnedFd, board: &PhaseBoard, answer: Answer) {
        let (board, log) = (board.clone(), self.placed.clone());
        let record = move |d: Denied| {
            if let Ok(mut v) = log.lock() {
                v.push(d);
            }
        };
        let decide = move |pid, nr, args: &[u64; 6]| match &answer {
            Answer::Deny(errno) => {
                record(Denied::at(&board, pid, nr, args));
                Verdict::Deny(*errno)
            }
            Answer::DenyOrKill(kills) => {
                let mut d = Denied::at(&board, pid, nr, args);
                d.killed = kills.contains(&d.syscall);
                let verdict = if d.killed {
                    Verdict::Kill
                } else {
                    Verdict::Deny(libc::EPERM)
                };
                record(d);
                verdict
            }
            Answer::ByPhase => phased::decide(&board, pid),
        };
        self.thread = Some(notify::supervise(fd, self.stop.clone(), decide));
    }

    /// Stops the thread; what it denied.
    pub fn finish(self) -> Denials {
        self.stop.store(true, Ordering::Relaxed);
        let phase_aware = self
            .thread
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        let placed = self.placed.lock().map(|v| v.clone()).unwrap_or_default();
        Denials {
            placed,
            phase_aware,
        }
    }
}
