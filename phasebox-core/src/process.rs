//! The traced process tree: which processes exist, their parents, programs and lifetimes.
//!
//! Built from fork, exec and exit events (and from /proc for processes that existed before
//! tracing began). A fork record does not say whether the child is a process or a thread:
//! the child stays a candidate until an event shows it as a tgid (a process) or as a tid
//! inside another tgid (a thread).
use std::collections::{BTreeMap, HashMap};

use crate::event::Event;

/// One traced process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    pub ppid: u32,
    /// Path of the program it runs (the last exec, or inherited from its parent).
    pub exe: String,
    pub comm: String,
    /// When it was first seen (kernel monotonic ns); None when it existed before tracing.
    pub started_ns: Option<u64>,
    pub exited_ns: Option<u64>,
    /// Order in which processes were seen, for stable listings.
    pub seq: u64,
}

/// The tree of traced processes.
#[derive(Debug, Default)]
pub struct ProcessTree {
    procs: BTreeMap<u32, Process>,
    /// Fork children not yet known to be processes or threads: child id → (parent tgid, time).
    candidates: HashMap<u32, (u32, u64)>,
    next_seq: u64,
}

impl ProcessTree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a process that phasebox found or launched itself.
    pub fn add(&mut self, pid: u32, ppid: u32, exe: String, comm: String, started_ns: Option<u64>) {
        let seq = self.bump();
        self.procs.insert(
            pid,
            Process {
                pid,
                ppid,
                exe,
                comm,
                started_ns,
                exited_ns: None,
                seq,
            },
        );
    }

    fn bump(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Applies one event.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::Syscall(r) => self.note_tgid(r.header.tgid),
            Event::Path(p) => self.note_tgid(p.tgid),
            Event::Fork(r) => {
                if r.child_tid != r.header.tgid {
                    self.candidates
                        .insert(r.child_tid, (r.header.tgid, r.ts_ns));
                }
            }
            Event::Exec(e) => {
                self.note_tgid(e.tgid);
                if let Some(p) = self.procs.get_mut(&e.tgid) {
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

    /// Records that `tgid` is a process: promotes it from candidate if it was one.
    pub fn note_tgid(&mut self, tgid: u32) {
        if self.candidates.is_empty() {
            return;
        }
        if let Some((parent, ts)) = self.candidates.remove(&tgid) {
            let (exe, comm) = match self.procs.get(&parent) {
                Some(p) => (p.exe.clone(), p.comm.clone()),
                None => (String::new(), String::new()),
            };
            self.add(tgid, parent, exe, comm, Some(ts));
        }
    }

    /// Marks a process as gone.
    pub fn mark_exited(&mut self, pid: u32, ts_ns: u64) {
        if let Some(p) = self.procs.get_mut(&pid) {
            p.exited_ns.get_or_insert(ts_ns);
        }
    }

    pub fn get(&self, pid: u32) -> Option<&Process> {
        self.procs.get(&pid)
    }

    /// Processes in the order they were seen.
    pub fn processes(&self) -> Vec<&Process> {
        let mut v: Vec<&Process> = self.procs.values().collect();
        v.sort_by_key(|p| p.seq);
        v
    }

    /// Pids of processes not known to have exited, and fork children not yet classified.
    pub fn live_pids(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .procs
            .values()
            .filter(|p| p.exited_ns.is_none())
            .map(|p| p.pid)
            .collect();
        v.extend(self.candidates.keys());
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Exec};
    use phasebox_common::{ExitRecord, ForkRecord, Header, SyscallRecord, kind};

    fn fork(parent: u32, child: u32, ts: u64) -> Event {
        Event::Fork(ForkRecord {
            header: Header {
                kind: kind::FORK,
                flags: 0,
                tgid: parent,
            },
            parent_tid: parent,
            child_tid: child,
            ts_ns: ts,
        })
    }
    fn exit(tgid: u32, tid: u32, group_dead: u32, ts: u64) -> Event {
        Event::Exit(ExitRecord {
            header: Header {
                kind: kind::EXIT,
                flags: 0,
                tgid,
            },
            tid,
            group_dead,
            ts_ns: ts,
        })
    }
    fn syscall(tgid: u32, tid: u32) -> Event {
        Event::Syscall(SyscallRecord {
            header: Header {
                kind: kind::SYSCALL,
                flags: 0,
                tgid,
            },
            tid,
            ..Default::default()
        })
    }

    #[test]
    fn children_become_processes_threads_do_not() {
        let mut t = ProcessTree::new();
        t.add(10, 1, "/usr/sbin/nginx".into(), "nginx".into(), None);
        t.apply(&fork(10, 11, 5)); // a worker process
        t.apply(&fork(10, 12, 6)); // a thread of 10
        t.apply(&syscall(11, 11));
        t.apply(&syscall(10, 12));
        t.apply(&exit(10, 12, 0, 7));
        let pids: Vec<u32> = t.processes().iter().map(|p| p.pid).collect();
        assert_eq!(pids, vec![10, 11]);
        let worker = t.get(11).unwrap();
        assert_eq!((worker.ppid, worker.exe.as_str()), (10, "/usr/sbin/nginx"));
        assert_eq!(worker.started_ns, Some(5));
        assert!(!t.is_candidate(12));
    }

    #[test]
    fn exec_renames_and_exit_ends() {
        let mut t = ProcessTree::new();
        t.add(20, 1, "/bin/sh".into(), "sh".into(), Some(1));
        t.apply(&fork(20, 21, 2));
        t.apply(&Event::Exec(Exec {
            new_root: false,
            tgid: 21,
            tid: 21,
            old_tid: 21,
            ts_ns: 3,
            comm: "pwd".into(),
            filename: "/usr/bin/pwd".into(),
        }));
        assert_eq!(t.get(21).unwrap().exe, "/usr/bin/pwd");
        assert_eq!(t.get(20).unwrap().exe, "/bin/sh");
        let mut live = t.live_pids();
        live.sort();
        assert_eq!(live, vec![20, 21]);
        t.apply(&exit(21, 21, 1, 9));
        assert_eq!(t.get(21).unwrap().exited_ns, Some(9));
        assert_eq!(t.live_pids(), vec![20]);
    }
}
