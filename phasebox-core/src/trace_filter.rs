//! `-e trace=SET`: which syscalls a command shows, as strace takes it. SET is a comma-separated
//! list of syscall names and classes (`%file`, `%network`, `%process`…, strace's), `all` or
//! `none`; a leading `!` takes every syscall but those; a name or class after `?` is skipped
//! when unknown on this architecture instead of refused. What is not selected is still counted
//! (profiles, summaries and phases stay whole); it is left out of what is shown: the records of
//! a stream (the kernel never sends them), a trace dump's lines, the agent's series.
use std::collections::BTreeSet;

use phasebox_common::MAX_SYSCALLS;

use crate::sysnames;

/// strace's classes (name, what, lists of calls), by the names of their calls (those another architecture lacks are
/// skipped: `open` is x86_64's, `openat` every architecture's).
const CLASSES: &[(&str, &str, &[&[&str]])] = &[
    ("%file", "calls that take a file name", &[FILE]),
    ("%desc", "calls on file descriptors", &[DESC, NETWORK]),
    ("%memory", "memory mapping", &[MEMORY]),
    ("%network", "sockets", &[NETWORK]),
    ("%process", "process management", &[PROCESS]),
    ("%signal", "signals", &[SIGNAL]),
    ("%ipc", "System V IPC", &[IPC]),
    ("%creds", "user and group ids, capabilities", &[CREDS]),
    ("%clock", "clocks and timers", &[CLOCK]),
    (
        "%stat",
        "stat of a file name",
        &[&["stat", "newfstatat", "statx"]],
    ),
    (
        "%lstat",
        "lstat of a file name",
        &[&["lstat", "newfstatat"]],
    ),
    (
        "%fstat",
        "stat of a descriptor",
        &[&["fstat", "newfstatat", "statx"]],
    ),
    (
        "%%stat",
        "every stat",
        &[&["stat", "lstat", "fstat", "newfstatat", "statx"]],
    ),
    ("%statfs", "statfs of a file name", &[&["statfs"]]),
    ("%fstatfs", "statfs of a descriptor", &[&["fstatfs"]]),
    (
        "%%statfs",
        "every statfs",
        &[&["statfs", "fstatfs", "ustat"]],
    ),
];

