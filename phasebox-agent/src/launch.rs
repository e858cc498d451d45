//! Launching a command so that it is traced from its execve on: the child is forked, waits on
//! a pipe until phasebox has put its pid in the tracked map, then executes the command.
use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use phasebox_core::sysnames::describe_io;

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

/// What failed in the child before its program ran (the first word on the error pipe).
const STAGE_SECCOMP: i32 = 1;
const STAGE_EXEC: i32 = 2;
const STAGE_ISOLATE: i32 = 3;

/// Fresh namespaces for the launched command. A fresh pid namespace needs a fresh mount
/// namespace (its own /proc), so `pid` implies `mount`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Isolation {
    pub mount: bool,
    pub pid: bool,
    /// Close the command's standard output before it runs.
    pub close_stdout: bool,
}

fn pipe() -> anyhow::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        let e = std::io::Error::last_os_error();
        anyhow::bail!("cannot create a pipe: {}", describe_io(&e));
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn socket_pair() -> anyhow::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    let kind = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
    // SAFETY: fds is a valid array of two ints.
    if unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()) } != 0 {
        let e = std::io::Error::last_os_error();
        anyhow::bail!("cannot create a socket pair: {}", describe_io(&e));
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn c_string(s: &OsStr) -> anyhow::Result<CString> {
    CString::new(s.as_bytes())
        .map_err(|_| anyhow::anyhow!("argument {:?} contains a NUL byte", s.to_string_lossy()))
}

/// Sends `fd` over the unix socket `sock` (SCM_RIGHTS). Async-signal-safe: no allocation.
unsafe fn send_fd(sock: i32, fd: i32) {
    let mut byte = 0u8;
    let mut iov = libc::iovec {
        iov_base: (&mut byte as *mut u8).cast(),
        iov_len: 1,
    };
    let mut buf = [0u64; 4]; // room for one cmsghdr with an int, aligned
    // SAFETY: msghdr fields point at live stack buffers of the right sizes.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = buf.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(4) as usize;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(4) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>(), fd);
        libc::sendmsg(sock, &msg, 0);
    }
}

/// Receives a file descriptor sent with `send_fd`; None when the peer closed first.
fn recv_fd(sock: &OwnedFd) -> Option<OwnedFd> {
    let mut byte = 0u8;
    let mut iov = libc::iovec {
        iov_base: (&mut byte as *mut u8).cast(),
        iov_len: 1,
    };
    let mut buf = [0u64; 4];
    // SAFETY: msghdr fields point at live stack buffers of the right sizes.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = buf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&buf);
        if libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) <= 0 {
            return None;
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() || (*cmsg).cmsg_type != libc::SCM_RIGHTS {
            return None;
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>());
        Some(OwnedFd::from_raw_fd(fd))
    }
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
    // Everything the child needs is allocated before fork: after it, the child only makes
    // async-signal-safe calls.
    let path = c_string(program.as_os_str())?;
    let args: Vec<CString> = argv
        .iter()
        .map(|a| c_string(OsStr::new(a)))
        .collect::<Result<_, _>>()?;
    let mut arg_ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    arg_ptrs.push(std::ptr::null());
    let (gate_r, gate_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    // With a pid namespace, the command's pid as phasebox sees it comes back on this pipe.
    let (pid_r, pid_w) = pipe()?;
    let ns_flags = match (isolate.pid, isolate.mount) {
        (true, _) => libc::CLONE_NEWNS | libc::CLONE_NEWPID,
        (false, true) => libc::CLONE_NEWNS,
        (false, false) => 0,
    };
    let root = c"/";
    let proc_fs = c"proc";
    let proc_dir = c"/proc";
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
    let flags = match listener_pair {
        Some(_) => libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
        None => 0,
    };
    let child_sock = listener_pair.as_ref().map_or(-1, |(_, c)| c.as_raw_fd());

    // SAFETY: the child branch below calls only async-signal-safe functions.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let e = std::io::Error::last_os_error();
        anyhow::bail!("cannot fork: {}", describe_io(&e));
    }
    if pid == 0 {
        // Child: wait for the gate, install the filter, exec; a failure's stage and errno go
        // to `err_w`.
        unsafe {
            libc::close(gate_w.as_raw_fd());
            libc::close(err_r.as_raw_fd());
            libc::close(pid_r.as_raw_fd());
            let report = |stage: i32| {
                let word = [stage, *libc::__errno_location()];
                libc::write(err_w.as_raw_fd(), word.as_ptr().cast(), 8);
                libc::_exit(127);
            };
            if ns_flags != 0 {
                if libc::unshare(ns_flags) != 0 {
                    report(STAGE_ISOLATE);
                }
                // Mounts made inside stay inside.
                let flags = libc::MS_REC | libc::MS_PRIVATE;
                if libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    flags,
                    std::ptr::null(),
                ) != 0
                {
                    report(STAGE_ISOLATE);
                }
            }
            if isolate.pid {
                let inner = libc::fork();
                if inner < 0 {
                    report(STAGE_ISOLATE);
                }
                if inner > 0 {
                    // Stays in phasebox's pid namespace: passes the command's pid on, waits
                    // for it and exits with its status.
                    libc::write(pid_w.as_raw_fd(), (&inner as *const i32).cast(), 4);
                    for fd in [
                        pid_w.as_raw_fd(),
                        gate_r.as_raw_fd(),
                        err_w.as_raw_fd(),
                        child_sock,
                    ] {
                        libc::close(fd);
                    }
                    let mut status = 0;
                    while libc::waitpid(inner, &mut status, 0) < 0
                        && *libc::__errno_location() == libc::EINTR
                    {}
                    libc::_exit(exit_code(status));
                }
                // pid 1 of the new namespace: its own /proc.
                let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
                if libc::mount(
                    proc_fs.as_ptr(),
                    proc_dir.as_ptr(),
                    proc_fs.as_ptr(),
                    flags,
                    std::ptr::null(),
                ) != 0
                {
                    report(STAGE_ISOLATE);
                }
            }
            libc::close(pid_w.as_raw_fd());
            if isolate.close_stdout {
                libc::close(1);
            }
            let mut byte = 0u8;
            if libc::read(gate_r.as_raw_fd(), (&mut byte as *mut u8).cast(), 1) != 1 {
                libc::_exit(127);
            }
            if let Some(prog) = &fprog {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                let prog: *const libc::sock_fprog = prog;
                let fd = libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    flags,
                    prog,
                );
                if fd < 0 {
                    report(STAGE_SECCOMP);
                }
                // The listener (close-on-exec) goes to phasebox; the filter allows sendmsg on
                // exactly this socket for it.
                if child_sock >= 0 {
                    send_fd(child_sock, fd as i32);
                }
            }
            libc::execv(path.as_ptr(), arg_ptrs.as_ptr());
            report(STAGE_EXEC);
        }
    }
    drop(gate_r);
    drop(err_w);
    drop(pid_w);
    let mut traced = pid;
    if isolate.pid {
        let mut inner = 0i32;
        // SAFETY: valid fd and buffer; 0 bytes means the child failed (release reports why).
        if unsafe { libc::read(pid_r.as_raw_fd(), (&mut inner as *mut i32).cast(), 4) } == 4 {
            traced = inner;
        }
    }
    let listener = listener_pair.map(|(parent, _child)| parent);
    Ok(Gated {
        pid: traced as u32,
        waited: pid as u32,
        gate: gate_w,
        errors: err_r,
        listener,
        program: program.to_path_buf(),
    })
}

