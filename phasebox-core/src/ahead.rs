//! What the kernel sends ahead of a call's record (its path argument, its recorded arguments,
//! both read at entry), held per thread until the record comes. A thread's values and records
//! each come in the order of its calls, but not always one after the other: a thread sends
//! its calls a few at a time in record mode, so the values of several calls may come before
//! the first of their records.
use std::collections::{HashMap, VecDeque};

/// Values of calls whose records have not come yet, per thread, in entry order.
#[derive(Clone, Debug)]
pub struct Ahead<T> {
    by_tid: HashMap<u32, VecDeque<(u64, T)>>,
}

impl<T> Default for Ahead<T> {
    fn default() -> Self {
        Ahead {
            by_tid: HashMap::new(),
        }
    }
}

/// Values a thread holds at most: more than a batch of calls and the call in flight; the
/// oldest go first (their records were lost).
const PER_THREAD: usize = 16;

impl<T> Ahead<T> {
    /// Holds the value of `tid`'s call entered at `enter_ns`.
    pub fn hold(&mut self, tid: u32, enter_ns: u64, value: T) {
        let q = self.by_tid.entry(tid).or_default();
        if q.len() == PER_THREAD {
            q.pop_front();
        }
        q.push_back((enter_ns, value));
    }

    /// The value of `tid`'s call entered at `enter_ns`, whose record came; values of its
    /// earlier calls still held will never be asked for (their records were lost) and go.
    pub fn take(&mut self, tid: u32, enter_ns: u64) -> Option<T> {
        let q = self.by_tid.get_mut(&tid)?;
        while q.front().is_some_and(|(at, _)| *at < enter_ns) {
            q.pop_front();
        }
        let value = match q.front() {
            Some((at, _)) if *at == enter_ns => q.pop_front().map(|(_, v)| v),
            _ => None,
        };
        if q.is_empty() {
            self.by_tid.remove(&tid);
        }
        value
    }

    /// A thread ended: what it held goes.
    pub fn forget(&mut self, tid: u32) {
        self.by_tid.remove(&tid);
    }

    /// Threads holding values.
    pub fn threads(&self) -> usize {
        self.by_tid.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_of_several_calls_wait_for_their_records() {
        let mut a = Ahead::default();
        a.hold(7, 10, "a");
        a.hold(7, 20, "b");
        a.hold(8, 15, "x");
        a.hold(7, 30, "c");
        assert_eq!(a.take(7, 10), Some("a"));
        // The call at 20 had no value taken: its record was lost; the one at 25 had none.
        assert_eq!(a.take(7, 25), None);
        assert_eq!(a.take(7, 30), Some("c"));
        assert_eq!(a.take(7, 30), None, "taken once");
        assert_eq!(a.take(8, 15), Some("x"));
        assert_eq!(a.threads(), 0);
    }

    #[test]
    fn a_thread_holds_a_bounded_number_and_forgets_at_its_end() {
        let mut a = Ahead::default();
        for i in 0..100u64 {
            a.hold(1, i, i);
        }
        assert_eq!(a.take(1, 0), None, "the oldest went");
        assert_eq!(a.take(1, 99 - PER_THREAD as u64 + 1), Some(84));
        a.hold(2, 5, 5);
        a.forget(2);
        assert_eq!(a.take(2, 5), None);
    }
}
