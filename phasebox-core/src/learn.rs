//! Learning a profile from events: each process gets a role and a phase tracker, and every
//! syscall is added to its role's phase. Works the same on live events and on a trace file.
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::{
    event::Event,
    phase::{Detector, Tracker, rules::Obs},
    process::ProcessTree,
    profile::{self, MAX_PATHS, MAX_TIMES, Profile, SyscallUse},
    sysnames,
};

/// One call waiting for its phase.
#[derive(Debug)]
struct Item {
    nr: u32,
    ts_ns: u64,
    path: Option<String>,
}

#[derive(Debug)]
struct ProcState {
    role: usize,
    tracker: Tracker<Item>,
    /// The phase last passed on by `take_phase_changes`.
    reported: Option<usize>,
    /// Already in the shared serving set.
    serving: bool,
}

/// A process that moved to another phase: (tgid, epoch = phase index + 1, whether any later
/// phase still has markers to watch for).
pub type PhaseChange = (u32, u32, bool);

#[derive(Debug)]
struct Use {
    calls: u64,
    first_ns: u64,
    paths: BTreeSet<String>,
    /// Sampled call times and the sampling stride (every `stride`-th call is kept).
    times: Vec<u64>,
    stride: u64,
}

impl Use {
    fn new(first_ns: u64) -> Use {
        Use {
            calls: 0,
            first_ns,
            paths: BTreeSet::new(),
            times: Vec::new(),
            stride: 1,
        }
    }

    /// Counts a call at `t` ns; keeps its time when it falls on the stride, and halves the
    /// sample (doubling the stride) when it reaches twice MAX_TIMES.
    fn add(&mut self, t: u64) {
        if self.calls.is_multiple_of(self.stride) {
            self.times.push(t);
            if self.times.len() >= 2 * MAX_TIMES {
                self.times = self.times.iter().step_by(2).copied().collect();
                self.stride *= 2;
            }
        }
        self.calls += 1;
    }
}

#[derive(Debug)]
struct RoleAgg {
    name: String,
    start_ns: u64,
    pids: HashSet<u32>,
    /// Phase index → what happened in it.
    phases: BTreeMap<usize, PhaseAgg>,
}

/// One phase of a role: its syscalls, and its first and last call (ns since the role's start).
#[derive(Debug, Default)]
struct PhaseAgg {
    calls: BTreeMap<u32, Use>,
    first_ns: u64,
    last_ns: u64,
}

/// Where a learned profile came from.
#[derive(Clone, Debug, Default)]
pub struct RunInfo {
    pub name: String,
    pub launched: bool,
    pub started_unix_ms: u64,
    pub kernel_release: String,
    pub dropped: u64,
}

/// Whether `pid` runs another program than its parent.
fn runs_other_program(pid: u32, tree: &ProcessTree) -> bool {
    let Some(p) = tree.get(pid) else { return false };
    tree.get(p.ppid)
        .is_some_and(|parent| !p.exe.is_empty() && parent.exe != p.exe)
}

/// Builds a profile from events.
#[derive(Debug)]
pub struct Learner {
    det: Detector,
    roots: HashSet<u32>,
    attached: HashSet<u32>,
    procs: HashMap<u32, ProcState>,
    /// tid → the path argument of the syscall it is in (enter time, path).
    paths: HashMap<u32, (u64, String)>,
    roles: Vec<RoleAgg>,
    /// Processes that reached their role's steady (serving) phase, shared with phase-aware
    /// seccomp enforcement.
    serving: Option<ServingSet>,
}

/// Tgids in their serving phase.
pub type ServingSet = std::sync::Arc<std::sync::Mutex<HashSet<u32>>>;

impl Learner {
    /// `roots`: the processes phasebox launched or attached to; `attached`: processes that
    /// were running before tracing began (they start in their role's steady phase).
    pub fn new(det: Detector, roots: &[u32], attached: &[u32]) -> Learner {
        Learner {
            det,
            roots: roots.iter().copied().collect(),
            attached: attached.iter().copied().collect(),
            procs: HashMap::new(),
            paths: HashMap::new(),
            roles: Vec::new(),
            serving: None,
        }
    }

    /// A process phasebox started tracking at its exec (`--exec-name`): a root, seen from its
    /// start.
    pub fn add_root(&mut self, pid: u32) {
        self.roots.insert(pid);
    }

