//! Launching a command so that it is traced from its execve on: the child is forked, waits on
//! a pipe until phasebox has put its pid in the tracked map, then executes the command.
mod child;
mod fdpass;

use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use phasebox_core::sysnames::describe_io;
use rustix::thread::UnshareFlags;

/// Finds `cmd` the way a shell does: as given when it holds a '/', else on $PATH.
pub fn resolve(cmd: &str) -> anyhow::Result<PathBuf> {
    let is_exec = |p: &Path| {
        let c = CString::new(p.as_os_str().as_bytes()).unwrap_or_default();
        // SAFETY: valid C string.
        p.is_file() && unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0
    };
    if cmd.contains('/') {
        let p = PathBuf::from(cmd);
        if !p.exists() {
            anyhow::bail!("command not found: {cmd} does not exist");
        }
        if !is_exec(&p) {
            anyhow::bail!("cannot run {cmd}: it is not an executable file");
        }
        return Ok(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(cmd))
        .find(|p| is_exec(p))
        .ok_or_else(|| anyhow::anyhow!("command not found: {cmd} is not on PATH"))
}

/// A forked child waiting to exec.
pub struct Gated {
    /// The process that will run the command (trace this one).
    pub pid: u32,
    /// The child to wait for: `pid` itself, or the process that waits for it in the parent
    /// pid namespace and exits with its status.
    pub waited: u32,
    gate: OwnedFd,
    errors: OwnedFd,
    /// Where the child sends its seccomp listener, when its filter has one.
    listener: Option<OwnedFd>,
    program: PathBuf,
}

/// Fresh namespaces for the launched command. A fresh pid namespace needs a fresh mount
/// namespace (its own /proc), so `pid` implies `mount`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Isolation {
    pub mount: bool,
    pub pid: bool,
    /// Close the command's standard output before it runs.
    pub close_stdout: bool,
}

fn io_error(what: &str, e: rustix::io::Errno) -> anyhow::Error {
    anyhow::anyhow!("cannot {what}: {}", describe_io(&e.into()))
}

fn pipe() -> anyhow::Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| io_error("create a pipe", e))
}

/// A connected pair of unix sockets (the filter's listener travels over it).
fn socket_pair() -> anyhow::Result<(OwnedFd, OwnedFd)> {
    rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| io_error("create a socket pair", e))
}

fn c_strings(argv: &[String]) -> anyhow::Result<Vec<CString>> {
    argv.iter().map(|a| c_string(OsStr::new(a))).collect()
}

fn c_string(s: &OsStr) -> anyhow::Result<CString> {
    CString::new(s.as_bytes())
        .map_err(|_| anyhow::anyhow!("argument {:?} contains a NUL byte", s.to_string_lossy()))
}

/// A seccomp filter for the launched command.
pub struct Seccomp<'a> {
    pub spec: &'a crate::enforce::filter::FilterSpec,
    /// Leave out names the running kernel does not know.
    pub skip_unknown: bool,
}

/// Forks a child that will exec `program` with `argv` once [`Gated::release`] is called,
/// after installing the `seccomp` filter when given. With `isolate`, the child enters fresh
/// namespaces first; for a pid namespace it forks once more, so the command is its pid 1.
pub fn spawn_gated(
    program: &Path,
    argv: &[String],
    seccomp: Option<Seccomp>,
    isolate: Isolation,
) -> anyhow::Result<Gated> {
    // Everything the child needs is made before fork: after it, the child only makes
    // async-signal-safe calls.
    let path = c_string(program.as_os_str())?;
    let args = c_strings(argv)?;
    let mut arg_ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    arg_ptrs.push(std::ptr::null());
    let (gate_r, gate_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    // With a pid namespace, the command's pid as phasebox sees it comes back on this pipe.
    let (pid_r, pid_w) = pipe()?;
    let listener_pair = match &seccomp {
        Some(s) if s.spec.needs_listener() => Some(socket_pair()?),
        _ => None,
    };
    let launcher_sock = listener_pair.as_ref().map(|(_, c)| c.as_raw_fd());
    let compiled = seccomp
        .map(|s| s.spec.compile(s.skip_unknown, launcher_sock))
        .transpose()?;
    let fprog = compiled.as_ref().map(|p| libc::sock_fprog {
        len: p.filters.len() as u16,
        filter: p.filters.as_ptr().cast_mut(),
    });
    let filter_flags = match listener_pair {
        Some(_) => libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
        None => 0,
    };
    let mut parent_ends = vec![gate_w.as_raw_fd(), err_r.as_raw_fd(), pid_r.as_raw_fd()];
    parent_ends.extend(listener_pair.as_ref().map(|(p, _)| p.as_raw_fd()));
    let plan = child::ChildPlan {
        path: &path,
        argv: &arg_ptrs,
        gate: gate_r.as_fd(),
        errors: err_w.as_fd(),
        pid_out: pid_w.as_fd(),
        parent_ends: &parent_ends,
        unshare: unshare_flags(isolate),
        pid_namespace: isolate.pid,
        close_stdout: isolate.close_stdout,
        filter: fprog.as_ref().map(|p| (p, filter_flags)),
        listener_sock: listener_pair.as_ref().map(|(_, c)| c.as_fd()),
    };
    let pid = fork_child(&plan)?;
    drop((gate_r, err_w, pid_w));
    Ok(Gated {
        pid: traced_pid(pid, isolate, &pid_r) as u32,
        waited: pid as u32,
        gate: gate_w,
        errors: err_r,
        listener: listener_pair.map(|(parent, _child)| parent),
        program: program.to_path_buf(),
    })
}

/// The namespaces the child enters afresh.
fn unshare_flags(isolate: Isolation) -> Option<UnshareFlags> {
    match (isolate.pid, isolate.mount) {
        (true, _) => Some(UnshareFlags::NEWNS | UnshareFlags::NEWPID),
        (false, true) => Some(UnshareFlags::NEWNS),
        (false, false) => None,
    }
}

/// Forks the child that carries out `plan`; returns its pid.
fn fork_child(plan: &child::ChildPlan<'_>) -> anyhow::Result<i32> {
    // SAFETY: fork in a multi-threaded process; the child runs only `child::run`, which makes
    // async-signal-safe calls and ends in exec or _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let e = std::io::Error::last_os_error();
        anyhow::bail!("cannot fork: {}", describe_io(&e));
    }
    if pid == 0 {
        // SAFETY: this is the freshly forked child.
        unsafe { child::run(plan) }
    }
    Ok(pid)
}

