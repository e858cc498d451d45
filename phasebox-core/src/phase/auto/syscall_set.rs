//! A set of syscall numbers as a fixed bit set: the segmenter tests membership for every call,
//! so this is a few instructions and never allocates.

/// Syscall numbers; numbers past the end share the last bit (no architecture has that many).
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct SyscallSet([u64; 8]);

impl SyscallSet {
    const LAST: u32 = 8 * 64 - 1;

    fn bit(nr: u32) -> (usize, u64) {
        let nr = nr.min(Self::LAST);
        ((nr / 64) as usize, 1 << (nr % 64))
    }

    /// The syscalls of this architecture named in `names` (names it lacks are skipped).
    pub fn of(names: &[&str]) -> SyscallSet {
        let mut s = SyscallSet::default();
        for nr in names.iter().filter_map(|n| crate::sysnames::number(n)) {
            s.insert(nr);
        }
        s
    }

    pub fn insert(&mut self, nr: u32) {
        let (w, b) = Self::bit(nr);
        self.0[w] |= b;
    }

    pub fn contains(&self, nr: u32) -> bool {
        let (w, b) = Self::bit(nr);
        self.0[w] & b != 0
    }

    pub fn union_with(&mut self, other: &SyscallSet) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a |= b;
        }
    }

    pub fn len(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    /// How many syscalls both sets hold.
    pub fn common(&self, other: &SyscallSet) -> u32 {
        self.0
            .iter()
            .zip(other.0)
            .map(|(a, b)| (a & b).count_ones())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_union_and_overlap() {
        let mut a = SyscallSet::default();
        assert!(a.is_empty());
        a.insert(0);
        a.insert(300);
        a.insert(100_000); // shares the last bit
        assert!(a.contains(300) && a.contains(511) && !a.contains(1));
        assert_eq!(a.len(), 3);
        let mut b = SyscallSet::default();
        b.insert(300);
        b.insert(7);
        assert_eq!(a.common(&b), 1);
        b.union_with(&a);
        assert_eq!(b.len(), 4);
        assert_eq!(SyscallSet::of(&["read", "no_such_call"]).len(), 1);
    }
}