    /// Keeps `set` up to date with the processes in their steady (serving) phase.
    pub fn share_serving(&mut self, set: ServingSet) {
        self.serving = Some(set);
    }

    /// Notes `pid` in the serving set when its tracker is at or past its role's steady phase.
    fn note_serving(&mut self, pid: u32) {
        let (Some(set), Some(st)) = (&self.serving, self.procs.get_mut(&pid)) else {
            return;
        };
        if st.serving {
            return; // the lock is taken once per process, not per call
        }
        if st.tracker.serving(&self.det, &self.roles[st.role].name)
            && let Ok(mut set) = set.lock()
        {
            set.insert(pid);
            st.serving = true;
        }
    }

    fn role_name(&self, pid: u32, tree: &ProcessTree, execd: bool) -> String {
        self.role_name_at(pid, tree, execd, 0)
    }

    /// The role of `pid`; a parent not seen yet (attached processes come in any order) gets
    /// its role from the process tree, up to `MAX_DEPTH` ancestors.
    fn role_name_at(&self, pid: u32, tree: &ProcessTree, execd: bool, depth: usize) -> String {
        const MAX_DEPTH: usize = 32;
        let root = self.roots.contains(&pid);
        let parent_role = tree.get(pid).and_then(|p| match self.procs.get(&p.ppid) {
            Some(s) => Some(self.roles[s.role].name.clone()),
            None if depth < MAX_DEPTH && !root && tree.get(p.ppid).is_some() => {
                Some(self.role_name_at(p.ppid, tree, false, depth + 1))
            }
            None => None,
        });
        if let Detector::Rules(r) = &self.det {
            let fits = |rule: &crate::phase::rules::RoleRule| {
                rule.root.is_none_or(|x| x == root)
                    && rule
                        .parent
                        .as_ref()
                        .is_none_or(|p| Some(p) == parent_role.as_ref())
                    && rule.exec.is_none_or(|e| e == execd)
            };
            if let Some(rule) = r.roles.iter().find(|rule| fits(rule)) {
                return rule.name.clone();
            }
        }
        if root {
            return "main".into();
        }
        if execd {
            let exe = tree.get(pid).map(|p| p.exe.clone()).unwrap_or_default();
            let base = exe.rsplit('/').next().unwrap_or_default();
            if !base.is_empty() {
                return base.to_string();
            }
        }
        format!("{}-child", parent_role.unwrap_or_else(|| "main".into()))
    }

    fn role_index(&mut self, name: String, ts_ns: u64) -> usize {
        if let Some(i) = self.roles.iter().position(|r| r.name == name) {
            return i;
        }
        self.roles.push(RoleAgg {
            name,
            start_ns: ts_ns,
            pids: HashSet::new(),
            phases: BTreeMap::new(),
        });
        self.roles.len() - 1
    }

    /// Gives `pid` a role and a fresh tracker.
    fn start(&mut self, pid: u32, tree: &ProcessTree, execd: bool, ts_ns: u64) {
        // A process found running runs its own program if it differs from its parent's.
        let execd = execd || (self.attached.contains(&pid) && runs_other_program(pid, tree));
        let name = self.role_name(pid, tree, execd);
        let role = self.role_index(name, ts_ns);
        self.roles[role].pids.insert(pid);
        let attached = !execd && self.attached.contains(&pid);
        let tracker = self.det.tracker(&self.roles[role].name, attached);
        self.procs.insert(
            pid,
            ProcState {
                role,
                tracker,
                reported: None,
                serving: false,
            },
        );
    }

    fn record(&mut self, role: usize, released: Vec<(usize, Item)>) {
        let agg = &mut self.roles[role];
        for (phase, item) in released {
            let t = item.ts_ns.saturating_sub(agg.start_ns);
            let ph = agg.phases.entry(phase).or_insert_with(|| PhaseAgg {
                first_ns: t,
                last_ns: t,
                ..Default::default()
            });
            (ph.first_ns, ph.last_ns) = (ph.first_ns.min(t), ph.last_ns.max(t));
            let u = ph.calls.entry(item.nr).or_insert_with(|| Use::new(t));
            u.add(t);
            if let Some(p) = item.path
                && u.paths.len() < MAX_PATHS
            {
                u.paths.insert(p);
            }
        }
    }

