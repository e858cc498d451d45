//! Operations coverage for every program: the calls static analysis finds reachable in a
//! program's code that no run of its profile made, grouped by what they serve (persistence,
//! child processes, configuration rewrite…) and ranked, most likely needed first, each with a
//! call chain from the program's entry. A profile learned without an operations rule set (such
//! as nginx's, operations.rs) gets this instead of named operations: a server whose BGSAVE
//! was never exercised shows `wait4` and `fsync` here before production does.
use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::Profile;
use super::static_section::StaticSection;
use crate::sysnames;

/// What a group of calls serves: a call belongs to the first purpose that lists it and whose
/// hints (if any) are in the name of one of the program's last two functions on its chain
/// (the one making the call, and its caller).
struct Purpose {
    name: &'static str,
    serves: &'static str,
    syscalls: &'static [&'static str],
    /// Words the name of one of the program's last two frames must contain (any case); empty:
    /// none needed.
    hints: &'static [&'static str],
}

const PURPOSES: &[Purpose] = &[
    Purpose {
        name: "configuration rewrite",
        serves: "the configuration file written anew beside itself and renamed over the old one",
        syscalls: &[
            "rename",
            "renameat",
            "renameat2",
            "fsync",
            "fdatasync",
            "fchmod",
            "fchown",
            "umask",
            "unlink",
            "unlinkat",
            "ftruncate",
            "getcwd",
        ],
        hints: &["config", "conf_", "conffile"],
    },
    Purpose {
        name: "log reopening",
        serves: "logs reopened, renamed or handed to another user after rotation",
        syscalls: &[
            "dup2",
            "dup3",
            "chown",
            "fchown",
            "fchownat",
            "lchown",
            "fchmod",
            "rename",
            "renameat",
            "renameat2",
        ],
        hints: &["log", "reopen", "rotate"],
    },
    Purpose {
        name: "persistence",
        serves: "data flushed to disk and renamed into place",
        syscalls: &[
            "fsync",
            "fdatasync",
            "sync_file_range",
            "sync",
            "syncfs",
            "msync",
            "rename",
            "renameat",
            "renameat2",
            "ftruncate",
            "fallocate",
            "link",
            "linkat",
        ],
        hints: &[],
    },
    Purpose {
        name: "child processes",
        serves: "processes forked, run and reaped",
        syscalls: &[
            "clone",
            "clone3",
            "fork",
            "vfork",
            "wait4",
            "waitid",
            "execve",
            "execveat",
            "pidfd_open",
        ],
        hints: &[],
    },
    Purpose {
        name: "signals",
        serves: "signals sent to other processes, waited for or handled on their own stack",
        syscalls: &[
            "kill",
            "tgkill",
            "tkill",
            "rt_sigqueueinfo",
            "rt_tgsigqueueinfo",
            "pidfd_send_signal",
            "rt_sigsuspend",
            "rt_sigtimedwait",
            "pause",
            "sigaltstack",
            "signalfd",
            "signalfd4",
            "alarm",
        ],
        hints: &[],
    },
    Purpose {
        name: "privileges",
        serves: "user, group and capability changes, chroot",
        syscalls: sysnames::PRIVILEGE_CHANGES,
        hints: &[],
    },
    Purpose {
        name: "files and directories",
        serves: "files and directories created, removed or changed",
        syscalls: &[
            "unlink",
            "unlinkat",
            "mkdir",
            "mkdirat",
            "rmdir",
            "chmod",
            "fchmod",
            "fchmodat",
            "chown",
            "fchown",
            "fchownat",
            "lchown",
            "symlink",
            "symlinkat",
            "truncate",
            "utimensat",
            "futimesat",
            "utimes",
            "chdir",
            "fchdir",
            "flock",
        ],
        hints: &[],
    },
    Purpose {
        name: "outgoing connections",
        serves: "connections and datagrams the program starts: replication, upstreams, DNS",
        syscalls: &[
            "connect",
            "sendto",
            "sendmsg",
            "sendmmsg",
            "recvfrom",
            "recvmsg",
            "recvmmsg",
            "socket",
            "socketpair",
            "shutdown",
        ],
        hints: &[],
    },
    Purpose {
        name: "daemon and sessions",
        serves: "detaching from the terminal, process groups and sessions",
        syscalls: &["setsid", "setpgid", "getsid", "getpgid"],
        hints: &[],
    },
];

