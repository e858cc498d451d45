//! The segmenter on synthetic call sequences shaped like real programs' (loader, configuration,
//! sockets, an interleaving serving loop, a shutdown).
use super::*;
use crate::sysnames;

/// A call: syscall name and path argument.
type Call = (&'static str, Option<&'static str>);

fn call(name: &'static str) -> Call {
    (name, None)
}

/// The loader mapping `n` libraries.
fn loading(n: usize) -> Vec<Call> {
    let mut v = vec![
        call("brk"),
        call("mmap"),
        ("access", Some("/etc/ld.so.preload")),
        ("openat", Some("/etc/ld.so.cache")),
        call("newfstatat"),
        call("mmap"),
        call("close"),
    ];
    for _ in 0..n {
        v.push(("openat", Some("/lib/x86_64-linux-gnu/libfoo.so.1")));
        v.extend(
            [
                "read",
                "newfstatat",
                "mmap",
                "mmap",
                "mmap",
                "mmap",
                "close",
            ]
            .map(call),
        );
    }
    v.extend(
        [
            "arch_prctl",
            "set_tid_address",
            "set_robust_list",
            "rseq",
            "mprotect",
            "mprotect",
            "prlimit64",
            "munmap",
            "getrandom",
            "brk",
        ]
        .map(call),
    );
    v
}

/// A server's start: exec, loader, configuration, privileges, listening socket.
fn startup() -> Vec<Call> {
    let mut v = vec![("execve", Some("/usr/sbin/srv"))];
    v.extend(loading(5));
    v.push(("openat", Some("/etc/srv/srv.conf")));
    v.extend(["newfstatat", "read", "read", "close"].map(call));
    v.extend(
        [
            "getpid",
            "rt_sigaction",
            "rt_sigaction",
            "rt_sigaction",
            "umask",
        ]
        .map(call),
    );
    v.extend(["setgid", "setgroups", "setuid", "prctl"].map(call));
    v.extend(["socket", "setsockopt", "bind", "listen"].map(call));
    v.extend(["epoll_create1", "epoll_ctl"].map(call));
    v
}

/// `rounds` of a serving loop that interleaves like redis under load: a burst of accepts,
/// a burst of reads, a burst of writes, a burst of closes, each 50 clients long.
fn serving(rounds: usize) -> Vec<Call> {
    let mut v = Vec::new();
    for _ in 0..rounds {
        v.push(call("epoll_wait"));
        for _ in 0..50 {
            v.extend(["accept4", "setsockopt", "epoll_ctl", "getpeername"].map(call));
        }
        for _ in 0..4 {
            v.push(call("epoll_wait"));
            v.extend(std::iter::repeat_n(call("read"), 50));
            v.extend(std::iter::repeat_n(call("write"), 50));
        }
        for _ in 0..50 {
            v.extend(["read", "epoll_ctl", "close"].map(call));
        }
    }
    v
}

fn shutdown() -> Vec<Call> {
    vec![
        call("write"),
        ("openat", Some("/var/lib/srv/temp.rdb")),
        call("write"),
        call("fsync"),
        call("close"),
        ("rename", Some("/var/lib/srv/temp.rdb")),
        call("close"),
        call("exit_group"),
    ]
}

/// Feeds `calls` to a fresh segmenter and flushes it; returns each call's slot, in order.
fn slots(p: AutoParams, attached: bool, calls: &[Call]) -> Vec<u16> {
    let mut s = Segmenter::new(p, attached);
    let mut out = Vec::new();
    let mut most_held = 0;
    for (i, (name, path)) in calls.iter().enumerate() {
        let nr = sysnames::number(name).unwrap_or_else(|| panic!("{name}"));
        out.extend(s.push(nr, *path, i));
        most_held = most_held.max(i + 1 - out.len());
    }
    out.extend(s.flush());
    assert!(
        most_held <= p.max_hold + p.window,
        "held {most_held} calls back"
    );
    let order: Vec<usize> = out.iter().map(|(_, i)| *i).collect();
    assert_eq!(
        order,
        (0..calls.len()).collect::<Vec<_>>(),
        "released in order"
    );
    out.iter().map(|(slot, _)| *slot as u16).collect()
}

