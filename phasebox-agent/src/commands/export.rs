//! `phasebox export PROFILE`: a learned profile as a seccomp policy.

use phasebox_core::{
    atomic_file::write_atomic,
    profile::{Profile, operations, review, static_section},
    seccomp::{
        export::{self, Policy, Target},
        runtimes::RuntimeCalls,
    },
};
use std::collections::BTreeSet;

use crate::cli::ExportArgs;

/// `--hybrid`: the review of `p` against a static profile, printed; the profile with the
/// `--allow-reachable` calls added, written with the review when asked.
fn hybrid(args: &ExportArgs, p: &Profile, path: &std::path::Path) -> anyhow::Result<Profile> {
    let origin = path.display().to_string();
    let (sp, section) = static_section::load(path)?;
    let section = section.ok_or_else(|| {
        anyhow::anyhow!(
            "{origin} is not a profile made by phasebox static (it has no \"static\" section)"
        )
    })?;
    let r = review::build(
        p,
        &section,
        &sp.program.path,
        &origin,
        &args.allow_reachable,
    )?;
    crate::logging::write_stderr(&format!("phasebox: {}", review::render(&r)));
    let hybrid = review::with_allowed(p, &r);
    let out = args.hybrid_profile.clone().or_else(|| {
        args.per_phase
            .as_ref()
            .map(|d| d.join("hybrid.profile.json"))
    });
    if let Some(out) = out {
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(phasebox_core::file_error::FileError::on("create", dir))?;
        }
        review::save(&hybrid, &r, &out)?;
        crate::say!("phasebox: hybrid profile written to {}", out.display());
    }
    Ok(hybrid)
}

/// A profile whose startup was never seen makes a policy that stops the program from
/// starting: refused for a container runtime or per phase unless --allow-incomplete, a
/// warning otherwise.
fn startup_gate(args: &ExportArgs, p: &Profile) -> anyhow::Result<()> {
    let Some(why) = export::startup_missing(p, &args.profile.display().to_string()) else {
        return Ok(());
    };
    let strict = args.for_runtime.is_some() || args.per_phase.is_some();
    if strict && !args.allow_incomplete {
        anyhow::bail!("{why}; --allow-incomplete exports it anyway");
    }
    crate::say!("phasebox: warning: {why}");
    Ok(())
}

/// The policy for `names`: the call classes' rules for what it does not allow, and the calls a
/// seccomp filter denied while learning, said on standard error.
fn policy(args: &ExportArgs, p: &Profile, names: BTreeSet<String>) -> anyhow::Result<Policy> {
    let filtered = export::select_filtered(p, args.role.as_deref(), args.phase.as_deref())?;
    let policy = Policy::new(names, &filtered, args.default_action);
    if let Some(note) = export::filtered_note(&filtered, &policy) {
        crate::say!("phasebox: {note}");
    }
    Ok(policy)
}

pub fn export(args: &ExportArgs) -> anyhow::Result<i32> {
    let mut p = Profile::load(&args.profile)?;
    for w in operations::warnings(&p) {
        crate::say!("phasebox: warning: {w}");
    }
    startup_gate(args, &p)?;
    if let Some(path) = &args.hybrid {
        p = hybrid(args, &p, path)?;
    }
    super::static_analysis::warn_coverage(&p, args.hybrid.as_deref());
    let label = [
        Some(p.program.comm.as_str()),
        args.role.as_deref(),
        args.phase.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    let target = Target {
        arch: &p.arch,
        label,
        action: args.default_action,
        errno: args.errno,
    };
    if let Some(dir) = &args.per_phase {
        let manifest = export::per_phase(
            &p,
            args.role.as_deref(),
            dir,
            args.format,
            &target,
            args.add_basics,
        )?;
        // Said once for every phase (each file answers its own filtered calls).
        policy(args, &p, export::select(&p, args.role.as_deref(), None)?)?;
        crate::say!(
            "phasebox: one policy per phase in {}, order in {}",
            dir.display(),
            manifest.display()
        );
        return Ok(0);
    }
    let mut names = export::select(&p, args.role.as_deref(), args.phase.as_deref())?;
    if args.add_basics {
        let added = export::add_basics(&mut names);
        if added.is_empty() {
            crate::say!("phasebox: --add-basics: the profile had them all already");
        } else {
            crate::say!("phasebox: --add-basics added {}", added.join(", "));
        }
    }
    if let Some(rt) = args.for_runtime {
        let added = export::add_runtime(&mut names, rt)?;
        let data = RuntimeCalls::of(rt);
        crate::say!(
            "phasebox: --for-runtime {} ({}) added {}",
            data.runtime,
            data.versions,
            if added.is_empty() {
                "nothing".into()
            } else {
                added.join(", ")
            }
        );
    }
    let policy = policy(args, &p, names)?;
    let text = export::render(args.format, &policy, &target);
    match &args.output {
        Some(path) => write_atomic(path, text.as_bytes())?,
        None => {
            super::write_stdout(text.as_bytes())?;
        }
    }
    Ok(0)
}
