//! A command the session launched, from its release to the end of its tree: phasebox is its
//! subreaper, a thread reaps every process of the tree, and the signal policy of `run` is
//! applied while the session traces it.
use tokio::sync::oneshot;

use super::{Caught, Session, Signals, Stop};
use crate::launch;

/// The launched command's tree, reaped in the background.
pub struct Launched {
    /// The command's own process (the one traced from its execve).
    pid: u32,
    done: oneshot::Receiver<i32>,
    /// The command's exit code, once its tree has ended.
    code: Option<i32>,
    /// Signals that end tracing so far (the second one ends it at once).
    stops: u32,
}

impl Launched {
    /// Reaps the tree of `waited` (the process phasebox forked) on a thread of its own; `pid`
    /// is the command's process, the signals' target.
    pub fn reap(pid: u32, waited: u32) -> Launched {
        let (done_tx, done) = oneshot::channel();
        std::thread::spawn(move || {
            let _ = done_tx.send(launch::wait_all(waited));
        });
        Launched {
            pid,
            done,
            code: None,
            stops: 0,
        }
    }

    /// The command's exit code (1 when its tree's end was not seen).
    pub fn exit_code(&self) -> i32 {
        self.code.unwrap_or(1)
    }

    /// Traces until the tree has ended; SIGUSR1 writes a checkpoint on the way; see
    /// [`Launched::until_done`] for the other signals.
    pub async fn trace(
        &mut self,
        session: &mut Session,
        signals: &mut Signals,
    ) -> anyhow::Result<Stop> {
        loop {
            let done = self.until_done(signals);
            match session.run(done, false).await? {
                Stop::Checkpoint(signal) => session.checkpoint(signal),
                why => return Ok(why),
            }
        }
    }

    /// Traces only until the tree has ended, whatever signals come (`validate`).
    pub async fn until_exit(&mut self) -> Stop {
        self.code = Some((&mut self.done).await.unwrap_or(1));
        Stop::TreeExited
    }

    /// Resolves when the command's tree has ended, on a second signal that ends tracing, or on
    /// SIGUSR1 (a checkpoint). The first Ctrl-C reaches the command through the terminal, and
    /// the first SIGTERM or SIGHUP is passed on to it: phasebox waits for the tree to end.
    async fn until_done(&mut self, signals: &mut Signals) -> Stop {
        loop {
            let caught = tokio::select! {
                c = &mut self.done => {
                    self.code = Some(c.unwrap_or(1));
                    return Stop::TreeExited;
                }
                s = signals.next() => s,
            };
            let pass_on = match caught {
                Caught::Usr1 => return caught.for_tracer(),
                Caught::Int => None,
                Caught::Term => Some(rustix::process::Signal::TERM),
                Caught::Hup => Some(rustix::process::Signal::HUP),
            };
            if let (Some(sig), Some(p)) = (pass_on, rustix::process::Pid::from_raw(self.pid as i32))
            {
                let _ = rustix::process::kill_process(p, sig);
            }
            self.stops += 1;
            if self.stops >= 2 {
                return Stop::Signal("a second signal");
            }
        }
    }
}
