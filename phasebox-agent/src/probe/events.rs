//! The ring buffer the kernel's records arrive on.
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use aya::maps::{MapData, RingBuf};
use phasebox_core::event;

/// Records from the kernel, drained in the order they were reserved.
pub struct EventStream {
    ring: RingBuf<MapData>,
}

/// What one `drain` took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Took {
    /// Ring-buffer entries.
    pub entries: usize,
    /// Records handed on: a batch of a thread's calls is one entry and as many records.
    pub records: usize,
}

impl EventStream {
    pub(super) fn new(ring: RingBuf<MapData>) -> EventStream {
        EventStream { ring }
    }

    /// Hands the records of up to `max` entries waiting now to `each`, a batch's calls one by
    /// one (a malformed batch whole, to be counted as undecodable).
    pub fn drain(&mut self, max: usize, mut each: impl FnMut(&[u8])) -> Took {
        let mut took = Took::default();
        while took.entries < max
            && let Some(item) = self.ring.next()
        {
            took.entries += 1;
            match event::split(&item) {
                Ok(records) => {
                    for r in records {
                        each(r);
                        took.records += 1;
                    }
                }
                Err(_) => {
                    each(&item);
                    took.records += 1;
                }
            }
        }
        took
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
