//! A learned profile's JSON (`Profile::parse`), then what commands do with a profile that
//! parsed: show it, merge it with itself, diff it, compare it with itself as a policy.
#![no_main]
use libfuzzer_sys::fuzz_target;
use phasebox_core::{policy, profile};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(p) = profile::Profile::parse(text, "fuzz.json") else {
        return;
    };
    let _ = profile::show::render(&p);
    if let Ok(m) = profile::compare::merge(&[p.clone(), p.clone()]) {
        let _ = profile::compare::diff(&p, &m);
    }
    let _ = phasebox_core::seccomp::export::select(&p, None, None);
    if let Ok(pol) = policy::Policy::parse(text, "fuzz.json", &p.kernel_release) {
        let _ = policy::report::compare(&p, &[pol], None, None).map(|c| policy::report::render(&c));
    }
});
