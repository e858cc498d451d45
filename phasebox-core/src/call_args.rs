//! The "kind" arguments phasebox records and enforces, per syscall: scalar arguments that say
//! what a call does (which socket family, which namespace, executable memory or not, which
//! open mode), never pointers (a seccomp filter cannot read memory either). Each is kept
//! through a mask, so flags that do not change what a call may do (SOCK_NONBLOCK, O_CLOEXEC,
//! PROT_READ) neither split combinations nor end up in a policy. Values are the Linux ABI's
//! (the same on x86_64 and aarch64 for every argument here). docs/seccomp.md, "Arguments".
use std::fmt::Write as _;

use phasebox_common::{ARG_SLOTS, ArgSpec};

/// The recorded values of a call's first three arguments, masked (0 where not recorded).
pub type Values = [u64; ARG_SLOTS];

/// How a recorded argument reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decode {
    /// One of these values (a number otherwise).
    Enum(&'static [(u64, &'static str)]),
    /// Bits with these names (what is left as a number).
    Flags(&'static [(u64, &'static str)]),
    /// open's flags: the access mode, then bits.
    Open,
    /// A socket option's name, read with the level in the argument before it.
    SockOpt,
    /// A plain number.
    Number,
}

/// One recorded argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arg {
    /// Its position (0-based; below [`ARG_SLOTS`]).
    pub index: usize,
    pub name: &'static str,
    /// The bits kept.
    pub mask: u64,
    pub decode: Decode,
}

/// A syscall whose arguments are recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallArgs {
    pub syscall: &'static str,
    pub args: &'static [Arg],
    /// Combinations every phase that may make the call allows, learned or not: calls the
    /// allocator makes whenever its state says so (memory that is not executable), and those
    /// that depend on the clients and descriptors a program is handed (a descriptor's flags,
    /// per-connection socket options), as `call_classes::STATE_DEPENDENT` does for the names.
    pub always: &'static [Values],
    /// Why these arguments.
    pub why: &'static str,
}

const U32: u64 = 0xffff_ffff;
const SOCK_NONBLOCK: u64 = 0o4000;
const SOCK_CLOEXEC: u64 = 0o2000000;
const PROT_WRITE: u64 = 2;
const PROT_EXEC: u64 = 4;
const O_ACCMODE: u64 = 3;
const O_CREAT: u64 = 0o100;
const O_TRUNC: u64 = 0o1000;
const O_APPEND: u64 = 0o2000;
const O_PATH: u64 = 0o10000000;
const OPEN_MASK: u64 = O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND | O_PATH;

