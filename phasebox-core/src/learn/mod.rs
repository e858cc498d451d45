//! Learning a profile from events: each process gets a role and a phase tracker, and every
//! syscall is added to its role's phase. Works the same on live events and on a trace file.
//!
//! With phase rules, the kernel splits each process's calls into segments at the calls that
//! may start a phase (phasebox_common explains segments): the learner names the phase of each
//! segment when it reads the record that opened it, and every call, whether it arrives as a
//! record or as growth of the kernel's counters, is added to the phase of its segment. So the
//! phase of a call never depends on when userspace read it. Automatic segmentation has no
//! kernel segments: it cuts the stream of records itself (`phase::auto`).
mod aggregate;
mod roles;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};

use phasebox_common::{
    ArgsRecord, CountKey, Counts, FilteredRecord, SegmentRecord, SyscallRecord, segment_flags,
    syscall_flags,
};

use crate::{
    ahead::Ahead,
    call_args::Values,
    event::Event,
    phase::{Detector, Tracker},
    process::ProcessTree,
    profile::{self, Profile},
    rules::Obs,
    sysnames,
};
use aggregate::{Item, RoleAgg};

/// Where a learner's call counts come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counting {
    /// Every call arrives as a record (a trace file, or automatic segmentation).
    Records,
    /// The kernel's counters, harvested with [`Learner::count`]; records give the sets, first
    /// uses, times and paths.
    Kernel,
}

/// A process the learner follows.
#[derive(Debug)]
struct ProcState {
    instance: u32,
    role: usize,
    tracker: Tracker<Item>,
    /// Execs the kernel counted for it (a marker-set request names the program it is for).
    execs: u32,
    /// The phase (with rules) and serving state last passed on by `take_phase_changes`.
    reported: Option<(Option<usize>, bool)>,
}

/// A process instance's segment: (tgid, instance, segment).
type SegKey = (u32, u32, u32);

/// A process that moved to another phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhaseChange {
    pub tgid: u32,
    /// The kernel's instance of the process.
    pub instance: u32,
    pub role: String,
    /// The rule set's phase index (None with automatic phases).
    pub phase: Option<usize>,
    pub phase_name: String,
    /// In its role's steady (serving) phase or a later one.
    pub serving: bool,
    /// The kernel's exec count for the process when it got there.
    pub execs: u32,
}

/// A role and phase, and the container they are in (its 12-character id; empty for the host).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Place {
    pub container: String,
    pub role: String,
    pub phase: String,
}

/// Where one live process is: its role and current phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessPlace {
    pub tgid: u32,
    /// The kernel's instance of the process (0 until a record said it).
    pub instance: u32,
    pub role: String,
    pub phase: String,
}

/// Calls and errors of one syscall in a place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Total {
    pub place: Place,
    pub syscall: String,
    pub calls: u64,
    pub errors: u64,
}

/// The id metrics show for a container: its first 12 characters, as `docker ps` does.
fn short_id(id: Option<&str>) -> String {
    id.map(|i| i.chars().take(crate::container::SHORT_ID_LEN).collect())
        .unwrap_or_default()
}

/// What became of harvested counter growth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attribution {
    /// Added to this role and phase (see [`Learner::names`]).
    Counted { role: usize, phase: usize },
    /// The segment's opener has not been read yet: offer it again later.
    Waiting,
    /// Not counted here: the learner counts records, or the process is unknown.
    Ignored,
}

/// Where a learned profile came from.
#[derive(Clone, Debug, Default)]
pub struct RunInfo {
    pub name: String,
    pub launched: bool,
    pub started_unix_ms: u64,
    pub kernel_release: String,
    pub dropped: u64,
    /// The container the run learned in.
    pub container: Option<profile::ContainerRef>,
}

