//! What one call does, for naming the one-time phases: a small table of tags (the loader's opens
//! of shared objects, configuration files, socket setup, privilege changes, starting threads or
//! processes, the exit) and, for each activity, the untagged calls that continue it. Tags look
//! only at the syscall and its path argument.
use std::sync::OnceLock;

use super::syscall_set::SyscallSet;
use crate::sysnames::PRIVILEGE_CHANGES;

/// A one-time activity; the order is the order of their phase slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Activity {
    /// execve and the loader's first calls.
    Exec,
    /// The dynamic loader (or an interpreter) opening and mapping code: `.so` files,
    /// `ld.so.cache`, Python/Perl/Ruby/Java/JS modules; libc's own setup after it.
    Loading,
    /// Opening configuration and system files: /etc, /proc/sys, /sys, /usr/share, locale data,
    /// `*.conf` and the like.
    Config,
    /// setuid/setgid/setgroups/capset and the like.
    Privileges,
    /// bind/listen (with the socket() just before them).
    Sockets,
    /// clone/clone3/fork/vfork: starting threads or worker processes.
    Workers,
    /// One-time work no tag names (the fallback).
    Other,
}

impl Activity {
    pub const ALL: [Activity; 7] = [
        Activity::Exec,
        Activity::Loading,
        Activity::Config,
        Activity::Privileges,
        Activity::Sockets,
        Activity::Workers,
        Activity::Other,
    ];
}

/// What a call tells: an activity it starts, or the end of the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    Starts(Activity),
    /// exit_group: the process ends.
    Exit,
}

/// Files read by the loader and by configuration parsers alike.
const FILE_READING: &[&str] = &[
    "open",
    "openat",
    "openat2",
    "read",
    "pread64",
    "readv",
    "preadv",
    "newfstatat",
    "fstat",
    "stat",
    "lstat",
    "statx",
    "lseek",
    "close",
    "getdents64",
    "readlink",
    "readlinkat",
    "access",
    "faccessat",
    "faccessat2",
    "fadvise64",
];

/// Calls any activity may make (memory, clocks, ids, locks): they never start a phase.
const NEUTRAL: &[&str] = &[
    "brk",
    "mmap",
    "munmap",
    "mremap",
    "madvise",
    "futex",
    "getpid",
    "gettid",
    "getppid",
    "clock_gettime",
    "clock_nanosleep",
    "nanosleep",
    "gettimeofday",
    "time",
    "sched_yield",
    "getrandom",
    "rt_sigreturn",
    "restart_syscall",
];

/// Calls that belong to the end when they come just before exit_group.
const CLEANUP: &[&str] = &[
    "close",
    "munmap",
    "unlink",
    "unlinkat",
    "wait4",
    "waitid",
    "fsync",
    "fdatasync",
    "flock",
    "shutdown",
    "exit",
    "rt_sigprocmask",
];

/// Calls that mark the start of a shutdown: reaping children, removing or syncing files.
const SHUTDOWN: &[&str] = &[
    "wait4",
    "waitid",
    "kill",
    "unlink",
    "unlinkat",
    "fsync",
    "fdatasync",
];

/// The untagged calls that continue an exec.
const EXEC_CALLS: &[&str] = &["execve", "execveat", "arch_prctl", "uname"];

/// The untagged calls that continue loading (the dynamic loader's own calls).
const LOADING_CALLS: &[&str] = &[
    "mprotect",
    "arch_prctl",
    "set_tid_address",
    "set_robust_list",
    "rseq",
    "prlimit64",
    "uname",
    "ioctl",
];

/// The untagged calls that continue reading the configuration.
const CONFIG_CALLS: &[&str] = &["fcntl", "ioctl", "flock", "sysinfo", "uname", "prlimit64"];

/// The untagged calls that continue a change of privileges (besides the changes themselves).
const PRIVILEGES_CALLS: &[&str] = &[
    "capget",
    "chdir",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getgroups",
    "getresuid",
    "getresgid",
    "prctl",
    "umask",
    "setsid",
];

/// The untagged calls that continue setting up sockets.
const SOCKETS_CALLS: &[&str] = &[
    "socket",
    "setsockopt",
    "getsockopt",
    "bind",
    "listen",
    "ioctl",
    "fcntl",
    "getsockname",
    "close",
    "socketpair",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
];

