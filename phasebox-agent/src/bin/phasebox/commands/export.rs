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
use std::path::Path;

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
    phasebox::logging::write_stderr(&format!("phasebox: {}", review::render(&r)));
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
        phasebox::say!("phasebox: hybrid profile written to {}", out.display());
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
    phasebox::say!("phasebox: warning: {why}");
    Ok(())
}

/// The policy for `names`: the call classes' rules for what it does not allow, and the calls a
/// seccomp filter denied while learning, said on standard error.
fn policy(args: &ExportArgs, p: &Profile, names: BTreeSet<String>) -> anyhow::Result<Policy> {
    let filtered = export::select_filtered(p, args.role.as_deref(), args.phase.as_deref())?;
    let policy = Policy::new(names, &filtered, args.default_action);
    if let Some(note) = export::filtered_note(&filtered, &policy) {
        phasebox::say!("phasebox: {note}");
    }
    if args.no_args {
        return Ok(policy);
    }
    let (role, phase) = (args.role.as_deref(), args.phase.as_deref());
    let mut restricted = export::select_args(p, role, phase, &policy.allow)?;
    // A runtime's own calls were measured by name: they keep any arguments.
    if let Some(rt) = args.for_runtime {
        let runtime = RuntimeCalls::of(rt).union();
        restricted.retain(|n, _| !runtime.contains(n));
    }
    if !restricted.is_empty() {
        let names: Vec<&str> = restricted.keys().map(String::as_str).collect();
        phasebox::say!(
            "phasebox: {} allowed only with the arguments learned{} (--no-args leaves the conditions out)",
            names.join(", "),
            if args.format == export::Format::Systemd {
                ", which systemd cannot express: its filter allows them with any"
            } else {
                ""
            }
        );
    }
    Ok(policy.with_args(restricted))
}

pub fn export(args: &ExportArgs) -> anyhow::Result<i32> {
    let mut p = Profile::load(&args.profile)?;
    for w in operations::warnings(&p) {
        phasebox::say!("phasebox: warning: {w}");
    }
    startup_gate(args, &p)?;
    if let Some(path) = &args.hybrid {
        p = hybrid(args, &p, path)?;
    }
    super::static_analysis::warn_coverage(&p, args.hybrid.as_deref());
    let target = target(args, &p);
    if let Some(dir) = &args.per_phase {
        return per_phase(args, &p, &target, dir);
    }
    let mut names = export::select(&p, args.role.as_deref(), args.phase.as_deref())?;
    add_basics_and_runtime(args, &mut names)?;
    let policy = policy(args, &p, names)?;
    let text = export::render(args.format, &policy, &target);
    match &args.output {
        Some(path) => write_atomic(path, text.as_bytes())?,
        None => super::write_stdout(text.as_bytes())?,
    }
    Ok(0)
}

/// The export's settings: what a denied call gets, and a label naming the program, role and
/// phase.
fn target<'p>(args: &ExportArgs, p: &'p Profile) -> Target<'p> {
    let label = [
        Some(p.program.comm.as_str()),
        args.role.as_deref(),
        args.phase.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    Target {
        arch: &p.arch,
        label,
        action: args.default_action,
        errno: args.errno,
    }
}

/// `--per-phase DIR`: one policy per role and phase, and the manifest of their order.
fn per_phase(args: &ExportArgs, p: &Profile, target: &Target, dir: &Path) -> anyhow::Result<i32> {
    let role = args.role.as_deref();
    let opts = export::PerPhase {
        basics: args.add_basics,
        args: !args.no_args,
    };
    let manifest = export::per_phase(p, role, dir, args.format, target, opts)?;
    // Said once for every phase (each file answers its own filtered calls).
    policy(args, p, export::select(p, role, None)?)?;
    phasebox::say!(
        "phasebox: one policy per phase in {}, order in {}",
        dir.display(),
        manifest.display()
    );
    Ok(0)
}

/// `--add-basics` and `--for-runtime`: the calls they add to `names`, each said.
fn add_basics_and_runtime(args: &ExportArgs, names: &mut BTreeSet<String>) -> anyhow::Result<()> {
    if args.add_basics {
        let added = export::add_basics(names);
        if added.is_empty() {
            phasebox::say!("phasebox: --add-basics: the profile had them all already");
        } else {
            phasebox::say!("phasebox: --add-basics added {}", added.join(", "));
        }
    }
    if let Some(rt) = args.for_runtime {
        let added = export::add_runtime(names, rt)?;
        let data = RuntimeCalls::of(rt);
        let added = if added.is_empty() {
            "nothing".to_string()
        } else {
            added.join(", ")
        };
        phasebox::say!(
            "phasebox: --for-runtime {} ({}) added {added}",
            data.runtime,
            data.versions
        );
    }
    Ok(())
}