/// The order groups are shown in: first what most often breaks a server whose learning never
/// exercised it (a save, a fork and its reaping, a configuration rewrite, a log rotation),
/// then the rest.
const SHOWN: &[&str] = &[
    "persistence",
    "child processes",
    "configuration rewrite",
    "log reopening",
    "signals",
    "privileges",
    "daemon and sessions",
    "outgoing connections",
    "files and directories",
];

/// Names of the "other" calls shown; the rest are counted.
const OTHER_SHOWN: usize = 12;

/// How directly the program's own code makes a call; lower is more likely needed. Compared
/// field by field, in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rank {
    /// 0: a function of the program makes it through direct calls (a libc wrapper, or deeper);
    /// 1: a library the program calls makes it through a pointer (a callback, a vtable);
    /// 2: only code inside libraries does (the loader, or code no function of the program
    /// leads to).
    pub tier: u8,
    /// Steps through a pointer below the program's last frame.
    pub pointers_below: usize,
    /// Libraries the chain goes through below the program's last frame.
    pub libraries: usize,
    /// Frames below the program's last frame.
    pub depth: usize,
    /// How many of the program's functions make it, more first.
    pub callers: std::cmp::Reverse<usize>,
}

/// One reachable call no run made, through one chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnseenCall {
    pub name: String,
    pub chain: Vec<String>,
    pub rank: Rank,
}

/// The unseen calls of one purpose, most likely needed first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub purpose: &'static str,
    pub serves: &'static str,
    pub calls: Vec<UnseenCall>,
}

/// A profile's operations coverage against a static analysis of its program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coverage {
    /// The program's object name in chains (`redis-server`).
    pub program: String,
    /// Where the analysis came from (a static profile, or "static analysis of PATH").
    pub origin: String,
    /// Groups in the order of [`SHOWN`].
    pub groups: Vec<Group>,
    /// Unseen calls no purpose lists, most likely needed first.
    pub other: Vec<UnseenCall>,
    /// Distinct unseen calls in all.
    pub total: usize,
}

/// Whether `p` gets coverage warnings: a learned profile whose rule set names no operations
/// (those get operations.rs's warnings), not a static profile itself.
pub fn applies(p: &Profile) -> bool {
    super::operations::recognize(p).is_none() && p.runs.iter().any(|r| r.how != "static")
}

/// The rank of `chain` in a program whose frames start with `program:`; `callers` is how
/// many of the program's functions make the call.
pub fn rank(chain: &[String], program: &str, callers: usize) -> Rank {
    let frames = program_frames(chain, program);
    let last = frames.last().map(|&(i, _)| i);
    let below = &chain[last.map_or(0, |i| i + 1)..];
    let pointers_below = below.iter().filter(|f| f.starts_with('*')).count();
    let mut libraries: Vec<&str> = below
        .iter()
        .map(|f| f.trim_start_matches('*').split(':').next().unwrap_or(""))
        .collect();
    libraries.dedup();
    Rank {
        tier: match last {
            None => 2,
            Some(_) => u8::from(pointers_below > 0),
        },
        pointers_below,
        libraries: libraries.len(),
        depth: below.len(),
        callers: std::cmp::Reverse(callers),
    }
}

/// The frames of `chain` in the program's own code (its entry stub left out): their index and
/// function name.
fn program_frames<'c>(chain: &'c [String], program: &str) -> Vec<(usize, &'c str)> {
    let prefix = format!("{program}:");
    chain
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let name = f.trim_start_matches('*').strip_prefix(&prefix)?;
            (name != "_start").then_some((i, name))
        })
        .collect()
}

/// The purpose `chain` of call `name` serves, if one lists it.
fn purpose_of(name: &str, chain: &[String], program: &str) -> Option<&'static Purpose> {
    let frames = program_frames(chain, program);
    let last: Vec<String> = frames
        .iter()
        .rev()
        .take(2)
        .map(|(_, f)| f.to_lowercase())
        .collect();
    PURPOSES.iter().find(|p| {
        p.syscalls.contains(&name)
            && (p.hints.is_empty() || p.hints.iter().any(|h| last.iter().any(|f| f.contains(h))))
    })
}

