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
