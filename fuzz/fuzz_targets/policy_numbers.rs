//! Policies as JSON arrays of syscall numbers (sysfilter, Chestnut): the input follows a '['.
#![no_main]
use libfuzzer_sys::fuzz_target;
use phasebox_core::policy::Policy;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Policy::parse(&format!("[{text}"), "fuzz.json", "6.1.0");
});
