//! Where a server runs for one stage of the deployment benchmark, and what the operations
//! can do to it there: a container of the private dockerd, or a process on the host under a
//! phasebox command (`run --profile`, `run --seccomp-phases`, `validate`). The server's
//! command line, configuration and data directory are the same in both: the directory is
//! mounted at the same path in the container.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use phasebox_tests::{children, docker::Dockerd};

/// The phasebox command a host server runs under.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Wrapper {
    /// `phasebox run`: its exit status is the server's.
    Run,
    /// `phasebox validate`: its exit status is pass or fail; the server's is in its report.
    Validate,
}

/// A running server.
pub enum Place<'a> {
    Docker {
        d: &'a Dockerd,
        name: String,
    },
    Host {
        child: Mutex<Child>,
        wrapper: Wrapper,
        out: PathBuf,
        err: PathBuf,
    },
}

/// The server one stage drives: where it runs, its port and its directory.
pub struct Target<'a> {
    pub port: u16,
    pub dir: PathBuf,
    pub place: Place<'a>,
}

/// `pid` and all its descendants.
pub fn tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() && out.len() < 10_000 {
        out.extend(children(out[i]));
        i += 1;
    }
    out
}

/// Resident memory of `pid` and its descendants, in KiB.
pub fn tree_rss_kib(pid: u32) -> u64 {
    tree(pid)
        .iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum()
}

impl Target<'_> {
    /// The server's first process (host pid).
    pub fn main_pid(&self) -> Result<u32, String> {
        match &self.place {
            Place::Docker { d, name } => {
                let out = d.docker(&["inspect", "-f", "{{.State.Pid}}", name]);
                let pid: u32 = String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse()
                    .unwrap_or(0);
                (pid != 0)
                    .then_some(pid)
                    .ok_or_else(|| format!("container {name} not running"))
            }
            Place::Host { child, .. } => {
                let wrapper = child.lock().map_err(|_| "lock")?.id();
                // The wrapper's child runs phasebox's code until it executes the server.
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    let found = children(wrapper).into_iter().find(|&c| {
                        std::fs::read_to_string(format!("/proc/{c}/comm"))
                            .is_ok_and(|comm| comm.trim() != "phasebox")
                    });
                    if let Some(pid) = found {
                        return Ok(pid);
                    }
                    if Instant::now() > deadline {
                        return Err("the server is not running under phasebox".into());
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    /// Sends signal `name` (HUP, USR1…) to the server's first process.
    pub fn signal(&self, name: &str) -> Result<(), String> {
        match &self.place {
            Place::Docker { d, name: c } => {
                let out = d.docker(&["kill", "-s", name, c]);
                out.status
                    .success()
                    .then_some(())
                    .ok_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string())
            }
            Place::Host { .. } => {
                let pid = self.main_pid()?;
                let sig = phasebox_core::scenario::signal_number(name)
                    .ok_or_else(|| format!("no signal {name}"))?;
                // SAFETY: kill(2) of the server this stage started.
                let r = unsafe { libc::kill(pid as i32, sig) };
                (r == 0)
                    .then_some(())
                    .ok_or_else(|| format!("kill {name} {pid} failed"))
            }
        }
    }

    /// Runs `argv` beside the server (`docker exec` in its container, plainly on the host);
    /// its output, or why it failed.
    pub fn exec(&self, argv: &[&str]) -> Result<String, String> {
        let out = match &self.place {
            Place::Docker { d, name } => {
                let mut args = vec!["exec", name.as_str()];
                args.extend_from_slice(argv);
                d.docker(&args)
            }
            Place::Host { .. } => Command::new(argv[0])
                .args(&argv[1..])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("{}: {e}", argv[0]))?,
        };
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!("`{}` failed: {}", argv.join(" "), text.trim()))
        }
    }

    /// Whether the server (its container, or the phasebox command it runs under) is running.
    pub fn running(&self) -> bool {
        match &self.place {
            Place::Docker { d, name } => {
                let out = d.docker(&["inspect", "-f", "{{.State.Running}}", name]);
                String::from_utf8_lossy(&out.stdout).trim() == "true"
            }
            Place::Host { child, .. } => child
                .lock()
                .map(|mut c| matches!(c.try_wait(), Ok(None)))
                .unwrap_or(false),
        }
    }

    /// Waits for the server to exit (at most `limit`); its exit status (128 + the signal that
    /// killed it).
    pub fn wait_exit(&self, limit: Duration) -> Result<i32, String> {
        let deadline = Instant::now() + limit;
        while self.running() {
            if Instant::now() > deadline {
                return Err(format!("still running {limit:?} after it was told to stop"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        match &self.place {
            Place::Docker { d, name } => {
                let out = d.docker(&["inspect", "-f", "{{.State.ExitCode}}", name]);
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse()
                    .map_err(|_| "no exit code".into())
            }
            Place::Host {
                child,
                wrapper,
                out,
                ..
            } => {
                let status = child
                    .lock()
                    .map_err(|_| "lock")?
                    .wait()
                    .map_err(|e| e.to_string())?;
                use std::os::unix::process::ExitStatusExt;
                let code = status
                    .code()
                    .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
                if *wrapper == Wrapper::Run {
                    return Ok(code);
                }
                // validate: "pass|fail: `CMD` exited with N under …"
                let report = std::fs::read_to_string(out).unwrap_or_default();
                report
                    .split(" exited with ")
                    .nth(1)
                    .and_then(|s| s.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| format!("no exit status in validate's report: {report}"))
            }
        }
    }

    /// Everything the server and its wrapper said: the container's log or the wrapper's
    /// output, and the log files in the server's directory.
    pub fn logs(&self) -> String {
        let mut text = match &self.place {
            Place::Docker { d, name } => {
                let out = d.docker(&["logs", name]);
                String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr)
            }
            Place::Host { out, err, .. } => {
                std::fs::read_to_string(out).unwrap_or_default()
                    + &std::fs::read_to_string(err).unwrap_or_default()
            }
        };
        for f in log_files(&self.dir) {
            text.push_str(&std::fs::read_to_string(f).unwrap_or_default());
        }
        text
    }

    /// Removes what is left of the server once its logs are read (its container).
    pub fn remove(&self) {
        if let Place::Docker { d, name } = &self.place {
            let _ = d.docker(&["rm", "-f", name]);
        }
    }

    /// Ends the server whatever its state (a stage that failed half-way); its logs stay.
    pub fn kill(&self) {
        match &self.place {
            Place::Docker { d, name } => {
                if self.running() {
                    let _ = d.docker(&["kill", name]);
                }
            }
            Place::Host { child, .. } => {
                let Ok(mut c) = child.lock() else { return };
                // The server first, so that phasebox writes its report (validate's denials),
                // then whatever is left of the group.
                for pid in children(c.id()).into_iter().flat_map(tree) {
                    // SAFETY: kill(2) of the server this stage started.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                }
                let deadline = Instant::now() + Duration::from_secs(15);
                while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
                // SAFETY: the wrapper leads its own process group (spawned that way).
                unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
                let _ = c.wait();
            }
        }
    }
}

/// The `*.log` files directly in `dir` and its `logs/` subdirectory.
fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in [dir.to_path_buf(), dir.join("logs")] {
        let Ok(entries) = std::fs::read_dir(d) else {
            continue;
        };
        out.extend(
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "log")),
        );
    }
    out.sort();
    out
}