/// Builds a profile from events.
#[derive(Debug)]
pub struct Learner {
    det: Detector,
    counting: Counting,
    roots: HashSet<u32>,
    attached: HashSet<u32>,
    procs: HashMap<u32, ProcState>,
    /// The path arguments of calls whose records have not come yet.
    paths: Ahead<String>,
    /// The recorded arguments of calls whose records have not come yet (stream mode).
    args: Ahead<Values>,
    roles: Vec<RoleAgg>,
    /// The role and phase of every segment opened, per process instance (kept until its
    /// counts are final).
    segs: HashMap<(u32, u32), BTreeMap<u32, (usize, usize)>>,
    /// Calls of segments whose opener has not arrived yet.
    waiting: HashMap<SegKey, Vec<Item>>,
    /// `--exec-name` roots: the execve the kernel saw start tracking, waiting for its segment.
    found_exec: HashMap<u32, Item>,
    changes: Vec<PhaseChange>,
    /// The program the latest root started: the profile names it even after every process
    /// has exited and been forgotten (a server stopped before the profile is written).
    program: Option<profile::Program>,
}

impl Learner {
    /// `roots`: the processes phasebox launched or attached to; `attached`: processes that
    /// were running before tracing began (they start in their role's steady phase).
    pub fn new(det: Detector, counting: Counting, roots: &[u32], attached: &[u32]) -> Learner {
        // Automatic segmentation cuts records, not kernel segments: it counts records.
        let counting = match det {
            Detector::Auto(_) => Counting::Records,
            Detector::Rules(_) => counting,
        };
        Learner {
            det,
            counting,
            roots: roots.iter().copied().collect(),
            attached: attached.iter().copied().collect(),
            procs: HashMap::new(),
            paths: Ahead::default(),
            args: Ahead::default(),
            roles: Vec::new(),
            segs: HashMap::new(),
            waiting: HashMap::new(),
            found_exec: HashMap::new(),
            changes: Vec::new(),
            program: None,
        }
    }

    /// Processes phasebox launched or attached to (`roots`), and those of them and their
    /// descendants that were running before tracing began (`attached`: they start in their
    /// role's steady phase).
    pub fn add_origin(&mut self, roots: &[u32], attached: &[u32]) {
        self.roots.extend(roots);
        self.attached.extend(attached);
    }

    pub fn detector(&self) -> &Detector {
        &self.det
    }

    /// Where this learner's counts come from.
    pub fn counting(&self) -> Counting {
        self.counting
    }

    /// The role `name` in `container` (each container has roles of its own).
    fn role_index(&mut self, name: String, container: Option<String>, ts_ns: u64) -> usize {
        if let Some(i) = self
            .roles
            .iter()
            .position(|r| r.name == name && r.container == container)
        {
            return i;
        }
        self.roles.push(RoleAgg::new(name, container, ts_ns));
        self.roles.len() - 1
    }

    /// Gives `pid` a role and a fresh tracker. A process that was running before tracing
    /// began is past its startup: it starts in its role's steady phase.
    fn start(&mut self, pid: u32, instance: u32, tree: &ProcessTree, execd: bool, ts_ns: u64) {
        let attached = self.attached.contains(&pid);
        // A process found running runs its own program if it differs from its parent's.
        let own_program = execd || (attached && roles::runs_other_program(pid, tree));
        let name = self.role_name(pid, tree, own_program);
        let container = tree.get(pid).and_then(|p| p.container.clone());
        if let Some(p) = tree
            .get(pid)
            .filter(|p| self.roots.contains(&pid) && !p.exe.is_empty())
        {
            self.program = Some(profile::Program {
                path: p.exe.clone(),
                comm: p.comm.clone(),
            });
        }
        let role = self.role_index(name, container, ts_ns);
        self.roles[role].admit(pid, instance);
        let tracker = self.det.tracker(&self.roles[role].name, attached);
        let execs = self.procs.get(&pid).map_or(0, |p| p.execs);
        self.procs.insert(
            pid,
            ProcState {
                instance,
                role,
                tracker,
                execs,
                reported: None,
            },
        );
    }

    /// Makes sure `tgid` (as `instance`) is followed: a process first seen in a record (a
    /// forked child) starts in its role's first phase, which is its first segment's.
    fn ensure(&mut self, tgid: u32, instance: u32, tree: &ProcessTree, ts_ns: u64) {
        match self.procs.get_mut(&tgid) {
            Some(st) if st.instance == instance || instance == 0 => return,
            Some(st) if st.instance == 0 => {
                st.instance = instance;
                return;
            }
            // Another process with this pid: the one known has ended.
            Some(_) => self.end(tgid),
            None => {}
        }
        self.start(tgid, instance, tree, false, ts_ns);
        if let (Detector::Rules(_), Some(st)) = (&self.det, self.procs.get(&tgid)) {
            let phase = st.tracker.rule_phase().unwrap_or(0);
            let role = st.role;
            self.open((tgid, instance, 1), role, phase);
        }
    }

