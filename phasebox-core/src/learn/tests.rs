//! The learner against a model of the kernel programs' segment protocol: the records and
//! counters a real run would produce, read back at any time.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use phasebox_common::{
    CountKey, Counts, ExitRecord, ForkRecord, Header, SegmentRecord, SyscallRecord, segment_flags,
    syscall_flags,
};

use super::*;
use crate::event::{Exec, PathArg};
use crate::harvest::Harvester;
use crate::phase::markers;
use crate::rules::Rules;

/// What the kernel keeps per process: instance, segment, marker set, execs.
struct KProc {
    instance: u32,
    seg: u32,
    set: BTreeSet<u32>,
    execs: u32,
}

/// The kernel programs, as far as segments, counters and records go.
struct Kernel {
    rules: Option<Rules>,
    procs: HashMap<u32, KProc>,
    next_instance: u32,
    counts: BTreeMap<CountKey, Counts>,
    events: Vec<Event>,
    stream: bool,
    ts: u64,
    /// Calls made so far.
    calls: u64,
}

impl Kernel {
    fn new(spec: &str, stream: bool) -> Kernel {
        let rules = Rules::load(spec).ok();
        Kernel {
            rules,
            procs: HashMap::new(),
            next_instance: 0,
            counts: BTreeMap::new(),
            events: Vec::new(),
            stream,
            ts: 0,
            calls: 0,
        }
    }

    fn full(&self) -> BTreeSet<u32> {
        self.rules.as_ref().map(markers::full).unwrap_or_default()
    }

    fn new_proc(&mut self) -> KProc {
        self.next_instance += 1;
        KProc {
            instance: self.next_instance,
            seg: 1,
            set: self.full(),
            execs: 0,
        }
    }

    fn opener(&mut self, tgid: u32, flags: u16, nr: u32, ts_ns: u64) {
        let p = &self.procs[&tgid];
        self.events.push(Event::Segment(SegmentRecord {
            header: Header::of::<SegmentRecord>(flags, tgid),
            tid: tgid,
            nr,
            instance: p.instance,
            seg: p.seg,
            ts_ns,
        }));
    }

    /// pb_sys_enter (and pb_sys_exit in stream mode) for one call.
    fn call(&mut self, tgid: u32, name: &str, path: Option<&str>) {
        self.ts += 10;
        self.calls += 1;
        let ts = self.ts;
        let nr = sysnames::number(name).unwrap();
        let mut why = 0;
        if !self.procs.contains_key(&tgid) {
            let p = self.new_proc();
            self.procs.insert(tgid, p);
            why |= segment_flags::FIRST;
        }
        if self.procs[&tgid].set.contains(&nr) {
            why |= segment_flags::MARKER;
        }
        if why & segment_flags::MARKER != 0 {
            if let Some(p) = path {
                self.path(tgid, nr, p, ts);
            }
            if why & segment_flags::FIRST == 0 {
                self.procs.get_mut(&tgid).unwrap().seg += 1;
            }
        }
        if why != 0 {
            self.opener(tgid, why, nr, ts);
        }
        let p = &self.procs[&tgid];
        let key = CountKey {
            tgid,
            instance: p.instance,
            seg: p.seg,
            nr,
        };
        let first = !self.counts.contains_key(&key);
        self.counts.entry(key).or_default().calls += 1;
        let (flags, send) = if self.stream {
            (0, true)
        } else {
            (syscall_flags::AT_ENTRY | syscall_flags::FIRST_USE, first)
        };
        if send {
            if let Some(p) = path {
                self.path(tgid, nr, p, ts);
            }
            self.events.push(Event::Syscall(SyscallRecord {
                header: Header::of::<SyscallRecord>(flags, tgid),
                tid: tgid,
                nr,
                instance: key.instance,
                seg: key.seg,
                enter_ns: ts,
                duration_ns: 0,
                ret: 0,
            }));
        }
    }

    fn path(&mut self, tgid: u32, nr: u32, path: &str, ts: u64) {
        self.events.push(Event::Path(PathArg {
            tgid,
            tid: tgid,
            nr,
            enter_ns: ts,
            path: path.into(),
        }));
    }

