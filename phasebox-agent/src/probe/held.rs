//! The calls threads hold in their batches (record mode: PB_BATCHES, see
//! `phasebox_common::BatchRecord`). A thread sends its batch when it is full, before any other
//! record of its own and when it ends; what a thread still holds at the end of a session (the
//! last calls before it blocked) is read here, once the syscall programs are detached.
use phasebox_common::{BATCH_LEN, BatchRecord, SyscallRecord};

use super::mapped::{Mapped, u32_at};

/// PB_BATCHES, mapped into the agent's memory.
pub(super) struct HeldCalls {
    batches: Mapped<BatchRecord>,
}

impl HeldCalls {
    pub(super) fn new(batches: Mapped<BatchRecord>) -> HeldCalls {
        HeldCalls { batches }
    }

    /// Whether some thread holds calls (none does once every traced thread has ended).
    pub(super) fn any(&self) -> bool {
        (0..self.batches.len).any(|i| {
            let b = self.batches.at(i);
            // SAFETY: as in `take`.
            let count = unsafe { u32_at(&raw mut (*b).count) };
            count.load(std::sync::atomic::Ordering::Acquire) != 0
        })
    }

    /// Takes every call a thread holds, each batch's in order; the batches are left empty, so
    /// that nothing is taken twice.
    pub(super) fn take(&self) -> Vec<SyscallRecord> {
        let mut calls = Vec::new();
        for i in 0..self.batches.len {
            let b = self.batches.at(i);
            // SAFETY: an element of the mapping, aligned; its count is read and cleared
            // atomically (a thread ending now may send its batch and clear it too).
            let count = unsafe { u32_at(&raw mut (*b).count) };
            let n = count.swap(0, std::sync::atomic::Ordering::AcqRel) as usize;
            if n == 0 {
                continue;
            }
            // SAFETY: as above; the calls below `n` were written before the count.
            let held = unsafe { std::ptr::read_volatile(&raw const (*b).calls) };
            calls.extend_from_slice(&held[..n.min(BATCH_LEN)]);
        }
        calls
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phasebox_common::Header;

    #[test]
    fn takes_each_batch_in_order_once() {
        let held = HeldCalls::new(Mapped::zeroed(8));
        assert!(!held.any());
        let call = |tid: u32, nr: u32| SyscallRecord {
            header: Header::of::<SyscallRecord>(0, 1),
            tid,
            nr,
            ..SyscallRecord::default()
        };
        // SAFETY: elements of the test's own memory.
        unsafe {
            let b = held.batches.at(3);
            (*b).calls[0] = call(3, 10);
            (*b).calls[1] = call(3, 11);
            (*b).count = 2;
            let b = held.batches.at(7);
            (*b).calls[0] = call(7, 20);
            (*b).calls[1] = call(7, 21);
            (*b).count = 1; // the second was never counted: not sent
        }
        assert!(held.any());
        let got: Vec<(u32, u32)> = held.take().iter().map(|c| (c.tid, c.nr)).collect();
        assert_eq!(got, [(3, 10), (3, 11), (7, 20)]);
        assert!(held.take().is_empty(), "a batch is taken once");
        assert!(!held.any());
    }
}
