//! The connection cap: what each connection is doing, as far as its bytes tell, and which one
//! gives up its place when a new connection comes and every place is taken.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::Notify;

/// One open connection's place.
pub struct Slot {
    activity: Mutex<Activity>,
    close: Notify,
}

#[derive(Clone, Copy)]
struct Activity {
    /// When it began waiting for its current request: its accept or its last answer, or, once
    /// a byte of the request came, that byte's arrival.
    waiting_since: Instant,
    /// A byte of its current request came.
    heard: bool,
    /// It was answered at least once.
    answered: bool,
    /// The last byte that moved, either way.
    last_io: Instant,
}

impl Slot {
    /// The place of a connection accepted at `now`.
    pub fn new(now: Instant) -> Slot {
        Slot {
            activity: Mutex::new(Activity {
                waiting_since: now,
                heard: false,
                answered: false,
                last_io: now,
            }),
            close: Notify::new(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Activity) -> T) -> T {
        f(&mut self.activity.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Bytes came in at `now`. The first byte of a request restarts its wait: a request being
    /// sent ranks after every connection that sends nothing.
    pub fn heard(&self, now: Instant) {
        self.with(|a| {
            if !a.heard {
                a.heard = true;
                a.waiting_since = now;
            }
            a.last_io = now;
        });
    }

    /// Bytes of an answer went out at `now`: the connection waits for its next request.
    pub fn answered(&self, now: Instant) {
        self.with(|a| {
            a.heard = false;
            a.answered = true;
            a.waiting_since = now;
            a.last_io = now;
        });
    }

    /// The last time a byte moved.
    pub fn last_io(&self) -> Instant {
        self.with(|a| a.last_io)
    }

    /// Whether a timeout now is a slow or silent client's, not a kept-alive connection's
    /// between two requests.
    pub fn slow(&self) -> bool {
        self.with(|a| a.heard || !a.answered)
    }

    /// Which place goes first: connections that sent nothing of a request (the longest
    /// waiting first), then those still sending one (the earliest started first).
    fn rank(&self) -> (bool, Instant) {
        self.with(|a| (a.heard, a.waiting_since))
    }

    /// Tells the connection to close: it gave up its place.
    pub fn close(&self) {
        self.close.notify_one();
    }

    /// Resolves once the connection was told to close.
    pub async fn closed(&self) {
        self.close.notified().await;
    }
}

/// The places, at most `cap` taken.
pub struct Slots {
    cap: usize,
    next: u64,
    open: BTreeMap<u64, Arc<Slot>>,
}

impl Slots {
    pub fn new(cap: usize) -> Slots {
        Slots {
            cap: cap.max(1),
            next: 0,
            open: BTreeMap::new(),
        }
    }

    /// Gives `slot` a place and returns its id; at the cap, the place that ranks first is
    /// taken from its connection, which is returned to be closed.
    pub fn admit(&mut self, slot: Arc<Slot>) -> (u64, Option<Arc<Slot>>) {
        let evicted = if self.open.len() >= self.cap {
            let first = self
                .open
                .iter()
                .min_by_key(|(_, s)| s.rank())
                .map(|(&id, _)| id);
            first.and_then(|id| self.open.remove(&id))
        } else {
            None
        };
        let id = self.next;
        self.next += 1;
        self.open.insert(id, slot);
        (id, evicted)
    }

    /// The connection `id` ended (nothing happens when it already gave up its place).
    pub fn release(&mut self, id: u64) {
        self.open.remove(&id);
    }

    /// How many places are taken.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn admitted(slots: &mut Slots, slot: &Arc<Slot>) -> Option<Arc<Slot>> {
        slots.admit(slot.clone()).1
    }

    /// Two places, both taken: by connections accepted `a` and `b` ms after `t0`.
    fn full(t0: Instant, a: u64, b: u64) -> (Slots, Arc<Slot>, Arc<Slot>) {
        let mut slots = Slots::new(2);
        let (a, b) = (
            Arc::new(Slot::new(at(t0, a))),
            Arc::new(Slot::new(at(t0, b))),
        );
        assert!(admitted(&mut slots, &a).is_none());
        assert!(admitted(&mut slots, &b).is_none());
        (slots, a, b)
    }

    /// Who gives up a place for a connection accepted `ms` after `t0`.
    fn newcomer(slots: &mut Slots, t0: Instant, ms: u64) -> Arc<Slot> {
        admitted(slots, &Arc::new(Slot::new(at(t0, ms)))).expect("a place made at the cap")
    }

    #[test]
    fn the_longest_silent_connection_makes_room() {
        let t0 = Instant::now();
        let (mut slots, a, _) = full(t0, 0, 1);
        assert!(Arc::ptr_eq(&newcomer(&mut slots, t0, 2), &a));
        assert_eq!(slots.len(), 2);
    }

    #[test]
    fn a_request_being_sent_goes_after_every_silent_one() {
        let t0 = Instant::now();
        let (mut slots, old, silent) = full(t0, 0, 5);
        old.heard(at(t0, 10));
        let out = newcomer(&mut slots, t0, 11);
        assert!(Arc::ptr_eq(&out, &silent), "the silent one goes first");
        // Among requests still arriving, the one started first goes first.
        let (mut slots, slow, quick) = full(t0, 0, 0);
        slow.heard(at(t0, 1));
        quick.heard(at(t0, 50));
        slow.heard(at(t0, 60));
        let out = newcomer(&mut slots, t0, 61);
        assert!(
            Arc::ptr_eq(&out, &slow),
            "later bytes do not restart a request"
        );
    }

    #[test]
    fn an_answer_restarts_the_wait_and_release_frees_a_place() {
        let t0 = Instant::now();
        let (mut slots, a, b) = full(t0, 0, 1);
        a.heard(at(t0, 2));
        a.answered(at(t0, 3));
        assert_eq!(a.last_io(), at(t0, 3));
        assert!(Arc::ptr_eq(&newcomer(&mut slots, t0, 4), &b));
        // The place of `b` went to the newcomer (id 2); `a` (id 0) ends.
        slots.release(0);
        assert_eq!(slots.len(), 1);
        assert!(admitted(&mut slots, &Arc::new(Slot::new(at(t0, 5)))).is_none());
    }

    #[test]
    fn only_slow_or_silent_clients_time_out() {
        let t0 = Instant::now();
        let s = Slot::new(t0);
        assert!(s.slow(), "silent since accepted");
        s.heard(at(t0, 1));
        assert!(s.slow(), "headers still coming");
        s.answered(at(t0, 2));
        assert!(!s.slow(), "kept alive between requests");
    }

    #[tokio::test]
    async fn a_connection_told_to_close_hears_it() {
        let s = Slot::new(Instant::now());
        s.close();
        tokio::time::timeout(Duration::from_secs(5), s.closed())
            .await
            .expect("closed resolves");
    }
}