const FILE: &[&str] = &[
    "open",
    "openat",
    "openat2",
    "creat",
    "access",
    "faccessat",
    "faccessat2",
    "stat",
    "lstat",
    "newfstatat",
    "statx",
    "statfs",
    "chdir",
    "chroot",
    "pivot_root",
    "chmod",
    "fchmodat",
    "fchmodat2",
    "chown",
    "lchown",
    "fchownat",
    "link",
    "linkat",
    "unlink",
    "unlinkat",
    "rename",
    "renameat",
    "renameat2",
    "mkdir",
    "mkdirat",
    "rmdir",
    "mknod",
    "mknodat",
    "symlink",
    "symlinkat",
    "readlink",
    "readlinkat",
    "truncate",
    "execve",
    "execveat",
    "utime",
    "utimes",
    "utimensat",
    "futimesat",
    "mount",
    "umount2",
    "swapon",
    "swapoff",
    "getxattr",
    "lgetxattr",
    "setxattr",
    "lsetxattr",
    "listxattr",
    "llistxattr",
    "removexattr",
    "lremovexattr",
    "inotify_add_watch",
    "fanotify_mark",
    "name_to_handle_at",
    "acct",
    "quotactl",
    "uselib",
    "open_tree",
    "move_mount",
    "mount_setattr",
    "fsconfig",
];
const DESC: &[&str] = &[
    "read",
    "write",
    "open",
    "openat",
    "openat2",
    "creat",
    "close",
    "close_range",
    "pread64",
    "pwrite64",
    "readv",
    "writev",
    "preadv",
    "pwritev",
    "preadv2",
    "pwritev2",
    "lseek",
    "dup",
    "dup2",
    "dup3",
    "fcntl",
    "ioctl",
    "fstat",
    "newfstatat",
    "statx",
    "fstatfs",
    "fsync",
    "fdatasync",
    "sync_file_range",
    "ftruncate",
    "fallocate",
    "fadvise64",
    "readahead",
    "getdents64",
    "getdents",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchownat",
    "flock",
    "sendfile",
    "splice",
    "tee",
    "vmsplice",
    "copy_file_range",
    "pipe",
    "pipe2",
    "select",
    "pselect6",
    "poll",
    "ppoll",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "eventfd",
    "eventfd2",
    "signalfd",
    "signalfd4",
    "timerfd_create",
    "timerfd_settime",
    "timerfd_gettime",
    "inotify_init",
    "inotify_init1",
    "inotify_add_watch",
    "inotify_rm_watch",
    "fanotify_init",
    "fanotify_mark",
    "memfd_create",
    "userfaultfd",
    "pidfd_open",
    "pidfd_getfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "fgetxattr",
    "fsetxattr",
    "flistxattr",
    "fremovexattr",
    "mmap",
    "faccessat",
    "faccessat2",
    "linkat",
    "unlinkat",
    "renameat",
    "renameat2",
    "mkdirat",
    "mknodat",
    "symlinkat",
    "readlinkat",
    "utimensat",
    "futimesat",
    "syncfs",
    "openat2",
    "open_by_handle_at",
    "name_to_handle_at",
];
const MEMORY: &[&str] = &[
    "mmap",
    "munmap",
    "mprotect",
    "pkey_mprotect",
    "mremap",
    "brk",
    "madvise",
    "process_madvise",
    "mlock",
    "mlock2",
    "munlock",
    "mlockall",
    "munlockall",
    "mincore",
    "msync",
    "remap_file_pages",
    "mbind",
    "get_mempolicy",
    "set_mempolicy",
    "set_mempolicy_home_node",
    "migrate_pages",
    "move_pages",
    "shmat",
    "shmdt",
    "pkey_alloc",
    "pkey_free",
    "memfd_secret",
    "map_shadow_stack",
];
const NETWORK: &[&str] = &[
    "socket",
    "socketpair",
    "bind",
    "listen",
    "accept",
    "accept4",
    "connect",
    "getsockname",
    "getpeername",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "sendmmsg",
    "recvmmsg",
    "shutdown",
    "setsockopt",
    "getsockopt",
];
const PROCESS: &[&str] = &[
    "fork",
    "vfork",
    "clone",
    "clone3",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "wait4",
    "waitid",
    "kill",
    "tkill",
    "tgkill",
    "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
    "pidfd_open",
    "pidfd_send_signal",
    "unshare",
    "setns",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
];
const SIGNAL: &[&str] = &[
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "rt_sigpending",
    "rt_sigtimedwait",
    "rt_sigsuspend",
    "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
    "sigaltstack",
    "kill",
    "tkill",
    "tgkill",
    "pause",
    "signalfd",
    "signalfd4",
    "pidfd_send_signal",
];
const IPC: &[&str] = &[
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "semget",
    "semop",
    "semtimedop",
    "semctl",
    "shmget",
    "shmat",
    "shmdt",
    "shmctl",
];
const CREDS: &[&str] = &[
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "getresuid",
    "setresgid",
    "getresgid",
    "setfsuid",
    "setfsgid",
    "getgroups",
    "setgroups",
    "capget",
    "capset",
    "prctl",
];
const CLOCK: &[&str] = &[
    "clock_gettime",
    "clock_settime",
    "clock_getres",
    "clock_nanosleep",
    "clock_adjtime",
    "gettimeofday",
    "settimeofday",
    "adjtimex",
    "time",
    "times",
    "nanosleep",
    "alarm",
    "getitimer",
    "setitimer",
    "timer_create",
    "timer_settime",
    "timer_gettime",
    "timer_getoverrun",
    "timer_delete",
    "timerfd_create",
    "timerfd_settime",
    "timerfd_gettime",
];

/// Which syscalls a command shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceFilter {
    /// The selected syscall numbers of this architecture.
    selected: BTreeSet<u32>,
    /// The set as the user wrote it, for messages and headers.
    spec: String,
}

/// A `-e` expression phasebox does not take.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilterError {
    #[error(
        "-e {0:?}: phasebox takes trace=SET (names and classes such as %file, %network, %process; !SET for all but them)"
    )]
    NotTrace(String),
    #[error("-e trace: {0:?} is no {arch} syscall and no class (classes: {classes})", arch = sysnames::ARCH, classes = class_names())]
    Unknown(String),
    #[error("-e trace: the set is empty")]
    Empty,
}

fn class_names() -> String {
    let names: Vec<&str> = CLASSES.iter().map(|(n, _, _)| *n).collect();
    names.join(", ")
}

