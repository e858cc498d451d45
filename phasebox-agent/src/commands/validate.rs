//! `phasebox validate --profile P -- CMD…`: runs CMD under the profile as a seccomp filter whose
//! denials come to phasebox (user notifications) instead of failing silently; the calls are
//! still denied (EPERM), so CMD behaves as under the real filter. Passes when CMD exits 0.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use phasebox_core::{
    profile::Profile,
    seccomp::{export, oci::OciProfile},
    sysnames,
};

use crate::{
    cli::ValidateArgs,
    enforce::{
        filter::FilterSpec,
        notify::{self, Verdict},
    },
    launch,
};

pub fn validate(args: &ValidateArgs) -> anyhow::Result<i32> {
    let oci = match (&args.profile, &args.seccomp) {
        (Some(path), _) => {
            let p = Profile::load(path)?;
            let mut names = export::select(&p, args.role.as_deref(), args.phase.as_deref())?;
            if args.add_basics {
                export::add_basics(&mut names);
            }
            OciProfile::allow_list(&names, &p.arch, "SCMP_ACT_ERRNO", libc::EPERM as u32)
        }
        (None, Some(path)) => OciProfile::load(path)?,
        (None, None) => anyhow::bail!("validate needs --profile or --seccomp"),
    };
    let mut spec = FilterSpec::from_oci(&oci)?;
    spec.notify_by_default();
    let exe = launch::resolve(&args.command[0])?;
    launch::become_subreaper();
    let seccomp = launch::Seccomp {
        spec: &spec,
        skip_unknown: args.seccomp_skip_unknown,
    };
    let child = launch::spawn_gated(&exe, &args.command, Some(seccomp), Default::default())?;
    let child_waited = child.waited;
    let stop = Arc::new(AtomicBool::new(false));
    let mut supervisor = None;
    let released = child.release(|fd| {
        supervisor = Some(notify::supervise(fd, stop.clone(), |_, _| {
            Verdict::Deny(libc::EPERM)
        }));
    });
    let code = launch::wait_all(child_waited);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let denials = supervisor
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    released?;

    let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &denials {
        *by_name.entry(d.name.as_str()).or_default() += 1;
    }
    let allowed = oci.allowed().len();
    let cmd = args.command.join(" ");
    let pass = code == 0;
    println!(
        "{}: `{cmd}` exited with {code} under a filter of {allowed} {} syscalls",
        if pass { "pass" } else { "fail" },
        sysnames::ARCH
    );
    match denials.first() {
        None => println!("no call was denied"),
        Some(first) => {
            println!(
                "first denied call: {} (pid {}, {:.3} s after start)",
                first.name, first.pid, first.after_s
            );
            let all: Vec<String> = by_name.iter().map(|(n, c)| format!("{n}×{c}")).collect();
            println!("denied: {}", all.join(" "));
        }
    }
    Ok(if pass { 0 } else { 1 })
}