const FAMILIES: &[(u64, &str)] = &[
    (0, "AF_UNSPEC"),
    (1, "AF_UNIX"),
    (2, "AF_INET"),
    (10, "AF_INET6"),
    (16, "AF_NETLINK"),
    (17, "AF_PACKET"),
    (38, "AF_ALG"),
    (40, "AF_VSOCK"),
    (44, "AF_XDP"),
];
const SOCK_TYPES: &[(u64, &str)] = &[
    (1, "SOCK_STREAM"),
    (2, "SOCK_DGRAM"),
    (3, "SOCK_RAW"),
    (4, "SOCK_RDM"),
    (5, "SOCK_SEQPACKET"),
    (10, "SOCK_PACKET"),
];
const CLONE_FLAGS: &[(u64, &str)] = &[
    (0x80, "CLONE_NEWTIME"),
    (0x100, "CLONE_VM"),
    (0x200, "CLONE_FS"),
    (0x400, "CLONE_FILES"),
    (0x800, "CLONE_SIGHAND"),
    (0x4000, "CLONE_VFORK"),
    (0x8000, "CLONE_PARENT"),
    (0x10000, "CLONE_THREAD"),
    (0x20000, "CLONE_NEWNS"),
    (0x40000, "CLONE_SYSVSEM"),
    (0x0200_0000, "CLONE_NEWCGROUP"),
    (0x0400_0000, "CLONE_NEWUTS"),
    (0x0800_0000, "CLONE_NEWIPC"),
    (0x1000_0000, "CLONE_NEWUSER"),
    (0x2000_0000, "CLONE_NEWPID"),
    (0x4000_0000, "CLONE_NEWNET"),
];
/// clone's flags without CLONE_NEWTIME, whose bit is the exit signal's there.
const CLONE_MASK: u64 = 0x7e07_cf00;
const UNSHARE_MASK: u64 = CLONE_MASK | 0x80;
/// PROT_READ is not kept: 0 is memory neither writable nor executable.
const PROTS: &[(u64, &str)] = &[
    (0, "PROT_NONE|PROT_READ"),
    (PROT_WRITE, "PROT_WRITE"),
    (PROT_EXEC, "PROT_EXEC"),
];
const OPEN_FLAGS: &[(u64, &str)] = &[
    (O_CREAT, "O_CREAT"),
    (O_TRUNC, "O_TRUNC"),
    (O_APPEND, "O_APPEND"),
    (O_PATH, "O_PATH"),
];
const IOCTLS: &[(u64, &str)] = &[
    (0x5401, "TCGETS"),
    (0x5402, "TCSETS"),
    (0x5403, "TCSETSW"),
    (0x5404, "TCSETSF"),
    (0x540e, "TIOCSCTTY"),
    (0x540f, "TIOCGPGRP"),
    (0x5410, "TIOCSPGRP"),
    (0x5412, "TIOCSTI"),
    (0x5413, "TIOCGWINSZ"),
    (0x5414, "TIOCSWINSZ"),
    (0x541b, "FIONREAD"),
    (0x5421, "FIONBIO"),
    (0x5422, "TIOCNOTTY"),
    (0x5450, "FIONCLEX"),
    (0x5451, "FIOCLEX"),
    (0x5452, "FIOASYNC"),
    (0x8912, "SIOCGIFCONF"),
    (0x8933, "SIOCGIFINDEX"),
];
const FCNTLS: &[(u64, &str)] = &[
    (0, "F_DUPFD"),
    (1, "F_GETFD"),
    (2, "F_SETFD"),
    (3, "F_GETFL"),
    (4, "F_SETFL"),
    (5, "F_GETLK"),
    (6, "F_SETLK"),
    (7, "F_SETLKW"),
    (8, "F_SETOWN"),
    (9, "F_GETOWN"),
    (10, "F_SETSIG"),
    (11, "F_GETSIG"),
    (36, "F_OFD_GETLK"),
    (37, "F_OFD_SETLK"),
    (38, "F_OFD_SETLKW"),
    (1024, "F_SETLEASE"),
    (1025, "F_GETLEASE"),
    (1026, "F_NOTIFY"),
    (1030, "F_DUPFD_CLOEXEC"),
    (1031, "F_SETPIPE_SZ"),
    (1032, "F_GETPIPE_SZ"),
    (1033, "F_ADD_SEALS"),
    (1034, "F_GET_SEALS"),
];
const PRCTLS: &[(u64, &str)] = &[
    (1, "PR_SET_PDEATHSIG"),
    (2, "PR_GET_PDEATHSIG"),
    (3, "PR_GET_DUMPABLE"),
    (4, "PR_SET_DUMPABLE"),
    (7, "PR_GET_KEEPCAPS"),
    (8, "PR_SET_KEEPCAPS"),
    (15, "PR_SET_NAME"),
    (16, "PR_GET_NAME"),
    (21, "PR_GET_SECCOMP"),
    (22, "PR_SET_SECCOMP"),
    (23, "PR_CAPBSET_READ"),
    (24, "PR_CAPBSET_DROP"),
    (27, "PR_GET_SECUREBITS"),
    (28, "PR_SET_SECUREBITS"),
    (29, "PR_SET_TIMERSLACK"),
    (35, "PR_SET_MM"),
    (36, "PR_SET_CHILD_SUBREAPER"),
    (37, "PR_GET_CHILD_SUBREAPER"),
    (38, "PR_SET_NO_NEW_PRIVS"),
    (39, "PR_GET_NO_NEW_PRIVS"),
    (41, "PR_SET_THP_DISABLE"),
    (47, "PR_CAP_AMBIENT"),
    (0x5356_4d41, "PR_SET_VMA"),
];
const LEVELS: &[(u64, &str)] = &[
    (0, "SOL_IP"),
    (1, "SOL_SOCKET"),
    (6, "SOL_TCP"),
    (17, "SOL_UDP"),
    (41, "SOL_IPV6"),
    (263, "SOL_PACKET"),
    (270, "SOL_NETLINK"),
];
const SOCKET_OPTS: &[(u64, &str)] = &[
    (2, "SO_REUSEADDR"),
    (3, "SO_TYPE"),
    (4, "SO_ERROR"),
    (7, "SO_SNDBUF"),
    (8, "SO_RCVBUF"),
    (9, "SO_KEEPALIVE"),
    (13, "SO_LINGER"),
    (15, "SO_REUSEPORT"),
    (16, "SO_PASSCRED"),
    (17, "SO_PEERCRED"),
    (26, "SO_ATTACH_FILTER"),
    (50, "SO_ATTACH_BPF"),
];
const TCP_OPTS: &[(u64, &str)] = &[
    (1, "TCP_NODELAY"),
    (3, "TCP_CORK"),
    (4, "TCP_KEEPIDLE"),
    (5, "TCP_KEEPINTVL"),
    (6, "TCP_KEEPCNT"),
    (9, "TCP_DEFER_ACCEPT"),
    (11, "TCP_INFO"),
    (23, "TCP_FASTOPEN"),
];
const IP_OPTS: &[(u64, &str)] = &[(19, "IP_TRANSPARENT"), (21, "IP_RECVORIGDSTADDR")];
const IPV6_OPTS: &[(u64, &str)] = &[(26, "IPV6_V6ONLY")];
const PERSONAS: &[(u64, &str)] = &[
    (0, "PER_LINUX"),
    (8, "PER_LINUX32"),
    (0x0040000, "ADDR_NO_RANDOMIZE"),
    (0x0400000, "READ_IMPLIES_EXEC"),
    (0xffff_ffff, "query"),
];

