//! `phasebox run -- CMD ARGS…`: launch CMD traced from its execve on.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use phasebox_core::seccomp::oci::OciProfile;
use tokio::sync::oneshot;

use super::{denials, trace_session};
use crate::{
    cli::{Namespace, RunArgs},
    enforce::{filter::FilterSpec, notify, phased},
    launch,
    session::{Mode, PhaseBoard, Stop},
};

/// The OCI seccomp profile at `path`, for the launched command.
fn seccomp_spec(path: &std::path::Path) -> anyhow::Result<FilterSpec> {
    let spec = FilterSpec::from_oci(&OciProfile::load(path)?)?;
    if spec.skipped_conditional > 0 {
        crate::say!(
            "phasebox: {} rules of {} depend on capabilities or architectures (includes/excludes) and were left out",
            spec.skipped_conditional,
            path.display()
        );
    }
    Ok(spec)
}

pub async fn run(args: RunArgs) -> anyhow::Result<i32> {
    let program = launch::resolve(&args.command[0])?;
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
    let mut builder = trace_session(Mode::Run, &args.trace)?
        .stream(true)
        .command(args.command.clone());
    // Phase-aware enforcement follows the phases of the manifest's rules, live.
    let board = PhaseBoard::default();
    if let Some(p) = &plan {
        builder = builder.phases(p.detector.clone()).board(board.clone());
    }
    let mut session = builder.start()?;
    let spec = match (&args.seccomp, &plan) {
        (Some(path), _) => Some(seccomp_spec(path)?),
        (None, Some(p)) => Some(p.spec()?),
        (None, None) => None,
    };
    let seccomp = spec.as_ref().map(|spec| launch::Seccomp {
        spec,
        skip_unknown: args.seccomp_skip_unknown,
    });
    let child = session.launch(&program, &args.command, seccomp, isolation(&args))?;
    let (pid, waited) = (child.pid, child.waited);
    // Reaps the whole tree (phasebox is its subreaper) on a thread of its own.
    let (done_tx, done_rx) = oneshot::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(launch::wait_all(waited));
    });
    let stop_supervisor = Arc::new(AtomicBool::new(false));
    let mut supervisor = None;
    child.release(|fd| {
        let board = board.clone();
        supervisor = Some(notify::supervise(
            fd,
            stop_supervisor.clone(),
            move |pid, _| phased::decide(&board, pid),
        ));
    })?;
    let exit_code = std::cell::Cell::new(0);
    let why = session
        .run(until_done(pid, done_rx, &exit_code), false)
        .await?;
    session.finish()?;
    stop_supervisor.store(true, Ordering::Relaxed);
    if let Some(h) = supervisor {
        let denied = h.join().unwrap_or_default();
        if !args.trace.quiet || !denied.is_empty() {
            denials::report_phase_aware(&denied);
        }
    }
    match why {
        Stop::TreeExited => Ok(exit_code.get()),
        Stop::Signal(_) | Stop::Duration => {
            crate::say!(
                "phasebox: stopped before {} ended; it keeps running untraced",
                args.command[0]
            );
            Ok(130)
        }
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

/// Resolves when the command's tree has ended (its exit code in `code`), or on a second
/// signal. The first Ctrl-C reaches the command through the terminal and the first SIGTERM is
/// passed on to it; phasebox waits for the tree to end.
async fn until_done(
    pid: u32,
    mut done: oneshot::Receiver<i32>,
    code: &std::cell::Cell<i32>,
) -> Stop {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        code.set(done.await.unwrap_or(1));
        return Stop::TreeExited;
    };
    let mut signals = 0;
    loop {
        tokio::select! {
            c = &mut done => {
                code.set(c.unwrap_or(1));
                return Stop::TreeExited;
            }
            _ = int.recv() => signals += 1,
            _ = term.recv() => {
                signals += 1;
                if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
                    let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
                }
            }
        }
        if signals >= 2 {
            return Stop::Signal("a second signal");
        }
    }
}