/// The program's name in chains: the file name of `path` without a `.so…` suffix.
pub fn object_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    match file.find(".so") {
        Some(i) if i > 0 => file[..i].to_string(),
        _ => file.to_string(),
    }
}

/// What `analysis` (of the program at `static_program`) finds reachable that `p` never used,
/// grouped and ranked; `origin` says where the analysis came from.
pub fn coverage(
    p: &Profile,
    analysis: &StaticSection,
    static_program: &str,
    origin: &str,
) -> Coverage {
    let program = object_name(static_program);
    let used: BTreeSet<&str> = p.roles.iter().flat_map(|r| r.union()).collect();
    let mut groups: Vec<Group> = Vec::new();
    let mut other = Vec::new();
    let mut total = 0;
    for (name, reach) in &analysis.reachable_from {
        if used.contains(name.as_str()) {
            continue;
        }
        total += 1;
        let callers = 1 + reach.also.len();
        let chains = std::iter::once(&reach.chain).chain(&reach.also);
        let mut placed = false;
        for chain in chains {
            let Some(purpose) = purpose_of(name, chain, &program) else {
                continue;
            };
            placed = true;
            let call = UnseenCall {
                name: name.clone(),
                chain: chain.clone(),
                rank: rank(chain, &program, callers),
            };
            add(&mut groups, purpose, call);
        }
        if !placed {
            other.push(UnseenCall {
                name: name.clone(),
                chain: reach.chain.clone(),
                rank: rank(&reach.chain, &program, callers),
            });
        }
    }
    for g in &mut groups {
        g.calls
            .sort_by(|a, b| (a.rank, &a.name).cmp(&(b.rank, &b.name)));
    }
    groups.sort_by_key(|g| SHOWN.iter().position(|&p| p == g.purpose));
    other.sort_by(|a, b| (a.rank, &a.name).cmp(&(b.rank, &b.name)));
    Coverage {
        program,
        origin: origin.to_string(),
        groups,
        other,
        total,
    }
}

/// Adds `call` to its purpose's group, keeping the best chain per call.
fn add(groups: &mut Vec<Group>, purpose: &'static Purpose, call: UnseenCall) {
    let i = match groups.iter().position(|g| g.purpose == purpose.name) {
        Some(i) => i,
        None => {
            groups.push(Group {
                purpose: purpose.name,
                serves: purpose.serves,
                calls: Vec::new(),
            });
            groups.len() - 1
        }
    };
    let calls = &mut groups[i].calls;
    match calls.iter_mut().find(|c| c.name == call.name) {
        Some(c) if call.rank < c.rank => *c = call,
        Some(_) => {}
        None => calls.push(call),
    }
}

/// Library frames shown below the program's last frame; longer tails are elided in the
/// middle.
const TAIL_SHOWN: usize = 4;

/// The chain from the program's last frame above the call (or the chain's last frames), such
/// as `redis-server:checkChildrenDone -> libc:waitpid -> libc:wait4`.
fn short(chain: &[String], program: &str) -> String {
    let from = program_frames(chain, program)
        .last()
        .map_or(chain.len().saturating_sub(TAIL_SHOWN), |&(i, _)| i);
    let tail = &chain[from..];
    if tail.len() <= TAIL_SHOWN + 1 {
        return tail.join(" -> ");
    }
    let end = &tail[tail.len() - (TAIL_SHOWN - 1)..];
    format!("{} -> {} -> … -> {}", tail[0], tail[1], end.join(" -> "))
}

/// The coverage as the text of one warning: a header, a block per group, the other calls'
/// names, how calls are ranked, and what to do.
pub fn render(c: &Coverage) -> String {
    let mut out = String::new();
    if c.total == 0 {
        let _ = write!(
            out,
            "every call {} finds reachable in {} was made by a run of this profile",
            c.origin, c.program
        );
        return out;
    }
    let _ = writeln!(
        out,
        "{} call{} that {}'s code can reach ({}) no run of this profile made, by what they serve:",
        c.total,
        if c.total == 1 { "" } else { "s" },
        c.program,
        c.origin
    );
    groups(&mut out, c);
    others(&mut out, c);
    let _ = write!(
        out,
        "  Most likely needed first in each group: calls the program's functions make through \
         direct calls, then those a library makes through a pointer, then those only inside \
         libraries; then fewer pointer steps, libraries crossed and frames, and more of the \
         program's functions making the call.\n  Learn through the operations these serve (a \
         scenario each, docs/scenarios.md), or allow what they need with export --hybrid \
         STATIC.json --allow-reachable NAME,…"
    );
    out
}

