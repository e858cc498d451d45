//! Builds the C test programs (fixtures/*.c) into OUT_DIR with the system's C compiler.
use std::{env, path::PathBuf, process::Command};

/// libseccomp-dev's header.
const SECCOMP_HEADER: &str = "/usr/include/seccomp.h";
/// What dpkg rewrites whenever a package is installed.
const DPKG_STATUS: &str = "/var/lib/dpkg/status";

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    for name in [
        "threads",
        "storm",
        "phased_server",
        "syscall_loop",
        "swarm",
        "thread_exec",
    ] {
        let src = format!("fixtures/{name}.c");
        println!("cargo:rerun-if-changed={src}");
        let status = Command::new("cc")
            .args(["-O2", "-Wall", "-pthread", "-o"])
            .arg(out.join(name))
            .arg(&src)
            .status()
            .expect("a C compiler (cc) is needed to build the test programs");
        assert!(status.success(), "cc failed on {src}");
    }
    // These link libseccomp (Debian's libseccomp-dev, which `cargo xtask setup` installs). The
    // xtask binary that installs it depends on this crate, so on a fresh machine this runs
    // before the library is there: the programs are left out then (the tests that run them say
    // why) until the package is installed. The header's own modification time is the package's
    // (older than this build), so its appearance alone would not rerun this script: while it is
    // missing, dpkg's status file (rewritten by every installation) reruns it.
    println!("cargo:rerun-if-changed={SECCOMP_HEADER}");
    let have_seccomp = std::path::Path::new(SECCOMP_HEADER).exists();
    if !have_seccomp {
        println!("cargo:rerun-if-changed={DPKG_STATUS}");
    }
    for name in ["seccomp_wrap", "attack_probe"] {
        let src = format!("fixtures/{name}.c");
        println!("cargo:rerun-if-changed={src}");
        if !have_seccomp {
            println!("cargo:warning=libseccomp-dev is not installed: {src} is not built");
            continue;
        }
        let status = Command::new("cc")
            .args(["-O2", "-Wall", "-o"])
            .arg(out.join(name))
            .arg(&src)
            .arg("-lseccomp")
            .status()
            .expect("a C compiler (cc) is needed to build the test programs");
        assert!(status.success(), "cc failed on {src}");
    }
    // A container image's only file: static, so the image needs no libraries.
    let src = "fixtures/tiny_init.c";
    println!("cargo:rerun-if-changed={src}");
    let status = Command::new("cc")
        .args(["-O2", "-Wall", "-static", "-o"])
        .arg(out.join("tiny_init"))
        .arg(src)
        .status()
        .expect("a C compiler (cc) is needed to build the test programs");
    assert!(
        status.success(),
        "cc -static failed on {src} (is libc6-dev installed?)"
    );
    println!("cargo:rustc-env=PHASEBOX_FIXTURE_BIN={}", out.display());
}