    /// Gives a segment its role and phase; the calls waiting for it go there.
    fn open(&mut self, key: SegKey, role: usize, phase: usize) {
        let (tgid, instance, seg) = key;
        let (role, phase) = *self
            .segs
            .entry((tgid, instance))
            .or_default()
            .entry(seg)
            .or_insert((role, phase));
        let count = self.counting == Counting::Records;
        for item in self.waiting.remove(&key).unwrap_or_default() {
            self.roles[role].record(phase, item, count);
        }
    }

    /// The path argument recorded for `tid`'s call entered at `enter_ns`.
    fn take_path(&mut self, tid: u32, enter_ns: u64) -> Option<String> {
        self.paths.take(tid, enter_ns)
    }

    /// A segment opener (phase rules): moves the tracker on the marker it reports.
    fn segment(&mut self, s: &SegmentRecord, tree: &ProcessTree) {
        let (tgid, flags) = (s.header.tgid, s.header.flags);
        if flags & segment_flags::FIRST != 0 {
            let execd = flags & segment_flags::EXEC != 0;
            if self.procs.contains_key(&tgid) {
                self.end(tgid);
            }
            self.start(tgid, s.instance, tree, execd, s.ts_ns);
            let st = self.procs.get_mut(&tgid).expect("started above");
            st.execs = 0;
            if execd {
                let role = &self.roles[st.role].name;
                st.tracker.process_event(&self.det, role, Obs::Exec);
            }
        } else {
            self.ensure(tgid, s.instance, tree, s.ts_ns);
            if flags & segment_flags::EXEC != 0 {
                let st = self.procs.get_mut(&tgid).expect("ensured above");
                st.execs += 1;
            }
        }
        // Counting records, the tracker sees the marker's own record instead (and forks).
        let drive = self.counting == Counting::Kernel;
        let path = if drive && flags & segment_flags::MARKER != 0 {
            self.take_path(s.tid, s.ts_ns)
        } else {
            None
        };
        let st = self.procs.get_mut(&tgid).expect("started above");
        let role_name = &self.roles[st.role].name;
        if drive && flags & segment_flags::MARKER != 0 {
            st.tracker.mark(&self.det, role_name, s.nr, path.as_deref());
        }
        if drive && flags & segment_flags::FORK != 0 {
            st.tracker.process_event(&self.det, role_name, Obs::Fork);
        }
        let (role, phase) = (st.role, st.tracker.rule_phase().unwrap_or(0));
        self.open((tgid, s.instance, s.seg), role, phase);
        self.note_change(tgid);
        if let Some(item) = self.found_exec.remove(&tgid) {
            // Counted here: the kernel began tracking inside this execve and never counted it.
            self.roles[role].record(phase, item, true);
        }
    }

    /// Queues a phase change for `take_phase_changes` when `tgid`'s phase moved (with rules),
    /// or when it reached its steady state (either way).
    fn note_change(&mut self, tgid: u32) {
        let Some(st) = self.procs.get_mut(&tgid) else {
            return;
        };
        let role = &self.roles[st.role].name;
        let now = (st.tracker.rule_phase(), st.tracker.serving(&self.det, role));
        if st.reported == Some(now) {
            return;
        }
        st.reported = Some(now);
        let (phase, serving) = now;
        let phase_name = match phase {
            Some(p) => self.det.phase_name(role, p),
            None if serving => "steady".into(),
            None => "before its steady state".into(),
        };
        self.changes.push(PhaseChange {
            tgid,
            instance: st.instance,
            role: role.clone(),
            phase,
            phase_name,
            serving,
            execs: st.execs,
        });
    }