/// A block per group: its purpose, then each call with where it is reachable from.
fn groups(out: &mut String, c: &Coverage) {
    let width = c
        .groups
        .iter()
        .flat_map(|g| &g.calls)
        .map(|x| x.name.len())
        .max()
        .unwrap_or(0);
    for g in &c.groups {
        let _ = writeln!(out, "  {} ({}):", g.purpose, g.serves);
        for call in &g.calls {
            let _ = writeln!(
                out,
                "    {:<width$}  {}",
                call.name,
                short(&call.chain, &c.program)
            );
        }
    }
}

/// The names of the calls no group takes, the first [`OTHER_SHOWN`] of them.
fn others(out: &mut String, c: &Coverage) {
    if c.other.is_empty() {
        return;
    }
    let names: Vec<&str> = c
        .other
        .iter()
        .take(OTHER_SHOWN)
        .map(|x| x.name.as_str())
        .collect();
    let more = c.other.len().saturating_sub(OTHER_SHOWN);
    let _ = writeln!(
        out,
        "  other: {}{}",
        names.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    );
}

#[cfg(test)]
mod tests {
    use super::super::static_section::Reach;
    use super::super::tests::sample;
    use super::*;

    fn chain(frames: &str) -> Vec<String> {
        frames.split(" -> ").map(str::to_string).collect()
    }

    fn reach(main: &str, also: &[&str]) -> Reach {
        Reach {
            chain: chain(main),
            how: "syscall instruction".into(),
            also: also.iter().map(|c| chain(c)).collect(),
        }
    }

    /// A static section of redis-server as phasebox static writes it (chains abridged).
    fn redis() -> StaticSection {
        let mut s = StaticSection::default();
        let start = "redis-server:_start -> *redis-server:main";
        let cron = format!("{start} -> redis-server:initServer -> *redis-server:serverCron");
        for (name, main, also) in [
            ("read", format!("{start} -> libc:read"), vec![]),
            (
                "fsync",
                format!("{start} -> redis-server:rewriteAppendOnlyFile -> libc:fsync"),
                vec![format!(
                    "{start} -> redis-server:rewriteConfig -> redis-server:rewriteConfigOverwriteFile -> libc:fsync"
                )],
            ),
            (
                "rename",
                format!("{cron} -> redis-server:rdbSave -> libc:rename"),
                vec![format!(
                    "{start} -> redis-server:rewriteConfig -> redis-server:rewriteConfigOverwriteFile -> libc:rename"
                )],
            ),
            (
                "wait4",
                format!("{cron} -> redis-server:checkChildrenDone -> libc:waitpid -> libc:wait4"),
                vec![],
            ),
            (
                "shmget",
                format!(
                    "{start} -> redis-server:tlsInit -> libcrypto:RAND_poll -> *libcrypto:sub_1 -> libc:shmget"
                ),
                vec![],
            ),
            (
                "getpid",
                "ld-linux-x86-64:_start -> ld-linux-x86-64:sub_4a90".to_string(),
                vec![],
            ),
            (
                "readlinkat",
                format!(
                    "{start} -> libc:getpwnam -> *libnss_systemd:_nss_systemd_getpwnam_r -> libc:readlinkat"
                ),
                vec![],
            ),
        ] {
            let also: Vec<&str> = also.iter().map(String::as_str).collect();
            s.reachable_from.insert(name.into(), reach(&main, &also));
        }
        s
    }