const fn arg(index: usize, name: &'static str, mask: u64, decode: Decode) -> Arg {
    Arg {
        index,
        name,
        mask,
        decode,
    }
}

const SOCKET_ARGS: &[Arg] = &[
    arg(0, "domain", U32, Decode::Enum(FAMILIES)),
    arg(
        1,
        "type",
        U32 & !(SOCK_NONBLOCK | SOCK_CLOEXEC),
        Decode::Enum(SOCK_TYPES),
    ),
    arg(2, "protocol", U32, Decode::Number),
];
const PROT2: &[Arg] = &[arg(2, "prot", PROT_WRITE | PROT_EXEC, Decode::Flags(PROTS))];
const SOCKOPT_ARGS: &[Arg] = &[
    arg(1, "level", U32, Decode::Enum(LEVELS)),
    arg(2, "optname", U32, Decode::SockOpt),
];
/// Memory that is not executable: the allocator's.
const NOT_EXEC: &[Values] = &[[0, 0, 0], [0, 0, PROT_WRITE]];
/// Socket options a server sets or reads per connection, depending on its clients
/// (keep-alive turns TCP_NODELAY on in nginx, an upstream's connect reads SO_ERROR): a run
/// that learned from other clients would otherwise break on them. Filters, transparent
/// proxying and the rest stay as learned.
const CONNECTION_OPTS: &[Values] = &[
    [0, 1, 2],   // SO_REUSEADDR
    [0, 1, 3],   // SO_TYPE
    [0, 1, 4],   // SO_ERROR
    [0, 1, 7],   // SO_SNDBUF
    [0, 1, 8],   // SO_RCVBUF
    [0, 1, 9],   // SO_KEEPALIVE
    [0, 1, 13],  // SO_LINGER
    [0, 6, 1],   // TCP_NODELAY
    [0, 6, 3],   // TCP_CORK
    [0, 6, 4],   // TCP_KEEPIDLE
    [0, 6, 5],   // TCP_KEEPINTVL
    [0, 6, 6],   // TCP_KEEPCNT
    [0, 6, 11],  // TCP_INFO
    [0, 41, 26], // IPV6_V6ONLY
];
/// What a descriptor's flags are (close-on-exec, non-blocking) and its duplicates: what
/// libraries do on any descriptor they are handed. Signals, leases and locks stay as learned.
const DESCRIPTOR_FCNTLS: &[Values] = &[
    [0, 0, 0],    // F_DUPFD
    [0, 1, 0],    // F_GETFD
    [0, 2, 0],    // F_SETFD
    [0, 3, 0],    // F_GETFL
    [0, 4, 0],    // F_SETFL
    [0, 1030, 0], // F_DUPFD_CLOEXEC
];
/// Requests libraries make on any descriptor: non-blocking, close-on-exec, bytes to read,
/// and whether it is a terminal (isatty's TCGETS, the window size). Terminal input and the
/// rest stay as learned.
const DESCRIPTOR_IOCTLS: &[Values] = &[
    [0, 0x5401, 0], // TCGETS
    [0, 0x5413, 0], // TIOCGWINSZ
    [0, 0x541b, 0], // FIONREAD
    [0, 0x5421, 0], // FIONBIO
    [0, 0x5450, 0], // FIONCLEX
    [0, 0x5451, 0], // FIOCLEX
];