    fn flush(&mut self, pid: u32) {
        if let Some(mut st) = self.procs.remove(&pid) {
            let released = st.tracker.flush();
            self.record(st.role, released);
        }
    }

    /// Phase changes since the last call (summary mode tells the kernel, so first uses are
    /// reported again per phase and markers stop once none is left).
    pub fn take_phase_changes(&mut self) -> Vec<PhaseChange> {
        let Detector::Rules(r) = &self.det else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (&pid, st) in self.procs.iter_mut() {
            let Some(p) = st.tracker.rule_phase() else {
                continue;
            };
            if st.reported == Some(p) {
                continue;
            }
            st.reported = Some(p);
            let phases = r.phases(&self.roles[st.role].name);
            let markers_left = phases.iter().skip(p + 1).any(|ph| !ph.enter.is_empty());
            out.push((pid, p as u32 + 1, markers_left));
        }
        out
    }

    /// The role and current phase of `tgid`.
    pub fn role_phase_of(&self, tgid: u32) -> Option<(String, String)> {
        let st = self.procs.get(&tgid)?;
        let role = self.roles[st.role].name.clone();
        let phase = self.det.phase_name(&role, st.tracker.rule_phase()?);
        Some((role, phase))
    }

    /// Every syscall a marker of the rules looks at (summary mode reports them all).
    pub fn marker_syscalls(&self) -> Vec<u32> {
        match &self.det {
            Detector::Rules(r) => r.marker_syscalls(),
            Detector::Auto(_) => Vec::new(),
        }
    }

    /// Takes one event (after the process tree has taken it).
    pub fn observe(&mut self, ev: &Event, tree: &ProcessTree) {
        match ev {
            Event::Path(p) => {
                self.paths.insert(p.tid, (p.enter_ns, p.path.clone()));
            }
            Event::Syscall(r) => {
                let tgid = r.header.tgid;
                if !self.procs.contains_key(&tgid) {
                    self.start(tgid, tree, false, r.enter_ns);
                }
                let path = match self.paths.remove(&r.tid) {
                    Some((ns, p)) if ns == r.enter_ns => Some(p),
                    _ => None,
                };
                let st = self.procs.get_mut(&tgid).expect("started above");
                let role_name = &self.roles[st.role].name;
                let item = Item {
                    nr: r.nr,
                    ts_ns: r.enter_ns,
                    path: path.clone(),
                };
                let released =
                    st.tracker
                        .syscall(&self.det, role_name, r.nr, path.as_deref(), item);
                let role = st.role;
                self.record(role, released);
                self.note_serving(tgid);
            }
            Event::Fork(f) => {
                if let Some(st) = self.procs.get_mut(&f.header.tgid) {
                    let role_name = &self.roles[st.role].name;
                    st.tracker.process_event(&self.det, role_name, Obs::Fork);
                }
            }
            Event::Exec(e) => {
                if let Some(set) = &self.serving
                    && let Ok(mut set) = set.lock()
                {
                    set.remove(&e.tgid); // a new program starts over
                }
                self.flush(e.tgid);
                self.start(e.tgid, tree, true, e.ts_ns);
                let st = self.procs.get_mut(&e.tgid).expect("started above");
                let role_name = &self.roles[st.role].name;
                st.tracker.process_event(&self.det, role_name, Obs::Exec);
                if e.new_root {
                    // Tracking began inside this execve: the call itself was not seen, but the
                    // exec proves it (execveat is rare enough to be named as execve).
                    let nr = sysnames::special().execve;
                    let item = Item {
                        nr,
                        ts_ns: e.ts_ns,
                        path: Some(e.filename.clone()),
                    };
                    let released = st.tracker.syscall(&self.det, role_name, nr, None, item);
                    let role = st.role;
                    self.record(role, released);
                }
            }
            Event::Exit(x) => {
                if x.group_dead != 0 {
                    self.flush(x.header.tgid);
                }
            }
        }
    }

    /// The profile learned so far.
    pub fn finish(mut self, tree: &ProcessTree, run: &RunInfo) -> Profile {
        let pids: Vec<u32> = self.procs.keys().copied().collect();
        for pid in pids {
            self.flush(pid);
        }
        self.snapshot(tree, run)
    }

