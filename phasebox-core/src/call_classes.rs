//! Classes of system calls that a learned profile cannot treat like the others, as data with
//! the reason for each entry (docs/seccomp.md, "Call classes"):
//!
//! - [`STATE_DEPENDENT`]: whether a phase makes them depends on allocator, scheduler or timing
//!   state, not on the program's path; once a role made one in any phase, every later phase of
//!   that role allows it ([`effective_sets`]).
//! - [`NO_ERRNO`]: calls whose errno return libc or programs misread as a value; a policy never
//!   answers them with an errno: when not learned they kill the process (loud, not corrupt).
//! - [`FALLBACK`]: calls for which libc or language runtimes fall back to an older call when
//!   the kernel answers ENOSYS; when not learned a policy answers them with ENOSYS.
use std::collections::BTreeSet;

use crate::profile::Role;

/// A call of a class and why it is there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: &'static str,
    pub why: &'static str,
}

const fn e(name: &'static str, why: &'static str) -> Entry {
    Entry { name, why }
}

/// ENOSYS: what a kernel without the call answers.
pub const ENOSYS: u32 = 38;

/// Calls whose use in a phase depends on allocator, scheduler or timing state.
pub const STATE_DEPENDENT: &[Entry] = &[
    e(
        "brk",
        "glibc's malloc grows the main heap with brk whenever its top chunk runs out, which \
         depends on what was freed before, not on the request being served (haproxy and \
         lighttpd made it in serving under load, not under a few requests)",
    ),
    e(
        "mmap",
        "malloc serves requests of 128 KiB and more (M_MMAP_THRESHOLD, which adapts to freed \
         sizes) and new arenas of threads with mmap; stacks of new threads too",
    ),
    e(
        "munmap",
        "free returns mmapped chunks and trims arena heaps with munmap",
    ),
    e("mremap", "realloc of an mmapped chunk moves it with mremap"),
    e(
        "mprotect",
        "a thread's malloc arena (a 64 MiB reservation) is made usable piece by piece with \
         mprotect as it grows (glibc's grow_heap)",
    ),
    e(
        "madvise",
        "free of a large chunk and arena trimming give pages back with MADV_DONTNEED; redis's \
         jemalloc purges dirty pages (redis made madvise and mmap in serving under load only)",
    ),
    e(
        "futex",
        "a futex call happens only when a lock or condition is contended, which depends on how \
         threads are scheduled (memcached and haproxy: in different phases from run to run)",
    ),
    e(
        "sched_yield",
        "spin locks and allocators yield when they lose a race",
    ),
    e(
        "nanosleep",
        "sleeps and back-offs run when a timer or a retry says so",
    ),
    e(
        "clock_nanosleep",
        "as nanosleep (glibc's nanosleep and sleep use clock_nanosleep)",
    ),
    e(
        "set_robust_list",
        "a new thread's first calls (glibc's start_thread) land in whatever phase its process \
         has reached when the thread first runs, which the scheduler decides (redis's \
         background threads: in serving in one run, before it in another)",
    ),
    e("rseq", "a new thread's first calls, as set_robust_list"),
    e(
        "rt_sigprocmask",
        "a new thread's first calls (it restores the signal mask pthread_create blocked), as \
         set_robust_list",
    ),
    e(
        "timer_settime",
        "a watchdog or timeout timer is re-armed when it fires, which load and timing decide \
         (haproxy's watchdog: in serving under load only, denied there otherwise)",
    ),
    e(
        "rt_sigreturn",
        "the return from a signal handler: made whenever a signal arrives, at any point \
         (haproxy's watchdog timer signal: in serving under load only)",
    ),
    e(
        "restart_syscall",
        "the kernel's resumption of a call a stop signal interrupted, at any point",
    ),
];

