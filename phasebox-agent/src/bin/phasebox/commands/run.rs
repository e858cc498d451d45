//! `phasebox run -- CMD ARGS…`: launch CMD traced from its execve on.
use phasebox_core::phase::Detector;

use super::trace_session;
use crate::cli::{Namespace, RunArgs};
use phasebox::{
    enforce::{
        board::PhaseBoard,
        denials,
        setup::Enforcement,
        supervisor::{Denials, Supervisor},
    },
    launch,
    session::{Launched, Mode, Session, Signals, Stop},
};

pub async fn run(args: RunArgs) -> anyhow::Result<i32> {
    // Before any output exists: no signal ends phasebox with a file half-written.
    let mut signals = Signals::catch()?;
    let program = launch::resolve(&args.command[0])?;
    let enforce = enforcement(&args)?;
    for note in &enforce.notes {
        phasebox::say!("phasebox: {note}");
    }
    let board = PhaseBoard::default();
    let mut session = start_session(&args, &enforce, &board)?;
    let seccomp = enforce.spec.as_ref().map(|spec| launch::Seccomp {
        spec,
        skip_unknown: args.seccomp_skip_unknown,
    });
    let child = session.launch(&program, &args.command, seccomp, isolation(&args))?;
    let mut launched = Launched::reap(child.pid, child.waited);
    let mut supervisor = Supervisor::default();
    let answer = enforce.answer.clone();
    child.release(|fd| {
        if let Some(a) = answer {
            supervisor.start(fd, &board, a)
        }
    })?;
    let why = launched.trace(&mut session, &mut signals).await?;
    // The denials are reported even when an output could not be written.
    let finished = session.finish();
    report(&supervisor.finish(), &enforce, &args);
    finished?;
    match why {
        Stop::TreeExited => Ok(launched.exit_code()),
        Stop::Signal(_) | Stop::Duration | Stop::Checkpoint(_) => {
            phasebox::say!(
                "phasebox: stopped before {} ended; it keeps running untraced",
                args.command[0]
            );
            Ok(130)
        }
    }
}

/// What `--seccomp` or `--seccomp-phases` asks for, if any; the manifest's phase rules must be
/// the ones a profile is learned with.
fn enforcement(args: &RunArgs) -> anyhow::Result<Enforcement> {
    let e = match (&args.seccomp, &args.seccomp_phases) {
        (Some(path), _) => Enforcement::profile(path)?,
        (None, Some(manifest)) => Enforcement::phases(manifest)?,
        (None, None) => Enforcement::none(),
    };
    if let Some(p) = &e.plan
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
    Ok(e)
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
    } else if enforce.answer.is_some() {
        builder = builder
            .phases(Detector::load(&args.trace.phases)?)
            .board(board.clone());
    }
    builder.start()
}

/// What was denied: per call with its role and phase for `--seccomp`, in one line for
/// phase-aware enforcement.
fn report(denied: &Denials, enforce: &Enforcement, args: &RunArgs) {
    if enforce.plan.is_some() {
        if !args.trace.quiet || !denied.phase_aware.is_empty() {
            phasebox::say!(
                "phasebox: {}",
                denials::phase_aware_line(&denied.phase_aware)
            );
        }
        return;
    }
    if enforce.answer.is_none() {
        return;
    }
    if denied.placed.is_empty() {
        if !args.trace.quiet {
            phasebox::say!("phasebox: the seccomp profile denied no call");
        }
        return;
    }
    phasebox::say!(
        "phasebox: the seccomp profile denied {} calls of {}:",
        denied.placed.len(),
        args.command[0]
    );
    for line in denials::lines(&denied.placed) {
        phasebox::say!("phasebox: {line}");
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
