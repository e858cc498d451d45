//! The process slots (see `phasebox_common::Slot`): the kernel keeps the counters of most
//! traced processes in two arrays mapped into the agent's memory, so a call costs it no hash
//! lookup and a reading costs the agent no system call. The agent reads them beside the hash
//! counters, and clears what is final: a counter whose segment ended before its last reading,
//! and every counter of a slot whose process has gone, after which it gives the slot back.
use std::collections::HashMap;
use std::sync::atomic::Ordering;

use aya::maps::Map;
use phasebox_common::{CountKey, Counts, PROC_SLOTS, SLOT_SYSCALLS, Slot, SlotCount, names};

use super::ProbeError;
use super::mapped::{Mapped, u32_at, u64_at};

/// What the agent saw of a slot at its last reading.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Seen {
    owner: u32,
    instance: u32,
    /// The process's segment then: counters of earlier segments are final.
    seg: u32,
    /// The process had gone (read twice before the slot is given back).
    gone: bool,
}

/// The slots and what the agent keeps of them.
pub(super) struct Slots {
    slots: Mapped<Slot>,
    counts: Mapped<SlotCount>,
    seen: Vec<Seen>,
    /// Counters cleared from the slots, until the session has read them for the last time.
    cleared: HashMap<CountKey, u64>,
}

impl Slots {
    pub(super) fn new(slots: Map, counts: Map) -> Result<Slots, ProbeError> {
        Ok(Slots::over(
            Mapped::map(slots, PROC_SLOTS, names::SLOTS)?,
            Mapped::map(counts, PROC_SLOTS * SLOT_SYSCALLS, names::SLOT_COUNTS)?,
        ))
    }

    fn over(slots: Mapped<Slot>, counts: Mapped<SlotCount>) -> Slots {
        Slots {
            seen: vec![Seen::default(); slots.len],
            slots,
            counts,
            cleared: HashMap::new(),
        }
    }

    /// Adds every slot counter to `out`, clears the final ones and gives back the slots of
    /// processes that have gone.
    pub(super) fn read(&mut self, out: &mut HashMap<CountKey, Counts>) {
        for i in 0..self.slots.len {
            self.read_slot(i, out);
        }
        for (key, calls) in &self.cleared {
            out.entry(*key).or_default().calls += calls;
        }
    }