/// Calls whose errno return is read as a value: never answered with an errno.
pub const NO_ERRNO: &[Entry] = &[
    e(
        "brk",
        "glibc's brk wrapper stores the raw return as the new break and succeeds when it is \
         not below the request: an errno return (-1 as a pointer, the top of memory) is read as \
         a grown heap, and malloc then writes past the real break (SIGSEGV)",
    ),
    e(
        "set_tid_address",
        "documented to always return the caller's thread id; glibc stores that return as the \
         main thread's tid (used by its locks and raise)",
    ),
    e(
        "getpid",
        "documented never to fail: -1 (EPERM) read as a pid makes kill(getpid(), sig) signal \
         every process the program may signal",
    ),
    e(
        "getppid",
        "documented never to fail: kill(getppid(), sig) with -1 signals every process",
    ),
    e(
        "gettid",
        "documented never to fail: tgkill(pid, -1, sig) and per-thread bookkeeping misread it",
    ),
    e(
        "getuid",
        "documented never to fail: -1 is read as uid 4294967295",
    ),
    e(
        "geteuid",
        "documented never to fail: -1 is read as uid 4294967295",
    ),
    e(
        "getgid",
        "documented never to fail: -1 is read as gid 4294967295",
    ),
    e(
        "getegid",
        "documented never to fail: -1 is read as gid 4294967295",
    ),
    e(
        "getpgrp",
        "documented never to fail: kill(-getpgrp(), sig) with -1 signals process group 1",
    ),
    e(
        "umask",
        "documented to always succeed: the -1 it would return is kept as the next mask",
    ),
];

/// Calls that libc or runtimes replace by an older call on ENOSYS.
pub const FALLBACK: &[Entry] = &[
    e(
        "clone3",
        "glibc 2.34+ creates threads and processes with clone3 and falls back to clone on \
         ENOSYS only (EPERM is final: pthread_create and fork fail); Docker answers ENOSYS too",
    ),
    e(
        "faccessat2",
        "glibc's faccessat falls back to faccessat or fstatat on ENOSYS only; Go's \
         syscall.Faccessat on ENOSYS or EPERM",
    ),
    e(
        "close_range",
        "glibc's closefrom falls back to closing through /proc/self/fd when it fails",
    ),
    e(
        "statx",
        "glibc's statx emulates it with fstatat on ENOSYS only; Rust's std falls back on ENOSYS",
    ),
    e(
        "openat2",
        "new in Linux 5.6: programs that use it (runc, systemd) fall back to openat on ENOSYS",
    ),
    e(
        "rseq",
        "glibc 2.35+ registers restartable sequences at thread start and runs without them \
         when registration fails",
    ),
    e(
        "copy_file_range",
        "Go's io.Copy between files falls back to read/write on ENOSYS (and EPERM, EXDEV, \
         EINVAL); so do coreutils",
    ),
    e(
        "getrandom",
        "Go and OpenSSL read /dev/urandom when getrandom answers ENOSYS",
    ),
    e(
        "pidfd_open",
        "Go 1.23+ probes pidfd_open and uses plain pids when the probe fails",
    ),
    e(
        "pidfd_send_signal",
        "Go 1.23+ probes it with pidfd_open and uses kill when the probe fails",
    ),
];

fn find(list: &'static [Entry], name: &str) -> Option<&'static Entry> {
    list.iter().find(|x| x.name == name)
}

/// Whether `name`'s use depends on allocator, scheduler or timing state.
pub fn is_state_dependent(name: &str) -> bool {
    find(STATE_DEPENDENT, name).is_some()
}

/// Whether an errno answer to `name` is misread; the entry says why.
pub fn no_errno(name: &str) -> Option<&'static Entry> {
    find(NO_ERRNO, name)
}

/// Whether libraries fall back from `name` on ENOSYS; the entry says why.
pub fn fallback(name: &str) -> Option<&'static Entry> {
    find(FALLBACK, name)
}