/// The numbers of this architecture's calls among `names`.
fn numbers<'a>(names: &'a [&'a str]) -> impl Iterator<Item = u32> + 'a {
    names.iter().filter_map(|n| sysnames::number(n))
}

impl TraceFilter {
    /// Reads `-e EXPR`: `trace=SET` (or `t=SET`, or SET alone, as strace takes it).
    pub fn parse(expr: &str) -> Result<TraceFilter, FilterError> {
        let set = match expr.split_once('=') {
            Some(("trace" | "t", set)) => set,
            Some(_) => return Err(FilterError::NotTrace(expr.to_string())),
            None => expr,
        };
        let (negate, list) = match set.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, set),
        };
        let mut chosen = BTreeSet::new();
        for item in list.split(',').map(str::trim) {
            let (optional, item) = match item.strip_prefix('?') {
                Some(rest) => (true, rest),
                None => (false, item),
            };
            match Self::item(item) {
                Some(nrs) => chosen.extend(nrs),
                None if optional => {}
                None if item.is_empty() => return Err(FilterError::Empty),
                None => return Err(FilterError::Unknown(item.to_string())),
            }
        }
        let selected = if negate {
            (0..MAX_SYSCALLS)
                .filter(|nr| !chosen.contains(nr))
                .collect()
        } else {
            chosen
        };
        Ok(TraceFilter {
            selected,
            spec: set.to_string(),
        })
    }

    /// The calls one item names: a syscall, a class, `all` or `none`.
    fn item(item: &str) -> Option<Vec<u32>> {
        match item {
            "all" => Some((0..MAX_SYSCALLS).collect()),
            "none" => Some(Vec::new()),
            _ => match CLASSES.iter().find(|(n, _, _)| *n == item) {
                Some((_, _, lists)) => Some(lists.iter().flat_map(|l| numbers(l)).collect()),
                None => sysnames::number(item).map(|nr| vec![nr]),
            },
        }
    }

    /// Whether syscall `nr` is shown.
    pub fn selects(&self, nr: u32) -> bool {
        self.selected.contains(&nr)
    }

    /// Whether the syscall called `name` is shown.
    pub fn selects_name(&self, name: &str) -> bool {
        sysnames::number(name).is_some_and(|nr| self.selects(nr))
    }

    /// The selected numbers.
    pub fn selected(&self) -> &BTreeSet<u32> {
        &self.selected
    }

    /// The selected calls as the kernel's bitmap (a bit per number below MAX_SYSCALLS), the
    /// form `PB_ALLOWED` takes too.
    pub fn bits(&self) -> [u64; phasebox_common::ALLOWED_WORDS] {
        let mut bits = [0u64; phasebox_common::ALLOWED_WORDS];
        for &nr in self.selected.iter().filter(|&&nr| nr < MAX_SYSCALLS) {
            bits[(nr / 64) as usize] |= 1 << (nr % 64);
        }
        bits
    }

    /// The set as written (`%file,close`).
    pub fn spec(&self) -> &str {
        &self.spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(f: &TraceFilter) -> Vec<String> {
        f.selected()
            .iter()
            .map(|&n| sysnames::name(n).into_owned())
            .collect()
    }

    #[test]
    fn names_and_classes_select_as_strace_does() {
        let f = TraceFilter::parse("trace=openat,close").unwrap();
        assert_eq!(names(&f), ["close", "openat"]);
        assert!(f.selects_name("openat") && !f.selects_name("read"));
        let f = TraceFilter::parse("trace=%network").unwrap();
        assert!(f.selects_name("accept4") && f.selects_name("socket"));
        assert!(!f.selects_name("read"));
        let f = TraceFilter::parse("%file").unwrap();
        assert!(f.selects_name("openat") && f.selects_name("execve"));
        assert!(!f.selects_name("close"));
        let f = TraceFilter::parse("t=%process,write").unwrap();
        assert!(f.selects_name("clone") && f.selects_name("write"));
        assert_eq!(f.spec(), "%process,write");
    }

    #[test]
    fn negation_all_none_and_optional_names() {
        let f = TraceFilter::parse("trace=!close,read").unwrap();
        assert!(!f.selects_name("close") && !f.selects_name("read"));
        assert!(f.selects_name("openat") && f.selects_name("write"));
        assert!(
            TraceFilter::parse("trace=all")
                .unwrap()
                .selects_name("read")
        );
        assert!(
            TraceFilter::parse("trace=none")
                .unwrap()
                .selected()
                .is_empty()
        );
        let f = TraceFilter::parse("trace=?no_such_call,read").unwrap();
        assert_eq!(names(&f), ["read"]);
    }

    #[test]
    fn bad_expressions_say_what_is_taken() {
        let e = TraceFilter::parse("trace=opn").unwrap_err().to_string();
        assert!(e.contains("\"opn\" is no") && e.contains("%network"), "{e}");
        let e = TraceFilter::parse("signal=none").unwrap_err().to_string();
        assert!(e.contains("phasebox takes trace=SET"), "{e}");
        let e = TraceFilter::parse("trace=").unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
    }

    #[test]
    fn every_class_has_calls_here() {
        for (name, _, lists) in CLASSES {
            let calls: Vec<&str> = lists.iter().flat_map(|l| l.iter().copied()).collect();
            assert!(numbers(&calls).next().is_some(), "{name}");
            for c in &calls {
                assert!(sysnames::is_known_anywhere(c), "{name}: {c}");
            }
        }
    }
}
