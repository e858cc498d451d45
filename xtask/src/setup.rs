//! Installs what phasebox needs to build and test on a fresh Debian 12 machine, as root, and
//! skips every step that is already done.
use std::path::Path;
use std::process::Command;

use anyhow::bail;

use crate::util::{self, succeeds};

/// Debian packages: LLVM 22 for bpf-linker, the programs the tests run and measure, the
/// container engine the image and container tests use, and the browser that opens the HTML report.
const PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "gcc",
    "libc6-dev",
    "nginx",
    "strace",
    "curl",
    "wrk",
    "bpftool",
    "bpftrace",
    "util-linux",
    "libseccomp-dev",
    "pkg-config",
    "runc",
    // Debian's Docker 20.10 (/usr/bin/docker, /usr/sbin/dockerd): the container tests start a
    // private daemon of it and never touch the system service.
    "docker.io",
    // Debian's Podman 4.3 (with conmon): the Podman tests run it with storage of their own, no
    // service and no systemd.
    "podman",
    "prometheus",
    "chromium",
    "redis-server",
    "redis-tools",
    "memcached",
    // Servers of the deployment benchmark (`cargo xtask bench --deploy`), with nginx, redis,
    // memcached and Python's http.server.
    "lighttpd",
    "haproxy",
    "python3",
];
/// Services their packages start; the tests start their own on loopback ports instead.
const SERVICES: &[&str] = &["redis-server", "memcached", "lighttpd", "haproxy"];
/// Cross-building for aarch64 (`cargo xtask test`): Debian's cross compiler, libseccomp for
/// arm64 (multiarch, so arm64 is added as a foreign architecture first) and qemu-user to run
/// the result.
const CROSS_PACKAGES: &[&str] = &[
    "gcc-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
    "libseccomp-dev:arm64",
    "qemu-user",
];
/// The cross target, whose standard library rustup adds.
pub const CROSS_TARGET: &str = "aarch64-unknown-linux-gnu";
const BPF_LINKER: &str = "0.13.0";
const CARGO_FUZZ: &str = "0.13.2";
const NIGHTLY: &str = "nightly";

pub fn run() -> anyhow::Result<()> {
    foreign_arch()?;
    apt()?;
    stop_services();
    rust_src()?;
    cross_std()?;
    bpf_linker()?;
    cargo_fuzz()?;
    tracefs()?;
    // The kernel matrix: qemu, Debian's kernels and the guests' packages.
    crate::vm::fetch::setup()
}

pub fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// arm64 as a foreign architecture, for libseccomp-dev:arm64.
fn foreign_arch() -> anyhow::Result<()> {
    if util::output("dpkg", &["--print-foreign-architectures"])?
        .lines()
        .any(|a| a == "arm64")
    {
        return Ok(());
    }
    eprintln!("setup: adding arm64 as a foreign architecture (cross-building for aarch64)");
    util::run(Command::new("dpkg").args(["--add-architecture", "arm64"]))
}

fn apt() -> anyhow::Result<()> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .chain(CROSS_PACKAGES)
        .copied()
        .filter(|p| !installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("setup: installing {}", missing.join(" "));
    util::run(Command::new("apt-get").args(["update", "-q"]))?;
    util::run(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    for service in SERVICES.iter().filter(|s| missing.contains(s)) {
        // Best effort: where no service manager runs, nothing was started.
        let _ = succeeds("service", &[service, "stop"]);
    }
    Ok(())
}

/// Stops the services Debian's packages started (a no-op when they are not running).
fn stop_services() {
    for s in SERVICES {
        let _ = Command::new("service")
            .args([s, "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn rust_src() -> anyhow::Result<()> {
    let list = util::output(
        "rustup",
        &["component", "list", "--toolchain", NIGHTLY, "--installed"],
    )
    .unwrap_or_default();
    if list.lines().any(|l| l.starts_with("rust-src")) {
        return Ok(());
    }
    if !util::output("rustup", &["toolchain", "list"])?.contains(NIGHTLY) {
        eprintln!("setup: installing the nightly toolchain (it builds the kernel programs)");
        util::run(Command::new("rustup").args([
            "toolchain",
            "install",
            NIGHTLY,
            "--profile",
            "minimal",
        ]))?;
    }
    eprintln!("setup: adding rust-src to the nightly toolchain");
    util::run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", NIGHTLY]))
}

/// Rust's standard library for the cross target, on the toolchain the workspace builds with.
fn cross_std() -> anyhow::Result<()> {
    let installed = util::output("rustup", &["target", "list", "--installed"])?;
    if installed.lines().any(|t| t == CROSS_TARGET) {
        return Ok(());
    }
    eprintln!("setup: adding the {CROSS_TARGET} target to the Rust toolchain");
    util::run(
        Command::new("rustup")
            .args(["target", "add", CROSS_TARGET])
            .current_dir(util::root()),
    )
}

fn bpf_linker() -> anyhow::Result<()> {
    let path = util::path_with_cargo_bin();
    let current = Command::new("bpf-linker")
        .arg("--version")
        .env("PATH", &path)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if current.contains(BPF_LINKER) {
        return Ok(());
    }
    eprintln!("setup: building bpf-linker {BPF_LINKER} against LLVM 22");
    util::run(
        Command::new("cargo")
            .args(["install", &format!("bpf-linker@{BPF_LINKER}")])
            .args(["--no-default-features", "--features", "llvm-22"])
            .env("LLVM_PREFIX", "/usr/lib/llvm-22"),
    )
}

/// cargo-fuzz runs the fuzz targets (with the nightly toolchain, which rust_src installs).
fn cargo_fuzz() -> anyhow::Result<()> {
    let current = Command::new("cargo")
        .args(["fuzz", "--version"])
        .env("PATH", util::path_with_cargo_bin())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if current.contains(CARGO_FUZZ) {
        return Ok(());
    }
    eprintln!("setup: installing cargo-fuzz {CARGO_FUZZ}");
    util::run(Command::new("cargo").args([
        "install",
        "--locked",
        &format!("cargo-fuzz@{CARGO_FUZZ}"),
    ]))
}

fn tracefs() -> anyhow::Result<()> {
    let dir = "/sys/kernel/tracing";
    if Path::new(dir).join("events").is_dir() {
        return Ok(());
    }
    eprintln!("setup: mounting tracefs at {dir}");
    if !succeeds("mount", &["-t", "tracefs", "tracefs", dir]) {
        bail!("cannot mount tracefs at {dir}; phasebox needs root and a kernel with tracefs");
    }
    Ok(())
}
