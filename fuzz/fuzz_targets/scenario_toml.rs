//! Scenario files (TOML): parsed and checked, then each scenario's command line expanded.
#![no_main]
use libfuzzer_sys::fuzz_target;
use phasebox_core::scenario::{ScenarioSet, expand};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(set) = ScenarioSet::parse(text, "fuzz.toml") else {
        return;
    };
    for s in &set.scenarios {
        for arg in s.argv(&set) {
            let _ = expand(&arg, "/tmp/d", 8080);
        }
    }
});
