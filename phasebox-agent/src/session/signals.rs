//! The signals a tracing command answers. They are caught from the moment the command starts,
//! before any output exists, so none of them can end phasebox with a file half-written: SIGINT,
//! SIGTERM and SIGHUP end tracing (everything learned is written), SIGUSR1 writes the profile
//! learned so far and tracing goes on (the agent treats SIGHUP so too, as daemons do), and
//! SIGXFSZ, which a file size limit sends, only fails the write that crossed it.
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::{Session, Stop};

/// A signal that came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caught {
    Int,
    Term,
    Hup,
    Usr1,
}

impl Caught {
    /// The signal's name.
    pub fn name(self) -> &'static str {
        match self {
            Caught::Int => "SIGINT",
            Caught::Term => "SIGTERM",
            Caught::Hup => "SIGHUP",
            Caught::Usr1 => "SIGUSR1",
        }
    }

    /// What `run` and `record` do: SIGUSR1 asks for a checkpoint, the others end tracing.
    pub fn for_tracer(self) -> Stop {
        match self {
            Caught::Usr1 => Stop::Checkpoint(self.name()),
            _ => Stop::Signal(self.name()),
        }
    }

    /// What the agent does: SIGHUP and SIGUSR1 ask for a checkpoint, SIGINT and SIGTERM end it.
    pub fn for_agent(self) -> Stop {
        match self {
            Caught::Hup | Caught::Usr1 => Stop::Checkpoint(self.name()),
            _ => Stop::Signal(self.name()),
        }
    }
}

/// The signals caught for the life of a command.
pub struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
    usr1: Signal,
    /// Never read: caught only so that crossing RLIMIT_FSIZE fails a write (EFBIG) instead of
    /// killing phasebox. A caught signal is back to its default in the programs phasebox
    /// launches (execve resets it), unlike an ignored one.
    _xfsz: Signal,
}

impl Signals {
    /// Catches the signals from now on (they wait until [`Signals::next`] is asked).
    pub fn catch() -> anyhow::Result<Signals> {
        let on = |kind: SignalKind| {
            signal(kind).map_err(|e| anyhow::anyhow!("cannot catch signals: {e}"))
        };
        Ok(Signals {
            int: on(SignalKind::interrupt())?,
            term: on(SignalKind::terminate())?,
            hup: on(SignalKind::hangup())?,
            usr1: on(SignalKind::user_defined1())?,
            _xfsz: on(SignalKind::from_raw(libc::SIGXFSZ))?,
        })
    }

    /// The next signal (cancel-safe: a signal is never lost to a dropped call).
    pub async fn next(&mut self) -> Caught {
        tokio::select! {
            _ = self.int.recv() => Caught::Int,
            _ = self.term.recv() => Caught::Term,
            _ = self.hup.recv() => Caught::Hup,
            _ = self.usr1.recv() => Caught::Usr1,
        }
    }
}

impl Session {
    /// Answers a checkpoint signal of `run` or `record`: writes the profile learned so far to
    /// the profile's path (a failure is said, and tracing goes on) and says how far tracing is.
    pub fn checkpoint(&mut self, signal: &str) {
        let n = self.tree.processes().count();
        let progress = format!(
            "{} records, {n} process{} so far",
            self.events,
            if n == 1 { "" } else { "es" }
        );
        let written = match (self.snapshot(), self.outputs.profile_path()) {
            (Ok(Some(profile)), Some(path)) => {
                phasebox_core::atomic_file::write_atomic(path, profile.to_json().as_bytes())
                    .map(|()| Some(path.to_path_buf()))
                    .map_err(anyhow::Error::from)
            }
            (Ok(_), _) => Ok(None),
            (Err(e), _) => Err(e),
        };
        match written {
            Ok(Some(path)) => crate::say!(
                "phasebox: {signal}: {progress}; the profile learned so far is written to {}",
                path.display()
            ),
            Ok(None) => crate::say!("phasebox: {signal}: {progress}"),
            Err(e) => crate::say!("phasebox: {signal}: {progress}; checkpoint not written: {e:#}"),
        }
    }
}