    fn fork(&mut self, parent: u32, child: u32) {
        self.ts += 10;
        let p = self.new_proc();
        let child_instance = p.instance;
        self.procs.insert(child, p);
        self.events.push(Event::Fork(ForkRecord {
            header: Header::of::<ForkRecord>(0, parent),
            parent_tid: parent,
            child_tid: child,
            child_instance,
            child_flags: 0,
            ts_ns: self.ts,
        }));
    }

    fn exec(&mut self, tgid: u32, file: &str) {
        self.ts += 10;
        self.events.push(Event::Exec(Exec {
            new_root: false,
            tgid,
            tid: tgid,
            old_tid: tgid,
            ts_ns: self.ts,
            comm: file.rsplit('/').next().unwrap().into(),
            filename: file.into(),
            found_by: 0,
        }));
        let full = self.full();
        let p = self.procs.get_mut(&tgid).unwrap();
        p.seg += 1;
        p.execs += 1;
        p.set = full;
        let ts = self.ts;
        self.opener(tgid, segment_flags::EXEC, 0, ts);
    }

    fn exit(&mut self, tgid: u32) {
        self.ts += 10;
        self.procs.remove(&tgid);
        self.events.push(Event::Exit(ExitRecord {
            header: Header::of::<ExitRecord>(0, tgid),
            tid: tgid,
            group_dead: 1,
            ts_ns: self.ts,
        }));
    }
}

/// The userspace side: process tree and learner, fed the kernel's records, harvesting its
/// counters whenever the test says.
struct Agent {
    tree: ProcessTree,
    learner: Learner,
    read: usize,
    harvester: Harvester,
}

impl Agent {
    fn new(spec: &str, counting: Counting, root: u32, attached: &[u32]) -> Agent {
        let mut tree = ProcessTree::new();
        tree.add(root, 1, "/usr/sbin/nginx".into(), "nginx".into(), None);
        Agent {
            tree,
            learner: Learner::new(Detector::load(spec).unwrap(), counting, &[root], attached),
            read: 0,
            harvester: Harvester::default(),
        }
    }

    /// Reads the records the kernel sent so far, and answers phase changes with narrower
    /// marker sets as the agent does.
    fn drain(&mut self, k: &mut Kernel) {
        for ev in &k.events[self.read..] {
            self.tree.apply(ev);
            self.learner.observe(ev, &self.tree);
        }
        self.read = k.events.len();
        for ch in self.learner.take_phase_changes() {
            let Some(phase) = ch.phase else { continue };
            let set = markers::after(k.rules.as_ref().unwrap(), &ch.role, phase);
            if let Some(p) = k.procs.get_mut(&ch.tgid)
                && p.execs == ch.execs
                && p.instance == ch.instance
            {
                p.set = set;
            }
        }
    }

    /// Reads the counters (without draining first when `drain` is false: a harvest that
    /// comes before the records), and deletes the finished ones as the agent does.
    fn harvest(&mut self, k: &mut Kernel, drain: bool) {
        if drain {
            self.drain(k);
        }
        let reading: Vec<(CountKey, Counts)> = k.counts.iter().map(|(k, c)| (*k, *c)).collect();
        let done = self
            .harvester
            .harvest(reading, &mut self.tree, Some(&mut self.learner));
        for key in done.finished {
            k.counts.remove(&key);
        }
    }

    fn profile(mut self, k: &mut Kernel) -> Profile {
        self.harvest(k, true);
        self.learner.finish(
            &self.tree,
            &RunInfo {
                launched: true,
                ..Default::default()
            },
        )
    }
}

/// nginx as the poster runs it: a master that starts, reads its configuration, opens its
/// sockets and forks a worker, which initializes and serves `requests` requests.
fn nginx_start(k: &mut Kernel, a: &mut Agent, master: u32, worker: u32, requests: usize) {
    k.call(master, "execve", Some("/usr/sbin/nginx"));
    k.exec(master, "/usr/sbin/nginx");
    k.call(master, "openat", Some("/etc/ld.so.cache"));
    k.call(master, "openat", Some("/tmp/p/error.log"));
    k.call(master, "openat", Some("/tmp/p/nginx.conf"));
    k.call(master, "pread64", None);
    k.call(master, "setsockopt", None);
    k.call(master, "bind", None);
    k.call(master, "rt_sigaction", None);
    k.call(master, "socketpair", None);
    a.drain(k);
    k.call(master, "clone", None);
    k.fork(master, worker);
    worker_serves(k, a, worker, requests);
}