const fn call(
    syscall: &'static str,
    args: &'static [Arg],
    always: &'static [Values],
    why: &'static str,
) -> CallArgs {
    CallArgs {
        syscall,
        args,
        always,
        why,
    }
}

/// Every syscall whose arguments phasebox records.
pub const CALLS: &[CallArgs] = &[
    call(
        "socket",
        SOCKET_ARGS,
        &[],
        "the family and type: netlink, packet, raw and vsock sockets reach the kernel and \
         the host, not the network a server serves",
    ),
    call("socketpair", SOCKET_ARGS, &[], "as socket"),
    call(
        "clone",
        &[arg(0, "flags", CLONE_MASK, Decode::Flags(CLONE_FLAGS))],
        &[],
        "threads or processes, and new namespaces (CLONE_NEWUSER opens the kernel's \
         namespaced attack surface)",
    ),
    call(
        "unshare",
        &[arg(0, "flags", UNSHARE_MASK, Decode::Flags(CLONE_FLAGS))],
        &[],
        "as clone",
    ),
    call(
        "setns",
        &[arg(1, "nstype", U32, Decode::Flags(CLONE_FLAGS))],
        &[],
        "which namespace is entered",
    ),
    call(
        "mmap",
        PROT2,
        NOT_EXEC,
        "executable mappings (code loading) apart from data ones",
    ),
    call("mprotect", PROT2, NOT_EXEC, "as mmap"),
    call("pkey_mprotect", PROT2, NOT_EXEC, "as mmap"),
    call(
        "openat",
        &[arg(2, "flags", OPEN_MASK, Decode::Open)],
        &[],
        "reading apart from writing, creating, truncating and appending",
    ),
    call(
        "open",
        &[arg(1, "flags", OPEN_MASK, Decode::Open)],
        &[],
        "as openat",
    ),
    call(
        "ioctl",
        &[arg(1, "request", U32, Decode::Enum(IOCTLS))],
        DESCRIPTOR_IOCTLS,
        "the request (TIOCSTI injects terminal input)",
    ),
    call(
        "fcntl",
        &[arg(1, "cmd", U32, Decode::Enum(FCNTLS))],
        DESCRIPTOR_FCNTLS,
        "the command",
    ),
    call(
        "prctl",
        &[arg(0, "option", U32, Decode::Enum(PRCTLS))],
        &[],
        "the option",
    ),
    call(
        "setsockopt",
        SOCKOPT_ARGS,
        CONNECTION_OPTS,
        "the option (filters, transparent proxying)",
    ),
    call("getsockopt", SOCKOPT_ARGS, CONNECTION_OPTS, "as setsockopt"),
    call(
        "personality",
        &[arg(0, "persona", U32, Decode::Flags(PERSONAS))],
        &[],
        "READ_IMPLIES_EXEC makes every readable mapping executable",
    ),
];

