//! The kernel's wire records, as the ring buffer and trace files hand them over.
#![no_main]
use libfuzzer_sys::fuzz_target;
use phasebox_core::event;

fuzz_target!(|data: &[u8]| {
    if let Ok(kind) = event::peek_kind(data) {
        let _ = event::record_len(kind);
    }
    if let Ok(e) = event::decode(data) {
        let _ = (e.tgid(), e.ts_ns());
    }
});
