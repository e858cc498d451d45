//! What container runtimes call themselves under a container's seccomp filter, measured the way
//! phasebox-core/runtimes/*.toml were (docs/seccomp.md): a container starts (and a process is
//! executed in it) under a filter whose default action is SCMP_ACT_LOG, so the kernel logs every
//! call made under the filter, and nothing fails; the calls logged for a process named
//! `runc:[2:INIT]` (runc's init before it executes the container's program) are the runtime's
//! own. Only the thread that installed the filter is under it (runc sets no TSYNC), which is
//! exactly what the kernel logs. Each measured list must be within its data file: a runtime that
//! calls something new fails here, before a user's container does. The measured lists are
//! printed (`--nocapture`) in the data files' form.
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use phasebox_core::{
    seccomp::runtimes::{Runtime, RuntimeCalls},
    sysnames,
};
use phasebox_tests::{
    TempDir,
    docker::Dockerd,
    engine::Engine,
    fixture,
    metrics::eventually,
    podman::{Podman, ULIMITS},
};

/// The program every measured container runs (the static `tiny_init`).
const PROGRAM: &str = "/init";

/// A filter that logs every call and denies none: the runtime installs it as it would a real
/// one, and nothing it calls fails.
fn log_all(dir: &TempDir) -> String {
    let path = dir.path("log-all.json");
    std::fs::write(&path, r#"{"defaultAction":"SCMP_ACT_LOG"}"#).unwrap();
    path.to_str().unwrap().to_string()
}

/// The kernel log from now on, with the printk rate limit raised so that no seccomp record is
/// dropped; the limit is put back on drop.
struct KernelLog {
    kmsg: std::fs::File,
    burst: String,
    /// Per process, in the order they first logged, the calls' names.
    by_pid: Vec<(u32, BTreeSet<String>)>,
}

const BURST: &str = "/proc/sys/kernel/printk_ratelimit_burst";

impl KernelLog {
    fn open() -> KernelLog {
        use std::io::Seek;
        use std::os::unix::fs::OpenOptionsExt;
        let burst = std::fs::read_to_string(BURST).unwrap().trim().to_string();
        std::fs::write(BURST, "1000000").expect("raise the printk rate limit");
        let mut kmsg = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .expect("read the kernel log");
        kmsg.seek(std::io::SeekFrom::End(0)).unwrap();
        KernelLog {
            kmsg,
            burst,
            by_pid: Vec::new(),
        }
    }

    /// The seccomp records logged since `open` for processes named `runc:[2:INIT]`: per
    /// process, in the order they first logged, the calls' names.
    fn runtime_calls(&mut self) -> Vec<BTreeSet<String>> {
        use std::io::Read;
        let mut buf = vec![0u8; 8192];
        // One record per read; EAGAIN when there is no more, EPIPE when records were
        // overwritten before they were read (the next read goes on with the oldest left).
        loop {
            let n = match self.kmsg.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(_) => break,
            };
            let line = String::from_utf8_lossy(&buf[..n]);
            if !line.contains("type=1326") || !line.contains(r#"comm="runc:[2:INIT]""#) {
                continue;
            }
            let field = |key: &str| -> Option<u32> {
                let rest = line.split(&format!(" {key}=")).nth(1)?;
                rest.split_whitespace().next()?.parse().ok()
            };
            let (Some(pid), Some(nr)) = (field("pid"), field("syscall")) else {
                continue;
            };
            let name = sysnames::name(nr).into_owned();
            match self.by_pid.iter_mut().find(|(p, _)| *p == pid) {
                Some((_, set)) => {
                    set.insert(name);
                }
                None => self.by_pid.push((pid, [name].into())),
            }
        }
        self.by_pid.iter().map(|(_, s)| s.clone()).collect()
    }
}

impl Drop for KernelLog {
    fn drop(&mut self) {
        let _ = std::fs::write(BURST, &self.burst);
    }
}

/// Asserts `measured` is within `runtime`'s data for start path `path` (and the Go runtime's
/// calls), printing it.
fn within_data(runtime: Runtime, path: &str, measured: &BTreeSet<String>) {
    let data = RuntimeCalls::of(runtime);
    let quoted: Vec<String> = measured.iter().map(|n| format!("{n:?}")).collect();
    println!(
        "{} {path}: {} calls: [{}]",
        data.runtime,
        measured.len(),
        quoted.join(", ")
    );
    assert!(
        measured.contains("execve"),
        "the program's execve is made under the filter: {measured:?}"
    );
    let listed: BTreeSet<String> = data
        .paths
        .iter()
        .filter(|p| p.name == path || p.name == "go-runtime")
        .flat_map(|p| p.syscalls.iter().cloned())
        .collect();
    assert!(
        !listed.is_empty(),
        "{} has no start path {path}",
        data.runtime
    );
    let new: Vec<&String> = measured.difference(&listed).collect();
    assert!(
        new.is_empty(),
        "{} ({path}) now calls {new:?} under the filter: phasebox-core/runtimes/{}.toml lacks them",
        data.runtime,
        data.runtime
    );
}

/// A root filesystem holding only `tiny_init` as /init.
fn tiny_root(dir: &TempDir) -> std::path::PathBuf {
    let root = dir.path("rootfs");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(fixture("tiny_init"), root.join("init")).unwrap();
    root
}

/// Reads the runtime's logged calls until `n` processes have logged their execve.
fn measured(log: &mut KernelLog, n: usize) -> Vec<BTreeSet<String>> {
    let mut found: Vec<BTreeSet<String>> = Vec::new();
    eventually(
        Duration::from_secs(10),
        "the kernel logged the runtime's calls",
        || {
            found = log.runtime_calls();
            (found.len() >= n && found.iter().all(|s| s.contains("execve"))).then_some(())
        },
    );
    found
}