/// The entry for syscall `name`.
pub fn of(name: &str) -> Option<&'static CallArgs> {
    CALLS.iter().find(|c| c.syscall == name)
}

impl CallArgs {
    /// The kernel's spec: a mask per argument slot.
    pub fn spec(&self) -> ArgSpec {
        let mut masks = [0; ARG_SLOTS];
        for a in self.args {
            masks[a.index] = a.mask;
        }
        ArgSpec { masks }
    }

    /// `name(A, B)`: the recorded arguments as names.
    pub fn describe(&self, v: &Values) -> String {
        format!("{}({})", self.syscall, self.arguments(v))
    }

    /// `A, B`: the recorded arguments as names.
    pub fn arguments(&self, v: &Values) -> String {
        let parts: Vec<String> = self.args.iter().map(|a| decode(a, v[a.index], v)).collect();
        parts.join(", ")
    }
}

/// Call `name` with values `v` as text (`openat(O_WRONLY|O_CREAT)`); the bare name when its
/// arguments are not recorded.
pub fn describe(name: &str, v: &Values) -> String {
    of(name).map_or_else(|| name.to_string(), |c| c.describe(v))
}

/// Call `name` as a seccomp filter or notification sees it (its raw arguments): its recorded
/// arguments masked and named (`openat(O_WRONLY|O_CREAT)`), or the bare name.
pub fn describe_raw(name: &str, raw: &[u64]) -> String {
    let Some(c) = of(name) else {
        return name.to_string();
    };
    let spec = c.spec();
    let mut v = Values::default();
    for (i, slot) in v.iter_mut().enumerate() {
        *slot = raw.get(i).copied().unwrap_or(0) & spec.masks[i];
    }
    c.describe(&v)
}

/// A value among named ones, or the number.
fn enum_name(names: &[(u64, &str)], v: u64) -> String {
    names
        .iter()
        .find(|(n, _)| *n == v)
        .map_or_else(|| number(v), |(_, s)| s.to_string())
}

fn number(v: u64) -> String {
    if v < 4096 {
        v.to_string()
    } else {
        format!("{v:#x}")
    }
}

/// Named bits joined with `|` (what no name covers as a number); `zero` when none is set.
fn flags(names: &[(u64, &str)], v: u64, zero: &str) -> String {
    let mut out = String::new();
    let mut left = v;
    for (bit, name) in names {
        if *bit != 0 && v & bit == *bit && bit.count_ones() == 1 {
            if !out.is_empty() {
                out.push('|');
            }
            out.push_str(name);
            left &= !bit;
        }
    }
    if left != 0 {
        if !out.is_empty() {
            out.push('|');
        }
        let _ = write!(out, "{left:#x}");
    }
    if out.is_empty() {
        zero.to_string()
    } else {
        out
    }
}

