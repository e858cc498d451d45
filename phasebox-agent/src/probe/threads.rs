//! The thread cache's agent side (see `phasebox_common::thread_cache`): its generation, which
//! the agent moves on, clearing every entry, each time the pid bitmaps gain a process, so
//! that no thread found untracked before is taken for untracked after.
use std::sync::atomic::{AtomicU64, Ordering};

use aya::maps::Map;
use phasebox_common::{ThreadEntry, names, thread_cache};

use super::ProbeError;
use super::mapped::{Mapped, u64_at};

pub(super) struct ThreadCache {
    /// Entry 0's tag the generation, then the entries.
    entries: Mapped<ThreadEntry>,
}

impl ThreadCache {
    pub(super) fn new(map: Map) -> Result<ThreadCache, ProbeError> {
        Ok(ThreadCache {
            entries: Mapped::map(map, thread_cache::ENTRIES + 1, names::THREADS)?,
        })
    }

    /// Starts a new generation and clears every entry. Called after the pid bitmaps changed:
    /// a program that read the old generation writes entries that do not match the new one,
    /// and those it wrote before are gone. The first call turns the cache on.
    pub(super) fn invalidate(&self) {
        // SAFETY: entries of the mapping, aligned u64s; the agent is the generation's only
        // writer, the kernel writes tags with single stores. A cleared tag is no entry.
        unsafe {
            let generation = self.tag(0);
            let next = thread_cache::next(generation.load(Ordering::Relaxed));
            generation.store(next, Ordering::Release);
            for i in 1..self.entries.len {
                self.tag(i).store(0, Ordering::Relaxed);
            }
        }
    }

    /// Turns the cache off (generation 0: the programs neither trust nor write an entry),
    /// before the programs are let go. The kernel then detaches them in an order of its own:
    /// were the exit program gone first, a thread ending then would keep its entry, and a new
    /// thread on the same kernel stack would be taken for it by the syscall programs.
    pub(super) fn turn_off(&self) {
        // SAFETY: as in `invalidate`.
        unsafe { self.tag(0).store(0, Ordering::Release) };
    }

    /// Entry `i`'s tag.
    ///
    /// SAFETY (of callers): `i` is within the mapping.
    unsafe fn tag(&self, i: usize) -> &AtomicU64 {
        // SAFETY: see above; the tag is the entry's first, aligned, field.
        unsafe { u64_at(&raw mut (*self.entries.at(i)).tag) }
    }

    #[cfg(test)]
    fn zeroed() -> ThreadCache {
        ThreadCache {
            entries: Mapped::zeroed(thread_cache::ENTRIES as usize + 1),
        }
    }

    #[cfg(test)]
    fn entry(&self, i: usize) -> u64 {
        // SAFETY: as in `invalidate`.
        unsafe { self.tag(i).load(Ordering::Relaxed) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGS: u64 = 0xffff_c900_0123_7f58;

    /// What the kernel program does for an untracked thread, with the generation it read.
    fn remember(cache: &ThreadCache, generation: u64) {
        let i = thread_cache::index(REGS) as usize;
        // SAFETY: as in `invalidate`.
        unsafe {
            cache.tag(i).store(
                thread_cache::tag(REGS, generation, false),
                Ordering::Relaxed,
            )
        };
    }

    fn found_untracked(cache: &ThreadCache) -> bool {
        let tag = thread_cache::tag(REGS, cache.entry(0), false);
        tag != 0 && cache.entry(thread_cache::index(REGS) as usize) == tag
    }

    #[test]
    fn the_cache_is_off_until_the_first_generation() {
        let cache = ThreadCache::zeroed();
        remember(&cache, cache.entry(0));
        assert!(!found_untracked(&cache));
        cache.invalidate();
        assert_eq!(cache.entry(0), 1);
        remember(&cache, cache.entry(0));
        assert!(found_untracked(&cache));
    }

    #[test]
    fn a_thread_found_untracked_before_a_new_process_is_tracked_is_looked_up_again() {
        let cache = ThreadCache::zeroed();
        cache.invalidate();
        remember(&cache, cache.entry(0));
        cache.invalidate();
        assert!(!found_untracked(&cache), "its entry was cleared");
        // A program that read the generation before the change writes after the clearing.
        remember(&cache, 1);
        assert!(
            !found_untracked(&cache),
            "an entry of the old generation does not match"
        );
    }

    #[test]
    fn the_generation_wraps_to_1_and_the_clearing_still_drops_old_entries() {
        let cache = ThreadCache::zeroed();
        // SAFETY: as in `invalidate`.
        unsafe {
            cache
                .tag(0)
                .store(thread_cache::LAST_GENERATION, Ordering::Relaxed)
        };
        remember(&cache, 1);
        cache.invalidate();
        assert_eq!(cache.entry(0), 1);
        assert!(
            !found_untracked(&cache),
            "an entry of generation 1 written long ago"
        );
    }

    #[test]
    fn once_turned_off_no_entry_is_trusted_or_written() {
        let cache = ThreadCache::zeroed();
        cache.invalidate();
        remember(&cache, cache.entry(0));
        assert!(found_untracked(&cache));
        cache.turn_off();
        assert_eq!(cache.entry(0), 0, "generation 0: the cache is off");
        assert!(
            !found_untracked(&cache),
            "an entry written while the cache was on is not trusted once it is off"
        );
        // The programs make no tag for generation 0, so they write none.
        assert_eq!(thread_cache::tag(REGS, cache.entry(0), false), 0);
    }
}
