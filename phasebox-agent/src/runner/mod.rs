//! Runs one scenario: a fresh directory with its files, the program launched under a tracer
//! (`phasebox run`, or strace for the oracle) with a clean environment, the driver's steps,
//! the stop signal, then the checks of `expect`.
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use phasebox_core::scenario::{
    Namespace, Scenario, ScenarioSet, Stdout, Step, expand, signal_number,
};
use phasebox_core::units::parse_duration;

use crate::procfs;

pub mod http;
mod raw;
mod response;

/// What traces the program.
#[derive(Clone, Debug)]
pub enum Tracer {
    /// `phasebox run --phases P --profile FILE [--seccomp OCI]`.
    Phasebox {
        exe: PathBuf,
        profile: PathBuf,
        seccomp: Option<PathBuf>,
    },
    /// `strace -f -o LOG`.
    Strace { log: PathBuf },
}

/// How a run went.
#[derive(Debug)]
pub struct Outcome {
    /// None when every check passed.
    pub failure: Option<String>,
    pub elapsed: Duration,
    pub stdout: String,
    pub stderr: String,
}

/// The scenario's own directory under $TMPDIR: an unpredictable name, made exclusively (no
/// directory planted there beforehand is used), removed when dropped. It is readable by all,
/// as a directory made with the usual umask is: a program that drops privileges (nginx's
/// workers as `user nobody`) still reaches its files.
fn fresh_dir(set: &str, scenario: &str) -> anyhow::Result<tempfile::TempDir> {
    // The set's name is free text: only what is safe in a file name, and not too much of it.
    let tag: String = format!("{set}-{scenario}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    tempfile::Builder::new()
        .prefix(&format!("phasebox-scenario-{tag}-"))
        .permissions(std::fs::Permissions::from_mode(0o755))
        .tempdir()
        .map_err(|e| anyhow!("cannot create the directory of scenario {scenario}: {e}"))
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| anyhow!("cannot find a free loopback port: {e}"))?;
    Ok(l.local_addr()?.port())
}

/// The environment every scenario starts from, plus its own variables.
fn clean_env(cmd: &mut Command, s: &Scenario, dir: &str, port: u16) {
    cmd.env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("HOME", dir)
        .env("LANG", "C");
    for (k, v) in &s.env {
        cmd.env(k, expand(v, dir, port));
    }
}

/// Writes the files and runs the setup commands.
fn prepare(set: &ScenarioSet, s: &Scenario, dir: &str, port: u16) -> anyhow::Result<()> {
    for f in set.files.iter().chain(&s.files) {
        let path = Path::new(dir).join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| anyhow!("cannot create {}: {e}", parent.display()))?;
        }
        let written = match f.size {
            Some(n) => write_filler(&path, n),
            None => std::fs::write(&path, expand(&f.content, dir, port)),
        };
        written.map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?;
    }
    for setup in set.setup.iter().chain(&s.setup) {
        shell(s, setup, dir, port, None).map_err(|e| anyhow!("the setup command {e}"))?;
    }
    Ok(())
}

/// Writes `n` bytes of 'x' in pieces (the scenario format bounds `n`; memory stays small).
fn write_filler(path: &Path, mut n: u64) -> std::io::Result<()> {
    use std::io::Write as _;
    let chunk = [b'x'; 64 << 10];
    let mut out = File::create(path)?;
    while n > 0 {
        let k = n.min(chunk.len() as u64) as usize;
        out.write_all(&chunk[..k])?;
        n -= k as u64;
    }
    Ok(())
}

/// Moves this process into the scenario's working directory (component by component, so a
/// path longer than PATH_MAX works) and returns the way back. The child inherits it.
struct Cwd {
    back: File,
}

impl Cwd {
    fn enter(s: &Scenario, dir: &str) -> anyhow::Result<Cwd> {
        let back =
            File::open(".").map_err(|e| anyhow!("cannot open the current directory: {e}"))?;
        let go = |p: &Path| {
            std::env::set_current_dir(p).map_err(|e| anyhow!("cannot enter {}: {e}", p.display()))
        };
        go(Path::new(dir))?;
        let cwd = Cwd { back };
        for part in s.cwd.split('/').filter(|c| !c.is_empty() && *c != ".") {
            go(Path::new(part))?;
        }
        if s.descend {
            loop {
                let subdirs: Vec<PathBuf> = std::fs::read_dir(".")
                    .map_err(|e| anyhow!("cannot list a directory to descend: {e}"))?
                    .filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| PathBuf::from(e.file_name()))
                    .collect();
                match subdirs.as_slice() {
                    [one] => go(one)?,
                    [] => break,
                    _ => {
                        return Err(anyhow!(
                            "descend found a directory with several subdirectories"
                        ));
                    }
                }
            }
        }
        Ok(cwd)
    }
}

impl Drop for Cwd {
    fn drop(&mut self) {
        // SAFETY: fchdir on a directory fd we own.
        unsafe { libc::fchdir(self.back.as_raw_fd()) };
    }
}

