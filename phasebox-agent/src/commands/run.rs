//! `phasebox run -- CMD ARGS…`: launch CMD traced from its execve on.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::oneshot;

use super::output::{self, Capture};
use crate::{
    cli::{Namespace, RunArgs},
    enforce::{filter::FilterSpec, notify, phased},
    launch,
    session::{Origin, Session, Stop},
};
use phasebox_core::{
    learn::{Learner, ServingSet},
    process::ProcessTree,
    seccomp::oci::OciProfile,
};

/// What phase-aware enforcement denied.
fn report_denials(denials: &[notify::Denial]) {
    let Some(first) = denials.first() else {
        eprintln!("phasebox: phase-aware seccomp denied no call");
        return;
    };
    let mut by_name: std::collections::BTreeMap<&str, usize> = Default::default();
    for d in denials {
        *by_name.entry(d.name.as_str()).or_default() += 1;
    }
    let all: Vec<String> = by_name.iter().map(|(n, c)| format!("{n}×{c}")).collect();
    eprintln!(
        "phasebox: phase-aware seccomp denied {} calls made after serving began: {} (first: {} by pid {})",
        denials.len(),
        all.join(" "),
        first.name,
        first.pid
    );
}

/// The OCI seccomp profile at `path`, for the launched command.
fn seccomp_spec(path: &std::path::Path) -> anyhow::Result<FilterSpec> {
    let spec = FilterSpec::from_oci(&OciProfile::load(path)?)?;
    if spec.skipped_conditional > 0 {
        eprintln!(
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
    // Phase-aware enforcement follows phases, whose markers may need path arguments.
    let output::Started {
        outputs,
        mut probe,
        ring,
        writer,
    } = output::start(
        &args.trace,
        "run",
        args.command.clone(),
        None,
        Capture {
            stream: true,
            markers_need_paths: plan.is_some(),
            kill: false,
        },
    )?;
    launch::become_subreaper();
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
    let spec = match (&args.seccomp, &plan) {
        (Some(path), _) => Some(seccomp_spec(path)?),
        (None, Some(p)) => Some(p.spec()?),
        (None, None) => None,
    };
    let seccomp = spec.as_ref().map(|spec| launch::Seccomp {
        spec,
        skip_unknown: args.seccomp_skip_unknown,
    });
    let isolate = launch::Isolation {
        mount: !args.isolate.is_empty(),
        pid: args.isolate.contains(&Namespace::Pid),
        close_stdout: args.close_stdout,
    };
    let child = launch::spawn_gated(&program, &args.command, seccomp, isolate)?;
    let waited = child.waited;
    let pid = child.pid;
    if let Err(e) = probe.track_from_exec(pid) {
        child.abort();
        return Err(e);
    }
    let mut tree = ProcessTree::new();
    let comm = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    tree.add(
        pid,
        std::process::id(),
        program.display().to_string(),
        comm,
        None,
    );

    // Reaps the whole tree (phasebox is its subreaper) on a thread of its own.
    let (done_tx, mut done_rx) = oneshot::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(launch::wait_all(waited));
    });
    let serving: ServingSet = Default::default();
    let stop_supervisor = Arc::new(AtomicBool::new(false));
    let mut supervisor = None;
    let decide_set = serving.clone();
    child.release(|fd| {
        supervisor = Some(notify::supervise(
            fd,
            stop_supervisor.clone(),
            move |pid, _| phased::decide(&decide_set, pid),
        ));
    })?;

    let origin = Origin {
        roots: vec![pid],
        attached: vec![],
    };
    let mut learner = outputs.learner(&origin);
    if let Some(p) = &plan {
        let l = learner.get_or_insert_with(|| {
            Learner::new(p.detector.clone(), &origin.roots, &origin.attached)
        });
        l.share_serving(serving.clone());
    }
    let mut session = Session::new(probe, ring, tree, writer, learner, origin)?;
    let exit_code = std::cell::Cell::new(0);
    let stop = async {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            exit_code.set((&mut done_rx).await.unwrap_or(1));
            return Stop::TreeExited;
        };
        // The first Ctrl-C reaches the command through the terminal and the first SIGTERM is
        // passed on to it; phasebox waits for the tree to end. A second signal stops at once.
        let mut signals = 0;
        loop {
            tokio::select! {
                code = &mut done_rx => {
                    exit_code.set(code.unwrap_or(1));
                    return Stop::TreeExited;
                }
                _ = int.recv() => signals += 1,
                _ = term.recv() => {
                    signals += 1;
                    // SAFETY: plain kill on our own child.
                    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
                }
            }
            if signals >= 2 {
                return Stop::Signal("a second signal");
            }
        }
    };
    let why = session.run(stop, false).await?;
    outputs.finish(session)?;
    stop_supervisor.store(true, Ordering::Relaxed);
    if let Some(h) = supervisor {
        let denials = h.join().unwrap_or_default();
        if !args.trace.quiet || !denials.is_empty() {
            report_denials(&denials);
        }
    }
    match why {
        Stop::TreeExited => Ok(exit_code.get()),
        Stop::Signal(_) | Stop::Duration => {
            eprintln!(
                "phasebox: stopped before {} ended; it keeps running untraced",
                args.command[0]
            );
            Ok(130)
        }
    }
}
