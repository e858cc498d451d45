//! The ring buffer the kernel's records arrive on.
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use aya::maps::{MapData, RingBuf};

/// Records from the kernel, drained in the order they were reserved.
pub struct EventStream {
    ring: RingBuf<MapData>,
}

impl EventStream {
    pub(super) fn new(ring: RingBuf<MapData>) -> EventStream {
        EventStream { ring }
    }

    /// Hands up to `max` records waiting now to `each`; returns how many there were.
    pub fn drain(&mut self, max: usize, mut each: impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        while n < max
            && let Some(item) = self.ring.next()
        {
            each(&item);
            n += 1;
        }
        n
    }
}

impl AsRawFd for EventStream {
    fn as_raw_fd(&self) -> RawFd {
        self.ring.as_fd().as_raw_fd()
    }
}

impl AsFd for EventStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.ring.as_fd()
    }
}
