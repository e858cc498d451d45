//! Launching a command so that it is traced from its execve on: the child is forked, waits on
//! a pipe until phasebox has put its pid in the tracked map, then executes the command.
use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::sysnames::describe_io;

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
    pub pid: u32,
    gate: OwnedFd,
    errors: OwnedFd,
    program: PathBuf,
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

fn c_string(s: &OsStr) -> anyhow::Result<CString> {
    CString::new(s.as_bytes())
        .map_err(|_| anyhow::anyhow!("argument {:?} contains a NUL byte", s.to_string_lossy()))
}

/// Forks a child that will exec `program` with `argv` once [`Gated::release`] is called.
pub fn spawn_gated(program: &Path, argv: &[String]) -> anyhow::Result<Gated> {
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

    // SAFETY: the child branch below calls only async-signal-safe functions.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let e = std::io::Error::last_os_error();
        anyhow::bail!("cannot fork: {}", describe_io(&e));
    }
    if pid == 0 {
        // Child: wait for the gate, then exec; report an exec failure's errno on `err_w`.
        unsafe {
            libc::close(gate_w.as_raw_fd());
            libc::close(err_r.as_raw_fd());
            let mut byte = 0u8;
            let n = libc::read(gate_r.as_raw_fd(), (&mut byte as *mut u8).cast(), 1);
            if n == 1 {
                libc::execv(path.as_ptr(), arg_ptrs.as_ptr());
                let errno = *libc::__errno_location();
                libc::write(err_w.as_raw_fd(), (&errno as *const i32).cast(), 4);
            }
            libc::_exit(127);
        }
    }
    drop(gate_r);
    drop(err_w);
    Ok(Gated {
        pid: pid as u32,
        gate: gate_w,
        errors: err_r,
        program: program.to_path_buf(),
    })
}

impl Gated {
    /// Lets the child exec, and reports whether the exec succeeded.
    pub fn release(self) -> anyhow::Result<()> {
        let byte = 1u8;
        // SAFETY: valid fd and buffer.
        unsafe { libc::write(self.gate.as_raw_fd(), (&byte as *const u8).cast(), 1) };
        drop(self.gate);
        let mut errno = [0u8; 4];
        // The error pipe closes on a successful exec (O_CLOEXEC), so this read returns 0.
        let n = unsafe { libc::read(self.errors.as_raw_fd(), errno.as_mut_ptr().cast(), 4) };
        if n == 4 {
            let e = std::io::Error::from_raw_os_error(i32::from_ne_bytes(errno));
            anyhow::bail!(
                "cannot execute {}: {}",
                self.program.display(),
                describe_io(&e)
            );
        }
        Ok(())
    }

    /// Kills the waiting child (phasebox failed before releasing it).
    pub fn abort(self) {
        // SAFETY: plain syscalls on our own child.
        unsafe {
            libc::kill(self.pid as i32, libc::SIGKILL);
            libc::waitpid(self.pid as i32, std::ptr::null_mut(), 0);
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