/// Slots as runs, `slot×count`, for messages.
fn runs(slots: &[u16]) -> String {
    let mut out: Vec<(u16, usize)> = Vec::new();
    for s in slots {
        match out.last_mut() {
            Some((last, n)) if last == s => *n += 1,
            _ => out.push((*s, 1)),
        }
    }
    out.iter()
        .map(|(s, n)| format!("{s}×{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn slot(a: Activity) -> u16 {
    activity_slot(a)
}

#[test]
fn an_interleaving_serving_loop_is_one_phase() {
    let start = startup();
    let serve = serving(6);
    let calls: Vec<Call> = [start.clone(), serve.clone(), shutdown()].concat();
    let got = slots(AutoParams::default(), false, &calls);
    let steady = &got[start.len() + 2..start.len() + serve.len()];
    assert!(
        steady.iter().all(|s| *s == STEADY),
        "serving calls outside steady: {:?}",
        steady.iter().filter(|s| **s != STEADY).count()
    );
    // The boundary is within a few calls of the loop's first call.
    let first = got.iter().position(|s| *s == STEADY).unwrap();
    assert!(
        first.abs_diff(start.len()) <= 3,
        "steady begins at {first}, the loop at {}",
        start.len()
    );
    // Nothing of the startup is steady, and the shutdown is the exit.
    assert!(!got[..start.len() - 2].contains(&STEADY));
    let tail = &got[start.len() + serve.len()..];
    assert!(tail.ends_with(&[EXIT; 5]) && tail[2] != EXIT, "{tail:?}");
}

#[test]
fn startup_phases_separate_in_order() {
    let start = startup();
    let calls: Vec<Call> = [start.clone(), serving(4), shutdown()].concat();
    let got = slots(AutoParams::default(), false, &calls);
    let at = |name: &str| {
        let i = start.iter().position(|c| c.0 == name).unwrap();
        got[i]
    };
    assert_eq!(at("execve"), slot(Activity::Exec));
    assert_eq!(at("access"), slot(Activity::Loading));
    assert_eq!(at("set_tid_address"), slot(Activity::Loading));
    assert_eq!(at("umask"), slot(Activity::Other));
    assert_eq!(at("setuid"), slot(Activity::Privileges));
    // The socket() before bind starts the socket setup.
    assert_eq!(at("socket"), slot(Activity::Sockets));
    assert_eq!(at("epoll_create1"), slot(Activity::Sockets));
    let conf = start
        .iter()
        .position(|c| c.1 == Some("/etc/srv/srv.conf"))
        .unwrap();
    assert_eq!(got[conf], slot(Activity::Config));
    assert_eq!(
        got[conf + 4],
        slot(Activity::Config),
        "close of the config file"
    );
    // Phases appear in time order and never come back, except recurring ones.
    let mut seen: Vec<u16> = got.clone();
    seen.dedup();
    assert!(seen.len() <= 9, "{seen:?}");
}

#[test]
fn the_same_calls_give_the_same_phases() {
    let calls: Vec<Call> = [startup(), serving(3), shutdown()].concat();
    let p = AutoParams::default();
    assert_eq!(slots(p, false, &calls), slots(p, false, &calls));
    // Cut into smaller windows, phases still come out in order and complete.
    let small = AutoParams {
        window: 8,
        ..AutoParams::default()
    };
    assert_eq!(slots(small, false, &calls), slots(small, false, &calls));
}

#[test]
fn a_long_loader_loop_is_loading_not_steady() {
    let start = loading(80);
    let calls: Vec<Call> = [start.clone(), serving(3)].concat();
    let got = slots(AutoParams::default(), false, &calls);
    assert!(
        got[2..start.len() - 10]
            .iter()
            .all(|s| *s == slot(Activity::Loading)),
        "{}",
        runs(&got)
    );
    assert_eq!(got[calls.len() - 1], STEADY);
}

#[test]
fn every_loop_is_the_one_steady_state() {
    // serving, another loop (a cache sweep), serving again
    let sweep: Vec<Call> = std::iter::repeat_n(
        ["nanosleep", "openat", "getdents64", "getdents64", "close"].map(call),
        100,
    )
    .flatten()
    .collect();
    let a = serving(2);
    let calls: Vec<Call> = [startup(), a.clone(), sweep, a].concat();
    let got = slots(AutoParams::default(), false, &calls);
    let first = got.iter().position(|s| *s == STEADY).unwrap();
    assert!(got[first..].iter().all(|s| *s == STEADY));
}

#[test]
fn a_long_one_time_excursion_keeps_its_activity() {
    // serving, then a configuration reload (two hundred files read: longer than an excursion,
    // and no loop since all its calls continue reading configuration), then serving again
    let mut reload: Vec<Call> = Vec::new();
    for _ in 0..200 {
        reload.push(("openat", Some("/etc/srv/conf.d/site.conf")));
        reload.extend(["newfstatat", "read", "close"].map(call));
    }
    let a = serving(2);
    let calls: Vec<Call> = [startup(), a.clone(), reload.clone(), a.clone()].concat();
    let got = slots(AutoParams::default(), false, &calls);
    let n = startup().len() + a.len();
    let config = got[n..n + reload.len()]
        .iter()
        .filter(|s| **s == slot(Activity::Config))
        .count();
    assert!(config * 2 > reload.len(), "{config} of {}", reload.len());
    assert!(
        got[n + reload.len() + 40..].iter().all(|s| *s == STEADY),
        "{}",
        runs(&got)
    );
}

#[test]
fn a_shutdown_that_leaves_the_loop_is_steady_then_exit() {
    // redis saving its data on SIGTERM: new calls enough to leave the steady state, then the
    // end before the excursion is decided.
    let mut save: Vec<Call> = ["rt_sigreturn", "getpid", "write", "getpid"]
        .map(call)
        .to_vec();
    save.push(("openat", Some("/var/lib/srv/temp.rdb")));
    save.extend(["newfstatat", "getpid"].map(call));
    save.extend(
        std::iter::repeat_n(["getpid", "pwrite64", "lseek", "write"].map(call), 20).flatten(),
    );
    save.extend(shutdown());
    let start = startup();
    let calls: Vec<Call> = [start.clone(), serving(2), save.clone()].concat();
    let got = slots(AutoParams::default(), false, &calls);
    let tail = &got[calls.len() - save.len()..];
    assert!(
        tail.iter().all(|s| *s == STEADY || *s == EXIT),
        "{}",
        runs(tail)
    );
    assert!(tail.ends_with(&[EXIT; 5]) && tail[tail.len() - 6] == STEADY);
}

#[test]
fn a_short_excursion_stays_in_the_state() {
    let excursion: Vec<Call> = ["rt_sigreturn", "wait4", "kill", "pipe2", "dup2", "uname"]
        .map(call)
        .to_vec();
    let calls: Vec<Call> = [startup(), serving(2), excursion, serving(2)].concat();
    let got = slots(AutoParams::default(), false, &calls);
    let first = got.iter().position(|s| *s == STEADY).unwrap();
    assert!(got[first..].iter().all(|s| *s == STEADY));
}

#[test]
fn phases_stay_within_the_bound() {
    // Every one-time activity, a fallback stretch, a loop and the exit: nine slots, of which
    // the profile shows eight and says why.
    let mut calls = startup();
    calls.extend(["clone3", "set_robust_list", "rseq"].map(call));
    calls.extend(["pipe2", "dup2", "uname", "kill", "getcwd"].map(call));
    calls.extend(std::iter::repeat_n(["poll", "recvfrom", "sendto"].map(call), 200).flatten());
    calls.push(call("exit_group"));
    let p = AutoParams::default();
    let got = slots(p, false, &calls);
    let mut distinct = got.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), p.max_phases + 1, "{}", runs(&got));
    assert_eq!(*got.last().unwrap(), EXIT);

    // The profile says so.
    // As the learner gives them: one phase per slot.
    let mut by_slot: std::collections::BTreeMap<usize, profile::Phase> = Default::default();
    for (i, s) in got.iter().enumerate() {
        let ph = by_slot
            .entry(*s as usize)
            .or_insert_with(|| profile::Phase {
                name: slot_name(*s as usize),
                start_ns: i as u64,
                ..Default::default()
            });
        ph.end_ns = i as u64;
        let u = ph
            .syscalls
            .entry(calls[i].0.into())
            .or_insert_with(|| profile::SyscallUse {
                first_seen_ns: i as u64,
                ..Default::default()
            });
        u.calls += 1;
    }
    let phases: Vec<(usize, profile::Phase)> = by_slot.into_iter().collect();
    let mut notes = Vec::new();
    let arranged = arrange(&p, "main", phases, &mut notes);
    assert!(arranged.len() <= p.max_phases);
    assert_eq!(notes.len(), 1, "{notes:?}");
    let names: Vec<&str> = arranged.iter().map(|ph| ph.name.as_str()).collect();
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "{names:?}");
    assert!(arranged.windows(2).all(|w| when(&w[0]) <= when(&w[1])));
}

