//! nginx under the seccomp policies phasebox learned: the union of phases, phase-aware
//! enforcement, each against nginx with no filter in the same run.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::bail;
use phasebox_tests::TempDir;
use phasebox_tests::nginx::Nginx;

use crate::measure::{Settings, nginx_medians, nginx_version, wrk};

pub const BEGIN: &str = "<!-- bench:seccomp:begin -->";

pub const END: &str = "<!-- bench:seccomp:end -->";

/// nginx under its exported seccomp profiles: the union (applied by `phasebox validate`, which
/// also traces in summary mode to name each denial's role and phase) against no filter, and
/// phase-aware enforcement (which needs the trace) against tracing alone.
pub fn seccomp_bench(bin: &Path, s: &Settings) -> anyhow::Result<String> {
    let dir = TempDir::new("bench-seccomp");
    let (union, manifest) = learn_policies(bin, &dir)?;
    let b = bin.to_str().unwrap();
    let modes: [(&str, Vec<&str>); 4] = [
        ("no filter", vec![]),
        (
            "union filter + summary-mode tracing (phasebox validate --seccomp)",
            vec![b, "validate", "--seccomp", union.to_str().unwrap(), "--"],
        ),
        ("traced only (phasebox run)", vec![b, "run", "-q", "--"]),
        (
            "traced + phase-aware (phasebox run --seccomp-phases)",
            vec![
                b,
                "run",
                "-q",
                "--seccomp-phases",
                manifest.to_str().unwrap(),
                "--",
            ],
        ),
    ];
    let med = nginx_medians(&modes, s)?;
    Ok(format!(
        "## nginx under its learned seccomp profiles\n\n\
         nginx {}, its profile learned by `phasebox run --phases nginx` under wrk, exported as the\n\
         union of all roles and phases and per phase. Each mode starts a fresh nginx, warms up 1 s,\n\
         then `wrk -t1 -c32 -d{}s`; {} rounds, modes alternated. Median requests/s. `validate`\n\
         traces as it enforces (to name each denied call's role and phase), so its row holds the\n\
         filter and summary-mode tracing; the filter alone, in Docker against Docker's default\n\
         profile, is in the section on nginx in Docker. `run` streams every call.\n\n\
         | mode | median req/s | ratio |\n|---|---|---|\n\
         | {} | {:.0} | 100% |\n\
         | {} | {:.0} | {:.1}% of no filter |\n\
         | {} | {:.0} | |\n\
         | {} | {:.0} | {:.1}% of traced only |\n",
        nginx_version(),
        s.secs,
        s.rounds,
        modes[0].0,
        med[0],
        modes[1].0,
        med[1],
        100.0 * med[1] / med[0],
        modes[2].0,
        med[2],
        modes[3].0,
        med[3],
        100.0 * med[3] / med[2],
    ))
}

/// nginx's profile, learned by `phasebox run --phases nginx` under wrk, exported in `dir` as
/// one union policy and per phase: the union policy's path and the per-phase manifest's.
fn learn_policies(bin: &Path, dir: &TempDir) -> anyhow::Result<(PathBuf, PathBuf)> {
    let prof = dir.path("nginx.json");
    let b = bin.to_str().unwrap();
    let mut learn = Nginx::start_under(&[
        b,
        "run",
        "-q",
        "--phases",
        "nginx",
        "--profile",
        prof.to_str().unwrap(),
        "--",
    ]);
    wrk(&learn.url("/index.html"), 2)?;
    if !learn.quit().success() {
        bail!("nginx did not quit cleanly while learning");
    }
    drop(learn);
    let union = dir.path("union.json");
    let phases = dir.path("phases");
    for args in [
        vec![
            "export",
            prof.to_str().unwrap(),
            "-o",
            union.to_str().unwrap(),
        ],
        vec![
            "export",
            prof.to_str().unwrap(),
            "--per-phase",
            phases.to_str().unwrap(),
        ],
    ] {
        let out = Command::new(bin).args(&args).output()?;
        if !out.status.success() {
            bail!(
                "phasebox {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Ok((union, phases.join("manifest.json")))
}
