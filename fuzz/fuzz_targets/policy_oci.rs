//! OCI/Docker seccomp profiles: as a policy to compare with (`Policy::parse`, which applies
//! includes/excludes for a kernel the input also chooses) and as a profile to enforce
//! (`OciProfile::parse`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use phasebox_core::{policy::Policy, seccomp::oci::OciProfile};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first line is the kernel release (minKernel rules depend on it).
    let (kernel, json) = text.split_once('\n').unwrap_or(("6.1.0", text));
    let _ = Policy::parse(json, "fuzz.json", kernel);
    if let Ok(p) = OciProfile::parse(json, "fuzz.json") {
        let _ = p.allowed();
        let _ = p.to_json();
    }
});
