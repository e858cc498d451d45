//! Counters that start at 0. A series that first appeared holding its total would hide that
//! total from `rate()` and `increase()` (Prometheus sees no increase in a series' first
//! sample): a new phase's calls, a reloaded worker's, a first violation. So a new series is
//! shown at 0 first, its calls held back until a client has been handed a rendering with
//! that 0 in it, and then added.
use std::collections::HashMap;
use std::hash::Hash;

/// The renderings: which one comes next, and the last one a client was given.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Renderings {
    pub next: u64,
    pub served: u64,
}

/// A series born at 0: the rendering that first shows it, and what it has held back since.
#[derive(Debug)]
struct Birth {
    shown_in: u64,
    held: u64,
}

/// The series of one family, by key, that may still hold calls back.
#[derive(Debug)]
pub(super) struct Births<K> {
    series: HashMap<K, Option<Birth>>,
}

impl<K: Hash + Eq> Default for Births<K> {
    fn default() -> Self {
        Births {
            series: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Clone> Births<K> {
    /// What to add to `key`'s series now that it grew by `grew`: None leaves it as it is
    /// (nothing to show, or held back), Some(0) creates it at 0, Some(n) adds n.
    pub(super) fn add(&mut self, key: K, grew: u64, r: Renderings) -> Option<u64> {
        match self.series.get_mut(&key) {
            None if grew == 0 => None,
            None => {
                let birth = Birth {
                    shown_in: r.next,
                    held: grew,
                };
                self.series.insert(key, Some(birth));
                Some(0)
            }
            Some(slot) => match slot {
                Some(b) if r.served < b.shown_in => {
                    b.held += grew;
                    None
                }
                Some(b) => {
                    let n = b.held + grew;
                    *slot = None;
                    Some(n)
                }
                None => (grew > 0).then_some(grew),
            },
        }
    }

    /// The series whose 0 a client has seen and which held calls back: what each adds now
    /// (for families counted only when something happens, not at every refresh).
    pub(super) fn ripe(&mut self, r: Renderings) -> Vec<(K, u64)> {
        let mut out = Vec::new();
        for (key, slot) in &mut self.series {
            if let Some(b) = slot
                && r.served >= b.shown_in
            {
                out.push((key.clone(), b.held));
                *slot = None;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(next: u64, served: u64) -> Renderings {
        Renderings { next, served }
    }

    #[test]
    fn a_new_series_shows_0_until_a_client_saw_it_then_everything() {
        let mut b = Births::default();
        assert_eq!(b.add("a", 0, r(1, 0)), None, "no call, no series");
        assert_eq!(b.add("a", 5, r(1, 0)), Some(0), "born at 0 in rendering 1");
        assert_eq!(b.add("a", 2, r(2, 0)), None, "rendering 1 not served: held");
        assert_eq!(b.add("a", 1, r(3, 1)), Some(8), "served: all of it");
        assert_eq!(b.add("a", 4, r(4, 1)), Some(4), "then as it grows");
        assert_eq!(b.add("a", 0, r(5, 1)), None);
    }

    #[test]
    fn held_calls_ripen_without_another_call() {
        let mut b = Births::default();
        assert_eq!(b.add("a", 3, r(1, 0)), Some(0));
        assert!(b.ripe(r(2, 0)).is_empty());
        assert_eq!(b.ripe(r(2, 1)), [("a", 3)]);
        assert!(b.ripe(r(3, 2)).is_empty(), "once only");
        assert_eq!(b.add("a", 2, r(3, 2)), Some(2));
    }

    #[test]
    fn a_rendering_served_before_the_birth_does_not_count() {
        let mut b = Births::default();
        assert_eq!(b.add("a", 3, r(7, 6)), Some(0));
        assert_eq!(b.add("a", 0, r(8, 6)), None);
        assert_eq!(b.add("a", 0, r(8, 7)), Some(3));
    }
}