    /// The current phase of each role: the furthest phase any of its live processes reached.
    pub fn current_phases(&self) -> Vec<(String, String)> {
        let mut furthest: BTreeMap<usize, usize> = BTreeMap::new();
        for st in self.procs.values() {
            if let Some(p) = st.tracker.rule_phase() {
                let e = furthest.entry(st.role).or_insert(p);
                *e = (*e).max(p);
            }
        }
        furthest
            .into_iter()
            .map(|(role, p)| {
                let name = self.roles[role].name.clone();
                let phase = self.det.phase_name(&name, p);
                (name, phase)
            })
            .collect()
    }

    /// A role's phases as the learner holds them: (phase index, phase).
    fn phase_list(&self, r: &RoleAgg) -> Vec<(usize, profile::Phase)> {
        r.phases
            .iter()
            .map(|(idx, ph)| {
                (
                    *idx,
                    profile::Phase {
                        name: self.det.phase_name(&r.name, *idx),
                        start_ns: ph.first_ns,
                        end_ns: ph.last_ns,
                        syscalls: ph
                            .calls
                            .iter()
                            .map(|(nr, u)| {
                                (
                                    sysnames::name(*nr).into_owned(),
                                    SyscallUse {
                                        calls: u.calls,
                                        first_seen_ns: u.first_ns,
                                        paths: u.paths.iter().cloned().collect(),
                                        times_ns: u.times.clone(),
                                    },
                                )
                            })
                            .collect(),
                    },
                )
            })
            .collect()
    }

