//! `cargo xtask vm-test`: phasebox on the kernels its users run. Each kernel of the matrix
//! boots under qemu with an initramfs holding phasebox (built for its architecture), busybox,
//! strace, nginx and the test programs; tests/vm/checks.sh runs the steps in the guest and
//! sends back their statuses and outputs over the serial console; the host judges them
//! (checks.rs). A failure names the kernel and the check. The table of the last run of the
//! whole matrix goes into docs/kernels.md.
mod boot;
mod checks;
mod cpio;
pub mod fetch;
mod guest;
mod kernels;
mod rootfs;
mod table;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::bail;

use crate::{cross, setup::CROSS_TARGET, util};
use guest::Report;
use kernels::{Arch, KERNELS, Kernel};

/// Guests booted at once: two keep both cores of the test machine busy.
const PARALLEL: usize = 2;

/// One kernel's outcome: its report and each check's verdict.
pub struct Outcome {
    pub kernel: Kernel,
    pub report: Report,
    pub verdicts: Vec<(&'static str, checks::Verdict)>,
}

/// Builds phasebox for each architecture (the aarch64 binary through the cross check), boots
/// every kernel of the matrix, or those `only` names, and fails naming each kernel and check
/// that failed.
pub fn run(only: &[String]) -> anyhow::Result<()> {
    let kernels: Vec<Kernel> = KERNELS
        .into_iter()
        .filter(|k| only.is_empty() || only.iter().any(|n| n == k.name))
        .collect();
    if kernels.is_empty() {
        let names: Vec<&str> = KERNELS.iter().map(|k| k.name).collect();
        bail!("no kernel named {only:?}; the matrix has {names:?}");
    }
    let archs: Vec<Arch> = [Arch::X86_64, Arch::Aarch64]
        .into_iter()
        .filter(|a| kernels.iter().any(|k| k.arch == *a))
        .collect();
    let bins = archs
        .iter()
        .map(|&a| phasebox_for(a))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // What the matrix adds to the builds `cargo xtask test` makes anyway.
    let start = Instant::now();
    let out = util::root().join("target/vm");
    std::fs::create_dir_all(&out)?;
    let mut images = Vec::new();
    for (&arch, bin) in archs.iter().zip(&bins) {
        let path = out.join(format!("{}.cpio", arch.machine()));
        rootfs::build(arch, bin, &path)?;
        images.push((arch, path));
    }
    let outcomes = boot_all(kernels, &images, &out)?;
    if only.is_empty() {
        table::write_docs(&outcomes)?;
    }
    println!("{}", table::markdown(&outcomes));
    let secs = start.elapsed().as_secs();
    println!(
        "vm-test: {} kernels in {secs} s (initramfs and boots, after the builds)",
        outcomes.len()
    );
    let failures: Vec<String> = outcomes.iter().flat_map(failures).collect();
    if !failures.is_empty() {
        bail!("kernel matrix:\n{}", failures.join("\n"));
    }
    Ok(())
}

/// The release binary for `arch`, built (and for aarch64 checked under qemu-user) first.
fn phasebox_for(arch: Arch) -> anyhow::Result<PathBuf> {
    match arch {
        Arch::X86_64 => util::build_phasebox(),
        Arch::Aarch64 => {
            cross::check()?;
            Ok(util::root().join(format!("target/{CROSS_TARGET}/release/phasebox")))
        }
    }
}

/// Boots the kernels, `PARALLEL` at a time, slowest (emulated arm64) first.
fn boot_all(
    mut order: Vec<Kernel>,
    images: &[(Arch, PathBuf)],
    out: &Path,
) -> anyhow::Result<Vec<Outcome>> {
    order.sort_by_key(|k| k.arch == Arch::X86_64);
    let queue = Mutex::new(VecDeque::from(order));
    let done = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL {
            s.spawn(|| {
                loop {
                    let Some(kernel) = queue.lock().expect("queue").pop_front() else {
                        break;
                    };
                    let image = &images
                        .iter()
                        .find(|(a, _)| *a == kernel.arch)
                        .expect("image");
                    let result = one(kernel, &image.1, out);
                    done.lock().expect("results").push(result);
                }
            });
        }
    });
    let mut outcomes = Vec::new();
    for result in done.into_inner().expect("results") {
        outcomes.push(result?);
    }
    outcomes.sort_by_key(|o| KERNELS.iter().position(|k| k.name == o.kernel.name));
    Ok(outcomes)
}

/// Boots one kernel and judges its report.
fn one(kernel: Kernel, initrd: &Path, out: &Path) -> anyhow::Result<Outcome> {
    let start = Instant::now();
    eprintln!("vm-test: booting {}", kernel.name);
    let log = out.join(format!("{}.console.log", kernel.name));
    let console = boot::boot(&kernel, initrd, &log)?;
    let report = Report::parse(&console);
    let verdicts = judge(&report, &kernel);
    eprintln!(
        "vm-test: {} ({}) done in {} s; console in {}",
        kernel.name,
        report.release,
        start.elapsed().as_secs(),
        log.display()
    );
    Ok(Outcome {
        kernel,
        report,
        verdicts,
    })
}

/// Every check on `report`; when the guest is not the kernel and architecture meant, or
/// stopped early, every check says so.
fn judge(report: &Report, kernel: &Kernel) -> Vec<(&'static str, checks::Verdict)> {
    let wrong = if report.machine != kernel.arch.machine() {
        Some(format!(
            "the guest ran {:?}, not {}",
            report.machine,
            kernel.arch.machine()
        ))
    } else if !report.done {
        Some("the guest stopped before the checks ended (see its console log)".into())
    } else {
        None
    };
    checks::CHECKS
        .iter()
        .map(|(name, check)| {
            let verdict = check(report);
            let verdict = match (&wrong, verdict) {
                (Some(why), Ok(_)) => Err(why.clone()),
                (_, v) => v,
            };
            (*name, verdict)
        })
        .collect()
}

fn failures(o: &Outcome) -> Vec<String> {
    o.verdicts
        .iter()
        .filter_map(|(check, v)| {
            v.as_ref()
                .err()
                .map(|why| format!("{} ({}): {check}: {why}", o.kernel.name, o.report.release))
        })
        .collect()
}
