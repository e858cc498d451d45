//! Trace files: the container (magic, header, records, footer) and every record in it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use phasebox_core::tracefile;

fuzz_target!(|data: &[u8]| {
    let _ = tracefile::parse(data, "fuzz.pbtrace");
});
