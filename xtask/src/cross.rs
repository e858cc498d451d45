//! `cargo xtask test`'s aarch64 step: cross-builds the release binary (its build script builds
//! the kernel object for that target too) with Debian's cross compiler and arm64 libseccomp,
//! then runs the result under qemu-user: it starts, and it names syscall numbers from the
//! aarch64 table. Loading its kernel programs needs an aarch64 kernel, which user-mode
//! emulation does not give (it runs on the x86_64 kernel): the kernel matrix (`vm/`) boots
//! Debian's arm64 kernel under qemu-system-aarch64 for that. Nor can libtest's threaded unit
//! tests run under Debian 12's qemu-user here (it hangs creating a thread), so the check uses
//! the single-threaded CLI.
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::{setup::CROSS_TARGET, util};

/// ELF `e_machine` of aarch64.
const EM_AARCH64: u16 = 183;

pub fn check() -> anyhow::Result<()> {
    let mut build = util::cargo_cmd(&[
        "build",
        "--release",
        "-p",
        "phasebox-agent",
        "--target",
        CROSS_TARGET,
    ]);
    build
        .env(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER",
            "aarch64-linux-gnu-gcc",
        )
        .env("CC_aarch64_unknown_linux_gnu", "aarch64-linux-gnu-gcc")
        .env("LIBSECCOMP_LIB_PATH", "/usr/lib/aarch64-linux-gnu");
    util::run(&mut build)?;
    let root = util::root();
    let bin = root
        .join("target")
        .join(CROSS_TARGET)
        .join("release/phasebox");
    let head = std::fs::read(&bin).with_context(|| format!("cannot read {}", bin.display()))?;
    let machine = head.get(18..20).map(|b| u16::from_le_bytes([b[0], b[1]]));
    if machine != Some(EM_AARCH64) {
        bail!("{} is not an aarch64 executable", bin.display());
    }

    let version = qemu(&bin, &["--version"])?;
    if !version.starts_with("phasebox ") {
        bail!("the aarch64 binary printed {version:?} for --version");
    }
    // An aarch64 profile whose one phase calls read, against a policy allowing syscall number
    // 56 only: aarch64's openat (x86_64's clone), which the phase lists as allowed but unused.
    let dir = std::env::temp_dir().join(format!("phasebox-cross-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let numbers = dir.join("numbers.json");
    let report = dir.join("compare.json");
    let profile = dir.join("profile.json");
    std::fs::write(&numbers, "[56]")?;
    let read = serde_json::json!({"calls": 1, "first_seen_ns": 0, "times_ns": [0]});
    let phase = serde_json::json!({"name": "serving", "start_ns": 0, "end_ns": 0, "syscalls": {"read": read}});
    let doc = serde_json::json!({
        "schema": "phasebox.profile/v1",
        "arch": "aarch64",
        "kernel_release": "",
        "complete": true,
        "incomplete_reasons": [],
        "program": {"comm": "demo", "path": "/demo"},
        "runs": [],
        "roles": [{"name": "main", "processes": 1, "phases": [phase]}],
    });
    std::fs::write(&profile, serde_json::to_string(&doc)?)?;
    let result = qemu(
        &bin,
        &[
            "compare",
            path_str(&profile)?,
            path_str(&numbers)?,
            "--json",
            path_str(&report)?,
        ],
    )
    .and_then(|_| Ok(std::fs::read_to_string(&report)?));
    let _ = std::fs::remove_dir_all(&dir);
    let v: serde_json::Value = serde_json::from_str(&result?)?;
    if v["arch"] != "aarch64" {
        bail!("the aarch64 binary compared against another table: {v}");
    }
    let named: std::collections::BTreeSet<&str> = v["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["over_approximation"].as_array().into_iter().flatten())
        .filter_map(|n| n.as_str())
        .collect();
    if named.into_iter().collect::<Vec<_>>() != ["openat"] {
        bail!("the aarch64 binary does not name syscall 56 openat: {v}");
    }
    println!(
        "cross: {CROSS_TARGET} binary built; under qemu it runs and names syscalls from the aarch64 table"
    );
    Ok(())
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str().context("non-UTF-8 path")
}

/// Runs the aarch64 `bin` with `args` under qemu-user; its standard output.
fn qemu(bin: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("qemu-aarch64")
        .args(["-L", "/usr/aarch64-linux-gnu"])
        .arg(bin)
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .context("cannot run qemu-aarch64 (cargo xtask setup installs qemu-user)")?;
    if !out.status.success() {
        bail!(
            "phasebox {args:?} under qemu-aarch64 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