fn worker_serves(k: &mut Kernel, a: &mut Agent, worker: u32, requests: usize) {
    k.call(worker, "setuid", None);
    k.call(worker, "epoll_create", None);
    k.call(worker, "epoll_wait", None);
    k.call(worker, "epoll_wait", None);
    a.drain(k);
    for _ in 0..requests {
        k.call(worker, "accept4", None);
        k.call(worker, "recvfrom", None);
        k.call(worker, "epoll_wait", None);
    }
}

fn phase_sets(p: &Profile, role: &str) -> Vec<(String, Vec<(String, u64)>)> {
    p.role(role)
        .unwrap()
        .phases
        .iter()
        .map(|ph| {
            let calls = ph
                .syscalls
                .iter()
                .map(|(n, u)| (n.clone(), u.calls))
                .collect();
            (ph.name.clone(), calls)
        })
        .collect()
}

fn owned(v: &[(&str, &[(&str, u64)])]) -> Vec<(String, Vec<(String, u64)>)> {
    v.iter()
        .map(|(p, c)| {
            let c = c.iter().map(|(n, x)| (n.to_string(), *x)).collect();
            (p.to_string(), c)
        })
        .collect()
}

#[test]
fn nginx_rules_split_master_and_worker_with_exact_counts() {
    for (stream, counting) in [
        (false, Counting::Kernel),
        (true, Counting::Kernel),
        (true, Counting::Records),
    ] {
        let mut k = Kernel::new("nginx", stream);
        let mut a = Agent::new("nginx", counting, 100, &[]);
        nginx_start(&mut k, &mut a, 100, 101, 3);
        k.exit(101);
        let p = a.profile(&mut k);
        assert!(p.complete);
        let master: Vec<String> = phase_sets(&p, "master").into_iter().map(|x| x.0).collect();
        assert_eq!(
            master,
            [
                "execution-initiation",
                "loading-shared-libraries",
                "initializing-logging",
                "reading-configuration-files",
                "creating-and-configuring-sockets",
                "setting-up-signal-handlers",
                "setting-up-worker-processes"
            ]
        );
        let conf = p.role("master").unwrap();
        let conf = conf.phase("reading-configuration-files").unwrap();
        assert_eq!(conf.syscalls["openat"].paths, ["/tmp/p/nginx.conf"]);
        assert!(conf.syscalls.contains_key("pread64"));
        assert_eq!(
            phase_sets(&p, "worker"),
            owned(&[
                ("worker-process-initialization", &[("setuid", 1)]),
                (
                    "entering-event-loop",
                    &[("epoll_create", 1), ("epoll_wait", 1)]
                ),
                (
                    "accepting-and-serving-requests",
                    &[("accept4", 3), ("epoll_wait", 4), ("recvfrom", 3)]
                ),
            ]),
            "stream {stream}, {counting:?}"
        );
    }
}

#[test]
fn counts_go_to_the_phase_of_their_call_whenever_they_are_read() {
    // The same run, harvested before its records are read, in the middle of a phase change,
    // and only at the end: the same profile every time.
    let run = |harvest_early: bool| {
        let mut k = Kernel::new("nginx", false);
        let mut a = Agent::new("nginx", Counting::Kernel, 100, &[]);
        k.call(100, "execve", None);
        k.exec(100, "/usr/sbin/nginx");
        k.call(100, "setsockopt", None);
        if harvest_early {
            a.harvest(&mut k, false); // counters read before their opener
        }
        k.call(100, "bind", None);
        k.call(100, "rt_sigaction", None);
        k.call(100, "rt_sigaction", None);
        if harvest_early {
            a.harvest(&mut k, false);
            a.drain(&mut k);
        }
        k.call(100, "socketpair", None);
        k.call(100, "rt_sigprocmask", None);
        a.profile(&mut k)
    };
    let late = run(false);
    let early = run(true);
    assert_eq!(phase_sets(&early, "master"), phase_sets(&late, "master"));
    let p = early.role("master").unwrap();
    let signals = p.phase("setting-up-signal-handlers").unwrap();
    assert_eq!(signals.syscalls["rt_sigaction"].calls, 2);
    let workers = p.phase("setting-up-worker-processes").unwrap();
    assert_eq!(workers.syscalls["rt_sigprocmask"].calls, 1);
    assert!(!workers.syscalls.contains_key("rt_sigaction"));
}

