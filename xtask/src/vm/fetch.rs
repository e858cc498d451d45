//! What the kernel matrix downloads (part of `cargo xtask setup`): Debian's bullseye and
//! bookworm-backports suites as apt sources, qemu from backports, each kernel of the matrix,
//! and the guests' userland packages. Downloads are cached in /var/cache/phasebox-vm and
//! skipped when there.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use super::kernels::{Arch, KERNELS, Kernel, cache};
use crate::util;

const SOURCES: &str = "/etc/apt/sources.list.d/phasebox-vm.sources";
/// Bullseye's packages only when asked for by name: nothing on the machine moves to them.
const PREFERENCES: &str = "/etc/apt/preferences.d/phasebox-vm";
/// qemu-system from bookworm's qemu is blocked by backports' qemu-utils on these machines.
const QEMU: [&str; 2] = ["qemu-system-x86", "qemu-system-arm"];
/// Debian packages a guest's programs come from. x86_64 guests take nginx, strace and their
/// libraries from the host; arm64 guests take them all from arm64 packages.
const ARM64_PACKAGES: &[&str] = &[
    "busybox-static",
    "nginx",
    "strace",
    "libc6",
    "libgcc-s1",
    "libcrypt1",
    "libpcre2-8-0",
    "libssl3",
    "zlib1g",
    "libunwind8",
    "liblzma5",
    "libseccomp2",
];
const AMD64_PACKAGES: &[&str] = &["busybox-static"];

/// Everything `cargo xtask vm-test` needs, fetched once.
pub fn setup() -> anyhow::Result<()> {
    apt_sources()?;
    qemu()?;
    for kernel in &KERNELS {
        fetch_kernel(kernel)?;
    }
    userland(Arch::X86_64)?;
    userland(Arch::Aarch64)
}

/// The URI of the machine's own Debian source, which the added suites use too.
fn debian_uri() -> String {
    let text = std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources")
        .or_else(|_| std::fs::read_to_string("/etc/apt/sources.list"))
        .unwrap_or_default();
    text.split_whitespace()
        .find(|w| w.starts_with("http") && w.trim_end_matches('/').ends_with("/debian"))
        .unwrap_or("http://deb.debian.org/debian")
        .to_string()
}

fn apt_sources() -> anyhow::Result<()> {
    if Path::new(SOURCES).exists() && Path::new(PREFERENCES).exists() {
        return Ok(());
    }
    eprintln!("setup: adding Debian's bullseye and bookworm-backports suites (kernel matrix)");
    let sources = format!(
        "Types: deb\nURIs: {}\nSuites: bullseye bookworm-backports\nComponents: main\n\
         Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
        debian_uri()
    );
    std::fs::write(SOURCES, sources)?;
    std::fs::write(
        PREFERENCES,
        "Package: *\nPin: release n=bullseye\nPin-Priority: 1\n",
    )?;
    util::run(Command::new("apt-get").args(["update", "-q"]))
}

fn qemu() -> anyhow::Result<()> {
    let missing: Vec<&str> = QEMU
        .into_iter()
        .filter(|p| !crate::setup::installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!(
        "setup: installing {} from bookworm-backports",
        missing.join(" ")
    );
    util::run(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(["-t", "bookworm-backports"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// A fresh scratch directory in the cache, for downloads and unpacking.
fn scratch(tag: &str) -> anyhow::Result<PathBuf> {
    let dir = cache().join(format!("tmp-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    // apt downloads as its own user when that user can write here (else it warns, and
    // downloads as root).
    let _ = util::succeeds("chown", &["_apt", dir.to_str().unwrap_or_default()]);
    Ok(dir)
}

/// `apt-get download PKGS…` into `dir`.
fn download(dir: &Path, pkgs: &[String]) -> anyhow::Result<()> {
    util::run(
        Command::new("apt-get")
            .args(["download", "-q"])
            .args(pkgs)
            .current_dir(dir),
    )
}

/// Every .deb in `dir`, unpacked into `into`.
fn unpack_all(dir: &Path, into: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "deb") {
            util::run(Command::new("dpkg-deb").arg("-x").arg(&path).arg(into))?;
        }
    }
    Ok(())
}

/// The suite's cloud kernel: the meta-package's first dependency, at its exact version.
fn fetch_kernel(kernel: &Kernel) -> anyhow::Result<()> {
    if kernel.vmlinuz().exists() {
        return Ok(());
    }
    eprintln!("setup: downloading the {} kernel", kernel.name);
    let arch = kernel.arch.debian();
    let tmp = scratch(kernel.name)?;
    let meta = format!("{}:{arch}/{}", kernel.meta_package(), kernel.suite);
    download(&tmp, &[meta])?;
    let deb = std::fs::read_dir(&tmp)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download left no package")?;
    let depends = util::output(
        "dpkg-deb",
        &["-f", deb.to_str().context("path")?, "Depends"],
    )?;
    // "linux-image-6.1.0-50-cloud-amd64 (= 6.1.176-1)"
    let (image, version) = depends
        .split(',')
        .next()
        .and_then(|d| d.trim().split_once(" (= "))
        .with_context(|| format!("unexpected Depends of {}: {depends}", kernel.meta_package()))?;
    std::fs::remove_file(&deb)?;
    download(
        &tmp,
        &[format!("{image}:{arch}={}", version.trim_end_matches(')'))],
    )?;
    let root = tmp.join("root");
    unpack_all(&tmp, &root)?;
    let boot = std::fs::read_dir(root.join("boot"))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .with_context(|| format!("{image} holds no boot/vmlinuz-*"))?;
    std::fs::create_dir_all(kernel.dir())?;
    std::fs::copy(&boot, kernel.dir().join("vmlinuz.part"))?;
    std::fs::rename(kernel.dir().join("vmlinuz.part"), kernel.vmlinuz())?;
    std::fs::remove_dir_all(&tmp)?;
    Ok(())
}

/// The unpacked userland packages of `arch`'s guests.
pub fn userland_root(arch: Arch) -> PathBuf {
    cache().join(format!("userland-{}", arch.debian()))
}

fn userland(arch: Arch) -> anyhow::Result<()> {
    let root = userland_root(arch);
    let done = root.join(".complete");
    if done.exists() {
        return Ok(());
    }
    let pkgs = match arch {
        Arch::X86_64 => AMD64_PACKAGES,
        Arch::Aarch64 => ARM64_PACKAGES,
    };
    eprintln!(
        "setup: downloading {} packages for {} guests",
        pkgs.len(),
        arch.debian()
    );
    let tmp = scratch(arch.debian())?;
    let names: Vec<String> = pkgs
        .iter()
        .map(|p| format!("{p}:{}", arch.debian()))
        .collect();
    download(&tmp, &names)?;
    let _ = std::fs::remove_dir_all(&root);
    unpack_all(&tmp, &root)?;
    if !root.join("bin/busybox").exists() {
        bail!("busybox-static:{} left no bin/busybox", arch.debian());
    }
    std::fs::write(&done, "")?;
    std::fs::remove_dir_all(&tmp)?;
    Ok(())
}