    /// The profile learned so far, without ending anything (checkpoints, metrics). Calls that
    /// automatic segmentation still holds back are not in it yet.
    pub fn snapshot(&self, tree: &ProcessTree, run: &RunInfo) -> Profile {
        let root = self.roots.iter().filter_map(|&p| tree.get(p)).next();
        let mut incomplete = Vec::new();
        if !run.launched {
            incomplete.push("attached to a running process: its startup was not seen".to_string());
        }
        if run.dropped > 0 {
            incomplete.push(format!("{} events were dropped", run.dropped));
        }
        let mut notes = Vec::new();
        let roles = self
            .roles
            .iter()
            .filter(|r| !r.phases.is_empty())
            .map(|r| profile::Role {
                name: r.name.clone(),
                processes: r.pids.len() as u64,
                phases: self.det.arrange(&r.name, self.phase_list(r), &mut notes),
            })
            .collect();
        Profile {
            schema: profile::SCHEMA.into(),
            program: profile::Program {
                path: root.map(|p| p.exe.clone()).unwrap_or_default(),
                comm: root.map(|p| p.comm.clone()).unwrap_or_default(),
            },
            arch: sysnames::ARCH.into(),
            kernel_release: run.kernel_release.clone(),
            complete: incomplete.is_empty(),
            incomplete_reasons: incomplete,
            notes,
            runs: vec![profile::Run {
                name: run.name.clone(),
                how: if run.launched { "launched" } else { "attached" }.into(),
                started_unix_ms: run.started_unix_ms,
                phasebox_version: env!("CARGO_PKG_VERSION").into(),
                rules: self.det.name(),
                dropped: run.dropped,
            }],
            roles,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Exec, PathArg};
    use phasebox_common::{ExitRecord, ForkRecord, Header, SyscallRecord, kind};

    struct Feed {
        tree: ProcessTree,
        learner: Learner,
        ts: u64,
    }

    impl Feed {
        fn new(spec: &str, root: u32) -> Feed {
            let mut tree = ProcessTree::new();
            tree.add(root, 1, "/usr/sbin/nginx".into(), "nginx".into(), None);
            Feed {
                tree,
                learner: Learner::new(Detector::load(spec).unwrap(), &[root], &[]),
                ts: 0,
            }
        }
        fn ev(&mut self, ev: Event) {
            self.tree.apply(&ev);
            self.learner.observe(&ev, &self.tree);
        }
        fn call(&mut self, tgid: u32, name: &str, path: Option<&str>) {
            self.ts += 10;
            let nr = sysnames::number(name).unwrap();
            if let Some(p) = path {
                self.ev(Event::Path(PathArg {
                    tgid,
                    tid: tgid,
                    nr,
                    enter_ns: self.ts,
                    path: p.into(),
                }));
            }
            self.ev(Event::Syscall(SyscallRecord {
                header: Header {
                    kind: kind::SYSCALL,
                    flags: 0,
                    tgid,
                },
                tid: tgid,
                nr,
                enter_ns: self.ts,
                duration_ns: 1,
                ret: 0,
            }));
        }
    }

    #[test]
    fn nginx_rules_split_master_and_worker() {
        let mut f = Feed::new("nginx", 100);
        f.ev(Event::Exec(Exec {
            new_root: false,
            tgid: 100,
            tid: 100,
            old_tid: 100,
            ts_ns: 1,
            comm: "nginx".into(),
            filename: "/usr/sbin/nginx".into(),
        }));
        f.call(100, "execve", Some("/usr/sbin/nginx"));
        f.call(100, "openat", Some("/etc/ld.so.cache"));
        f.call(100, "openat", Some("/tmp/p/error.log"));
        f.call(100, "openat", Some("/tmp/p/nginx.conf"));
        f.call(100, "pread64", None);
        f.call(100, "setsockopt", None);
        f.call(100, "bind", None);
        f.call(100, "rt_sigaction", None);
        f.call(100, "socketpair", None);
        f.call(100, "clone", None);
        f.ev(Event::Fork(ForkRecord {
            header: Header {
                kind: kind::FORK,
                flags: 0,
                tgid: 100,
            },
            parent_tid: 100,
            child_tid: 101,
            ts_ns: 200,
        }));
        f.call(101, "setuid", None);
        f.call(101, "epoll_create", None);
        f.call(101, "epoll_wait", None);
        f.call(101, "epoll_wait", None);
        f.call(101, "accept4", None);
        f.ev(Event::Exit(ExitRecord {
            header: Header {
                kind: kind::EXIT,
                flags: 0,
                tgid: 101,
            },
            tid: 101,
            group_dead: 1,
            ts_ns: 300,
        }));
        let p = f.learner.finish(
            &f.tree,
            &RunInfo {
                launched: true,
                ..Default::default()
            },
        );
        assert!(p.complete);
        let master = p.role("master").unwrap();
        let names: Vec<&str> = master.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
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
        let conf = master.phase("reading-configuration-files").unwrap();
        assert_eq!(conf.syscalls["openat"].paths, ["/tmp/p/nginx.conf"]);
        assert!(conf.syscalls.contains_key("pread64"));
        let worker = p.role("worker").unwrap();
        let w: Vec<(&str, Vec<&str>)> = worker
            .phases
            .iter()
            .map(|p| (p.name.as_str(), p.names().collect()))
            .collect();
        assert_eq!(
            w,
            [
                ("worker-process-initialization", vec!["setuid"]),
                ("entering-event-loop", vec!["epoll_create", "epoll_wait"]),
                (
                    "accepting-and-serving-requests",
                    vec!["accept4", "epoll_wait"]
                ),
            ]
        );
    }

    #[test]
    fn call_times_are_sampled_evenly() {
        let mut u = Use::new(0);
        for t in 0..10_000u64 {
            u.add(t);
        }
        assert_eq!(u.calls, 10_000);
        assert!(
            u.times.len() >= MAX_TIMES && u.times.len() < 2 * MAX_TIMES,
            "{}",
            u.times.len()
        );
        // evenly spread: a constant step, from the first call to near the last
        let step = u.times[1] - u.times[0];
        assert!(u.times.windows(2).all(|w| w[1] - w[0] == step));
        assert!(*u.times.last().unwrap() >= 10_000 - step);
        let mut few = Use::new(0);
        (0..5).for_each(|t| few.add(t * 7));
        assert_eq!(few.times, [0, 7, 14, 21, 28]);
    }

    #[test]
    fn attached_processes_start_in_the_steady_phase() {
        let mut tree = ProcessTree::new();
        tree.add(7, 1, "/usr/bin/srv".into(), "srv".into(), None);
        let mut l = Learner::new(Detector::load("generic").unwrap(), &[7], &[7]);
        let ev = Event::Syscall(SyscallRecord {
            header: Header {
                kind: kind::SYSCALL,
                flags: 0,
                tgid: 7,
            },
            tid: 7,
            nr: sysnames::number("read").unwrap(),
            ..Default::default()
        });
        l.observe(&ev, &tree);
        let p = l.finish(
            &tree,
            &RunInfo {
                launched: false,
                dropped: 3,
                ..Default::default()
            },
        );
        assert_eq!(p.roles[0].name, "main");
        assert_eq!(p.roles[0].phases[0].name, "serving");
        assert!(!p.complete);
        assert_eq!(p.incomplete_reasons.len(), 2);
    }
}
