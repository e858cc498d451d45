//! A guest's initramfs: busybox, phasebox, strace, nginx and the test programs, each with the
//! shared libraries it needs (from the host for x86_64, from Debian's arm64 packages for
//! aarch64), the checks of tests/vm/, and the few files nginx reads.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use super::cpio::Tree;
use super::fetch::userland_root;
use super::kernels::Arch;
use crate::util;

/// Test programs of tests/fixtures/ the checks run, built static for the guest.
const FIXTURES: [&str; 2] = ["threads", "phased_server"];
const ETC: [(&str, &str); 3] = [
    ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
    ("etc/group", "root:x:0:\n"),
    (
        "etc/nsswitch.conf",
        "passwd: files\ngroup: files\nhosts: files\n",
    ),
];

/// Writes `arch`'s initramfs, with `phasebox` built for it, to `out`.
pub fn build(arch: Arch, phasebox: &Path, out: &Path) -> anyhow::Result<()> {
    let work = out.with_extension("d");
    std::fs::create_dir_all(&work)?;
    let sysroot = match arch {
        Arch::X86_64 => PathBuf::from("/"),
        Arch::Aarch64 => userland_root(arch),
    };
    let mut tree = Tree::default();
    let mut programs = vec![
        (
            "usr/bin/phasebox".to_string(),
            stripped(arch, phasebox, &work)?,
        ),
        (
            "bin/busybox".into(),
            userland_root(arch).join("bin/busybox"),
        ),
        ("usr/sbin/nginx".into(), sysroot.join("usr/sbin/nginx")),
        ("usr/bin/strace".into(), sysroot.join("usr/bin/strace")),
    ];
    for name in FIXTURES {
        programs.push((format!("vm/bin/{name}"), fixture(arch, name, &work)?));
    }
    for (guest, host) in &programs {
        let data =
            std::fs::read(host).with_context(|| format!("cannot read {}", host.display()))?;
        tree.file(guest, data, 0o755);
        libraries(arch, &sysroot, host, &mut tree)?;
    }
    let vm = util::root().join("tests/vm");
    tree.file("init", std::fs::read(vm.join("init"))?, 0o755);
    for name in ["checks.sh", "nginx.conf"] {
        tree.file(&format!("vm/{name}"), std::fs::read(vm.join(name))?, 0o644);
    }
    for (path, text) in ETC {
        tree.file(path, text.as_bytes().to_vec(), 0o644);
    }
    // nginx opens its built-in error log before it reads its configuration.
    for dir in ["var/log/nginx", "var/lib/nginx", "root", "sys/fs/bpf"] {
        tree.dir(dir);
    }
    tree.write(out)
}

/// A copy of `bin` without its debug information (four fifths of the release binary), so the
/// guest's kernel unpacks a smaller initramfs.
fn stripped(arch: Arch, bin: &Path, work: &Path) -> anyhow::Result<PathBuf> {
    let strip = match arch {
        Arch::X86_64 => "strip".to_string(),
        Arch::Aarch64 => format!("{}-strip", arch.triplet()),
    };
    let out = work.join("phasebox");
    util::run(Command::new(&strip).arg("-o").arg(&out).arg(bin))?;
    Ok(out)
}

/// Builds tests/fixtures/NAME.c static for `arch` into `work`.
fn fixture(arch: Arch, name: &str, work: &Path) -> anyhow::Result<PathBuf> {
    let cc = match arch {
        Arch::X86_64 => "cc".to_string(),
        Arch::Aarch64 => format!("{}-gcc", arch.triplet()),
    };
    let out = work.join(name);
    let src = util::root().join(format!("tests/fixtures/{name}.c"));
    util::run(
        Command::new(&cc)
            .args(["-O2", "-Wall", "-static", "-pthread", "-o"])
            .arg(&out)
            .arg(&src),
    )?;
    Ok(out)
}

/// Adds `elf`'s program interpreter and every library it needs, transitively, from `sysroot`.
fn libraries(arch: Arch, sysroot: &Path, elf: &Path, tree: &mut Tree) -> anyhow::Result<()> {
    let dirs = [
        sysroot.join("lib").join(arch.triplet()),
        sysroot.join("usr/lib").join(arch.triplet()),
    ];
    let mut todo = vec![elf.to_path_buf()];
    while let Some(file) = todo.pop() {
        let (interp, needed) = dynamic(&file)?;
        if let Some(interp) = interp.filter(|i| !tree.has(i)) {
            let host = sysroot.join(interp.trim_start_matches('/'));
            tree.file(&interp, read(sysroot, &host)?, 0o755);
        }
        for soname in needed {
            let guest = format!("lib/{}/{soname}", arch.triplet());
            if tree.has(&guest) {
                continue;
            }
            let found = dirs.iter().map(|d| d.join(&soname));
            let Some(host) = found.into_iter().find(|p| resolve(sysroot, p).exists()) else {
                bail!(
                    "{} needs {soname}, found in none of {dirs:?}",
                    file.display()
                );
            };
            tree.file(&guest, read(sysroot, &host)?, 0o755);
            todo.push(resolve(sysroot, &host));
        }
    }
    Ok(())
}

/// `path` with its symbolic links followed inside `sysroot`: in an unpacked package, an
/// absolute link points into the package's root, not the host's.
fn resolve(sysroot: &Path, path: &Path) -> PathBuf {
    let mut path = path.to_path_buf();
    for _ in 0..16 {
        let Ok(target) = std::fs::read_link(&path) else {
            break;
        };
        path = match target.strip_prefix("/") {
            Ok(inside) => sysroot.join(inside),
            Err(_) => path.parent().unwrap_or(sysroot).join(target),
        };
    }
    path
}

fn read(sysroot: &Path, path: &Path) -> anyhow::Result<Vec<u8>> {
    let real = resolve(sysroot, path);
    std::fs::read(&real).with_context(|| format!("cannot read {}", real.display()))
}

/// `elf`'s program interpreter and needed libraries, from readelf (which reads every
/// architecture's ELF files).
fn dynamic(elf: &Path) -> anyhow::Result<(Option<String>, Vec<String>)> {
    let out = Command::new("readelf")
        .args(["-l", "-d", "-W"])
        .arg(elf)
        .env("LC_ALL", "C")
        .output()
        .context("cannot run readelf (binutils)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let between = |line: &str, start: &str| {
        let rest = &line[line.find(start)? + start.len()..];
        Some(rest[..rest.find(']')?].to_string())
    };
    let interp = text
        .lines()
        .find_map(|l| between(l, "[Requesting program interpreter: "));
    let needed = text
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| between(l, "Shared library: ["))
        .collect();
    Ok((interp, needed))
}
