//! The kernel starts tracking a process found at its exec (and each child it forks before
//! the session has decided on it) as unconfirmed: counted, never enforced. The session
//! decides on the exec record (`scope`), and the kernel needs the decision keyed by the
//! process's instance, which arrives with the process's first segment (a found process) or is
//! in its fork record (a child). This module keeps the decisions until they can be written.
use std::collections::HashMap;

use phasebox_common::{proc_flags, segment_flags};
use phasebox_core::{event::Event, process::ProcessTree};

/// Decisions on their way to the kernel.
#[derive(Debug, Default)]
pub(super) struct Verdicts {
    /// Found at exec and decided (accepted?), waiting for the instance.
    decided: HashMap<u32, bool>,
    /// Children born unconfirmed, not yet known to be processes: child id → instance.
    children: HashMap<u32, u32>,
    /// Ready to write: (tgid, instance, accept).
    due: Vec<(u32, u32, bool)>,
}

impl Verdicts {
    /// A process found at its exec was decided on.
    pub fn decided(&mut self, tgid: u32, accept: bool) {
        self.decided.insert(tgid, accept);
    }

    /// Takes one event, after the process tree has taken it.
    pub fn observe(&mut self, ev: &Event, tree: &ProcessTree) {
        match ev {
            Event::Segment(s) if s.header.flags & segment_flags::FIRST != 0 => {
                if let Some(accept) = self.decided.remove(&s.header.tgid) {
                    self.due.push((s.header.tgid, s.instance, accept));
                }
            }
            Event::Fork(f) if f.child_flags & proc_flags::UNCONFIRMED != 0 => {
                self.children.insert(f.child_tid, f.child_instance);
            }
            Event::Exit(x) => {
                self.children.remove(&x.tid);
                if x.group_dead != 0 {
                    self.forget(x.header.tgid);
                }
            }
            _ => {}
        }
        let tgid = ev.tgid();
        if let Some(&instance) = self.children.get(&tgid)
            && !tree.is_candidate(tgid)
        {
            // A child that shows as a process: it is in the scope if its parent was.
            self.children.remove(&tgid);
            let accept = !tree.is_ignored(tgid, instance);
            self.due.push((tgid, instance, accept));
        }
    }

    /// The decisions to write now.
    pub fn take_due(&mut self) -> Vec<(u32, u32, bool)> {
        std::mem::take(&mut self.due)
    }

    /// Forgets a process that is gone.
    pub fn forget(&mut self, tgid: u32) {
        self.decided.remove(&tgid);
        self.children.remove(&tgid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phasebox_common::{ForkRecord, Header, SegmentRecord, SyscallRecord};

    fn segment(tgid: u32, instance: u32, flags: u16) -> Event {
        Event::Segment(SegmentRecord {
            header: Header::of::<SegmentRecord>(flags, tgid),
            tid: tgid,
            instance,
            seg: 1,
            ..Default::default()
        })
    }

    #[test]
    fn decisions_wait_for_the_instance_and_children_follow_their_parent() {
        let (mut v, mut tree) = (Verdicts::default(), ProcessTree::new());
        // Found at exec and rejected: the verdict goes with the first segment's instance.
        tree.add(10, 1, "/x".into(), "x".into(), None);
        tree.set_ignored(10);
        v.decided(10, false);
        assert!(v.take_due().is_empty());
        let first = segment(10, 7, segment_flags::FIRST);
        tree.apply(&first);
        v.observe(&first, &tree);
        assert_eq!(v.take_due(), [(10, 7, false)]);
        // A child it forked before the verdict was unconfirmed too: rejected with it, once it
        // shows as a process.
        let fork = Event::Fork(ForkRecord {
            header: Header::of::<ForkRecord>(0, 10),
            parent_tid: 10,
            child_tid: 11,
            child_instance: 8,
            child_flags: proc_flags::UNCONFIRMED,
            ts_ns: 2,
        });
        tree.apply(&fork);
        v.observe(&fork, &tree);
        assert!(
            v.take_due().is_empty(),
            "a thread or a process: not known yet"
        );
        let call = Event::Syscall(SyscallRecord {
            header: Header::of::<SyscallRecord>(0, 11),
            tid: 11,
            instance: 8,
            seg: 1,
            ..Default::default()
        });
        tree.apply(&call);
        v.observe(&call, &tree);
        assert_eq!(v.take_due(), [(11, 8, false)]);
        // A confirmed one is accepted.
        tree.add(20, 1, "/y".into(), "y".into(), None);
        v.decided(20, true);
        let first = segment(20, 9, segment_flags::FIRST);
        tree.apply(&first);
        v.observe(&first, &tree);
        assert_eq!(v.take_due(), [(20, 9, true)]);
    }
}
