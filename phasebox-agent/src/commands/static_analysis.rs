//! `phasebox static BINARY`: the syscalls a program can reach, found by static analysis,
//! written as a profile that compare, export and report take like any other.
use std::time::{SystemTime, UNIX_EPOCH};

use phasebox_core::profile::{sections, static_section};
use phasebox_static::Analysis;

use crate::cli::StaticArgs;
use crate::procfs;

pub fn run(args: &StaticArgs) -> anyhow::Result<i32> {
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let analysis = phasebox_static::analyze(&args.binary)?;
    let (profile, section) = analysis.to_profile(&procfs::kernel_release(), started);
    match &args.output {
        Some(path) => static_section::save(&profile, &section, path)?,
        None => {
            let text = sections::to_json(
                &profile,
                &[(static_section::KEY, static_section::to_value(&section))],
            );
            super::write_stdout(text.as_bytes())?;
        }
    }
    crate::say!("{}", summary(&analysis, args.output.as_deref()));
    Ok(0)
}

/// One paragraph: what was read, what is reachable, and what could not be decided.
fn summary(a: &Analysis, output: Option<&std::path::Path>) -> String {
    let p = &a.provenance;
    let libs: Vec<&str> = p.libraries.iter().map(|l| l.name.as_str()).collect();
    let mut s = format!(
        "phasebox static: {} and {} librar{} ({}): {} syscalls reachable from the entry points, \
         of {} found anywhere in the program and its libraries; {} of {} functions reached \
         ({} only because their address is taken and {} indirect call sites are reachable), \
         {} of {} syscall sites.",
        a.program,
        libs.len(),
        if libs.len() == 1 { "y" } else { "ies" },
        if libs.is_empty() {
            "none".into()
        } else {
            libs.join(", ")
        },
        a.syscalls.len(),
        a.whole_image.len(),
        p.functions_reached,
        p.functions_total,
        p.address_taken_functions,
        p.indirect_call_sites,
        p.syscall_sites_reached,
        p.syscall_sites_total,
    );
    if p.unresolved_sites.is_empty() {
        s.push_str(" Every reachable syscall number was resolved.");
    } else {
        s.push_str(&format!(
            " {} reachable site{} with a number it could not resolve (listed in the profile's \
             \"static\" section; nothing is added for them).",
            p.unresolved_sites.len(),
            if p.unresolved_sites.len() == 1 {
                ""
            } else {
                "s"
            }
        ));
    }
    if !p.vdso.is_empty() {
        s.push_str(&format!(" vDSO fallbacks: {}.", p.vdso.join(", ")));
    }
    if let Some(path) = output {
        s.push_str(&format!(" Wrote {}.", path.display()));
    }
    s
}
