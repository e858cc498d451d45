//! Phase rule files (TOML): parsed and checked, then every marker tried on a few events.
#![no_main]
use libfuzzer_sys::fuzz_target;
use phasebox_core::phase::markers;
use phasebox_core::rules::{Obs, Rules};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(rules) = Rules::parse(text, "fuzz.toml") else {
        return;
    };
    let _ = markers::full(&rules);
    for role in rules.roles.iter().map(|r| r.name.as_str()).chain(["main"]) {
        let _ = rules.steady_phase(role);
        for phase in 0..rules.phases(role).len() {
            let _ = markers::after(&rules, role, phase);
        }
        for phase in rules.phases(role) {
            for m in &phase.enter {
                for obs in [
                    Obs::Exec,
                    Obs::Fork,
                    Obs::Syscall {
                        nr: 257,
                        path: Some("/etc/ld.so.cache"),
                        seen: 1,
                    },
                ] {
                    let _ = m.matches(&obs);
                }
            }
        }
    }
});
