//! The traced process tree: which processes exist, their parents, programs, lifetimes and
//! exact syscall counts.
//!
//! Built from fork, exec, segment and exit events (and from /proc for processes that existed
//! before tracing began). A process is told apart from a later one with the same pid by its
//! kernel instance number (pids are reused; the kernel gives each process it sees an instance,
//! and both are in every record and counter key). A fork record does not say whether the child
//! is a process or a thread: the child stays a candidate until an event shows it as a tgid (a
//! process) or as a tid inside another tgid (a thread).
use std::collections::{BTreeMap, HashMap};

use phasebox_common::{CountKey, Counts};

use crate::event::Event;

/// One traced process (one instance of a pid).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    /// The kernel's instance number (0 until a record says it).
    pub instance: u32,
    pub ppid: u32,
    /// Path of the program it runs (the last exec, or inherited from its parent).
    pub exe: String,
    pub comm: String,
    /// When it was first seen (kernel monotonic ns); None when it existed before tracing.
    pub started_ns: Option<u64>,
    pub exited_ns: Option<u64>,
    /// The full id of the container it runs in (None: the host). A child is where its parent
    /// is.
    pub container: Option<String>,
    /// Found at its exec but outside the session's scope (another container, another program
    /// with the same comm), or a child of such a process: the kernel stops tracking it at its
    /// next call, and nothing of it is learned or counted. A child inherits it.
    pub ignored: bool,
    /// Exact calls and errors per syscall number, from the kernel's counters.
    pub counts: BTreeMap<u32, Counts>,
}

impl Process {
    /// A process known only by its pid and instance (its parent, program and container are
    /// filled in when records say them).
    fn bare(pid: u32, instance: u32, started_ns: Option<u64>) -> Self {
        Self {
            pid,
            instance,
            ppid: 0,
            exe: String::new(),
            comm: String::new(),
            started_ns,
            exited_ns: None,
            container: None,
            ignored: false,
            counts: BTreeMap::new(),
        }
    }
}

/// A fork child not yet known to be a process or a thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Candidate {
    parent: u32,
    ts_ns: u64,
    /// The instance the kernel gave it.
    instance: u32,
}

/// The tree of traced processes.
#[derive(Debug, Default)]
pub struct ProcessTree {
    /// Every instance seen (and not pruned), by the order it was seen.
    procs: BTreeMap<u64, Process>,
    next_seq: u64,
    /// pid → its newest instance in `procs`.
    by_pid: HashMap<u32, u64>,
    /// Fork children not yet known to be processes or threads, by child id.
    candidates: HashMap<u32, Candidate>,
}

