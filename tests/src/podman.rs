//! A private Podman for one test: Debian's podman with its own storage, run root and temporary
//! directory under a temporary directory, runc as its OCI runtime, the cgroupfs manager and
//! file events (no systemd, no service), so nothing else on the machine sees its containers.
//! Podman needs no daemon: every command is a process of its own, and each container has its
//! monitor (conmon). Dropped (also while a failed test unwinds), it removes its containers,
//! stops its API service if it started one, and unmounts whatever is left under its directory.
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{TempDir, docker::mounts_under, engine::Engine};

/// Debian's podman.
pub const PODMAN: &str = "/usr/bin/podman";

/// The resource limits every test container is given explicitly. Without them Podman asks runc
/// to raise RLIMIT_NOFILE and RLIMIT_NPROC to the host's maximum, which needs CAP_SYS_RESOURCE;
/// on a machine whose capability bounding set lacks it (this test machine, some CI sandboxes)
/// no container starts ("error setting rlimit type 7: operation not permitted").
pub const ULIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

/// A private Podman, its containers removed on drop.
pub struct Podman {
    dir: TempDir,
    service: Option<Child>,
}

impl Podman {
    /// A Podman with empty storage.
    pub fn new() -> Podman {
        assert!(
            Path::new(PODMAN).exists(),
            "{PODMAN} is missing: Debian's podman is not installed (cargo xtask setup installs it)"
        );
        let dir = TempDir::new("podman");
        for d in ["root", "run", "tmp", "cni"] {
            std::fs::create_dir_all(dir.path(d)).expect("podman's directories");
        }
        Podman { dir, service: None }
    }

    /// The directory holding its storage, run root and temporary files.
    pub fn dir(&self) -> &Path {
        &self.dir.0
    }

    /// Podman's API service on a socket of its own (Docker's API form); its address, as
    /// CONTAINER_HOST and DOCKER_HOST take it. Stopped on drop.
    pub fn start_service(&mut self) -> String {
        let socket = self.dir.path("api.sock");
        let address = format!("unix://{}", socket.display());
        let child = self
            .command()
            .args(["system", "service", "--time", "0", &address])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("podman system service starts");
        self.service = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "podman's API service did not listen within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        address
    }

    /// Whether a process's command line names this Podman's directory (its conmons, their
    /// containers' runc and its service).
    fn owns(&self, pid: u32) -> bool {
        let needle = self.dir.0.as_os_str().as_encoded_bytes();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        cmdline.windows(needle.len()).any(|w| w == needle)
    }
}

impl Default for Podman {
    fn default() -> Self {
        Podman::new()
    }
}

impl Engine for Podman {
    fn name(&self) -> &'static str {
        "podman"
    }

    /// A `podman` command bound to this Podman's storage (the user's configuration of engines
    /// and remotes ignored).
    fn command(&self) -> Command {
        let d = |name: &str| self.dir.path(name);
        let mut cmd = Command::new(PODMAN);
        cmd.arg("--root")
            .arg(d("root"))
            .arg("--runroot")
            .arg(d("run"))
            .arg("--tmpdir")
            .arg(d("tmp"))
            .arg("--network-config-dir")
            .arg(d("cni"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--runtime", "runc", "--events-backend", "file"])
            .env_remove("CONTAINER_HOST")
            .env_remove("CONTAINER_CONNECTION")
            .env_remove(crate::CARGO_LIBRARY_PATH)
            .stdin(Stdio::null());
        cmd
    }

    fn scratch(&self) -> &Path {
        self.dir()
    }

    fn run_args(&self) -> Vec<&'static str> {
        ULIMITS.to_vec()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cli(&["rm", "--all", "--force", "--time", "0"]);
        if let Some(mut s) = self.service.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        // Monitors whose containers `rm` could not stop (a test that failed half-way).
        for (pid, _) in crate::docker::processes() {
            if self.owns(pid) {
                // SAFETY: kill(2) of a process of this test's own Podman.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
        for m in mounts_under(&self.dir.0) {
            let Ok(c) = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()) else {
                continue;
            };
            // SAFETY: a valid NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}
