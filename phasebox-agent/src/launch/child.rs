//! The launched child between fork and exec. Everything it uses is prepared before the fork;
//! after it, the child makes only async-signal-safe system calls and allocates nothing.
use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd, RawFd};

use rustix::io::Errno;
use rustix::mount::{MountFlags, MountPropagationFlags};
use rustix::thread::UnshareFlags;

/// What failed in the child before its program ran (the first word on the error pipe).
pub(super) const STAGE_SECCOMP: i32 = 1;
pub(super) const STAGE_EXEC: i32 = 2;
pub(super) const STAGE_ISOLATE: i32 = 3;

/// Everything the child needs, made before the fork.
pub(super) struct ChildPlan<'a> {
    pub path: &'a CStr,
    /// NULL-terminated argument vector.
    pub argv: &'a [*const libc::c_char],
    /// The gate: the child waits until a byte arrives.
    pub gate: BorrowedFd<'a>,
    /// Where a failure's stage and errno go (close-on-exec: it closes on a good exec).
    pub errors: BorrowedFd<'a>,
    /// With a pid namespace: where the command's pid, as phasebox sees it, goes.
    pub pid_out: BorrowedFd<'a>,
    /// The parent's ends of the pipes (and socket), closed in the child.
    pub parent_ends: &'a [RawFd],
    pub unshare: Option<UnshareFlags>,
    /// Fork once more so the command is pid 1 of its namespace (with its own /proc).
    pub pid_namespace: bool,
    pub close_stdout: bool,
    /// A seccomp filter to install just before exec, with its flags.
    pub filter: Option<(&'a libc::sock_fprog, libc::c_ulong)>,
    /// Where the filter's notification listener goes, when it has one.
    pub listener_sock: Option<BorrowedFd<'a>>,
}

/// Reports the stage that failed and its errno on the error pipe, and exits.
///
/// # Safety
/// Called only in the forked child.
unsafe fn fail(errors: BorrowedFd<'_>, stage: i32, err: Errno) -> ! {
    let word = [stage, err.raw_os_error()];
    // SAFETY: a plain byte view of two i32s.
    let bytes = unsafe { std::slice::from_raw_parts(word.as_ptr().cast::<u8>(), 8) };
    let _ = rustix::io::write(errors, bytes);
    // SAFETY: _exit is async-signal-safe and ends the child without running destructors.
    unsafe { libc::_exit(127) }
}

/// Runs in the child: fresh namespaces if asked, waits at the gate, installs the filter,
/// executes the program. Never returns.
///
/// # Safety
/// Must be called only in a child just forked from a multi-threaded parent: it makes only
/// async-signal-safe calls (no allocation, no locks) and ends with exec or `_exit`. The
/// pointers in `plan` must stay valid, which they do since the parent's memory is copied.
pub(super) unsafe fn run(plan: &ChildPlan<'_>) -> ! {
    for &fd in plan.parent_ends {
        // SAFETY: these are the parent's ends, duplicated by fork; nothing in the child uses
        // them.
        unsafe { libc::close(fd) };
    }
    if let Some(flags) = plan.unshare {
        // SAFETY: the child is single-threaded; unsharing changes only its own context.
        if let Err(e) = unsafe { rustix::thread::unshare_unsafe(flags) } {
            // SAFETY: in the child.
            unsafe { fail(plan.errors, STAGE_ISOLATE, e) };
        }
        // Mounts made inside stay inside.
        let private = MountPropagationFlags::PRIVATE | MountPropagationFlags::REC;
        if let Err(e) = rustix::mount::mount_change(c"/", private) {
            // SAFETY: in the child.
            unsafe { fail(plan.errors, STAGE_ISOLATE, e) };
        }
    }
    if plan.pid_namespace {
        // SAFETY: in the child; see `wait_for_inner`.
        unsafe { enter_pid_namespace(plan) };
    }
    if plan.close_stdout {
        // SAFETY: closing our own standard output, as asked.
        unsafe { libc::close(1) };
    }
    let mut byte = [0u8; 1];
    if rustix::io::read(plan.gate, &mut byte) != Ok(1) {
        // SAFETY: in the child.
        unsafe { libc::_exit(127) };
    }
    if let Some((prog, flags)) = plan.filter {
        // SAFETY: in the child.
        unsafe { install_filter(plan, prog, flags) };
    }
    // SAFETY: a NUL-terminated path and a NULL-terminated vector of NUL-terminated strings.
    unsafe { libc::execv(plan.path.as_ptr(), plan.argv.as_ptr()) };
    // SAFETY: in the child.
    unsafe { fail(plan.errors, STAGE_EXEC, Errno::from_raw_os_error(errno())) }
}

fn errno() -> i32 {
    // SAFETY: reading this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// Forks the namespace's pid 1 (which returns here to run the command, with its own /proc);
/// this process stays in phasebox's namespace, passes the command's pid up, waits for it and
/// exits with its status.
///
/// # Safety
/// Called only in the forked child.
unsafe fn enter_pid_namespace(plan: &ChildPlan<'_>) {
    // SAFETY: still single-threaded after fork; the grandchild continues like the child.
    let inner = unsafe { libc::fork() };
    if inner < 0 {
        // SAFETY: in the child.
        unsafe {
            fail(
                plan.errors,
                STAGE_ISOLATE,
                Errno::from_raw_os_error(errno()),
            )
        };
    }
    if inner > 0 {
        let _ = rustix::io::write(plan.pid_out, &inner.to_ne_bytes());
        let mut status = 0;
        // SAFETY: waiting for our own child into a local int.
        while unsafe { libc::waitpid(inner, &mut status, 0) } < 0 && errno() == libc::EINTR {}
        // SAFETY: in the child.
        unsafe { libc::_exit(super::exit_code(status)) };
    }
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    if let Err(e) = rustix::mount::mount(c"proc", c"/proc", c"proc", flags, None) {
        // SAFETY: in the child.
        unsafe { fail(plan.errors, STAGE_ISOLATE, e) };
    }
}

/// Installs the seccomp filter; its listener (close-on-exec) goes to phasebox, over the one
/// socket the filter lets `sendmsg` use.
///
/// # Safety
/// Called only in the forked child.
unsafe fn install_filter(plan: &ChildPlan<'_>, prog: &libc::sock_fprog, flags: libc::c_ulong) {
    if let Err(e) = rustix::thread::set_no_new_privs(true) {
        // SAFETY: in the child.
        unsafe { fail(plan.errors, STAGE_SECCOMP, e) };
    }
    let prog: *const libc::sock_fprog = prog;
    // SAFETY: seccomp(SET_MODE_FILTER) with a valid program; rustix has no wrapper for it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            prog,
        )
    };
    if fd < 0 {
        // SAFETY: in the child.
        unsafe {
            fail(
                plan.errors,
                STAGE_SECCOMP,
                Errno::from_raw_os_error(errno()),
            )
        };
    }
    if let Some(sock) = plan.listener_sock {
        // SAFETY: `fd` is the listener the kernel just returned; it is only borrowed here.
        let listener = unsafe { BorrowedFd::borrow_raw(fd as RawFd) };
        super::fdpass::send(sock.as_fd(), listener);
    }
}