    fn syscall(&mut self, r: &SyscallRecord, tree: &ProcessTree) {
        let tgid = r.header.tgid;
        let path = self.take_path(r.tid, r.enter_ns);
        let args = self.args.take(r.tid, r.enter_ns);
        let at_entry = r.header.flags & syscall_flags::AT_ENTRY != 0;
        let item = Item {
            nr: r.nr,
            ts_ns: r.enter_ns,
            path,
            args,
            failed: !at_entry && phasebox_common::is_error(r.ret),
        };
        if self.counting == Counting::Records {
            // Every call is a record: the tracker sees each one, in order (automatic phases,
            // and a trace file read back, whatever segments its recording had).
            self.ensure(tgid, r.instance, tree, r.enter_ns);
            let st = self.procs.get_mut(&tgid).expect("started above");
            let role_name = &self.roles[st.role].name;
            let path = item.path.clone();
            let released = st
                .tracker
                .syscall(&self.det, role_name, r.nr, path.as_deref(), item);
            let role = st.role;
            for (phase, item) in released {
                self.roles[role].record(phase, item, true);
            }
            self.note_change(tgid);
            return;
        }
        self.ensure(tgid, r.instance, tree, r.enter_ns);
        let key = (tgid, r.instance, r.seg);
        let count = self.counting == Counting::Records;
        match self.seg(key) {
            Some((role, phase)) => self.roles[role].record(phase, item, count),
            // Counted without a segment (the kernel's process map was full): the phase the
            // process is in now.
            None if r.seg == 0 => {
                let st = &self.procs[&tgid];
                let (role, phase) = (st.role, st.tracker.rule_phase().unwrap_or(0));
                self.roles[role].record(phase, item, count);
            }
            None => self.waiting.entry(key).or_default().push(item),
        }
    }

    /// A process's calls are over: the calls automatic segmentation still holds go to their
    /// phase. Its segments stay until its counts are final (`forget`).
    fn end(&mut self, pid: u32) {
        if let Some(mut st) = self.procs.remove(&pid) {
            for (phase, item) in st.tracker.flush() {
                self.roles[st.role].record(phase, item, true);
            }
        }
        self.roots.remove(&pid);
        self.attached.remove(&pid);
    }

    /// Takes one event (after the process tree has taken it). Events of processes outside
    /// the session's scope (`Process::ignored`) teach nothing.
    pub fn observe(&mut self, ev: &Event, tree: &ProcessTree) {
        if tree.ignores(ev) {
            return;
        }
        match ev {
            Event::Filtered(f) => self.filtered(f, tree),
            Event::Args(a) => self.recorded_args(a, tree),
            Event::Path(p) => {
                self.paths.hold(p.tid, p.enter_ns, p.path.clone());
            }
            Event::Segment(s) => self.segment(s, tree),
            Event::Syscall(r) => self.syscall(r, tree),
            // Counting the kernel's counters, a fork that is a marker comes as a segment
            // opener; counting records, the fork itself moves the tracker. A child starts at
            // its first record.
            Event::Fork(f) => {
                if self.counting == Counting::Records
                    && let Some(st) = self.procs.get_mut(&f.header.tgid)
                {
                    let role = &self.roles[st.role].name;
                    st.tracker.process_event(&self.det, role, Obs::Fork);
                }
            }
            Event::Exec(e) => {
                if e.new_root {
                    // Tracking began inside this execve: the call itself was not seen, but the
                    // exec proves it (execveat is rare enough to be named as execve). Its
                    // segment opener follows and starts the process.
                    self.roots.insert(e.tgid);
                    let nr = sysnames::special().execve;
                    let item = Item {
                        nr,
                        ts_ns: e.ts_ns,
                        path: Some(e.filename.clone()),
                        args: None,
                        failed: false,
                    };
                    self.found_exec.insert(e.tgid, item);
                    return;
                }
                // A new program starts from its beginning, whether or not its process was
                // running before tracing began.
                self.attached.remove(&e.tgid);
                let instance = self.procs.get(&e.tgid).map_or(0, |st| st.instance);
                if let Some(mut st) = self.procs.remove(&e.tgid) {
                    for (phase, item) in st.tracker.flush() {
                        self.roles[st.role].record(phase, item, true);
                    }
                    // The exec count carries over to the new program's state.
                    self.procs.insert(e.tgid, st);
                }
                self.start(e.tgid, instance, tree, true, e.ts_ns);
                let st = self.procs.get_mut(&e.tgid).expect("started above");
                let role_name = &self.roles[st.role].name;
                st.tracker.process_event(&self.det, role_name, Obs::Exec);
            }
            Event::Exit(x) => {
                self.paths.forget(x.tid);
                self.args.forget(x.tid);
                if x.group_dead != 0 {
                    self.end(x.header.tgid);
                }
            }
        }
    }

