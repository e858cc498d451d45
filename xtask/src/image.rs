//! `cargo xtask image`: builds phasebox's container image from deploy/Dockerfile, tags it
//! `phasebox:latest` and writes it to target/image/phasebox.tar (`docker save`, for
//! `docker load` or `ctr images import` elsewhere). Uses the daemon at DOCKER_HOST when set,
//! else a private one started for the build (its images go with it: the tar file stays).
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};
use phasebox_tests::{
    docker::{DOCKER, Dockerd},
    image::{TAG, stage_context},
};

use crate::util;

pub fn run() -> anyhow::Result<()> {
    let bin = util::build_phasebox()?;
    let out_dir = util::root().join("target/image");
    let ctx = out_dir.join("context");
    stage_context(&bin, &ctx).map_err(|e| anyhow::anyhow!("staging the image: {e}"))?;
    let tar = out_dir.join("phasebox.tar");
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.is_empty() => {
            eprintln!("image: building with the Docker daemon at {host}");
            build(|| docker_at(&host), &ctx, &tar)
        }
        _ => {
            eprintln!("image: DOCKER_HOST is not set; starting a private Docker daemon");
            let d = Dockerd::start();
            build(|| d.command(), &ctx, &tar)
        }
    }
}

/// A `docker` command (Debian's client) bound to the daemon at `host`.
fn docker_at(host: &str) -> Command {
    let mut cmd = Command::new(DOCKER);
    cmd.env("DOCKER_HOST", host);
    cmd
}

/// `docker build`, `docker save` into `tar` (written beside it, then renamed), and the sizes.
fn build(docker: impl Fn() -> Command, ctx: &Path, tar: &Path) -> anyhow::Result<()> {
    util::run(docker().args(["build", "-t", TAG]).arg(ctx))?;
    let partial = tar.with_extension("tar.partial");
    util::run(docker().args(["save", "-o"]).arg(&partial).arg(TAG))?;
    std::fs::rename(&partial, tar).with_context(|| format!("cannot write {}", tar.display()))?;
    let out = docker()
        .args(["image", "inspect", "-f", "{{.Size}}", TAG])
        .output()
        .context("docker image inspect")?;
    let size: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    if size == 0 {
        bail!("docker does not report the size of {TAG}");
    }
    let file = std::fs::metadata(tar)?.len();
    println!(
        "image {TAG}: {} (docker image size), {} saved to {}",
        mib(size),
        mib(file),
        tar.display()
    );
    write_sizes(size, file, ctx)
}

const BEGIN: &str = "<!-- image:begin -->";
const END: &str = "<!-- image:end -->";

/// The image's size and what it is made of, into BENCHMARKS.md's image section.
fn write_sizes(image: u64, tar: u64, ctx: &Path) -> anyhow::Result<()> {
    let rootfs = ctx.join("rootfs");
    let binary = std::fs::metadata(rootfs.join("usr/bin/phasebox"))?.len();
    let libraries = tree_size(&rootfs)? - binary;
    let unstripped = std::fs::metadata(util::root().join("target/release/phasebox"))?.len();
    let section = format!(
        "{BEGIN}\n## Container image\n\n\
         `cargo xtask image` builds `{TAG}` from deploy/Dockerfile: `FROM scratch` with the \
         binary and the shared libraries `ldd` lists for it, nothing else (no shell). Sizes \
         from the last build:\n\n\
         | part | size |\n|---|---|\n\
         | image (`docker image inspect`) | {} |\n\
         | saved image (`target/image/phasebox.tar`) | {} |\n\
         | `/usr/bin/phasebox` (debug info stripped, symbols kept; kernel programs inside) | {} |\n\
         | shared libraries (libc, libm, libgcc_s, libseccomp, the loader) | {} |\n\
         | for reference: the release binary with its debug info | {} |\n{END}",
        mib(image),
        mib(tar),
        mib(binary),
        mib(libraries),
        mib(unstripped),
    );
    let path = util::root().join("BENCHMARKS.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
    std::fs::write(&path, util::replace_section(&text, BEGIN, END, &section))?;
    println!("image: sizes written to {}", path.display());
    Ok(())
}

/// Bytes of the regular files under `dir`.
fn tree_size(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            tree_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
