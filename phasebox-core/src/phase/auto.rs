//! Automatic segmentation for programs without a rule set: a process's syscalls are cut into
//! windows of `window` calls, and a new segment starts where a window's set of syscalls differs
//! sharply from the previous window's (Jaccard distance above `threshold`). Serving loops repeat
//! the same few calls, so they stay one segment; startup changes sets every few calls.
use std::collections::BTreeSet;

/// Parameters (docs/phases.md).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AutoParams {
    /// Calls per window.
    pub window: usize,
    /// Jaccard distance (1 - |A∩B| / |A∪B|) between successive windows above which a segment
    /// ends.
    pub threshold: f64,
}

impl Default for AutoParams {
    fn default() -> Self {
        AutoParams {
            window: 16,
            threshold: 0.6,
        }
    }
}

/// Jaccard distance of two sets.
pub fn distance(a: &BTreeSet<u32>, b: &BTreeSet<u32>) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        return 0.0;
    }
    1.0 - a.intersection(b).count() as f64 / union as f64
}

/// One process's segmentation. Calls are held back until their window closes, then released
/// with their segment index.
#[derive(Debug)]
pub struct Segmenter<T> {
    params: AutoParams,
    segment: usize,
    prev: Option<BTreeSet<u32>>,
    window: Vec<(u32, T)>,
}

impl<T> Segmenter<T> {
    pub fn new(params: AutoParams) -> Self {
        Segmenter {
            params,
            segment: 0,
            prev: None,
            window: Vec::new(),
        }
    }

    /// Adds a call; returns the calls of a window that closed, with their segment.
    pub fn push(&mut self, nr: u32, item: T) -> Vec<(usize, T)> {
        self.window.push((nr, item));
        if self.window.len() < self.params.window {
            return Vec::new();
        }
        self.close()
    }

    /// Releases the calls still held (the process ended).
    pub fn flush(&mut self) -> Vec<(usize, T)> {
        if self.window.is_empty() {
            Vec::new()
        } else {
            self.close()
        }
    }

    fn close(&mut self) -> Vec<(usize, T)> {
        let set: BTreeSet<u32> = self.window.iter().map(|(nr, _)| *nr).collect();
        if let Some(prev) = &self.prev
            && distance(prev, &set) > self.params.threshold
        {
            self.segment += 1;
        }
        self.prev = Some(set);
        let seg = self.segment;
        self.window.drain(..).map(|(_, item)| (seg, item)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeating_loop_after_varied_startup_is_one_segment() {
        let mut s = Segmenter::new(AutoParams {
            window: 4,
            threshold: 0.6,
        });
        let startup = [1, 2, 3, 4, 5, 6, 7, 8];
        let serving = [20, 21, 22, 23].repeat(5);
        let mut out = Vec::new();
        for (i, nr) in startup.iter().chain(serving.iter()).enumerate() {
            out.extend(s.push(*nr, i));
        }
        out.extend(s.flush());
        assert_eq!(out.len(), startup.len() + serving.len());
        let seg_of = |i: usize| out.iter().find(|(_, x)| *x == i).unwrap().0;
        // Startup windows differ from each other; serving is one segment of its own.
        assert_ne!(seg_of(0), seg_of(4));
        let last = seg_of(out.len() - 1);
        assert!((startup.len()..out.len()).all(|i| seg_of(i) == last));
        assert_ne!(seg_of(startup.len() - 1), last);
    }

    #[test]
    fn distances() {
        let a: BTreeSet<u32> = [1, 2].into();
        let b: BTreeSet<u32> = [2, 3].into();
        assert!((distance(&a, &b) - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(distance(&a, &a), 0.0);
    }
}