/// The command's pid as phasebox (and the kernel programs) see it: the child's, or with a pid
/// namespace the one the child sends up `pid_r` (0 bytes: the child failed, release says why).
fn traced_pid(child: i32, isolate: Isolation, pid_r: &OwnedFd) -> i32 {
    let mut inner = [0u8; 4];
    if isolate.pid && rustix::io::read(pid_r, &mut inner) == Ok(4) {
        return i32::from_ne_bytes(inner);
    }
    child
}

impl Gated {
    /// Lets the child install its seccomp filter and exec, and reports whether that worked.
    /// A filter's notification listener goes to `on_listener` before the exec is waited for
    /// (the exec itself may need an answer).
    pub fn release(self, on_listener: impl FnOnce(OwnedFd)) -> anyhow::Result<()> {
        let _ = rustix::io::write(&self.gate, &[1]);
        drop(self.gate);
        if let Some(sock) = &self.listener
            && let Some(fd) = fdpass::recv(sock.as_fd())
        {
            on_listener(fd);
        }
        let mut word = [0u8; 8];
        // The error pipe closes on a successful exec (close-on-exec), so this read returns 0.
        if rustix::io::read(&self.errors, &mut word) != Ok(8) {
            return Ok(());
        }
        let stage = i32::from_ne_bytes([word[0], word[1], word[2], word[3]]);
        let errno = i32::from_ne_bytes([word[4], word[5], word[6], word[7]]);
        let e = describe_io(&std::io::Error::from_raw_os_error(errno));
        let prog = self.program.display();
        match stage {
            child::STAGE_SECCOMP => anyhow::bail!("cannot install the seccomp filter: {e}"),
            child::STAGE_ISOLATE => anyhow::bail!("cannot give {prog} fresh namespaces: {e}"),
            _ if errno == libc::EPERM => {
                anyhow::bail!("cannot execute {prog}: {e} (does the seccomp profile allow execve?)")
            }
            _ => anyhow::bail!("cannot execute {prog}: {e}"),
        }
    }

    /// Kills the waiting child (phasebox failed before releasing it).
    pub fn abort(self) {
        use rustix::process::{Pid, Signal, WaitOptions, kill_process, waitpid};
        for pid in [self.pid, self.waited] {
            if let Some(p) = Pid::from_raw(pid as i32) {
                let _ = kill_process(p, Signal::KILL);
            }
        }
        if let Some(p) = Pid::from_raw(self.waited as i32) {
            let _ = waitpid(Some(p), WaitOptions::empty());
        }
    }
}

/// Makes orphaned descendants of phasebox's children re-parent to phasebox, so the launched
/// command's whole tree can be waited for.
pub fn become_subreaper() {
    let _ = rustix::process::set_child_subreaper(rustix::process::Pid::from_raw(
        std::process::id() as i32,
    ));
}

/// Exit status of a wait status the way a shell reports it: the code, or 128 + signal.
pub fn exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

/// Reaps every child until none is left; returns the exit code of `main`.
pub fn wait_all(main: u32) -> i32 {
    let mut code = 0;
    loop {
        let mut status = 0;
        // SAFETY: plain waitpid on our children.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return code; // ECHILD: the whole tree is gone
        }
        if pid as u32 == main {
            code = exit_code(status);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_like_a_shell() {
        assert!(resolve("sh").unwrap().ends_with("sh"));
        let err = resolve("no-such-command-pb").unwrap_err().to_string();
        assert!(err.contains("command not found"), "{err}");
        let err = resolve("/no/such/file").unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
        let err = resolve("/etc/passwd").unwrap_err().to_string();
        assert!(err.contains("not an executable"), "{err}");
    }

    #[test]
    fn exit_codes_like_a_shell() {
        assert_eq!(exit_code(3 << 8), 3);
        assert_eq!(exit_code(libc::SIGKILL), 128 + 9);
    }
}
