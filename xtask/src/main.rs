//! Developer tasks, so the README stays two commands long:
//!
//! - `cargo xtask setup`: install what building and testing need (apt packages, rust-src for the
//!   nightly that builds the kernel programs, bpf-linker) and mount tracefs.
//! - `cargo xtask demo`: setup, build, then the agent on a running nginx through a reload, and
//!   /bin/pwd traced with its scenarios and report, each step explained.
//! - `cargo xtask test`: setup, build, lint, and run every test (unit and real-kernel).
//! - `cargo xtask bench`: setup, build, and write the benchmark results to BENCHMARKS.md
//!   (`--core`, `--seccomp`, `--agent`, `--phases`, `--cost`, `--static`: only those sections).
//! - `cargo xtask study [--quick] [--policy FILE]…`: the poster's study for pwd and nginx, into
//!   docs/study.md.
//! - `cargo xtask image`: setup, build, and make phasebox's container image (target/image/).
mod bench;
mod bench_cost;
mod bench_phases;
mod bench_static;
mod demo;
mod image;
mod setup;
mod study;
mod study_page;
mod util;

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
        "help" | "--help" | "-h" => {
            println!("usage: cargo xtask setup|build|demo|test|bench|study|image");
            Ok(())
        }
        other => {
            bail!("unknown task {other:?}; try: setup, build, demo, test, bench, study, image")
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

/// Format, lints, unit tests, then the real-kernel integration tests one at a time.
fn test() -> anyhow::Result<()> {
    let bin = util::build_phasebox()?;
    util::cargo(&["fmt", "--all", "--", "--check"])?;
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
    util::run(&mut cmd)
}
