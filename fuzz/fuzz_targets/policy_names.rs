//! Name lists: lines of `App:name,name,…` (never starting with '{' or '[').
#![no_main]
use libfuzzer_sys::fuzz_target;
use phasebox_core::policy::Policy;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.trim_start().starts_with(['{', '[']) {
        return;
    }
    let _ = Policy::parse(text, "fuzz.txt", "6.1.0");
});
