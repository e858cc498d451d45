//! `phasebox run -- CMD ARGS…`: launch CMD traced from its execve on.
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use phasebox_core::{
    phase::Detector,
    seccomp::{action::Action, oci::OciProfile},
};
use tokio::sync::oneshot;

use super::{
    denials::{self, Denied},
    trace_session,
};
use crate::{
    cli::{Namespace, RunArgs},
    enforce::{
        filter::FilterSpec,
        notify::{self, Denial, Verdict},
        phased,
    },
    launch,
    session::{Caught, Mode, PhaseBoard, Session, Signals, Stop},
};

/// The OCI seccomp profile at `path`, for the launched command, and the errno its calls
/// outside the profile get when phasebox can report them: with an errno default action they
/// come to phasebox as notifications, which it answers with that errno and records. Other
/// default actions are left to the kernel, and phasebox says it cannot report them.
fn seccomp_spec(path: &std::path::Path) -> anyhow::Result<(FilterSpec, Option<i32>)> {
    let oci = OciProfile::load(path)?;
    let mut spec = FilterSpec::from_oci(&oci)?;
    if spec.skipped_conditional > 0 {
        crate::say!(
            "phasebox: {} rules of {} depend on capabilities or architectures (includes/excludes) and were left out",
            spec.skipped_conditional,
            path.display()
        );
    }
    let errno = match oci.default_action {
        Action::Errno => {
            spec.notify_by_default();
            Some(oci.default_errno_ret.unwrap_or(libc::EPERM as u32) as i32)
        }
        Action::Log => {
            crate::say!(
                "phasebox: {}'s default action is {}: calls outside it are allowed and logged by the kernel (audit records in the kernel log), not reported here",
                path.display(),
                Action::Log
            );
            None
        }
        other => {
            crate::say!(
                "phasebox: {}'s default action is {other}: phasebox cannot report calls outside it (the kernel acts before any tracer sees them); `phasebox validate` reports them",
                path.display()
            );
            None
        }
    };
    Ok((spec, errno))
}

pub async fn run(args: RunArgs) -> anyhow::Result<i32> {
    // Before any output exists: no signal ends phasebox with a file half-written.
    let mut signals = Signals::catch()?;
    let program = launch::resolve(&args.command[0])?;
    let enforce = enforcement(&args)?;
    let board = PhaseBoard::default();
    let mut session = start_session(&args, &enforce, &board)?;
    let seccomp = enforce.spec.as_ref().map(|spec| launch::Seccomp {
        spec,
        skip_unknown: args.seccomp_skip_unknown,
    });
    let child = session.launch(&program, &args.command, seccomp, isolation(&args))?;
    let (pid, waited) = (child.pid, child.waited);
    let mut done_rx = reap_in_background(waited);
    let mut supervisor = Supervisor::default();
    child.release(|fd| supervisor.start(fd, &board, enforce.deny_errno))?;
    let exit_code = std::cell::Cell::new(0);
    let mut stops = 0;
    let why = loop {
        let done = until_done(pid, &mut done_rx, &exit_code, &mut signals, &mut stops);
        match session.run(done, false).await? {
            Stop::Checkpoint(signal) => session.checkpoint(signal),
            why => break why,
        }
    };
    // The denials are reported even when an output could not be written.
    let finished = session.finish();
    supervisor.finish(enforce.deny_errno, &args);
    finished?;
    match why {
        Stop::TreeExited => Ok(exit_code.get()),
        Stop::Signal(_) | Stop::Duration | Stop::Checkpoint(_) => {
            crate::say!(
                "phasebox: stopped before {} ended; it keeps running untraced",
                args.command[0]
            );
            Ok(130)
        }
    }
}

/// What `run` enforces: the filter the command gets, the errno its calls outside a
/// `--seccomp` profile get (phasebox answers and records them), and the per-phase plan of
/// `--seccomp-phases`.
struct Enforcement {
    plan: Option<phased::Plan>,
    spec: Option<FilterSpec>,
    deny_errno: Option<i32>,
}

/// The enforcement `--seccomp` or `--seccomp-phases` asks for, if any.
fn enforcement(args: &RunArgs) -> anyhow::Result<Enforcement> {
    let plan = args
        .seccomp_phases
        .as_deref()
        .map(phased::plan)
        .transpose()?;
    if let Some(p) = &plan
        && args.trace.profile.is_some()
        && args.trace.phases != p.detector.name()
    {
        anyhow::bail!(
            "--phases {} differs from the phase rules of the manifest ({}); use --phases {}",
            args.trace.phases,
            p.detector.name(),
            p.detector.name()
        );
    }
    let (spec, deny_errno) = match (&args.seccomp, &plan) {
        (Some(path), _) => {
            let (spec, errno) = seccomp_spec(path)?;
            (Some(spec), errno)
        }
        (None, Some(p)) => (Some(p.spec()?), None),
        (None, None) => (None, None),
    };
    Ok(Enforcement {
        plan,
        spec,
        deny_errno,
    })
}