/// The program under the tracer: down the chain of children, past the tracer's own processes
/// (this very binary, whatever its name: `run --isolate pid` keeps one in between) and the
/// oracle's.
fn program_pid(tracer: u32, limit: Instant) -> Option<u32> {
    let me = std::env::current_exe()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    loop {
        let parents = procfs::parents();
        let mut pid = tracer;
        while let Some((&c, _)) = parents.iter().find(|(_, pp)| **pp == pid) {
            let comm = procfs::stat(c).map(|st| st.comm).unwrap_or_default();
            let ours = procfs::exe(c) == me || comm == "phasebox";
            if !ours && !matches!(comm.as_str(), "strace" | "unshare") {
                return Some(c);
            }
            pid = c;
        }
        if Instant::now() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Kills every descendant of `pid` (not `pid` itself).
fn kill_descendants(pid: u32) {
    for p in procfs::descendants(&procfs::parents(), pid, 0) {
        if p != pid {
            // SAFETY: plain kill.
            unsafe { libc::kill(p as i32, libc::SIGKILL) };
        }
    }
}

fn send(pid: u32, sig: &str) -> anyhow::Result<()> {
    let n = signal_number(sig).ok_or_else(|| anyhow!("unknown signal {sig}"))?;
    // SAFETY: plain kill.
    if unsafe { libc::kill(pid as i32, n) } != 0 {
        return Err(anyhow!(
            "cannot send SIG{} to {pid}: {}",
            sig.trim_start_matches("SIG"),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// The tracer's command line.
fn tracer_command(set: &ScenarioSet, s: &Scenario, tracer: &Tracer, argv: &[String]) -> Command {
    let pid_ns = s.isolate.contains(&Namespace::Pid);
    match tracer {
        Tracer::Phasebox {
            exe,
            profile,
            seccomp,
        } => {
            let mut cmd = Command::new(exe);
            cmd.args(["run", "-q", "--phases", &set.phases, "--profile"])
                .arg(profile);
            if !s.isolate.is_empty() {
                cmd.arg("--isolate")
                    .arg(if pid_ns { "pid" } else { "mount" });
            }
            if s.stdout == Stdout::Closed {
                cmd.arg("--close-stdout");
            }
            if let Some(oci) = seccomp {
                cmd.arg("--seccomp").arg(oci);
            }
            cmd.arg("--").args(argv);
            cmd
        }
        Tracer::Strace { log } => {
            let mut cmd = if s.isolate.is_empty() {
                Command::new("strace")
            } else {
                let mut c = Command::new("unshare");
                c.args(["--mount", "--propagation", "private"]);
                if pid_ns {
                    c.args(["--pid", "--fork", "--mount-proc"]);
                }
                c.arg("--").arg("strace");
                c
            };
            cmd.args(["-f", "-qq", "-o"]).arg(log).arg("--").args(argv);
            cmd
        }
    }
}

/// Reads a pipe to its end on a thread of its own.
fn drain(r: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut r) = r {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            s = String::from_utf8_lossy(&buf).into_owned();
        }
        s
    })
}

/// Runs `s` once under `tracer` in a fresh environment.
pub fn run(set: &ScenarioSet, s: &Scenario, tracer: &Tracer) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let work = fresh_dir(&set.name, &s.name)?;
    let dir = work.path().display().to_string();
    // Every scenario gets a free port: a configuration may name {port} with no step using it
    // (`nginx -t`).
    let port = free_port()?;
    let fail = |why: String| Outcome {
        failure: Some(why),
        elapsed: started.elapsed(),
        stdout: String::new(),
        stderr: String::new(),
    };
    if let Err(why) = prepare(set, s, &dir, port) {
        return Ok(fail(why.to_string()));
    }
    let argv: Vec<String> = s.argv(set).iter().map(|a| expand(a, &dir, port)).collect();
    let mut cmd = tracer_command(set, s, tracer, &argv);
    clean_env(&mut cmd, s, &dir, port);
    cmd.stdin(Stdio::null()).stderr(Stdio::piped());
    match s.stdout {
        Stdout::Capture => cmd.stdout(Stdio::piped()),
        Stdout::Null | Stdout::Closed => cmd.stdout(Stdio::null()),
        Stdout::Full => cmd.stdout(File::options().write(true).open("/dev/full")?),
    };
    if s.stdout == Stdout::Closed && matches!(tracer, Tracer::Strace { .. }) {
        // SAFETY: close is async-signal-safe. strace closes its log in the program, so the
        // program starts with no fd 1. (phasebox, whose runtime reopens a closed fd 1 on
        // /dev/null, is told --close-stdout.)
        unsafe {
            cmd.pre_exec(|| {
                libc::close(1);
                Ok(())
            });
        }
    }
    let child = {
        let cwd = match Cwd::enter(s, &dir) {
            Ok(c) => c,
            Err(why) => return Ok(fail(why.to_string())),
        };
        let child = cmd.spawn();
        if s.remove_cwd {
            let _ = std::fs::remove_dir(Path::new(&dir).join(&s.cwd));
        }
        drop(cwd);
        child.map_err(|e| anyhow!("cannot start {:?}: {e}", cmd.get_program()))?
    };
    drive(s, child, port, &dir, started)
}

/// Runs the steps, stops the program, waits for the tracer and checks the outcome.
fn drive(
    s: &Scenario,
    mut child: Child,
    port: u16,
    dir: &str,
    started: Instant,
) -> anyhow::Result<Outcome> {
    let timeout = parse_duration(&s.timeout).map_err(|e| anyhow!(e))?;
    let deadline = started + timeout;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let tracer_pid = child.id();
    let mut failure = run_steps(s, tracer_pid, port, dir, deadline).err();
    if failure.is_some() {
        kill_descendants(tracer_pid);
    }
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() > deadline {
            failure.get_or_insert(format!("it did not end within {}", s.timeout));
            kill_descendants(tracer_pid);
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if failure.is_none() {
        failure = check(s, status.code(), &stdout, &stderr, dir, port);
    }
    Ok(Outcome {
        failure,
        elapsed: started.elapsed(),
        stdout,
        stderr,
    })
}

/// Finds the program under the tracer (when a step or the stop signal needs its pid), runs
/// the steps in order and sends the stop signal; the first failure, said for the user.
fn run_steps(
    s: &Scenario,
    tracer_pid: u32,
    port: u16,
    dir: &str,
    deadline: Instant,
) -> Result<(), String> {
    // The program's pid, looked up afresh where a step needs it: the process the tracer
    // runs changes while it starts (strace's child before its execve, a launcher's).
    let program = |needed: bool| -> Result<Option<u32>, String> {
        if !needed {
            return Ok(None);
        }
        Ok(Some(
            program_pid(tracer_pid, deadline).ok_or("the program did not start")?,
        ))
    };
    for (i, step) in s.steps.iter().enumerate() {
        let pid = program(step.signal.is_some() || step.shell.is_some())?;
        run_step(s, step, pid, port, dir, deadline).map_err(|e| format!("step {}: {e}", i + 1))?;
    }
    if let (Some(sig), Some(pid)) = (&s.stop, program(s.stop.is_some())?) {
        send(pid, sig).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// One step of the driver; `program` is the program's pid when the scenario needs it.
fn run_step(
    s: &Scenario,
    step: &Step,
    program: Option<u32>,
    port: u16,
    dir: &str,
    deadline: Instant,
) -> anyhow::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if step.wait_port {
        http::wait_port(port, left)
    } else if let Some(h) = &step.http {
        http::run(port, h)
    } else if let Some(sig) = &step.signal {
        send(program.unwrap_or(0), sig)
    } else if let Some(d) = &step.sleep {
        std::thread::sleep(parse_duration(d).unwrap_or_default());
        Ok(())
    } else if let Some(sh) = &step.shell {
        shell(s, sh, dir, port, Some(program.unwrap_or(0)))
    } else {
        Ok(())
    }
}

/// Runs `script` with sh in the scenario's directory and environment; steps (with the
/// program's pid) also get $PB_PID, $PB_PORT and $PB_DIR. It must exit 0.
fn shell(s: &Scenario, script: &str, dir: &str, port: u16, pid: Option<u32>) -> anyhow::Result<()> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(expand(script, dir, port))
        .current_dir(dir);
    clean_env(&mut cmd, s, dir, port);
    if let Some(pid) = pid {
        cmd.env("PB_PID", pid.to_string())
            .env("PB_PORT", port.to_string())
            .env("PB_DIR", dir);
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| anyhow!("cannot run sh: {e}"))?;
    if !out.status.success() {
        return Err(anyhow!(
            "`{script}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The checks of `expect`; None when all pass.
fn check(
    s: &Scenario,
    code: Option<i32>,
    stdout: &str,
    stderr: &str,
    dir: &str,
    port: u16,
) -> Option<String> {
    let e = &s.expect;
    let tail = |t: &str| t.trim().lines().last().unwrap_or("").to_string();
    if code != Some(e.exit) {
        let got = code.map_or("a signal".to_string(), |c| c.to_string());
        return Some(format!(
            "exit status {got}, expected {} ({})",
            e.exit,
            tail(stderr)
        ));
    }
    if let Some(want) = &e.stdout
        && stdout != expand(want, dir, port)
    {
        return Some(format!(
            "stdout was {:?}, expected {:?}",
            stdout,
            expand(want, dir, port)
        ));
    }
    if let Some(want) = &e.stdout_contains
        && !stdout.contains(&expand(want, dir, port))
    {
        return Some(format!("stdout does not contain {want:?}"));
    }
    if let Some(want) = &e.stderr_contains
        && !stderr.contains(&expand(want, dir, port))
    {
        return Some(format!(
            "stderr does not contain {want:?} ({})",
            tail(stderr)
        ));
    }
    None
}