#[test]
fn docker_run_and_exec_call_within_the_docker_data() {
    let d = Dockerd::start();
    d.import_tiny("phasebox-test/tiny:runtime");
    let dir = TempDir::new("runtime-docker");
    let seccomp = format!("seccomp={}", log_all(&dir));
    let mut log = KernelLog::open();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "measured",
        "--network",
        "none",
        "--security-opt",
        &seccomp,
        "phasebox-test/tiny:runtime",
        "wait",
    ]);
    let out = d.docker_ok(&["exec", "measured", PROGRAM, "cgroup"]);
    assert!(!out.is_empty());
    let found = measured(&mut log, 2);
    assert_eq!(found.len(), 2, "one run and one exec: {found:?}");
    within_data(Runtime::Docker, "run", &found[0]);
    within_data(Runtime::Docker, "exec", &found[1]);
    // Without no_new_privileges runc installs the filter before dropping capabilities.
    for n in ["capget", "capset"] {
        assert!(found[0].contains(n), "{n} not seen: {:?}", found[0]);
    }
}

/// A runc bundle running /init cgroup under the log-everything filter.
fn runc_bundle(dir: &TempDir, no_new_privileges: bool) -> std::path::PathBuf {
    let bundle = dir.path(&format!("bundle-{no_new_privileges}"));
    std::fs::create_dir_all(bundle.join("rootfs")).unwrap();
    std::fs::copy(fixture("tiny_init"), bundle.join("rootfs/init")).unwrap();
    let path = bundle.join("config.json");
    let mut config =
        phasebox_tests::image::runc_spec(&bundle, serde_json::json!([PROGRAM, "cgroup"]));
    config["process"]["noNewPrivileges"] = no_new_privileges.into();
    config["linux"]["seccomp"] =
        serde_json::from_str(&std::fs::read_to_string(log_all(dir)).unwrap()).unwrap();
    std::fs::write(&path, config.to_string()).unwrap();
    bundle
}

#[test]
fn runc_run_calls_within_the_runc_data() {
    let dir = TempDir::new("runtime-runc");
    for nnp in [false, true] {
        let bundle = runc_bundle(&dir, nnp);
        let id = format!("phasebox-runtime-{}-{nnp}", std::process::id());
        let mut log = KernelLog::open();
        let out = Command::new("runc")
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .output()
            .expect("runc is installed");
        let _ = Command::new("runc")
            .args(["delete", "--force", &id])
            .output();
        assert!(
            out.status.success(),
            "runc run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let found = measured(&mut log, 1);
        assert_eq!(found.len(), 1, "{found:?}");
        let path = if nnp { "run-no-new-privileges" } else { "run" };
        within_data(Runtime::Runc, path, &found[0]);
    }
}

#[test]
fn containerd_ctr_run_calls_within_the_containerd_data() {
    let d = Dockerd::start();
    let dir = TempDir::new("runtime-containerd");
    let root = tiny_root(&dir);
    let socket = d.dir().join("exec/containerd/containerd.sock");
    let profile = log_all(&dir);
    for allow_new_privs in [false, true] {
        let id = format!("measured-{allow_new_privs}");
        let mut log = KernelLog::open();
        let mut ctr = Command::new("ctr");
        ctr.arg("-a")
            .arg(&socket)
            .args(["-n", "phasebox", "run", "--rm", "--rootfs"])
            .args(["--seccomp", "--seccomp-profile", &profile]);
        if allow_new_privs {
            ctr.arg("--allow-new-privs");
        }
        let out = ctr
            .arg(&root)
            .args([&id, PROGRAM, "cgroup"])
            .stdin(Stdio::null())
            .output()
            .expect("ctr (Debian's containerd) is installed");
        assert!(
            out.status.success(),
            "ctr run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let found = measured(&mut log, 1);
        assert_eq!(found.len(), 1, "{found:?}");
        let path = if allow_new_privs {
            "run-allow-new-privs"
        } else {
            "run"
        };
        within_data(Runtime::Containerd, path, &found[0]);
    }
}

#[test]
fn podman_run_and_exec_call_within_the_podman_data() {
    let p = Podman::new();
    p.import_tiny("phasebox-test/tiny:runtime");
    let dir = TempDir::new("runtime-podman");
    let seccomp = format!("seccomp={}", log_all(&dir));
    for nnp in [false, true] {
        let name = format!("measured-{nnp}");
        let mut run = vec!["run", "-d", "--name", &name, "--network", "none"];
        run.extend(ULIMITS);
        run.extend(["--security-opt", &seccomp]);
        if nnp {
            run.extend(["--security-opt", "no-new-privileges"]);
        }
        run.extend(["phasebox-test/tiny:runtime", "wait"]);
        let mut log = KernelLog::open();
        p.cli_ok(&run);
        let out = p.cli_ok(&["exec", &name, PROGRAM, "cgroup"]);
        assert!(
            out.contains("libpod"),
            "the exec ran in the container: {out}"
        );
        let found = measured(&mut log, 2);
        assert_eq!(found.len(), 2, "one run and one exec: {found:?}");
        let suffix = if nnp { "-no-new-privileges" } else { "" };
        within_data(Runtime::Podman, &format!("run{suffix}"), &found[0]);
        within_data(Runtime::Podman, &format!("exec{suffix}"), &found[1]);
        if !nnp {
            // Without no_new_privileges runc installs the filter before dropping capabilities.
            for n in ["capget", "capset"] {
                assert!(found[0].contains(n), "{n} not seen: {:?}", found[0]);
            }
        }
        p.cli_ok(&["rm", "-f", "-t", "0", &name]);
    }
}