fn decode(a: &Arg, v: u64, all: &Values) -> String {
    match a.decode {
        Decode::Enum(names) => enum_name(names, v),
        Decode::Flags(names) => {
            // A persona is a value with flag bits; every other flag set reads 0 as nothing set.
            match names.iter().find(|(n, _)| *n == v && v.count_ones() != 1) {
                Some((_, s)) => s.to_string(),
                None => flags(names, v, "0"),
            }
        }
        Decode::Open => {
            let mode = match v & O_ACCMODE {
                0 => "O_RDONLY",
                1 => "O_WRONLY",
                2 => "O_RDWR",
                _ => "O_ACCMODE",
            };
            let rest = flags(OPEN_FLAGS, v & !O_ACCMODE, "");
            if rest.is_empty() {
                mode.to_string()
            } else {
                format!("{mode}|{rest}")
            }
        }
        Decode::SockOpt => {
            let names = match all[1] {
                1 => SOCKET_OPTS,
                6 => TCP_OPTS,
                0 => IP_OPTS,
                41 => IPV6_OPTS,
                _ => &[],
            };
            enum_name(names, v)
        }
        Decode::Number => number(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysnames;

    #[test]
    fn every_entry_is_a_syscall_with_arguments_in_the_recorded_slots() {
        for c in CALLS {
            let known = sysnames::number(c.syscall).is_some();
            // open exists on x86_64 only.
            assert!(known || c.syscall == "open", "{}", c.syscall);
            assert!(!c.args.is_empty() && c.spec().any(), "{}", c.syscall);
            for a in c.args {
                assert!(a.index < ARG_SLOTS && a.mask != 0, "{}", c.syscall);
            }
            for v in c.always {
                let spec = c.spec();
                assert!((0..ARG_SLOTS).all(|i| v[i] & !spec.masks[i] == 0));
            }
        }
    }

    #[test]
    fn calls_read_as_their_flags_and_values() {
        assert_eq!(
            describe("openat", &[0, 0, 1 | O_CREAT]),
            "openat(O_WRONLY|O_CREAT)"
        );
        assert_eq!(describe("openat", &[0, 0, 0]), "openat(O_RDONLY)");
        assert_eq!(
            describe("socket", &[16, 3, 0]),
            "socket(AF_NETLINK, SOCK_RAW, 0)"
        );
        assert_eq!(
            describe("mprotect", &[0, 0, PROT_WRITE | PROT_EXEC]),
            "mprotect(PROT_WRITE|PROT_EXEC)"
        );
        assert_eq!(describe("mmap", &[0, 0, 0]), "mmap(PROT_NONE|PROT_READ)");
        assert_eq!(
            describe("setsockopt", &[0, 6, 1]),
            "setsockopt(SOL_TCP, TCP_NODELAY)"
        );
        assert_eq!(describe("ioctl", &[0, 0x5412, 0]), "ioctl(TIOCSTI)");
        assert_eq!(describe("ioctl", &[0, 0xc020_660b, 0]), "ioctl(0xc020660b)");
        assert_eq!(
            describe("clone", &[0x1000_0000 | 0x100, 0, 0]),
            "clone(CLONE_VM|CLONE_NEWUSER)"
        );
        assert_eq!(
            describe("personality", &[0xffff_ffff, 0, 0]),
            "personality(query)"
        );
        assert_eq!(
            describe("personality", &[0x0400000, 0, 0]),
            "personality(READ_IMPLIES_EXEC)"
        );
        assert_eq!(describe("read", &[1, 2, 3]), "read");
        // Raw registers: O_CLOEXEC and the mode argument do not show.
        assert_eq!(
            describe_raw("openat", &[3, 0x7fff_0000, 0o2000101, 0o600, 0, 0]),
            "openat(O_WRONLY|O_CREAT)"
        );
    }

    #[test]
    fn masks_drop_the_flags_that_do_not_change_what_a_call_may_do() {
        let socket = of("socket").unwrap().spec();
        assert_eq!(1 & socket.masks[1], 1);
        assert_eq!((1 | SOCK_NONBLOCK | SOCK_CLOEXEC) & socket.masks[1], 1);
        let openat = of("openat").unwrap().spec();
        // O_RDONLY|O_CLOEXEC|O_NONBLOCK|O_DIRECTORY reads as O_RDONLY.
        assert_eq!((0o2000000 | 0o4000 | 0o200000) & openat.masks[2], 0);
        // clone's exit signal (SIGCHLD) and tid bookkeeping are not kept.
        let clone = of("clone").unwrap().spec();
        assert_eq!((0x0120_0000 | 17) & clone.masks[0], 0);
    }
}
