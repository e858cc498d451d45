//! Syscall and errno names of the architecture phasebox was built for, from the `syscalls`
//! crate's tables.
use std::borrow::Cow;

use syscalls::{Errno, Sysno};

/// The architecture name used in profiles, trace files and seccomp exports.
pub const ARCH: &str = std::env::consts::ARCH;

/// Calls the `syscalls` crate names otherwise than the kernel (`__NR_newfstatat`), strace
/// and libseccomp do: (the crate's name, the kernel's). Seen on an arm64 kernel: a profile
/// naming `fstatat` is refused by libseccomp.
#[cfg(target_arch = "aarch64")]
const RENAMED: &[(&str, &str)] = &[("fstatat", "newfstatat")];
#[cfg(not(target_arch = "aarch64"))]
const RENAMED: &[(&str, &str)] = &[];

/// The name of syscall `nr`, or `syscall_<nr>` for a number the table does not know.
pub fn name(nr: u32) -> Cow<'static, str> {
    match Sysno::new(nr as usize) {
        Some(s) => Cow::Borrowed(
            RENAMED
                .iter()
                .find(|(ours, _)| *ours == s.name())
                .map_or(s.name(), |(_, kernel)| kernel),
        ),
        None => Cow::Owned(format!("syscall_{nr}")),
    }
}

/// The number of the syscall called `name` on this architecture.
pub fn number(name: &str) -> Option<u32> {
    let name = RENAMED
        .iter()
        .find(|(_, kernel)| *kernel == name)
        .map_or(name, |(ours, _)| ours);
    name.parse::<Sysno>().ok().map(|s| s.id() as u32)
}

/// Syscall numbers the kernel programs treat specially.
pub struct Special {
    pub execve: u32,
    pub execveat: u32,
    pub exit: u32,
    pub exit_group: u32,
}

/// Whether `name` is a syscall of this architecture or of another one phasebox knows (rule
/// files may name calls, such as `open`, that newer architectures do not have).
pub fn is_known_anywhere(name: &str) -> bool {
    number(name).is_some()
        || name.parse::<syscalls::x86_64::Sysno>().is_ok()
        || name.parse::<syscalls::aarch64::Sysno>().is_ok()
        || name.parse::<syscalls::riscv64::Sysno>().is_ok()
}

/// Syscalls a thread waits in for an event, a peer or time (the calls an event loop or a
/// worker pool sleeps in). In a session that batches calls, a thread sends what it holds
/// before it enters one, so its calls are not held back while it waits.
pub const WAITING: &[&str] = &[
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "poll",
    "ppoll",
    "select",
    "pselect6",
    "futex",
    "futex_waitv",
    "nanosleep",
    "clock_nanosleep",
    "wait4",
    "waitid",
    "pause",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "accept",
    "accept4",
    "io_getevents",
    "io_pgetevents",
    "io_uring_enter",
    "msgrcv",
    "semop",
    "semtimedop",
    "mq_timedreceive",
];

/// Syscalls that take a path, and which argument (0-based) holds it. The kernel side reads that
/// argument at entry when streaming.
pub const PATH_ARGS: &[(&str, u32)] = &[
    ("open", 0),
    ("openat", 1),
    ("openat2", 1),
    ("creat", 0),
    ("execve", 0),
    ("execveat", 1),
    ("stat", 0),
    ("lstat", 0),
    ("newfstatat", 1),
    ("statx", 1),
    ("statfs", 0),
    ("access", 0),
    ("faccessat", 1),
    ("faccessat2", 1),
    ("readlink", 0),
    ("readlinkat", 1),
    ("chdir", 0),
    ("chroot", 0),
    ("mkdir", 0),
    ("mkdirat", 1),
    ("rmdir", 0),
    ("unlink", 0),
    ("unlinkat", 1),
    ("rename", 0),
    ("renameat", 1),
    ("renameat2", 1),
    ("link", 0),
    ("linkat", 1),
    ("symlink", 1),
    ("symlinkat", 2),
    ("mknod", 0),
    ("mknodat", 1),
    ("chmod", 0),
    ("fchmodat", 1),
    ("chown", 0),
    ("lchown", 0),
    ("fchownat", 1),
    ("truncate", 0),
    ("utimensat", 1),
    ("getxattr", 0),
    ("lgetxattr", 0),
    ("setxattr", 0),
    ("lsetxattr", 0),
    ("listxattr", 0),
    ("inotify_add_watch", 1),
    ("mount", 1),
    ("umount2", 0),
    ("pivot_root", 0),
    ("swapon", 0),
    ("acct", 0),
    ("uselib", 0),
];

/// Calls that change a process's privileges (users, groups, capabilities, root directory):
/// automatic phases start their `privileges` phase at one, and coverage warnings group them.
pub const PRIVILEGE_CHANGES: &[&str] = &[
    "setuid",
    "setgid",
    "setgroups",
    "setresuid",
    "setresgid",
    "setreuid",
    "setregid",
    "setfsuid",
    "setfsgid",
    "capset",
    "chroot",
];

/// The errno values a call can fail with: the kernel caps errors at 4095 (MAX_ERRNO), so a
/// seccomp filter's SECCOMP_RET_ERRNO data is cut there, and 0 would make a denied call look
/// like a success.
pub const ERRNO_RANGE: std::ops::RangeInclusive<u32> = 1..=4095;

/// The special numbers of this architecture.
pub fn special() -> Special {
    Special {
        execve: Sysno::execve.id() as u32,
        execveat: Sysno::execveat.id() as u32,
        exit: Sysno::exit.id() as u32,
        exit_group: Sysno::exit_group.id() as u32,
    }
}

/// strace-style rendering of a raw return value: `3`, or `-1 ENOENT (No such file or directory)`.
pub fn render_return(ret: i64) -> String {
    if !phasebox_common::is_error(ret) {
        // Addresses (mmap, brk) read better in hex, as strace shows them.
        return if ret >= 1 << 28 {
            format!("{ret:#x}")
        } else {
            ret.to_string()
        };
    }
    let errno = Errno::new(-ret as i32);
    match errno.name_and_description() {
        Some((name, desc)) => format!("-1 {name} ({desc})"),
        None => format!("-1 errno {}", -ret),
    }
}

/// A sentence-friendly description of an I/O error, without the "(os error N)" suffix.
pub fn describe_io(err: &std::io::Error) -> String {
    match err.raw_os_error().and_then(|e| Errno::new(e).description()) {
        Some(desc) => desc.to_string(),
        None => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let nr = number("openat").expect("openat exists");
        assert_eq!(name(nr), "openat");
        assert_eq!(name(100_000), "syscall_100000");
        assert_eq!(number("no_such_call"), None);
        // Names in the path table that this architecture lacks are simply skipped.
        let known = PATH_ARGS
            .iter()
            .filter(|(n, _)| number(n).is_some())
            .count();
        assert!(known > 40, "{known}");
    }

    #[test]
    fn every_waiting_call_is_a_syscall_somewhere() {
        for name in WAITING {
            assert!(is_known_anywhere(name), "{name}");
        }
        assert!(WAITING.iter().any(|n| number(n).is_some()));
    }

    #[test]
    fn returns_render_like_strace() {
        assert_eq!(render_return(3), "3");
        assert_eq!(render_return(0x7f00_0000_0000), "0x7f0000000000");
        assert_eq!(render_return(-2), "-1 ENOENT (No such file or directory)");
        // Large negative values that are not errors (addresses) print as numbers.
        assert_eq!(render_return(-5000), "-5000");
    }
}