/// The calls each phase allows, from the calls each phase made (in the role's order): its own,
/// and every state-dependent call the role made in it or an earlier phase. Linear in the
/// calls: the state-dependent calls seen so far are carried from phase to phase.
pub fn effective_sets<'a, P, N>(phases: P) -> Vec<BTreeSet<&'a str>>
where
    P: IntoIterator<Item = N>,
    N: IntoIterator<Item = &'a str>,
{
    let mut carried: BTreeSet<&'a str> = BTreeSet::new();
    phases
        .into_iter()
        .map(|names| {
            let mut set: BTreeSet<&'a str> = names.into_iter().collect();
            carried.extend(set.iter().copied().filter(|n| is_state_dependent(n)));
            set.extend(carried.iter().copied());
            set
        })
        .collect()
}

/// [`effective_sets`] of a learned role's phases.
pub fn role_effective_sets(role: &Role) -> Vec<BTreeSet<&str>> {
    effective_sets(role.phases.iter().map(|p| p.names()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysnames;

    #[test]
    fn every_entry_is_a_syscall_with_a_reason_once() {
        for list in [STATE_DEPENDENT, NO_ERRNO, FALLBACK] {
            let mut seen = BTreeSet::new();
            for x in list {
                assert!(sysnames::number(x.name).is_some(), "{}", x.name);
                assert!(x.why.len() > 20, "{} needs a reason", x.name);
                assert!(seen.insert(x.name), "{} twice", x.name);
            }
        }
        // A fallback call answered ENOSYS must not be one whose errno is misread.
        assert!(FALLBACK.iter().all(|f| no_errno(f.name).is_none()));
    }

    #[test]
    fn state_dependent_calls_carry_to_later_phases_only() {
        let sets = effective_sets([
            vec!["execve", "openat"],
            vec!["brk", "mmap", "socket"],
            vec!["accept4", "read"],
            vec!["exit_group", "futex"],
        ]);
        assert_eq!(sets[0], ["execve", "openat"].into());
        assert_eq!(sets[1], ["brk", "mmap", "socket"].into());
        // brk and mmap carried; socket (the program's path) is not.
        assert_eq!(sets[2], ["accept4", "brk", "mmap", "read"].into());
        assert_eq!(sets[3], ["brk", "exit_group", "futex", "mmap"].into());
        assert!(effective_sets(Vec::<Vec<&str>>::new()).is_empty());
    }

    #[test]
    fn many_phases_take_linear_work() {
        // 5,000 phases, each with its own call and one state-dependent call from the first:
        // every set holds exactly its own call and the carried ones.
        let names: Vec<String> = (0..5000).map(|i| format!("p{i}")).collect();
        let phases: Vec<Vec<&str>> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let mut v = vec![n.as_str()];
                if i == 0 {
                    v.push("madvise");
                }
                v
            })
            .collect();
        let sets = effective_sets(phases);
        assert_eq!(sets.len(), 5000);
        assert!(sets.iter().skip(1).all(|s| s.len() == 2));
        assert_eq!(sets.iter().map(BTreeSet::len).sum::<usize>(), 10000);
    }

    /// The names of the table after `marker` in docs/seccomp.md, in order.
    fn documented(marker: &str) -> Vec<String> {
        let doc = include_str!("../../docs/seccomp.md");
        let at = doc
            .find(marker)
            .unwrap_or_else(|| panic!("{marker} missing"));
        doc[at..]
            .lines()
            .skip(3)
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                l.split('|')
                    .nth(1)
                    .unwrap()
                    .trim()
                    .trim_matches('`')
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn the_documentation_lists_every_entry() {
        for (marker, list) in [
            ("<!-- class-state-dependent -->", STATE_DEPENDENT),
            ("<!-- class-no-errno -->", NO_ERRNO),
            ("<!-- class-fallback -->", FALLBACK),
        ] {
            let mut doc = documented(marker);
            let mut data: Vec<String> = list.iter().map(|e| e.name.to_string()).collect();
            doc.sort();
            data.sort();
            assert_eq!(doc, data, "docs/seccomp.md {marker}");
        }
    }

    #[test]
    fn lookups() {
        assert!(is_state_dependent("brk") && !is_state_dependent("socket"));
        assert!(no_errno("brk").is_some() && no_errno("read").is_none());
        assert!(fallback("clone3").is_some() && fallback("clone").is_none());
    }
}
