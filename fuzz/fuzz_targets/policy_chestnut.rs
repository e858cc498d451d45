//! Chestnut policy files: a JSON object whose first key is "syscalls".
#![no_main]
use libfuzzer_sys::fuzz_target;
use phasebox_core::policy::Policy;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Policy::parse(&format!("{{\"syscalls\":{text}"), "fuzz.json", "6.1.0");
});
