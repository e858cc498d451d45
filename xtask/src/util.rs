//! Running commands, and building phasebox.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace root")
}

/// Runs a command, inheriting stdio; fails with the command line when it fails.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// Whether `prog` runs with `args` and succeeds (output ignored).
pub fn succeeds(prog: &str, args: &[&str]) -> bool {
    Command::new(prog)
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Output of a command that must succeed.
pub fn output(prog: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(prog)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {prog}"))?;
    if !out.status.success() {
        bail!(
            "{prog} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `cargo ARGS` in the workspace root, with ~/.cargo/bin (bpf-linker) on PATH.
pub fn cargo_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(args).current_dir(root());
    cmd.env("PATH", path_with_cargo_bin());
    cmd
}

pub fn cargo(args: &[&str]) -> anyhow::Result<()> {
    run(&mut cargo_cmd(args))
}

/// $PATH with $CARGO_HOME/bin in front, where `cargo install` puts bpf-linker.
pub fn path_with_cargo_bin() -> String {
    let home = std::env::var("CARGO_HOME").unwrap_or_else(|_| {
        format!(
            "{}/.cargo",
            std::env::var("HOME").unwrap_or_else(|_| "/root".into())
        )
    });
    let path = std::env::var("PATH").unwrap_or_default();
    let bin = format!("{home}/bin");
    // Leave PATH as it is when it has the directory already: build scripts rerun when it changes.
    if path.split(':').any(|p| p == bin) {
        path
    } else {
        format!("{bin}:{path}")
    }
}

/// Builds the release phasebox binary (with its kernel programs); returns its path.
pub fn build_phasebox() -> anyhow::Result<PathBuf> {
    cargo(&["build", "--release", "-p", "phasebox-agent"])?;
    Ok(root().join("target/release/phasebox"))
}

/// `text` with the part between `begin` and `end` replaced by `section` (appended if absent).
pub fn replace_section(text: &str, begin: &str, end: &str, section: &str) -> String {
    match (text.find(begin), text.find(end)) {
        (Some(a), Some(b)) => format!("{}{}{}", &text[..a], section, &text[b + end.len()..]),
        _ => format!("{text}\n{section}\n"),
    }
}