    #[test]
    fn ranks_by_how_directly_the_program_makes_the_call() {
        let r = |c: &str| rank(&chain(c), "redis-server", 1);
        let direct =
            r("redis-server:_start -> *redis-server:main -> redis-server:rdbSave -> libc:fsync");
        let deeper = r(
            "redis-server:_start -> *redis-server:main -> redis-server:checkChildrenDone -> libc:waitpid -> libc:wait4",
        );
        let two_libraries =
            r("redis-server:_start -> *redis-server:main -> libsystemd:sd_notify -> libc:sendmsg");
        let pointer = r(
            "redis-server:_start -> *redis-server:main -> libcrypto:RAND_poll -> *libcrypto:sub_1 -> libc:shmget",
        );
        let library = r("ld-linux-x86-64:_start -> ld-linux-x86-64:sub_4a90");
        assert_eq!((direct.tier, direct.libraries, direct.depth), (0, 1, 1));
        assert_eq!((deeper.tier, deeper.libraries, deeper.depth), (0, 1, 2));
        assert_eq!((two_libraries.tier, two_libraries.libraries), (0, 2));
        assert_eq!((pointer.tier, pointer.pointers_below), (1, 1));
        assert_eq!(library.tier, 2);
        assert!(direct < deeper && deeper < two_libraries && two_libraries < pointer);
        assert!(pointer < library);
        // Made by more of the program's functions: more likely needed.
        let many = rank(
            &chain(
                "redis-server:_start -> *redis-server:main -> redis-server:checkChildrenDone -> libc:waitpid -> libc:wait4",
            ),
            "redis-server",
            4,
        );
        assert!(many < deeper && direct < many);
        // The program's entry stub is no function of its own code.
        assert_eq!(
            r("redis-server:_start -> libc:__libc_start_main -> libc:exit").tier,
            2
        );
    }

    #[test]
    fn groups_by_purpose_with_the_chain_that_serves_it() {
        let p = sample(&[("main", &[("steady", &["read", "getpid"])])]);
        let c = coverage(&p, &redis(), "/usr/bin/redis-server", "redis.static.json");
        assert_eq!(c.total, 5, "{c:#?}");
        let names = |g: &Group| -> Vec<String> { g.calls.iter().map(|x| x.name.clone()).collect() };
        let group = |purpose: &str| {
            c.groups
                .iter()
                .find(|g| g.purpose == purpose)
                .unwrap_or_else(|| panic!("no {purpose}: {c:#?}"))
        };
        // A call reachable for two purposes is in both, each with its own chain.
        assert_eq!(names(group("configuration rewrite")), ["fsync", "rename"]);
        assert!(
            group("configuration rewrite").calls[1]
                .chain
                .contains(&"redis-server:rewriteConfigOverwriteFile".to_string())
        );
        assert_eq!(names(group("persistence")), ["fsync", "rename"]);
        assert_eq!(names(group("child processes")), ["wait4"]);
        let other: Vec<&str> = c.other.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(other, ["shmget", "readlinkat"]);
        // Groups come in a fixed order, what most often breaks first.
        let order: Vec<&str> = c.groups.iter().map(|g| g.purpose).collect();
        assert_eq!(
            order,
            ["persistence", "child processes", "configuration rewrite"]
        );
        let text = render(&c);
        assert!(
            text.starts_with(
                "5 calls that redis-server's code can reach (redis.static.json) no run"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "    wait4   redis-server:checkChildrenDone -> libc:waitpid -> libc:wait4\n"
            ),
            "{text}"
        );
        assert!(text.contains("  other: shmget, readlinkat\n"), "{text}");
    }

    #[test]
    fn nothing_unseen_and_profiles_it_does_not_apply_to() {
        let mut s = StaticSection::default();
        s.reachable_from
            .insert("read".into(), reach("a:_start -> libc:read", &[]));
        let mut p = sample(&[("main", &[("steady", &["read"])])]);
        let c = coverage(&p, &s, "/bin/a", "static analysis of /bin/a");
        assert_eq!(c.total, 0);
        assert!(render(&c).starts_with("every call static analysis of /bin/a finds"));
        p.runs[0].rules = "generic".into();
        assert!(applies(&p));
        p.runs[0].rules = "nginx".into();
        assert!(!applies(&p), "nginx's rules name its operations");
        p.runs[0].rules = "generic".into();
        p.runs[0].how = "static".into();
        assert!(!applies(&p), "a static profile");
    }
}