/// The untagged calls that continue starting workers (processes or threads).
const WORKERS_CALLS: &[&str] = &[
    "clone",
    "clone3",
    "fork",
    "vfork",
    "set_robust_list",
    "rseq",
    "mprotect",
    "sigaltstack",
    "rt_sigprocmask",
    "sched_setaffinity",
    "sched_getaffinity",
    "prctl",
    "socketpair",
    "pipe",
    "pipe2",
    "eventfd2",
    "close",
    // naming a thread writes /proc/self/task/TID/comm
    "openat",
    "write",
];

/// The untagged calls that continue each activity (besides NEUTRAL).
fn continues(a: Activity) -> Vec<&'static str> {
    let own = match a {
        Activity::Exec => EXEC_CALLS,
        Activity::Loading => LOADING_CALLS,
        Activity::Config => CONFIG_CALLS,
        Activity::Privileges => PRIVILEGES_CALLS,
        Activity::Sockets => SOCKETS_CALLS,
        Activity::Workers => WORKERS_CALLS,
        Activity::Other => &[],
    };
    let mut v = own.to_vec();
    if a == Activity::Privileges {
        v.extend_from_slice(PRIVILEGE_CHANGES);
    }
    if matches!(
        a,
        Activity::Exec | Activity::Loading | Activity::Config | Activity::Privileges
    ) {
        // Privilege changes look up users and groups in /etc (initgroups).
        v.extend_from_slice(FILE_READING);
    }
    v.extend_from_slice(NEUTRAL);
    v
}

/// The tables, resolved to this architecture's numbers once.
pub struct Table {
    continues: [SyscallSet; 7],
    cleanup: SyscallSet,
    shutdown: SyscallSet,
    /// Tags by syscall number, for the syscalls tagged by themselves alone.
    by_syscall: Vec<Option<Tag>>,
    socket: Option<u32>,
}

/// The table of this architecture.
pub fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let tagged: &[(&[&str], Tag)] = &[
            (&["execve", "execveat"], Tag::Starts(Activity::Exec)),
            (PRIVILEGE_CHANGES, Tag::Starts(Activity::Privileges)),
            (&["bind", "listen"], Tag::Starts(Activity::Sockets)),
            (
                &["clone", "clone3", "fork", "vfork"],
                Tag::Starts(Activity::Workers),
            ),
            (&["exit_group"], Tag::Exit),
        ];
        let mut by_syscall = Vec::new();
        for (names, tag) in tagged {
            for nr in names.iter().filter_map(|n| crate::sysnames::number(n)) {
                let i = nr as usize;
                if by_syscall.len() <= i {
                    by_syscall.resize(i + 1, None);
                }
                by_syscall[i] = Some(*tag);
            }
        }
        Table {
            continues: Activity::ALL.map(|a| SyscallSet::of(&continues(a))),
            cleanup: SyscallSet::of(&[CLEANUP, NEUTRAL].concat()),
            shutdown: SyscallSet::of(SHUTDOWN),
            by_syscall,
            socket: crate::sysnames::number("socket"),
        }
    })
}

impl Table {
    /// The tag of a call, from its syscall and path argument.
    pub fn tag(&self, nr: u32, path: Option<&str>) -> Option<Tag> {
        if let Some(t) = self.by_syscall.get(nr as usize).copied().flatten() {
            return Some(t);
        }
        path.and_then(path_activity).map(Tag::Starts)
    }

    /// Whether an untagged call `nr` continues activity `a` (Other continues with anything).
    pub fn continues(&self, a: Activity, nr: u32) -> bool {
        a == Activity::Other || self.continues[a as usize].contains(nr)
    }

    /// The untagged calls that continue any of `activities` (bit per activity).
    pub fn continues_any(&self, activities: u8) -> SyscallSet {
        let mut s = SyscallSet::default();
        for a in Activity::ALL {
            if activities & (1 << a as u8) != 0 {
                s.union_with(&self.continues[a as usize]);
            }
        }
        s
    }

    /// Whether `nr` is cleanup that belongs to the exit when it comes just before exit_group.
    pub fn cleanup(&self, nr: u32) -> bool {
        self.cleanup.contains(nr)
    }