/// The streaming session for the command. Phase-aware enforcement follows the phases of the
/// manifest's rules, live on `board`; denials are reported with the role and phase of the
/// caller.
fn start_session(
    args: &RunArgs,
    enforce: &Enforcement,
    board: &PhaseBoard,
) -> anyhow::Result<Session> {
    let mut builder = trace_session(Mode::Run, &args.trace)?
        .stream(true)
        .command(args.command.clone());
    if let Some(p) = &enforce.plan {
        builder = builder.phases(p.detector.clone()).board(board.clone());
    } else if enforce.deny_errno.is_some() {
        builder = builder
            .phases(Detector::load(&args.trace.phases)?)
            .board(board.clone());
    }
    builder.start()
}

/// Reaps the whole tree (phasebox is its subreaper) on a thread of its own; the exit code of
/// the process `waited` comes once the tree has ended.
fn reap_in_background(waited: u32) -> oneshot::Receiver<i32> {
    let (done_tx, done_rx) = oneshot::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(launch::wait_all(waited));
    });
    done_rx
}

/// The thread that answers the filter's notifications, and the calls it denied for
/// `--seccomp`.
#[derive(Default)]
struct Supervisor {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Denial>>>,
    denied: Arc<Mutex<Vec<Denied>>>,
}

impl Supervisor {
    /// Answers the notifications on `fd`: with `deny_errno`, denies every call and records
    /// it; else denies by the caller's phase on `board`.
    fn start(&mut self, fd: OwnedFd, board: &PhaseBoard, deny_errno: Option<i32>) {
        let (board, log) = (board.clone(), self.denied.clone());
        self.thread = Some(notify::supervise(
            fd,
            self.stop.clone(),
            move |pid, nr| match deny_errno {
                Some(errno) => {
                    if let Ok(mut v) = log.lock() {
                        v.push(Denied::at(&board, pid, nr));
                    }
                    Verdict::Deny(errno)
                }
                None => phased::decide(&board, pid),
            },
        ));
    }

    /// Stops the thread and reports what was denied.
    fn finish(self, deny_errno: Option<i32>, args: &RunArgs) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.thread {
            let phase_aware = h.join().unwrap_or_default();
            if deny_errno.is_some() {
                report_denied(
                    &self.denied.lock().map(|v| v.clone()).unwrap_or_default(),
                    args,
                );
            } else if !args.trace.quiet || !phase_aware.is_empty() {
                denials::report_phase_aware(&phase_aware);
            }
        }
    }
}

/// What `--seccomp` denied, one line per call, role, phase and pid.
fn report_denied(denied: &[Denied], args: &RunArgs) {
    if denied.is_empty() {
        if !args.trace.quiet {
            crate::say!("phasebox: the seccomp profile denied no call");
        }
        return;
    }
    crate::say!(
        "phasebox: the seccomp profile denied {} calls of {}:",
        denied.len(),
        args.command[0]
    );
    for line in denials::lines(denied) {
        crate::say!("phasebox: {line}");
    }
}

/// The namespaces and standard output the command gets.
fn isolation(args: &RunArgs) -> launch::Isolation {
    launch::Isolation {
        mount: !args.isolate.is_empty(),
        pid: args.isolate.contains(&Namespace::Pid),
        close_stdout: args.close_stdout,
    }
}

/// Resolves when the command's tree has ended (its exit code in `code`), on a second signal
/// that ends tracing, or on SIGUSR1 (a checkpoint). The first Ctrl-C reaches the command
/// through the terminal, and the first SIGTERM or SIGHUP is passed on to it; phasebox waits for
/// the tree to end. `stops` counts the signals that end tracing across calls.
async fn until_done(
    pid: u32,
    done: &mut oneshot::Receiver<i32>,
    code: &std::cell::Cell<i32>,
    signals: &mut Signals,
    stops: &mut u32,
) -> Stop {
    loop {
        let caught = tokio::select! {
            c = &mut *done => {
                code.set(c.unwrap_or(1));
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
        if let (Some(sig), Some(p)) = (pass_on, rustix::process::Pid::from_raw(pid as i32)) {
            let _ = rustix::process::kill_process(p, sig);
        }
        *stops += 1;
        if *stops >= 2 {
            return Stop::Signal("a second signal");
        }
    }
}
