//! Developer tasks, so the README stays two commands long:
//!
//! - `cargo xtask setup`: install what building and testing need (apt packages, rust-src for the
//!   nightly that builds the kernel programs, bpf-linker) and mount tracefs.
//! - `cargo xtask demo`: setup, build, then the agent on a running nginx through a reload, and
//!   /bin/pwd traced with its scenarios and report, each step explained.
//! - `cargo xtask test`: setup, build, lint, run every test (unit and real-kernel),
//!   cross-build for aarch64, and run the kernel matrix in VMs.
//! - `cargo xtask bench`: setup, build, and write the benchmark results to BENCHMARKS.md
//!   (`--core`, `--seccomp`, `--agent`, `--phases`, `--cost`, `--static`, `--deploy`: only those
//!   sections; `--soak [MINUTES]`: the agent soaked for an hour, only when asked).
//! - `cargo xtask study [--quick] [--policy FILE]…`: the poster's study for pwd and nginx, into
//!   docs/study.md.
//! - `cargo xtask image`: setup, build, and make phasebox's container image (target/image/).
//! - `cargo xtask fuzz [SECONDS]`: setup, and run every fuzz target for SECONDS (default 600).
//! - `cargo xtask cross`: only the aarch64 cross-build and its checks (part of `test`).
//! - `cargo xtask install [--prefix DIR] [--destdir DIR]`: the binary, its man pages and its
//!   bash, zsh and fish completions (checked by `test` in a temporary DESTDIR).
//! - `cargo xtask vm-test [KERNEL…]`: phasebox's checks on each kernel of the matrix (Debian 11,
//!   12, 12 backports on x86_64, Debian 12 on arm64, with the cross-built binary) booted under
//!   qemu, or only those named (part of `test`; docs/kernels.md).
mod bench;
mod bench_agent;
mod bench_agent_pair;
mod bench_args;
mod bench_core;
mod bench_cost;
mod bench_deploy;
mod bench_phases;
mod bench_scale;
mod bench_seccomp;
mod bench_soak;
mod bench_static;
mod cross;
mod demo;
mod image;
mod install;
mod measure;
mod setup;
mod study;
mod study_page;
mod util;
mod vm;

use anyhow::bail;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = args.first().map(String::as_str).unwrap_or("help");
    match task {
        "setup" => setup::run(),
        "build" => {
            setup::run()?;
            util::build_phasebox().map(|_| ())
        }
        "demo" => {
            setup::run()?;
            demo::run()
        }
        "test" => {
            setup::run()?;
            test()
        }
        "bench" => {
            setup::run()?;
            bench::run(&args[1..])
        }
        "study" => {
            setup::run()?;
            study::run(&args[1..])
        }
        "image" => {
            setup::run()?;
            image::run()
        }
        "fuzz" => {
            setup::run()?;
            let secs = args.get(1).map_or(Ok(600), |s| s.parse())?;
            fuzz(secs)
        }
        "cross" => {
            setup::run()?;
            cross::check()
        }
        "vm-test" => {
            setup::run()?;
            vm::run(&args[1..])
        }
        "install" => {
            setup::run()?;
            install::run(&args[1..])
        }
        "help" | "--help" | "-h" => {
            println!(
                "usage: cargo xtask setup|build|demo|test|bench|study|image|fuzz|cross|vm-test|install"
            );
            Ok(())
        }
        other => {
            bail!(
                "unknown task {other:?}; try: setup, build, demo, test, bench, study, image, fuzz, cross, vm-test, install"
            )
        }
    }
}

/// Clippy on the kernel programs, for the BPF target with the nightly that builds them (the
/// same `bpf_target_arch` setting aya-build gives them), in a target directory of its own.
fn clippy_ebpf() -> anyhow::Result<()> {
    let arch = std::env::consts::ARCH;
    util::run(
        std::process::Command::new("rustup")
            .args([
                "run",
                "nightly",
                "cargo",
                "clippy",
                "-p",
                "phasebox-ebpf",
                "--release",
            ])
            .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
            .args(["--", "-D", "warnings"])
            .current_dir(util::root())
            .env("PATH", util::path_with_cargo_bin())
            .env("CARGO_TARGET_DIR", util::root().join("target/ebpf-clippy"))
            .env(
                "CARGO_ENCODED_RUSTFLAGS",
                format!("--cfg=bpf_target_arch=\"{arch}\""),
            )
            .env_remove("RUSTC")
            .env_remove("CARGO"),
    )
}

/// Format, lints, unit tests, a short fuzz of every parser, the real-kernel integration tests
/// one at a time, then the aarch64 cross-build and the kernel matrix (which runs it).
fn test() -> anyhow::Result<()> {
    let bin = util::build_phasebox()?;
    util::cargo(&["fmt", "--all", "--", "--check"])?;
    install::check(&bin)?;
    // The userspace crates (never phasebox-ebpf: it only builds for the BPF target).
    const CRATES: [&str; 12] = [
        "-p",
        "phasebox-common",
        "-p",
        "phasebox-core",
        "-p",
        "phasebox-static",
        "-p",
        "phasebox-agent",
        "-p",
        "xtask",
        "-p",
        "phasebox-tests",
    ];
    let mut clippy = vec!["clippy"];
    clippy.extend(CRATES);
    clippy.extend(["--all-targets", "--", "-D", "warnings"]);
    util::cargo(&clippy)?;
    clippy_ebpf()?;
    let mut unit = vec!["test"];
    unit.extend(&CRATES[..10]);
    util::cargo(&unit)?;
    fuzz(20)?;
    // --tests: the integration binaries only, so the run ends on real tests, not doc-tests.
    let mut cmd = util::cargo_cmd(&[
        "test",
        "-p",
        "phasebox-tests",
        "--tests",
        "--",
        "--test-threads=1",
    ]);
    cmd.env("PHASEBOX_BIN", &bin);
    util::run(&mut cmd)?;
    vm::run(&[])
}

/// Runs every fuzz target (fuzz/, a workspace of its own built by cargo-fuzz with nightly) for
/// `seconds`, one after the other, from its seeds and the corpus earlier runs left in
/// fuzz/corpus; a crash, or an input that takes over 10 s (a hang), fails.
fn fuzz(seconds: u64) -> anyhow::Result<()> {
    let nightly = |args: &[&str]| {
        let mut cmd = std::process::Command::new("cargo");
        cmd.arg("+nightly")
            .args(args)
            .current_dir(util::root())
            .env("PATH", util::path_with_cargo_bin())
            // The stable cargo that runs xtask must not stand in for the nightly one.
            .env_remove("CARGO")
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO_TARGET_DIR");
        cmd
    };
    let list = nightly(&["fuzz", "list"]).output()?;
    if !list.status.success() || list.stdout.is_empty() {
        bail!(
            "cargo fuzz list failed: {}",
            String::from_utf8_lossy(&list.stderr)
        );
    }
    for target in String::from_utf8_lossy(&list.stdout).lines() {
        let corpus = format!("fuzz/corpus/{target}");
        std::fs::create_dir_all(util::root().join(&corpus))?;
        let seeds = format!("fuzz/seeds/{target}");
        let time = format!("-max_total_time={seconds}");
        util::run(&mut nightly(&[
            "fuzz",
            "run",
            target,
            &corpus,
            &seeds,
            "--",
            &time,
            "-timeout=10",
        ]))?;
    }
    Ok(())
}