#[test]
fn a_reloaded_worker_starts_in_its_first_phase_and_an_exited_one_keeps_its_counts() {
    let mut k = Kernel::new("nginx", false);
    let mut a = Agent::new("nginx", Counting::Kernel, 100, &[]);
    nginx_start(&mut k, &mut a, 100, 101, 2);
    a.harvest(&mut k, true);
    // A reload: the master forks a new worker; the old one serves once more and exits
    // before the agent reads anything.
    k.call(100, "clone", None);
    k.fork(100, 102);
    k.call(101, "accept4", None);
    k.call(101, "exit_group", None);
    k.exit(101);
    worker_serves(&mut k, &mut a, 102, 1);
    let p = a.profile(&mut k);
    let w = p.role("worker").unwrap();
    assert_eq!(w.processes, 2);
    let init = w.phase("worker-process-initialization").unwrap();
    assert_eq!(init.syscalls["setuid"].calls, 2);
    let serving = w.phase("accepting-and-serving-requests").unwrap();
    assert!(!serving.syscalls.contains_key("setuid"));
    assert_eq!(serving.syscalls["accept4"].calls, 2 + 1 + 1);
    assert_eq!(serving.syscalls["exit_group"].calls, 1);
    // Every counted call is in the profile: nothing is lost to an unknown phase.
    let total: u64 = p
        .roles
        .iter()
        .flat_map(|r| &r.phases)
        .flat_map(|ph| ph.syscalls.values())
        .map(|u| u.calls)
        .sum();
    assert_eq!(total, k.calls);
}

#[test]
fn narrowed_marker_sets_stop_new_segments() {
    let mut k = Kernel::new("nginx", false);
    let mut a = Agent::new("nginx", Counting::Kernel, 100, &[]);
    nginx_start(&mut k, &mut a, 100, 101, 50);
    let worker_segments = k
        .events
        .iter()
        .filter(|e| matches!(e, Event::Segment(s) if s.header.tgid == 101))
        .count();
    // First use, event loop, serving: then nothing can move the worker, so no more segments.
    assert_eq!(worker_segments, 3);
}

#[test]
fn attached_processes_start_in_the_steady_phase() {
    let mut k = Kernel::new("generic", false);
    let mut a = Agent::new("generic", Counting::Kernel, 7, &[7]);
    k.call(7, "read", None);
    k.call(7, "read", None);
    a.harvest(&mut k, true);
    let p = a.learner.finish(
        &a.tree,
        &RunInfo {
            launched: false,
            dropped: 3,
            ..Default::default()
        },
    );
    assert_eq!(p.roles[0].name, "main");
    assert_eq!(p.roles[0].phases[0].name, "serving");
    assert_eq!(p.roles[0].phases[0].syscalls["read"].calls, 2);
    assert!(!p.complete);
    assert_eq!(p.incomplete_reasons.len(), 2);
}

#[test]
fn the_program_is_named_after_every_process_has_exited() {
    // A server stopped before its profile is written (redis's SHUTDOWN, a container that
    // exited): the agent has forgotten every process, and the profile still names its
    // program, which the coverage warnings analyze.
    let mut k = Kernel::new("nginx", false);
    let mut a = Agent::new("nginx", Counting::Kernel, 100, &[]);
    nginx_start(&mut k, &mut a, 100, 101, 2);
    for pid in [101, 100] {
        k.call(pid, "exit_group", None);
        k.exit(pid);
    }
    a.harvest(&mut k, true);
    // What the agent does after each harvest: exited processes are forgotten.
    for (tgid, instance) in a.tree.prune_exited() {
        a.learner.forget(tgid, instance);
    }
    assert_eq!(a.tree.processes().count(), 0, "every process forgotten");
    let p = a.profile(&mut k);
    assert_eq!(p.program.path, "/usr/sbin/nginx");
    assert_eq!(p.program.comm, "nginx");
}
