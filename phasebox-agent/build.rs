//! Builds the kernel programs (phasebox-ebpf) for the BPF target and leaves the object in
//! OUT_DIR, where `src/probe/load.rs` embeds it; and names the commit built
//! (`PHASEBOX_COMMIT`, for `--version`).
use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let ebpf_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../phasebox-ebpf");
    let ebpf_dir = std::fs::canonicalize(ebpf_dir).context("phasebox-ebpf not found")?;
    let root_dir = ebpf_dir.to_str().ok_or_else(|| anyhow!("non-UTF-8 path"))?;
    println!("cargo:rerun-if-changed={root_dir}/../phasebox-common/src");
    commit(&ebpf_dir.join(".."));
    aya_build::build_ebpf(
        [Package {
            name: "phasebox-ebpf",
            root_dir,
            ..Default::default()
        }],
        Toolchain::default(),
    )
}

/// Sets PHASEBOX_COMMIT to the checkout's commit (12 hex digits), or "unknown" outside a git
/// checkout (a source tarball); reruns when the checkout moves to another commit.
fn commit(repo: &std::path::Path) {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let id = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=PHASEBOX_COMMIT={id}");
    // HEAD names a branch; the branch's ref (or packed-refs) is what a commit changes.
    for file in ["HEAD", "packed-refs"] {
        if let Some(p) = git(&["rev-parse", "--git-path", file]) {
            println!("cargo:rerun-if-changed={}", repo.join(p).display());
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(p) = git(&["rev-parse", "--git-path", &branch])
    {
        println!("cargo:rerun-if-changed={}", repo.join(p).display());
    }
}
