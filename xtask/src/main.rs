//! Developer tasks, so the README stays two commands long:
//!
//! - `cargo xtask setup`: install what building and testing need (apt packages, rust-src for the
//!   nightly that builds the kernel programs, bpf-linker) and mount tracefs.
//! - `cargo xtask demo`: setup, build, and trace /bin/pwd with a short explanation.
//! - `cargo xtask test`: setup, build, lint, and run every test (unit and real-kernel).
//! - `cargo xtask bench`: setup, build, and write the benchmark results to BENCHMARKS.md.
//! - `cargo xtask fuzz [SECONDS]`: setup, and run every fuzz target for SECONDS (default 600).
mod bench;
mod setup;
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
            demo()
        }
        "test" => {
            setup::run()?;
            test()
        }
        "bench" => {
            setup::run()?;
            bench::run(&args[1..])
        }
        "fuzz" => {
            setup::run()?;
            let secs = args.get(1).map_or(Ok(600), |s| s.parse())?;
            fuzz(secs)
        }
        "help" | "--help" | "-h" => {
            println!("usage: cargo xtask setup|build|demo|test|bench|fuzz");
            Ok(())
        }
        other => bail!("unknown task {other:?}; try: setup, build, demo, test, bench, fuzz"),
    }
}

/// Traces /bin/pwd from its first instruction and shows what phasebox saw.
fn demo() -> anyhow::Result<()> {
    let bin = util::build_phasebox()?;
    let dir = std::env::temp_dir().join("phasebox-demo");
    std::fs::create_dir_all(&dir)?;
    let trace = dir.join("pwd.pbtrace");
    let summary = dir.join("pwd-summary.json");
    println!("== phasebox run -- /bin/pwd");
    println!("   Launches /bin/pwd traced from its execve on. /bin/pwd prints the directory; then");
    println!(
        "   phasebox prints, per process, every system call it made, with calls and errors:\n"
    );
    util::run(
        std::process::Command::new(&bin)
            // cargo sets LD_LIBRARY_PATH for xtask; pwd would search it for its libraries.
            .env_remove("LD_LIBRARY_PATH")
            .args(["run", "-o"])
            .arg(&trace)
            .arg("--summary")
            .arg(&summary)
            .args(["--", "/bin/pwd"]),
    )?;
    println!(
        "\n== phasebox trace dump {}  (the first 25 events)",
        trace.display()
    );
    println!(
        "   The trace file keeps every call in order: time since start, thread, call, result.\n"
    );
    let out = std::process::Command::new(&bin)
        .arg("trace")
        .arg("dump")
        .arg(&trace)
        .output()?;
    for line in String::from_utf8_lossy(&out.stdout).lines().take(27) {
        println!("{line}");
    }
    println!("   ...");
    println!(
        "\nThe summary as JSON (for scripts) is in {}",
        summary.display()
    );
    scenarios_demo(&bin, &dir)
}

/// The demo's second half: pwd's scenario set and its HTML report.
fn scenarios_demo(bin: &std::path::Path, dir: &std::path::Path) -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let set = root.join("scenarios/pwd.toml");
    let out = dir.join("pwd-scenarios");
    println!("\n== phasebox scenarios run scenarios/pwd.toml --oracle-strace");
    println!(
        "   Runs pwd in 12 settings (symlinks, a deleted and a very deep directory, a locale,"
    );
    println!(
        "   bad options, stdout closed or full…), each traced in a fresh directory and checked"
    );
    println!("   against strace; then shows which calls each setting added:\n");
    util::run(
        std::process::Command::new(bin)
            .env_remove("LD_LIBRARY_PATH")
            .args(["scenarios", "run"])
            .arg(&set)
            .arg("-o")
            .arg(&out)
            .arg("--oracle-strace"),
    )?;
    let names = [
        "plain",
        "logical",
        "physical",
        "deleted",
        "deep",
        "locale",
        "help",
        "version",
        "bad-option",
        "stdout-closed",
        "stdout-full",
        "pid-namespace",
    ];
    let report = dir.join("pwd-report.html");
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("report");
    for n in names {
        cmd.arg(out.join(format!("{n}.profile.json")));
    }
    cmd.arg(out.join("merged.profile.json"));
    cmd.arg("--compare")
        .arg(root.join("tests/fixtures/docker-default-seccomp.json"))
        .arg("-o")
        .arg(&report);
    util::run(&mut cmd)?;
    println!(
        "\nOpen {} in a browser: per scenario the timeline and the phase table, then the",
        report.display()
    );
    println!("coverage and the comparison with Docker's default seccomp profile.");
    Ok(())
}

/// Format, lints, unit tests, then the real-kernel integration tests one at a time.
fn test() -> anyhow::Result<()> {
    let bin = util::build_phasebox()?;
    util::cargo(&["fmt", "--all", "--", "--check"])?;
    // The userspace crates (never phasebox-ebpf: it only builds for the BPF target).
    const CRATES: [&str; 10] = [
        "-p",
        "phasebox-common",
        "-p",
        "phasebox-core",
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
    let mut unit = vec!["test"];
    unit.extend(&CRATES[..8]);
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
    util::run(&mut cmd)
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