    /// A call a seccomp filter denied: kept in the phase of the segment the thread was in.
    fn filtered(&mut self, f: &FilteredRecord, tree: &ProcessTree) {
        let tgid = f.header.tgid;
        self.ensure(tgid, f.instance, tree, f.ts_ns);
        let key = (tgid, f.instance, f.seg);
        let place = self.seg(key).or_else(|| self.earlier(key));
        let errno = u32::try_from(f.ret.unsigned_abs()).unwrap_or(0);
        if let Some((role, phase)) = place {
            self.roles[role].filtered(phase, f.nr, errno);
        }
    }

    /// A call's recorded arguments: counting records, they go with the call's record (which
    /// follows); counting the kernel's counters, to the phase of the call's segment.
    fn recorded_args(&mut self, a: &ArgsRecord, tree: &ProcessTree) {
        if self.counting == Counting::Records {
            self.args.hold(a.tid, a.enter_ns, a.values);
            return;
        }
        let tgid = a.header.tgid;
        self.ensure(tgid, a.instance, tree, a.enter_ns);
        let key = (tgid, a.instance, a.seg);
        if let Some((role, phase)) = self.seg(key).or_else(|| self.earlier(key)) {
            self.roles[role].args(phase, a.nr, a.values);
        }
    }

    /// The role and phase of a segment, if its opener was read.
    fn seg(&self, (tgid, instance, seg): SegKey) -> Option<(usize, usize)> {
        self.segs.get(&(tgid, instance))?.get(&seg).copied()
    }

    /// The role and phase of the nearest earlier segment of the same process (phases only
    /// move forward, so the process was at least there), or the process's current phase.
    fn earlier(&self, (tgid, instance, seg): SegKey) -> Option<(usize, usize)> {
        self.segs
            .get(&(tgid, instance))
            .and_then(|segs| segs.range(..seg).next_back().map(|(_, &v)| v))
            .or_else(|| {
                let st = self.procs.get(&tgid)?;
                Some((st.role, st.tracker.rule_phase().unwrap_or(0)))
            })
    }

    /// Adds harvested growth of a kernel counter to the phase of its segment. With
    /// `last_chance` (the process has exited and its opener never came, for instance because
    /// records were dropped), the segment takes the phase of the nearest earlier segment of
    /// the same process (phases only move forward, so it is the phase the process was at
    /// least in), or the process's current phase.
    pub fn count(&mut self, key: &CountKey, grew: Counts, last_chance: bool) -> Attribution {
        if self.counting == Counting::Records {
            return Attribution::Ignored;
        }
        let k = (key.tgid, key.instance, key.seg);
        let found = self.seg(k).or_else(|| {
            if !last_chance && key.seg != 0 {
                return None;
            }
            self.earlier(k)
        });
        let Some((role, phase)) = found else {
            return if last_chance {
                Attribution::Ignored
            } else {
                Attribution::Waiting
            };
        };
        self.roles[role].count(phase, key.nr, grew.calls, grew.errors);
        Attribution::Counted { role, phase }
    }

    /// Drops what is kept of an exited process once its counts are final.
    pub fn forget(&mut self, tgid: u32, instance: u32) {
        for r in &mut self.roles {
            r.procs.remove(&(tgid, instance));
        }
        if !self.procs.contains_key(&tgid) {
            self.found_exec.remove(&tgid);
        }
        if !self.waiting.is_empty() {
            let waiting: Vec<SegKey> = self
                .waiting
                .keys()
                .filter(|(t, i, _)| *t == tgid && *i == instance)
                .copied()
                .collect();
            for key in waiting {
                self.resolve_waiting(key);
            }
        }
        self.segs.remove(&(tgid, instance));
    }