    /// Whether `nr` marks the start of a shutdown.
    pub fn shutdown(&self, nr: u32) -> bool {
        self.shutdown.contains(nr)
    }

    /// Whether `nr` is socket(), which starts the socket setup that a later bind confirms.
    pub fn is_socket(&self, nr: u32) -> bool {
        self.socket == Some(nr)
    }
}

/// Code modules an interpreter or a VM loads.
const MODULE_SUFFIXES: &[&str] = &[
    ".py", ".pyc", ".pm", ".rb", ".jar", ".class", ".js", ".mjs", ".lua", ".node",
];
/// Configuration files by suffix.
const CONFIG_SUFFIXES: &[&str] = &[
    ".conf",
    ".cnf",
    ".cfg",
    ".ini",
    ".toml",
    ".yaml",
    ".yml",
    ".json",
    ".xml",
    ".properties",
];
/// Configuration and system information by place.
const CONFIG_PREFIXES: &[&str] = &[
    "/etc/",
    "/proc/sys/",
    "/proc/cpuinfo",
    "/proc/meminfo",
    "/sys/",
    "/usr/share/",
    "/usr/lib/locale/",
];

/// The activity a path argument shows, if any.
fn path_activity(path: &str) -> Option<Activity> {
    let file = path.rsplit('/').next().unwrap_or(path);
    let shared_object = file.ends_with(".so") || file.contains(".so.");
    if shared_object
        || path.ends_with("/ld.so.cache")
        || path.ends_with("/ld.so.preload")
        || MODULE_SUFFIXES.iter().any(|s| file.ends_with(s))
    {
        return Some(Activity::Loading);
    }
    if CONFIG_SUFFIXES.iter().any(|s| file.ends_with(s))
        || CONFIG_PREFIXES.iter().any(|p| path.starts_with(p))
        || path.contains("/gconv/")
    {
        return Some(Activity::Config);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nr(name: &str) -> u32 {
        crate::sysnames::number(name).unwrap()
    }

    #[test]
    fn tags_by_syscall_and_path() {
        let t = table();
        let openat = nr("openat");
        let tag = |p: &str| t.tag(openat, Some(p));
        assert_eq!(
            tag("/etc/ld.so.cache"),
            Some(Tag::Starts(Activity::Loading))
        );
        assert_eq!(
            tag("/lib/x86_64-linux-gnu/libc.so.6"),
            Some(Tag::Starts(Activity::Loading))
        );
        assert_eq!(
            tag("/usr/lib/python3.11/__pycache__/os.cpython-311.pyc"),
            Some(Tag::Starts(Activity::Loading))
        );
        assert_eq!(tag("/etc/passwd"), Some(Tag::Starts(Activity::Config)));
        assert_eq!(tag("/srv/nginx.conf"), Some(Tag::Starts(Activity::Config)));
        assert_eq!(tag("/srv/html/index.html"), None);
        assert_eq!(t.tag(openat, None), None);
        assert_eq!(
            t.tag(nr("setuid"), None),
            Some(Tag::Starts(Activity::Privileges))
        );
        assert_eq!(
            t.tag(nr("listen"), None),
            Some(Tag::Starts(Activity::Sockets))
        );
        assert_eq!(
            t.tag(nr("clone3"), None),
            Some(Tag::Starts(Activity::Workers))
        );
        assert_eq!(t.tag(nr("exit_group"), None), Some(Tag::Exit));
        assert_eq!(t.tag(nr("read"), None), None);
    }

    #[test]
    fn continuations() {
        let t = table();
        assert!(t.continues(Activity::Loading, nr("mmap")));
        assert!(t.continues(Activity::Config, nr("read")));
        assert!(!t.continues(Activity::Config, nr("write")));
        assert!(!t.continues(Activity::Sockets, nr("write")));
        assert!(t.continues(Activity::Other, nr("write")));
        assert!(
            t.continues(Activity::Workers, nr("futex")),
            "neutral calls continue all"
        );
        assert!(t.cleanup(nr("close")) && !t.cleanup(nr("write")));
        assert!(t.is_socket(nr("socket")));
    }
}
