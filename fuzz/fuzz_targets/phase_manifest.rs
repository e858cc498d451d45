//! Phase-aware enforcement manifests (`export --per-phase`'s manifest.json).
#![no_main]
use libfuzzer_sys::fuzz_target;
use phasebox_core::seccomp::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Manifest::parse(text, "manifest.json");
});
