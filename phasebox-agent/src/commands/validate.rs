//! `phasebox validate --profile P -- CMD…`: runs CMD under the profile as a seccomp filter whose
//! denials come to phasebox (user notifications) instead of failing silently; the calls are
//! still denied (EPERM), so CMD behaves as under the real filter. CMD is traced too, so each
//! denied call is reported with the role and phase its process was in. Passes only when CMD
//! exits 0 and nothing was denied.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use phasebox_core::{
    phase::Detector,
    profile::Profile,
    seccomp::{
        export::{self, DefaultAction, Policy, Target},
        oci::OciProfile,
    },
    sysnames,
};
use tokio::sync::oneshot;

use super::denials::{self, Denied};
use crate::{
    cli::ValidateArgs,
    enforce::{
        filter::FilterSpec,
        notify::{self, Verdict},
    },
    launch,
    session::{Mode, OutputPaths, PhaseBoard, Session},
};

/// The profile (or OCI policy) to validate, and the phase rules to name phases with.
fn policy(args: &ValidateArgs) -> anyhow::Result<(OciProfile, Detector)> {
    let rules = |name: &str| Detector::load(name).or_else(|_| Detector::load("generic"));
    match (&args.profile, &args.seccomp) {
        (Some(path), _) => {
            let p = Profile::load(path)?;
            let (role, phase) = (args.role.as_deref(), args.phase.as_deref());
            let mut names = export::select(&p, role, phase)?;
            if args.add_basics {
                export::add_basics(&mut names);
            }
            // The policy export writes: its ENOSYS and kill rules stay in the kernel.
            let filtered = export::select_filtered(&p, role, phase)?;
            let policy = Policy::new(names, &filtered, DefaultAction::Errno);
            let target = Target {
                arch: &p.arch,
                label: p.program.comm.clone(),
                action: DefaultAction::Errno,
                errno: libc::EPERM as u32,
            };
            let oci = export::oci_profile(&policy, &target);
            let det = match &args.phases {
                Some(r) => Detector::load(r)?,
                None => rules(p.runs.first().map_or("generic", |r| r.rules.as_str()))?,
            };
            Ok((oci, det))
        }
        (None, Some(path)) => {
            let det = Detector::load(args.phases.as_deref().unwrap_or("generic"))?;
            Ok((OciProfile::load(path)?, det))
        }
        (None, None) => anyhow::bail!("validate needs --profile or --seccomp"),
    }
}

pub async fn validate(args: ValidateArgs) -> anyhow::Result<i32> {
    let (oci, det) = policy(&args)?;
    let mut spec = FilterSpec::from_oci(&oci)?;
    spec.notify_by_default();
    let kills = spec.notify_kills();
    let exe = launch::resolve(&args.command[0])?;
    let board = PhaseBoard::default();
    let mut session = Session::builder(Mode::Validate)
        .phases(det)
        .board(board.clone())
        .command(args.command.clone())
        .outputs(OutputPaths {
            quiet: true,
            ..Default::default()
        })
        .start()?;
    let seccomp = launch::Seccomp {
        spec: &spec,
        skip_unknown: args.seccomp_skip_unknown,
    };
    let child = session.launch(&exe, &args.command, Some(seccomp), Default::default())?;
    let waited = child.waited;
    let (done_tx, done_rx) = oneshot::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(launch::wait_all(waited));
    });
    let stop = Arc::new(AtomicBool::new(false));
    let denied: Arc<Mutex<Vec<Denied>>> = Default::default();
    let mut supervisor = None;
    let log = denied.clone();
    let released = child.release(|fd| {
        supervisor = Some(notify::supervise(fd, stop.clone(), move |pid, nr| {
            let mut d = Denied::at(&board, pid, nr);
            d.killed = kills.contains(&d.syscall);
            let verdict = if d.killed {
                Verdict::Kill
            } else {
                Verdict::Deny(libc::EPERM)
            };
            if let Ok(mut v) = log.lock() {
                v.push(d);
            }
            verdict
        }));
    });
    let code = std::cell::Cell::new(1);
    let until = async {
        code.set(done_rx.await.unwrap_or(1));
        crate::session::Stop::TreeExited
    };
    session.run(until, false).await?;
    stop.store(true, Ordering::Relaxed);
    if let Some(h) = supervisor {
        let _ = h.join();
    }
    released?;
    session.finish()?;
    let denied = denied.lock().map(|v| v.clone()).unwrap_or_default();
    Ok(report(&args, code.get(), oci.allowed().len(), &denied))
}

/// Prints the verdict and every denied call with its role, phase, pid and count; returns the
/// exit code (0 only for a pass).
fn report(args: &ValidateArgs, code: i32, allowed: usize, denied: &[Denied]) -> i32 {
    let pass = code == 0 && denied.is_empty();
    let cmd = args.command.join(" ");
    crate::out!(
        "{}: `{cmd}` exited with {code} under a filter of {allowed} {} syscalls; {} calls denied",
        if pass { "pass" } else { "fail" },
        sysnames::ARCH,
        denied.len()
    );
    for line in denials::lines(denied) {
        crate::out!("{line}");
    }
    if pass { 0 } else { 1 }
}
