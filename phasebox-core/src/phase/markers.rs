//! Marker sets for the kernel: which calls may still start a later phase of a process.
//!
//! The kernel opens a new segment at every call whose syscall is in the process's marker set
//! (see phasebox_common's segments). A process starts with every marker of the rule set (set
//! 0); once userspace knows its role and phase it asks for the set of that phase, the markers
//! of the phases after it only, so a process in its last phase opens no segment at all.
use std::collections::{BTreeSet, HashMap};

use phasebox_common::{FORK_MARKER_SLOT, FULL_MARKER_SET, MAX_MARKER_SETS};

use crate::rules::{Phase, Rules};

/// The marker slots of `phases` (syscall numbers, and FORK_MARKER_SLOT for forks).
fn slots<'a>(phases: impl IntoIterator<Item = &'a Phase>) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    for m in phases.into_iter().flat_map(|p| &p.enter) {
        out.extend(m.syscalls.iter().copied());
        if m.fork {
            out.insert(FORK_MARKER_SLOT);
        }
    }
    out
}

/// Every marker of the rule set: set 0, what a process has before its role is known.
pub fn full(rules: &Rules) -> BTreeSet<u32> {
    slots(rules.all_phases())
}

/// The markers that may still move a process of `role` out of phase `phase`.
pub fn after(rules: &Rules, role: &str, phase: usize) -> BTreeSet<u32> {
    slots(rules.phases(role).iter().skip(phase + 1))
}

/// Numbers given to marker sets, as the kernel's PB_MARKERS table holds them.
#[derive(Debug, Default)]
pub struct MarkerSets {
    ids: HashMap<BTreeSet<u32>, u32>,
}

impl MarkerSets {
    /// The set's number, and whether it is new (its slots must then be written to the
    /// kernel). When the table is full, set 0 (every marker: never wrong, only slower).
    pub fn intern(&mut self, set: BTreeSet<u32>) -> (u32, bool) {
        if let Some(&id) = self.ids.get(&set) {
            return (id, false);
        }
        let id = self.ids.len() as u32 + 1;
        if id >= MAX_MARKER_SETS {
            return (FULL_MARKER_SET, false);
        }
        self.ids.insert(set, id);
        (id, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysnames;

    #[test]
    fn later_phases_need_fewer_markers() {
        let r = Rules::load("nginx").unwrap();
        let nr = |n| sysnames::number(n).unwrap();
        let all = full(&r);
        assert!(all.contains(&nr("accept4")) && all.contains(&nr("bind")));
        // A worker in its event loop waits only for serving's markers.
        let loop_set = after(&r, "worker", 1);
        assert_eq!(
            loop_set,
            [nr("epoll_wait"), nr("accept4"), nr("accept")]
                .into_iter()
                .chain(sysnames::number("epoll_pwait"))
                .collect()
        );
        // In its last phase nothing can move it any more.
        assert!(after(&r, "worker", 2).is_empty());
        let mut sets = MarkerSets::default();
        let (a, new) = sets.intern(loop_set.clone());
        assert!(new && a != FULL_MARKER_SET);
        assert_eq!(sets.intern(loop_set), (a, false));
        let (b, _) = sets.intern(BTreeSet::new());
        assert_ne!(a, b);
    }
}
