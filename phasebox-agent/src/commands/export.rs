//! `phasebox export PROFILE`: a learned profile as a seccomp policy.
use std::io::Write as _;

use phasebox_core::{
    atomic_file::write_atomic,
    profile::Profile,
    seccomp::export::{self, Target},
};

use crate::cli::ExportArgs;

pub fn export(args: &ExportArgs) -> anyhow::Result<i32> {
    let p = Profile::load(&args.profile)?;
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
        let added = export::add_runtime(&mut names, rt);
        crate::say!(
            "phasebox: --for-runtime {rt:?} added {}",
            if added.is_empty() {
                "nothing".into()
            } else {
                added.join(", ")
            }
        );
    }
    let text = export::render(args.format, &names, &target);
    match &args.output {
        Some(path) => write_atomic(path, text.as_bytes())?,
        None => {
            let mut out = std::io::stdout().lock();
            if let Err(e) = out.write_all(text.as_bytes())
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                anyhow::bail!(
                    "cannot write to standard output: {}",
                    phasebox_core::sysnames::describe_io(&e)
                );
            }
        }
    }
    Ok(0)
}
