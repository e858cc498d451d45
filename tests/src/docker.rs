//! A private Docker daemon for one test: Debian's dockerd with its own socket, data root and
//! exec root under a temporary directory, no iptables rules and no bridge, so nothing else on
//! the machine sees it. Dropped (also while a failed test unwinds), it removes its containers,
//! stops dockerd and unmounts whatever is left under its directory.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{TempDir, engine::Engine};

/// Debian's docker.io client. Named explicitly: another `docker` earlier on PATH may be a
/// client of another version.
pub const DOCKER: &str = "/usr/bin/docker";
/// Debian's docker.io daemon.
pub const DOCKERD: &str = "/usr/sbin/dockerd";

/// A running private dockerd, stopped and cleaned up on drop.
pub struct Dockerd {
    dir: TempDir,
    child: Child,
    host: String,
}

impl Dockerd {
    /// Starts dockerd and waits until it answers.
    pub fn start() -> Dockerd {
        for bin in [DOCKER, DOCKERD] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: Debian's docker.io is not installed (cargo xtask setup installs it)"
            );
        }
        let dir = TempDir::new("dockerd");
        let host = format!("unix://{}", dir.path("d.sock").display());
        let log = std::fs::File::create(dir.path("dockerd.log")).expect("dockerd log file");
        let child = Command::new(DOCKERD)
            .args(["-H", &host])
            .arg("--data-root")
            .arg(dir.path("root"))
            .arg("--exec-root")
            .arg(dir.path("exec"))
            .arg("--pidfile")
            .arg(dir.path("dockerd.pid"))
            .args(["--iptables=false", "--bridge=none"])
            .env_remove(crate::CARGO_LIBRARY_PATH)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("dockerd starts");
        let mut d = Dockerd { dir, child, host };
        d.wait_ready();
        d
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.docker(&["version"]).status.success() {
                return;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("dockerd exited with {st}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer within 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The daemon's address, as DOCKER_HOST takes it (`unix:///…/d.sock`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The directory holding the socket, data root and exec root.
    pub fn dir(&self) -> &Path {
        &self.dir.0
    }

    /// dockerd's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path("dockerd.log")).unwrap_or_default()
    }

    /// A `docker` command bound to this daemon (the user's config and contexts ignored).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(DOCKER);
        cmd.args(["-H", &self.host])
            .env("DOCKER_CONFIG", self.dir.path("client"))
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env_remove(crate::CARGO_LIBRARY_PATH)
            .stdin(Stdio::null());
        cmd
    }

    /// `docker ARGS` against this daemon, output captured.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.cli(args)
    }

    /// `docker ARGS`, which must succeed; returns its standard output, trimmed.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        self.cli_ok(args)
    }

    /// Imports the directory `root` as image `tag` (`docker import`), with Dockerfile-style
    /// `changes` such as `ENTRYPOINT ["/init"]`.
    pub fn import(&self, root: &Path, tag: &str, changes: &[&str]) {
        Engine::import(self, root, tag, changes)
    }

    /// A one-file image `tag` whose entrypoint is the static `tiny_init` test program.
    pub fn import_tiny(&self, tag: &str) {
        Engine::import_tiny(self, tag)
    }

    /// The host pid of a running container's first process.
    pub fn container_pid(&self, id: &str) -> u32 {
        Engine::container_pid(self, id)
    }

    fn remove_containers(&self) {
        let out = self.docker(&["ps", "-aq"]);
        let list = String::from_utf8_lossy(&out.stdout);
        let ids: Vec<&str> = list.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let _ = self.docker(&args);
        }
    }

    fn stop_daemon(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Processes left by a daemon that did not stop cleanly (killed, crashed): its
/// containerd-shims name its exec root on their command line and outlive it with their
/// containers. Each container's first process is killed (its pid namespace goes with it), then
/// the shim; returns once they are gone or after 10 s.
fn kill_leftovers(dir: &Path) {
    let needle = dir.as_os_str().as_encoded_bytes();
    let table = processes();
    let shims: Vec<u32> = table
        .iter()
        .map(|&(pid, _)| pid)
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            cmdline.windows(needle.len()).any(|w| w == needle)
        })
        .collect();
    let inits = table
        .iter()
        .filter(|(_, ppid)| shims.contains(ppid))
        .map(|&(pid, _)| pid);
    let doomed: Vec<u32> = inits.chain(shims.iter().copied()).collect();
    for &pid in &doomed {
        // SAFETY: kill(2) of a process this daemon started.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while doomed.iter().any(|&p| running(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every process's pid and parent pid, from /proc.
pub fn processes() -> Vec<(u32, u32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat(pid)?.1)))
        .collect()
}

/// State letter and parent pid of a process, from /proc/PID/stat.
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut f = text[text.rfind(')')? + 1..].split_whitespace();
    let state = f.next()?.chars().next()?;
    Some((state, f.next()?.parse().ok()?))
}

/// Whether `pid` exists and is not a zombie.
pub fn running(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z')
}

/// Mount points under `dir` in this mount namespace, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    out.dedup();
    out
}

impl Engine for Dockerd {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn command(&self) -> Command {
        Dockerd::command(self)
    }

    fn scratch(&self) -> &Path {
        self.dir()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.remove_containers();
        self.stop_daemon();
        kill_leftovers(&self.dir.0);
        // Overlay mounts of containers and network namespaces dockerd did not release.
        for m in mounts_under(&self.dir.0) {
            let Ok(c) = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()) else {
                continue;
            };
            // SAFETY: a valid NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}