    /// Marks the slot of process `tgid` (instance `instance`, 0 if unknown) gone, for an exit
    /// the agent learned of from /proc: where the exit tracepoint has no `group_dead` field
    /// (older kernels) the kernel never ends a process, and its slot would stay live, read
    /// again after the session has pruned the process. Its counters are final at the next
    /// reading, and the slot is given back as any other.
    pub(super) fn release(&mut self, tgid: u32, instance: u32) {
        let s = self.slots.at(tgid as usize % self.slots.len);
        // SAFETY: slot of `tgid` in the mapping; aligned u32 fields. `live` is cleared only
        // if it still holds `tgid` (a compare-and-swap), so a process that took the slot since
        // (a new owner) keeps it; the instance check keeps a new instance of the pid's.
        unsafe {
            let owner = u32_at(&raw mut (*s).owner).load(Ordering::Acquire);
            let theirs = u32_at(&raw mut (*s).state.instance).load(Ordering::Acquire);
            if owner == tgid && (instance == 0 || theirs == instance) {
                let _ = u32_at(&raw mut (*s).live).compare_exchange(
                    tgid,
                    0,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
            }
        }
    }

    /// Forgets counters the session has read for the last time.
    pub(super) fn delete(&mut self, keys: &[CountKey]) {
        for k in keys {
            self.cleared.remove(k);
        }
    }

    fn read_slot(&mut self, i: usize, out: &mut HashMap<CountKey, Counts>) {
        let s = self.slots.at(i);
        // SAFETY: `s` is slot i of the mapping; its fields are aligned u32s.
        let (claims, owner, live, instance, seg) = unsafe {
            (
                u32_at(&raw mut (*s).claims).load(Ordering::Acquire),
                u32_at(&raw mut (*s).owner).load(Ordering::Acquire),
                u32_at(&raw mut (*s).live).load(Ordering::Acquire),
                u32_at(&raw mut (*s).state.instance).load(Ordering::Acquire),
                u32_at(&raw mut (*s).state.seg).load(Ordering::Acquire),
            )
        };
        if claims == 0 || owner == 0 {
            // Free, or being taken (the kernel writes `owner` last).
            self.seen[i] = Seen::default();
            return;
        }
        let gone = live != owner;
        let before = self.seen[i];
        let same = before.owner == owner && before.instance == instance;
        // A counter is final once its segment had ended at the last reading (a call that read
        // the segment before it changed has long been counted), or once the process has gone.
        let final_below = match (gone, same) {
            (true, _) => u32::MAX,
            (false, true) => before.seg,
            (false, false) => 0,
        };
        for nr in 0..SLOT_SYSCALLS {
            let c = self.counts.at(i * SLOT_SYSCALLS as usize + nr as usize);
            // SAFETY: counter `nr` of slot i in the mapping; aligned fields.
            let (cseg, calls) = unsafe {
                (
                    u32_at(&raw mut (*c).seg).load(Ordering::Acquire),
                    u64_at(&raw mut (*c).calls).load(Ordering::Acquire),
                )
            };
            if cseg == 0 {
                continue;
            }
            let key = CountKey {
                tgid: owner,
                instance,
                seg: cseg,
                nr,
            };
            if cseg < final_below {
                *self.cleared.entry(key).or_default() += calls;
                // SAFETY: as above. No program writes a final counter; the claim goes last.
                unsafe {
                    u64_at(&raw mut (*c).calls).store(0, Ordering::Release);
                    u32_at(&raw mut (*c).seg).store(0, Ordering::Release);
                    u32_at(&raw mut (*c).claim).fetch_sub(1, Ordering::Release);
                }
            } else {
                out.entry(key).or_default().calls += calls;
            }
        }
        if gone && same && before.gone {
            // Gone at two readings: no program is still taking it. Given back, claim last.
            // SAFETY: slot i; no program uses a slot whose `live` is not its owner.
            unsafe {
                (*s).state = Default::default();
                u32_at(&raw mut (*s).owner).store(0, Ordering::Release);
                u32_at(&raw mut (*s).claims).fetch_sub(1, Ordering::Release);
            }
            self.seen[i] = Seen::default();
            return;
        }
        self.seen[i] = Seen {
            owner,
            instance,
            seg,
            gone,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table of `slots` slots, as the kernel leaves them.
    fn table(slots: usize) -> Slots {
        Slots::over(
            Mapped::zeroed(slots),
            Mapped::zeroed(slots * SLOT_SYSCALLS as usize),
        )
    }

    /// What the kernel does when a process takes slot `i`.
    fn take(t: &mut Slots, i: usize, tgid: u32, instance: u32) {
        // SAFETY: slot i of the test's memory.
        let s = unsafe { &mut *t.slots.at(i) };
        s.claims = 1;
        s.state.instance = instance;
        s.state.seg = 1;
        s.live = tgid;
        s.owner = tgid;
    }

    /// What the kernel does on `calls` calls of `nr` in segment `seg` (the counter free, or
    /// counting that segment).
    fn calls(t: &mut Slots, i: usize, nr: u32, seg: u32, calls: u64) {
        // SAFETY: a counter of the test's memory.
        let c = unsafe { &mut *t.counts.at(i * SLOT_SYSCALLS as usize + nr as usize) };
        assert!(
            c.seg == 0 || c.seg == seg,
            "the counter holds segment {}",
            c.seg
        );
        c.claim = 1;
        c.seg = seg;
        c.calls += calls;
    }

    fn slot(t: &Slots, i: usize) -> Slot {
        // SAFETY: slot i of the test's memory.
        unsafe { *t.slots.at(i) }
    }

    fn counter(t: &Slots, i: usize, nr: u32) -> SlotCount {
        // SAFETY: a counter of the test's memory.
        unsafe { *t.counts.at(i * SLOT_SYSCALLS as usize + nr as usize) }
    }

    fn key(tgid: u32, instance: u32, seg: u32, nr: u32) -> CountKey {
        CountKey {
            tgid,
            instance,
            seg,
            nr,
        }
    }

    #[test]
    fn a_process_whose_exit_the_kernel_missed_is_released_by_the_agent() {
        let mut t = table(4);
        take(&mut t, 1, 1001, 5);
        calls(&mut t, 1, 39, 1, 7);
        assert_eq!(reading(&mut t)[&(1001, 5, 1, 39)], 7);
        // Another instance, or another pid in the slot: left alone.
        t.release(1001, 6);
        t.release(1005, 0);
        assert_eq!(slot(&t, 1).live, 1001);
        // The agent found it gone in /proc: its counters are final at the next reading.
        t.release(1001, 5);
        assert_eq!(slot(&t, 1).live, 0);
        assert_eq!(reading(&mut t)[&(1001, 5, 1, 39)], 7);
        assert_eq!(counter(&t, 1, 39), SlotCount::default());
        t.delete(&[key(1001, 5, 1, 39)]);
        assert!(reading(&mut t).is_empty());
        assert_eq!(slot(&t, 1), Slot::default());
    }

    fn reading(t: &mut Slots) -> HashMap<(u32, u32, u32, u32), u64> {
        let mut out = HashMap::new();
        t.read(&mut out);
        out.into_iter()
            .map(|(k, c)| ((k.tgid, k.instance, k.seg, k.nr), c.calls))
            .collect()
    }

    #[test]
    fn a_live_process_counters_are_read_in_place() {
        let mut t = table(4);
        take(&mut t, 2, 1002, 7);
        calls(&mut t, 2, 39, 1, 100);
        calls(&mut t, 2, 0, 1, 3);
        let r = reading(&mut t);
        assert_eq!(
            r,
            HashMap::from([((1002, 7, 1, 39), 100), ((1002, 7, 1, 0), 3)])
        );
        calls(&mut t, 2, 39, 1, 5);
        assert_eq!(reading(&mut t)[&(1002, 7, 1, 39)], 105);
        // Nothing was cleared: the segment still runs.
        assert_eq!(counter(&t, 2, 39).calls, 105);
        assert_eq!(slot(&t, 2).claims, 1);
    }

    #[test]
    fn a_counter_is_cleared_once_its_segment_ended_before_the_last_reading() {
        let mut t = table(4);
        take(&mut t, 1, 1001, 3);
        calls(&mut t, 1, 39, 1, 10);
        assert_eq!(reading(&mut t)[&(1001, 3, 1, 39)], 10);
        // The process moves to segment 2: its counter of segment 1 may still be added to by a
        // call that read the segment before, so it stays until the next reading.
        // SAFETY: slot 1 of the test's memory.
        unsafe { (*t.slots.at(1)).state.seg = 2 };
        assert_eq!(reading(&mut t)[&(1001, 3, 1, 39)], 10);
        assert_eq!(counter(&t, 1, 39).seg, 1);
        // One reading later it is final: cleared and given back, still reported.
        let r = reading(&mut t);
        assert_eq!(r[&(1001, 3, 1, 39)], 10);
        assert_eq!(counter(&t, 1, 39), SlotCount::default());
        // The kernel takes it for segment 2; both are reported, each once.
        calls(&mut t, 1, 39, 2, 4);
        let r = reading(&mut t);
        assert_eq!((r[&(1001, 3, 1, 39)], r[&(1001, 3, 2, 39)]), (10, 4));
        // The session read segment 1 for the last time: it goes.
        t.delete(&[key(1001, 3, 1, 39)]);
        assert!(!reading(&mut t).contains_key(&(1001, 3, 1, 39)));
    }

    #[test]
    fn a_gone_process_is_read_cleared_and_its_slot_given_back() {
        let mut t = table(4);
        take(&mut t, 3, 1003, 9);
        calls(&mut t, 3, 60, 1, 1);
        calls(&mut t, 3, 231, 1, 1);
        // SAFETY: slot 3 of the test's memory.
        unsafe { (*t.slots.at(3)).live = 0 };
        let r = reading(&mut t);
        assert_eq!(
            r,
            HashMap::from([((1003, 9, 1, 60), 1), ((1003, 9, 1, 231), 1)])
        );
        assert_eq!(counter(&t, 3, 60), SlotCount::default());
        // Kept until the second reading that finds it gone.
        assert_eq!(slot(&t, 3).claims, 1);
        assert_eq!(reading(&mut t).len(), 2);
        assert_eq!(slot(&t, 3), Slot::default());
        t.delete(&[key(1003, 9, 1, 60), key(1003, 9, 1, 231)]);
        assert!(reading(&mut t).is_empty());
    }

    #[test]
    fn free_slots_and_slots_being_taken_are_skipped() {
        let mut t = table(2);
        // Being taken: claimed, no owner written yet.
        // SAFETY: slot 0 of the test's memory.
        unsafe { (*t.slots.at(0)).claims = 1 };
        assert!(reading(&mut t).is_empty());
        assert_eq!(slot(&t, 0).claims, 1);
    }

    #[test]
    fn another_process_in_the_slot_starts_afresh() {
        let mut t = table(2);
        take(&mut t, 0, 2048, 1);
        // SAFETY: slot 0 of the test's memory.
        unsafe { (*t.slots.at(0)).state.seg = 5 };
        calls(&mut t, 0, 1, 5, 2);
        let _ = reading(&mut t);
        // Another process (another instance) in the slot, at its segment 1 and then 2: the
        // first process's segment 5 never makes its counters final.
        take(&mut t, 0, 2048, 2);
        // SAFETY: as above.
        unsafe { (*t.counts.at(1)) = SlotCount::default() };
        calls(&mut t, 0, 1, 1, 1);
        unsafe { (*t.slots.at(0)).state.seg = 2 };
        assert_eq!(reading(&mut t)[&(2048, 2, 1, 1)], 1);
        assert_eq!(counter(&t, 0, 1).calls, 1);
    }
}
