//! `phasebox static BINARY`: the syscalls a program can reach, found by static analysis,
//! written as a profile that compare, export and report take like any other; and the
//! operations coverage `profile show` and `export` warn about.
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use phasebox_core::profile::{Profile, sections, static_section, unseen};
use phasebox_static::Analysis;

use crate::cli::StaticArgs;
use phasebox::procfs;

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
    phasebox::say!("{}", summary(&analysis, args.output.as_deref()));
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
    s.push_str(&run_time(p));
    if let Some(path) = output {
        s.push_str(&format!(" Wrote {}.", path.display()));
    }
    s
}

/// dlopen calls listed in the summary; the profile's section has them all.
const DLOPEN_SHOWN: usize = 6;

/// What the program loads at run time: the libraries followed, and the dlopen calls that could
/// not be.
fn run_time(p: &phasebox_static::Provenance) -> String {
    let mut s = String::new();
    if !p.loaded_at_run_time.is_empty() {
        let libs: Vec<String> = p
            .loaded_at_run_time
            .iter()
            .map(|l| {
                let missing = if l.path.is_empty() {
                    "; not on this machine"
                } else {
                    ""
                };
                format!("{} ({}{missing})", l.name, l.loaded_by)
            })
            .collect();
        s.push_str(&format!(
            " Loaded at run time and followed: {}.",
            libs.join(", ")
        ));
    }
    let n = p.dlopen_unresolved.len();
    if n > 0 {
        let sites: Vec<String> = p
            .dlopen_unresolved
            .iter()
            .take(DLOPEN_SHOWN)
            .map(|u| format!("{} at {} ({})", u.function, u.address, u.reason))
            .collect();
        let more = n.saturating_sub(DLOPEN_SHOWN);
        s.push_str(&format!(
            " {n} dlopen call{} {} at run time and {} not followed: {}{}.",
            if n == 1 { "" } else { "s" },
            if n == 1 {
                "names its library"
            } else {
                "name their library"
            },
            if n == 1 { "is" } else { "are" },
            sites.join("; "),
            if more > 0 {
                format!("; and {more} more in the profile's \"static\" section")
            } else {
                String::new()
            }
        ));
    }
    s
}

/// For a profile whose rule set names no operations, warns what static analysis finds
/// reachable in its program that no run made, by purpose and ranked: from `hybrid` (a static
/// profile) when given, else by analyzing the profile's program here.
pub fn warn_coverage(p: &Profile, hybrid: Option<&Path>) {
    if !unseen::applies(p) {
        return;
    }
    match coverage(p, hybrid) {
        Ok(c) if c.total == 0 => phasebox::say!("phasebox: note: {}", unseen::render(&c)),
        Ok(c) => phasebox::say!("phasebox: warning: {}", unseen::render(&c)),
        Err(why) => phasebox::say!("phasebox: note: no operations coverage: {why:#}"),
    }
}

fn coverage(p: &Profile, hybrid: Option<&Path>) -> anyhow::Result<unseen::Coverage> {
    if let Some(path) = hybrid {
        let origin = path.display().to_string();
        let (sp, section) = static_section::load(path)?;
        let section =
            section.ok_or_else(|| anyhow::anyhow!("{origin} has no \"static\" section"))?;
        let origin = format!("static profile {origin}");
        return Ok(unseen::coverage(p, &section, &sp.program.path, &origin));
    }
    let program = Path::new(&p.program.path);
    if !program.is_file() {
        anyhow::bail!(
            "its program {} is not on this machine (give export --hybrid a profile phasebox \
             static made where it is)",
            p.program.path
        );
    }
    let analysis = phasebox_static::analyze(program)?;
    let (_, section) = analysis.to_profile("", 0);
    let origin = format!("static analysis of {}", analysis.program);
    Ok(unseen::coverage(p, &section, &analysis.program, &origin))
}

#[cfg(test)]
mod tests {
    use super::*;
    use phasebox_static::{LoadedLibrary, Provenance, Site};

    #[test]
    fn says_what_is_loaded_at_run_time_and_which_dlopen_calls_are_not_followed() {
        let mut p = Provenance::default();
        assert_eq!(run_time(&p), "");
        let lib = |name: &str, path: &str, by: &str| LoadedLibrary {
            name: name.into(),
            path: path.into(),
            loaded_by: by.into(),
        };
        p.loaded_at_run_time = vec![
            lib(
                "libnss_systemd.so.2",
                "/lib/x86_64-linux-gnu/libnss_systemd.so.2",
                "nsswitch.conf passwd, group: systemd",
            ),
            lib("libnss_db.so.2", "", "nsswitch.conf services: db"),
        ];
        let site = |i: usize| Site {
            function: format!("perl:f{i}"),
            address: format!("{i:#x}"),
            reason: "dlopen's file name: r15 is loaded from memory".into(),
        };
        p.dlopen_unresolved = vec![site(1)];
        assert_eq!(
            run_time(&p),
            " Loaded at run time and followed: libnss_systemd.so.2 (nsswitch.conf passwd, \
             group: systemd), libnss_db.so.2 (nsswitch.conf services: db; not on this machine). \
             1 dlopen call names its library at run time and is not followed: perl:f1 at 0x1 \
             (dlopen's file name: r15 is loaded from memory)."
        );
        // Many calls: the first ones, and where the rest are.
        p.dlopen_unresolved = (1..=DLOPEN_SHOWN + 2).map(site).collect();
        let s = run_time(&p);
        assert!(s.contains(" 8 dlopen calls name their library at run time and are not followed: perl:f1 at 0x1"), "{s}");
        assert!(!s.contains("perl:f7 "), "{s}");
        assert!(
            s.ends_with("; and 2 more in the profile's \"static\" section."),
            "{s}"
        );
    }
}
