//! `cargo xtask install [--prefix DIR] [--destdir DIR]`: the release binary, its man pages and
//! its completions for bash, zsh and fish, where each is looked for (under PREFIX, default
//! /usr/local; DESTDIR stages them elsewhere, as packagers do). The man pages and completions
//! come from the binary itself (`phasebox manpages`, `phasebox completions`), so they always
//! match its command line. `cargo xtask test` installs into a temporary DESTDIR and checks
//! that each shell loads its completions and that every man page renders.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::util;

/// Where each file goes under the prefix.
const BASH: &str = "share/bash-completion/completions/phasebox";
const ZSH: &str = "share/zsh/site-functions/_phasebox";
const FISH: &str = "share/fish/vendor_completions.d/phasebox.fish";
const MAN: &str = "share/man/man1";

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut prefix = PathBuf::from("/usr/local");
    let mut destdir = PathBuf::from("/");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let slot = match a.as_str() {
            "--prefix" => &mut prefix,
            "--destdir" => &mut destdir,
            other => bail!("install takes --prefix DIR and --destdir DIR, not {other:?}"),
        };
        *slot = PathBuf::from(
            it.next()
                .with_context(|| format!("{a} needs a directory"))?,
        );
    }
    let bin = util::build_phasebox()?;
    let root = destdir.join(prefix.strip_prefix("/").unwrap_or(&prefix));
    install(&bin, &root)?;
    println!(
        "install: phasebox, its man pages and completions under {}",
        root.display()
    );
    Ok(())
}

/// Installs `bin` and what it generates under `root` (PREFIX inside DESTDIR).
fn install(bin: &Path, root: &Path) -> anyhow::Result<()> {
    let dir = |rel: &str| -> anyhow::Result<PathBuf> {
        let d = root.join(rel);
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
        Ok(d)
    };
    let target = dir("bin")?.join("phasebox");
    std::fs::copy(bin, &target).with_context(|| format!("cannot write {}", target.display()))?;
    util::run(Command::new(bin).arg("manpages").arg(dir(MAN)?))?;
    for (shell, rel) in [("bash", BASH), ("zsh", ZSH), ("fish", FISH)] {
        let file = root.join(rel);
        dir(Path::new(rel).parent().and_then(Path::to_str).unwrap_or(""))?;
        let out = Command::new(bin).args(["completions", shell]).output()?;
        if !out.status.success() || out.stdout.is_empty() {
            bail!("phasebox completions {shell} failed");
        }
        std::fs::write(&file, &out.stdout)
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    Ok(())
}

/// Installs into a temporary DESTDIR and checks what was installed: bash loads its
/// completions and completes a subcommand, zsh's and fish's files declare phasebox, and every
/// man page renders without a warning.
pub fn check(bin: &Path) -> anyhow::Result<()> {
    let tmp = phasebox_tests::TempDir::new("install");
    let root = tmp.path("usr/local");
    install(bin, &root)?;
    let bash = format!(
        "set -e; source {}; COMP_WORDS=(phasebox exp); COMP_CWORD=1; \
         _phasebox phasebox exp phasebox; echo \"${{COMPREPLY[@]}}\"",
        root.join(BASH).display()
    );
    let out = Command::new("bash").arg("-c").arg(&bash).output()?;
    let said = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || said.trim() != "export" {
        bail!(
            "bash did not complete `phasebox exp` to export: {said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let zsh = std::fs::read_to_string(root.join(ZSH))?;
    let fish = std::fs::read_to_string(root.join(FISH))?;
    if !zsh.starts_with("#compdef phasebox") || !fish.contains("complete -c phasebox") {
        bail!("the zsh or fish completions do not declare phasebox");
    }
    let pages: Vec<PathBuf> = std::fs::read_dir(root.join(MAN))?
        .flatten()
        .map(|e| e.path())
        .collect();
    if pages.len() < 15 || !pages.iter().any(|p| p.ends_with("phasebox-agent.1")) {
        bail!(
            "{} man pages installed, phasebox-agent.1 among them?",
            pages.len()
        );
    }
    for page in &pages {
        let out = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(page)
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_FORMATTING", "0")
            .output()
            .context("man (man-db) is installed")?;
        let warnings = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() || !warnings.trim().is_empty() {
            bail!("man -l {}: {warnings}", page.display());
        }
    }
    println!(
        "install: checked {} man pages and 3 shells' completions",
        pages.len()
    );
    Ok(())
}
