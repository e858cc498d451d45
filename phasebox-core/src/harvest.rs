//! Harvesting the kernel's exact counters: their growth since the last reading goes to each
//! process's totals (the summary) and to the phase of its segment (the learner); the counters
//! of processes that have exited are final once read, and are handed back for deletion.
use std::collections::{BTreeSet, HashMap};

use phasebox_common::{CountKey, Counts};

use crate::{
    learn::{Attribution, Learner},
    process::ProcessTree,
};

/// Counter growth given a role and phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributed {
    pub key: CountKey,
    pub grew: Counts,
    pub role: usize,
    pub phase: usize,
}

/// What one harvest did.
#[derive(Debug, Default)]
pub struct Harvest {
    /// Growth added to a role and phase.
    pub attributed: Vec<Attributed>,
    /// Counters of exited processes, read for the last time, and of processes outside the
    /// session's scope: delete them in the kernel.
    pub finished: Vec<CountKey>,
}

/// Keeps the last value of every counter and the growth still waiting for its segment.
#[derive(Debug, Default)]
pub struct Harvester {
    last: HashMap<CountKey, Counts>,
    waiting: Vec<(CountKey, Counts)>,
}

impl Harvester {
    /// Takes a reading of every counter (summed over CPUs).
    pub fn harvest(
        &mut self,
        reading: impl IntoIterator<Item = (CountKey, Counts)>,
        tree: &mut ProcessTree,
        mut learner: Option<&mut Learner>,
    ) -> Harvest {
        let mut out = Harvest::default();
        let (grown, seen) = self.growth(reading, tree, &mut out);
        let mut done = self.attribute(grown, tree, learner.as_deref_mut(), &mut out);
        for key in seen {
            if tree.has_exited(key.tgid, key.instance) {
                done.insert((key.tgid, key.instance));
                self.last.remove(&key);
                out.finished.push(key);
            }
        }
        if let Some(l) = learner {
            for (tgid, instance) in done {
                l.forget(tgid, instance);
            }
        }
        out
    }

    /// The growth of each counter since its last reading, added to its process's totals,
    /// after the growth still waiting; and the counters read. A process outside the session's
    /// scope is counted for nothing, and its counters go at once (the kernel stops tracking
    /// it at its next call).
    fn growth(
        &mut self,
        reading: impl IntoIterator<Item = (CountKey, Counts)>,
        tree: &mut ProcessTree,
        out: &mut Harvest,
    ) -> (Vec<(CountKey, Counts)>, Vec<CountKey>) {
        let mut grown = std::mem::take(&mut self.waiting);
        let mut seen = Vec::new();
        for (key, now) in reading {
            if tree.is_ignored(key.tgid, key.instance) {
                self.last.remove(&key);
                out.finished.push(key);
                continue;
            }
            seen.push(key);
            let before = self.last.insert(key, now).unwrap_or_default();
            let grew = Counts {
                calls: now.calls.saturating_sub(before.calls),
                errors: now.errors.saturating_sub(before.errors),
            };
            if grew.calls == 0 && grew.errors == 0 {
                continue;
            }
            tree.add_counts(&key, grew);
            grown.push((key, grew));
        }
        (grown, seen)
    }

    /// Gives each growth to the learner, for the phase of its segment (or to wait for it);
    /// returns the exited processes (tgid, instance) whose growth this was the last chance for.
    fn attribute(
        &mut self,
        grown: Vec<(CountKey, Counts)>,
        tree: &ProcessTree,
        mut learner: Option<&mut Learner>,
        out: &mut Harvest,
    ) -> BTreeSet<(u32, u32)> {
        let mut done = BTreeSet::new();
        for (key, grew) in grown {
            let last_chance = tree.has_exited(key.tgid, key.instance);
            if last_chance {
                done.insert((key.tgid, key.instance));
            }
            let Some(l) = learner.as_deref_mut() else {
                continue;
            };
            match l.count(&key, grew, last_chance) {
                Attribution::Counted { role, phase } => out.attributed.push(Attributed {
                    key,
                    grew,
                    role,
                    phase,
                }),
                Attribution::Waiting => self.waiting.push((key, grew)),
                Attribution::Ignored => {}
            }
        }
        done
    }
}