impl ProcessTree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a process that phasebox found or launched itself (its instance comes with its
    /// first record).
    pub fn add(&mut self, pid: u32, ppid: u32, exe: String, comm: String, started_ns: Option<u64>) {
        self.insert(Process {
            ppid,
            exe,
            comm,
            ..Process::bare(pid, 0, started_ns)
        });
    }

    /// Says which container the newest process with this pid runs in.
    pub fn set_container(&mut self, pid: u32, container: Option<String>) {
        if let Some(p) = self.current_mut(pid) {
            p.container = container;
        }
    }

    /// Marks the newest process with this pid as outside the session's scope.
    pub fn set_ignored(&mut self, pid: u32) {
        if let Some(p) = self.current_mut(pid) {
            p.ignored = true;
        }
    }

    fn insert(&mut self, p: Process) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_pid.insert(p.pid, seq);
        self.procs.insert(seq, p);
        seq
    }

    /// Applies one event.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::Syscall(r) => {
                self.note_instance(r.header.tgid, r.instance, r.enter_ns);
            }
            Event::Segment(s) => {
                self.note_instance(s.header.tgid, s.instance, s.ts_ns);
            }
            Event::Filtered(f) => self.note_tgid(f.header.tgid),
            Event::Args(a) => self.note_tgid(a.header.tgid),
            Event::Path(p) => self.note_tgid(p.tgid),
            Event::Fork(r) => {
                if r.child_tid != r.header.tgid {
                    let c = Candidate {
                        parent: r.header.tgid,
                        ts_ns: r.ts_ns,
                        instance: r.child_instance,
                    };
                    self.candidates.insert(r.child_tid, c);
                }
            }
            Event::Exec(e) => {
                self.note_tgid(e.tgid);
                if let Some(p) = self.current_mut(e.tgid) {
                    p.exe = e.filename.clone();
                    p.comm = e.comm.clone();
                }
            }
            Event::Exit(r) => {
                let tgid = r.header.tgid;
                if r.tid != tgid {
                    // The candidate was a thread of tgid.
                    self.candidates.remove(&r.tid);
                }
                self.note_tgid(tgid);
                if r.group_dead != 0 {
                    self.mark_exited(tgid, r.ts_ns);
                }
            }
        }
    }

    /// Records that `tgid` is a process: promotes it from candidate if it was one. The
    /// kernel's counters may have shown it first (a harvest can read them before its fork
    /// record is drained): that process is the same instance, and gets its parent now.
    pub fn note_tgid(&mut self, tgid: u32) {
        if self.candidates.is_empty() {
            return;
        }
        let Some(c) = self.candidates.remove(&tgid) else {
            return;
        };
        let (exe, comm, container, ignored) = match self.get(c.parent) {
            Some(p) => (
                p.exe.clone(),
                p.comm.clone(),
                p.container.clone(),
                p.ignored,
            ),
            None => (String::new(), String::new(), None, false),
        };
        if let Some(p) = self.current_mut(tgid)
            && p.instance == c.instance
            && p.ppid == 0
        {
            p.ppid = c.parent;
            p.started_ns = Some(c.ts_ns);
            p.ignored |= ignored;
            if p.exe.is_empty() {
                (p.exe, p.comm) = (exe, comm);
            }
            if p.container.is_none() {
                p.container = container;
            }
            return;
        }
        self.insert(Process {
            ppid: c.parent,
            exe,
            comm,
            container,
            ignored,
            ..Process::bare(tgid, c.instance, Some(c.ts_ns))
        });
    }

    /// Records that `tgid` runs as kernel instance `instance`: fills in an instance phasebox
    /// added itself, and starts a new process when the pid was reused.
    fn note_instance(&mut self, tgid: u32, instance: u32, ts_ns: u64) {
        self.note_tgid(tgid);
        if instance == 0 {
            return;
        }
        let Some(p) = self.current_mut(tgid) else {
            self.insert(Process::bare(tgid, instance, Some(ts_ns)));
            return;
        };
        if p.instance == 0 {
            p.instance = instance;
        } else if p.instance != instance {
            // The pid now belongs to another process: the old one has ended.
            p.exited_ns.get_or_insert(ts_ns);
            self.insert(Process::bare(tgid, instance, Some(ts_ns)));
        }
    }

    /// Marks the newest process with this pid as gone.
    pub fn mark_exited(&mut self, pid: u32, ts_ns: u64) {
        if let Some(p) = self.current_mut(pid) {
            p.exited_ns.get_or_insert(ts_ns);
        }
    }

    fn current_mut(&mut self, pid: u32) -> Option<&mut Process> {
        let seq = *self.by_pid.get(&pid)?;
        self.procs.get_mut(&seq)
    }

    /// The newest process with this pid.
    pub fn get(&self, pid: u32) -> Option<&Process> {
        self.by_pid.get(&pid).and_then(|seq| self.procs.get(seq))
    }

    /// The process a counter key belongs to.
    pub fn find(&self, tgid: u32, instance: u32) -> Option<&Process> {
        self.find_seq(tgid, instance).map(|seq| &self.procs[&seq])
    }

    fn find_seq(&self, tgid: u32, instance: u32) -> Option<u64> {
        let &newest = self.by_pid.get(&tgid)?;
        let p = &self.procs[&newest];
        if p.instance == instance || p.instance == 0 {
            return Some(newest);
        }
        self.procs
            .iter()
            .rev()
            .find(|(_, p)| p.pid == tgid && p.instance == instance)
            .map(|(&seq, _)| seq)
    }

    /// Adds harvested counter growth to its process (one that only the counters saw is added
    /// with what is known: its pid).
    pub fn add_counts(&mut self, key: &CountKey, grew: Counts) {
        let seq = match self.find_seq(key.tgid, key.instance) {
            Some(seq) => seq,
            None => self.insert(Process::bare(key.tgid, key.instance, None)),
        };
        let p = self.procs.get_mut(&seq).expect("found or inserted");
        if p.instance == 0 {
            p.instance = key.instance;
        }
        let c = p.counts.entry(key.nr).or_default();
        c.calls += grew.calls;
        c.errors += grew.errors;
    }

    /// Whether the process a counter key belongs to has exited (its counts are final).
    pub fn has_exited(&self, tgid: u32, instance: u32) -> bool {
        self.find(tgid, instance)
            .is_some_and(|p| p.exited_ns.is_some())
    }

    /// Whether the process a record or counter key belongs to is outside the session's scope.
    pub fn is_ignored(&self, tgid: u32, instance: u32) -> bool {
        self.find(tgid, instance).is_some_and(|p| p.ignored)
    }

    /// Whether `ev` belongs to a process outside the session's scope (by its instance where
    /// the record carries one, else the newest process with its pid).
    pub fn ignores(&self, ev: &Event) -> bool {
        match ev {
            Event::Syscall(r) => self.is_ignored(r.header.tgid, r.instance),
            Event::Segment(s) => self.is_ignored(s.header.tgid, s.instance),
            Event::Filtered(f) => self.is_ignored(f.header.tgid, f.instance),
            Event::Args(a) => self.is_ignored(a.header.tgid, a.instance),
            other => self.get(other.tgid()).is_some_and(|p| p.ignored),
        }
    }

    /// Processes in the order they were seen.
    pub fn processes(&self) -> impl Iterator<Item = &Process> {
        self.procs.values()
    }

    /// Pids of processes not known to have exited, and fork children not yet classified.
    pub fn live_pids(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .by_pid
            .values()
            .map(|seq| &self.procs[seq])
            .filter(|p| p.exited_ns.is_none())
            .map(|p| p.pid)
            .collect();
        v.extend(self.candidates.keys());
        v.sort_unstable();
        v
    }

    /// Forgets a candidate that turned out not to exist any more (a thread that ended).
    pub fn drop_candidate(&mut self, id: u32) {
        self.candidates.remove(&id);
    }

    pub fn is_candidate(&self, id: u32) -> bool {
        self.candidates.contains_key(&id)
    }

    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// Forgets every process instance that has exited (call it after a harvest, which read
    /// their counts for the last time): a long-running agent keeps only what lives. Returns
    /// the (pid, instance) of each one forgotten.
    pub fn prune_exited(&mut self) -> Vec<(u32, u32)> {
        let gone: Vec<u64> = self
            .procs
            .iter()
            .filter(|(_, p)| p.exited_ns.is_some())
            .map(|(&seq, _)| seq)
            .collect();
        let mut out = Vec::with_capacity(gone.len());
        for seq in gone {
            let p = self.procs.remove(&seq).expect("listed above");
            if self.by_pid.get(&p.pid) == Some(&seq) {
                self.by_pid.remove(&p.pid);
            }
            out.push((p.pid, p.instance));
        }
        out
    }

    /// How many process instances the tree holds.
    pub fn len(&self) -> usize {
        self.procs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Exec};
    use phasebox_common::{
        ExitRecord, ForkRecord, Header, SegmentRecord, SyscallRecord, segment_flags,
    };

    fn fork(parent: u32, child: u32, instance: u32, ts: u64) -> Event {
        Event::Fork(ForkRecord {
            header: Header::of::<ForkRecord>(0, parent),
            parent_tid: parent,
            child_tid: child,
            child_instance: instance,
            child_flags: 0,
            ts_ns: ts,
        })
    }
    fn exit(tgid: u32, tid: u32, group_dead: u32, ts: u64) -> Event {
        Event::Exit(ExitRecord {
            header: Header::of::<ExitRecord>(0, tgid),
            tid,
            group_dead,
            ts_ns: ts,
        })
    }
    fn syscall(tgid: u32, tid: u32, instance: u32) -> Event {
        Event::Syscall(SyscallRecord {
            header: Header::of::<SyscallRecord>(0, tgid),
            tid,
            instance,
            seg: 1,
            ..Default::default()
        })
    }

    #[test]
    fn children_become_processes_threads_do_not() {
        let mut t = ProcessTree::new();
        t.add(10, 1, "/usr/sbin/nginx".into(), "nginx".into(), None);
        t.apply(&fork(10, 11, 5, 5)); // a worker process
        t.apply(&fork(10, 12, 6, 6)); // a thread of 10
        t.apply(&syscall(11, 11, 5));
        t.apply(&syscall(10, 12, 1));
        t.apply(&exit(10, 12, 0, 7));
        let pids: Vec<u32> = t.processes().map(|p| p.pid).collect();
        assert_eq!(pids, vec![10, 11]);
        let worker = t.get(11).unwrap();
        assert_eq!((worker.ppid, worker.exe.as_str()), (10, "/usr/sbin/nginx"));
        assert_eq!((worker.started_ns, worker.instance), (Some(5), 5));
        assert_eq!(t.get(10).unwrap().instance, 1);
        assert!(!t.is_candidate(12));
    }

    #[test]
    fn exec_renames_and_exit_ends() {
        let mut t = ProcessTree::new();
        t.add(20, 1, "/bin/sh".into(), "sh".into(), Some(1));
        t.apply(&fork(20, 21, 2, 2));
        t.apply(&Event::Exec(Exec {
            new_root: false,
            tgid: 21,
            tid: 21,
            old_tid: 21,
            ts_ns: 3,
            comm: "pwd".into(),
            filename: "/usr/bin/pwd".into(),
            found_by: 0,
        }));
        assert_eq!(t.get(21).unwrap().exe, "/usr/bin/pwd");
        assert_eq!(t.get(20).unwrap().exe, "/bin/sh");
        assert_eq!(t.live_pids(), vec![20, 21]);
        t.apply(&exit(21, 21, 1, 9));
        assert_eq!(t.get(21).unwrap().exited_ns, Some(9));
        assert_eq!(t.live_pids(), vec![20]);
    }

    #[test]
    fn a_reused_pid_is_another_process() {
        let mut t = ProcessTree::new();
        t.add(30, 1, "/bin/sh".into(), "sh".into(), None);
        t.apply(&fork(30, 31, 7, 1));
        t.apply(&syscall(31, 31, 7));
        t.apply(&exit(31, 31, 1, 2));
        // Pid 31 again, for another child: another instance.
        t.apply(&fork(30, 31, 9, 3));
        t.apply(&Event::Segment(SegmentRecord {
            header: Header::of::<SegmentRecord>(segment_flags::FIRST, 31),
            tid: 31,
            instance: 9,
            seg: 1,
            ..Default::default()
        }));
        let key = |instance| CountKey {
            tgid: 31,
            instance,
            seg: 1,
            nr: 0,
        };
        let one = Counts {
            calls: 1,
            errors: 0,
        };
        t.add_counts(&key(7), one);
        t.add_counts(&key(9), one);
        t.add_counts(&key(9), one);
        let mine: Vec<(u32, u64)> = t
            .processes()
            .filter(|p| p.pid == 31)
            .map(|p| (p.instance, p.counts[&0].calls))
            .collect();
        assert_eq!(mine, vec![(7, 1), (9, 2)]);
        assert!(t.has_exited(31, 7));
        assert!(!t.has_exited(31, 9));
        assert_eq!(t.find(31, 7).unwrap().exited_ns, Some(2));
    }

    #[test]
    fn counters_read_before_the_fork_record_make_one_process() {
        let mut t = ProcessTree::new();
        t.add(40, 1, "/usr/bin/xargs".into(), "xargs".into(), None);
        let key = CountKey {
            tgid: 41,
            instance: 8,
            seg: 1,
            nr: 0,
        };
        let one = Counts {
            calls: 1,
            errors: 0,
        };
        // A harvest reads the child's counters before its fork record is drained.
        t.add_counts(&key, one);
        t.apply(&fork(40, 41, 8, 5));
        t.apply(&syscall(41, 41, 8));
        t.add_counts(&key, one);
        let mine: Vec<&Process> = t.processes().filter(|p| p.pid == 41).collect();
        assert_eq!(mine.len(), 1, "{mine:?}");
        assert_eq!((mine[0].ppid, mine[0].exe.as_str()), (40, "/usr/bin/xargs"));
        assert_eq!(mine[0].counts[&0].calls, 2);
    }

    #[test]
    fn exited_processes_are_pruned_and_children_inherit_being_ignored() {
        let mut t = ProcessTree::new();
        t.add(50, 1, "/bin/sh".into(), "sh".into(), None);
        t.set_ignored(50);
        t.apply(&fork(50, 51, 3, 1));
        t.apply(&syscall(51, 51, 3));
        assert!(t.is_ignored(51, 3));
        t.add(60, 1, "/bin/x".into(), "x".into(), None);
        t.apply(&syscall(60, 60, 4));
        t.apply(&exit(51, 51, 1, 2));
        assert_eq!(t.prune_exited(), vec![(51, 3)]);
        assert!(t.get(51).is_none());
        assert_eq!(t.len(), 2);
        assert!(!t.is_ignored(60, 4));
    }
}