#[test]
fn arrange_names_orders_and_bounds_a_role() {
    let ph = |name: &str, start: u64, calls: u64| profile::Phase {
        name: name.into(),
        start_ns: start,
        end_ns: start + 1,
        syscalls: [(
            "read".to_string(),
            profile::SyscallUse {
                calls,
                first_seen_ns: start,
                times_ns: vec![start],
                ..Default::default()
            },
        )]
        .into(),
        ..Default::default()
    };
    let p = AutoParams::default();
    let mut notes = Vec::new();
    // The fallback after steady is work, before it init; order by first call.
    let got = arrange(
        &p,
        "w",
        vec![
            (STEADY as usize, ph("steady", 50, 10)),
            (6, ph("init", 10, 1)),
            (0, ph("exec", 0, 1)),
        ],
        &mut notes,
    );
    let names: Vec<&str> = got.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["exec", "init", "steady"]);
    let got = arrange(&p, "w", vec![(6, ph("init", 10, 1))], &mut notes);
    assert_eq!(got[0].name, "work");
    assert!(notes.is_empty());
    // Nine slots from several processes: the smallest one-time phase folds.
    let all: Vec<(usize, profile::Phase)> = (0..=EXIT as usize)
        .map(|s| (s, ph(&slot_name(s), s as u64 * 10, 100 - s as u64)))
        .collect();
    let got = arrange(&p, "w", all, &mut notes);
    assert_eq!(got.len(), p.max_phases);
    assert_eq!(notes.len(), 1);
    let total: u64 = got.iter().map(|p| p.syscalls["read"].calls).sum();
    assert_eq!(total, (0..=u64::from(EXIT)).map(|s| 100 - s).sum::<u64>());
    assert!(got.iter().any(|p| p.name == "steady") && got.last().unwrap().name == "exit");
}

#[test]
fn an_attached_process_is_steady_from_its_first_call() {
    let calls = serving(3);
    let got = slots(AutoParams::default(), true, &calls);
    assert!(got.iter().all(|s| *s == STEADY));
}

#[test]
fn a_program_without_a_loop_ends_with_its_exit() {
    // /bin/pwd: exec, loader, locale files, its work, exit
    let mut calls = vec![("execve", Some("/bin/pwd"))];
    calls.extend(loading(1));
    for _ in 0..10 {
        calls.push(("openat", Some("/usr/lib/locale/C.utf8/LC_CTYPE")));
        calls.extend(["newfstatat", "mmap", "close"].map(call));
    }
    calls.extend(
        [
            "getcwd",
            "newfstatat",
            "write",
            "close",
            "close",
            "exit_group",
        ]
        .map(call),
    );
    let got = slots(AutoParams::default(), false, &calls);
    let n = calls.len();
    assert_eq!(got[0], slot(Activity::Exec));
    assert_eq!(got[5], slot(Activity::Loading));
    assert_eq!(got[n - 7], slot(Activity::Config));
    assert_eq!(&got[n - 3..], [EXIT; 3]);
    assert!(!got.contains(&STEADY));
}