    /// Gives calls whose opener never came the phase of the nearest earlier segment.
    fn resolve_waiting(&mut self, key: SegKey) {
        let Some(items) = self.waiting.remove(&key) else {
            return;
        };
        let found = self.earlier(key);
        if let Some((role, phase)) = found {
            let count = self.counting == Counting::Records;
            for item in items {
                self.roles[role].record(phase, item, count);
            }
        }
    }

    /// Phase changes since the last call: summary mode asks the kernel for a narrower marker
    /// set, phase-aware enforcement watches for serving phases.
    pub fn take_phase_changes(&mut self) -> Vec<PhaseChange> {
        std::mem::take(&mut self.changes)
    }

    /// The profile learned so far.
    pub fn finish(mut self, tree: &ProcessTree, run: &RunInfo) -> Profile {
        let pids: Vec<u32> = self.procs.keys().copied().collect();
        for pid in pids {
            self.end(pid);
        }
        let waiting: Vec<SegKey> = self.waiting.keys().copied().collect();
        for key in waiting {
            self.resolve_waiting(key);
        }
        self.snapshot(tree, run)
    }

    /// The current phase of each role: the furthest phase any of its live processes reached.
    pub fn current_phases(&self) -> Vec<Place> {
        let mut furthest: BTreeMap<usize, usize> = BTreeMap::new();
        for st in self.procs.values() {
            if let Some(p) = st.tracker.rule_phase() {
                let e = furthest.entry(st.role).or_insert(p);
                *e = (*e).max(p);
            }
        }
        furthest
            .into_iter()
            .map(|(role, p)| self.place(role, p))
            .collect()
    }

    fn place(&self, role: usize, phase: usize) -> Place {
        let r = &self.roles[role];
        Place {
            container: short_id(r.container.as_deref()),
            role: r.name.clone(),
            phase: self.det.phase_name(&r.name, phase),
        }
    }

    /// Where the calls of a role and phase index returned by [`Learner::count`] are.
    pub fn names(&self, role: usize, phase: usize) -> Place {
        self.place(role, phase)
    }

    /// Each live process's instance, role and current phase (phase rules only).
    pub fn places(&self) -> Vec<ProcessPlace> {
        self.procs
            .iter()
            .filter_map(|(&tgid, st)| {
                let role = &self.roles[st.role].name;
                let phase = self.det.phase_name(role, st.tracker.rule_phase()?);
                Some(ProcessPlace {
                    tgid,
                    instance: st.instance,
                    role: role.clone(),
                    phase,
                })
            })
            .collect()
    }

    /// Calls and errors so far per container, role, phase and syscall.
    pub fn totals(&self) -> Vec<Total> {
        let mut out = Vec::new();
        for (i, r) in self.roles.iter().enumerate() {
            for (&idx, ph) in &r.phases {
                let place = self.place(i, idx);
                for (&nr, u) in &ph.calls {
                    out.push(Total {
                        place: place.clone(),
                        syscall: sysnames::name(nr).into_owned(),
                        calls: u.calls,
                        errors: u.errors,
                    });
                }
            }
        }
        out
    }

    /// The profile learned so far, without ending anything (checkpoints, metrics). Calls that
    /// automatic segmentation still holds back, or whose segment is not known yet, are not in
    /// it yet.
    pub fn snapshot(&self, tree: &ProcessTree, run: &RunInfo) -> Profile {
        let live_root = self
            .roots
            .iter()
            .filter_map(|&p| tree.get(p))
            .find(|p| !p.ignored)
            .map(|p| profile::Program {
                path: p.exe.clone(),
                comm: p.comm.clone(),
            });
        // The roots may have exited (and a long-running agent forgets them): the program the
        // latest one started, else the first process in the session's scope.
        let program = live_root
            .or_else(|| self.program.clone())
            .or_else(|| {
                tree.processes()
                    .find(|p| !p.ignored)
                    .map(|p| profile::Program {
                        path: p.exe.clone(),
                        comm: p.comm.clone(),
                    })
            })
            .unwrap_or_default();
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
            .map(|r| r.to_profile(&self.det, &mut notes))
            .collect();
        Profile {
            schema: profile::SCHEMA.into(),
            program,
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
                container: run.container.clone(),
            }],
            roles,
        }
    }
}