impl Gated {
    /// Lets the child install its seccomp filter and exec, and reports whether that worked.
    /// A filter's notification listener goes to `on_listener` before the exec is waited for
    /// (the exec itself may need an answer).
    pub fn release(self, on_listener: impl FnOnce(OwnedFd)) -> anyhow::Result<()> {
        let byte = 1u8;
        // SAFETY: valid fd and buffer.
        unsafe { libc::write(self.gate.as_raw_fd(), (&byte as *const u8).cast(), 1) };
        drop(self.gate);
        if let Some(sock) = &self.listener
            && let Some(fd) = recv_fd(sock)
        {
            on_listener(fd);
        }
        let mut word = [0i32; 2];
        // The error pipe closes on a successful exec (O_CLOEXEC), so this read returns 0.
        let n = unsafe { libc::read(self.errors.as_raw_fd(), word.as_mut_ptr().cast(), 8) };
        if n != 8 {
            return Ok(());
        }
        let e = describe_io(&std::io::Error::from_raw_os_error(word[1]));
        let prog = self.program.display();
        match word[0] {
            STAGE_SECCOMP => anyhow::bail!("cannot install the seccomp filter: {e}"),
            STAGE_ISOLATE => anyhow::bail!("cannot give {prog} fresh namespaces: {e}"),
            _ if word[1] == libc::EPERM => {
                anyhow::bail!("cannot execute {prog}: {e} (does the seccomp profile allow execve?)")
            }
            _ => anyhow::bail!("cannot execute {prog}: {e}"),
        }
    }

    /// Kills the waiting child (phasebox failed before releasing it).
    pub fn abort(self) {
        // SAFETY: plain syscalls on our own child.
        unsafe {
            libc::kill(self.pid as i32, libc::SIGKILL);
            libc::kill(self.waited as i32, libc::SIGKILL);
            libc::waitpid(self.waited as i32, std::ptr::null_mut(), 0);
        }
    }
}

/// Makes orphaned descendants of phasebox's children re-parent to phasebox, so the launched
/// command's whole tree can be waited for.
pub fn become_subreaper() {
    // SAFETY: plain prctl.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
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
