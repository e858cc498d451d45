//! `phasebox validate --profile P -- CMD…`: runs CMD under the profile as a seccomp filter whose
//! denials come to phasebox (user notifications) instead of failing silently; the calls are
//! still denied (EPERM), so CMD behaves as under the real filter. CMD is traced too, so each
//! denied call is reported with the role and phase its process was in. Passes only when CMD
//! exits 0 and nothing was denied.
use phasebox_core::{
    phase::Detector,
    profile::Profile,
    seccomp::{
        export::{self, DefaultAction, Policy, Target},
        oci::OciProfile,
    },
    sysnames,
};

use crate::cli::ValidateArgs;
use phasebox::{
    enforce::{
        board::PhaseBoard,
        denials::{self, Denied},
        filter::FilterSpec,
        supervisor::{Answer, Supervisor},
    },
    launch,
    session::{Launched, Mode, OutputPaths, Session},
};

/// The profile (or OCI policy) to validate, and the phase rules to name phases with.
fn policy(args: &ValidateArgs, exe: &std::path::Path) -> anyhow::Result<(OciProfile, Detector)> {
    let rules = |name: &str| Detector::load(name).or_else(|_| Detector::load("generic"));
    match (&args.profile, &args.seccomp) {
        (Some(path), _) => {
            let p = Profile::load(path)?;
            if let Some(other) = p.other_program(exe) {
                phasebox::say!("phasebox: warning: {other}");
            }
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
    let exe = launch::resolve(&args.command[0])?;
    let (oci, det) = policy(&args, &exe)?;
    let mut spec = FilterSpec::from_oci(&oci)?;
    spec.notify_by_default();
    let kills = spec.notify_kills();
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
    let mut launched = Launched::reap(child.pid, child.waited);
    let mut supervisor = Supervisor::default();
    let released = child.release(|fd| supervisor.start(fd, &board, Answer::DenyOrKill(kills)));
    session.run(launched.until_exit(), false).await?;
    let denied = supervisor.finish().placed;
    released?;
    session.finish()?;
    Ok(report(
        &args,
        launched.exit_code(),
        oci.allowed().len(),
        &denied,
    ))
}

/// Prints the verdict and every denied call with its role, phase, pid and count; returns the
/// exit code (0 only for a pass).
fn report(args: &ValidateArgs, code: i32, allowed: usize, denied: &[Denied]) -> i32 {
    let pass = code == 0 && denied.is_empty();
    let cmd = args.command.join(" ");
    phasebox::out!(
        "{}: `{cmd}` exited with {code} under a filter of {allowed} {} syscalls; {} calls denied",
        if pass { "pass" } else { "fail" },
        sysnames::ARCH,
        denied.len()
    );
    for line in denials::lines(denied) {
        phasebox::out!("{line}");
    }
    if pass { 0 } else { 1 }
}
