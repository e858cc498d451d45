//! The analysis as a phasebox profile: role = the program's name, one phase `static`, and
//! the reachability chains and provenance in the profile's `static` section.
use phasebox_core::profile::static_section::StaticSection;
use phasebox_core::profile::{Phase, Profile, Program, Role, Run, SCHEMA, SyscallUse};

use crate::Analysis;

/// The phase name of a static profile.
pub const PHASE: &str = "static";

impl Analysis {
    /// The profile and its static section; `kernel_release` and `started_unix_ms` describe
    /// where and when the analysis ran.
    pub fn to_profile(
        &self,
        kernel_release: &str,
        started_unix_ms: u64,
    ) -> (Profile, StaticSection) {
        let phase = Phase {
            name: PHASE.into(),
            start_ns: 0,
            end_ns: 0,
            syscalls: self
                .syscalls
                .keys()
                .map(|name| (name.clone(), SyscallUse::default()))
                .collect(),
            filtered: Default::default(),
        };
        let profile = Profile {
            schema: SCHEMA.into(),
            program: Program {
                path: self.program.clone(),
                comm: self.name.clone(),
            },
            arch: "x86_64".into(),
            kernel_release: kernel_release.into(),
            complete: true,
            incomplete_reasons: Vec::new(),
            notes: Vec::new(),
            runs: vec![Run {
                name: format!("phasebox static {}", self.program),
                how: "static".into(),
                started_unix_ms,
                phasebox_version: env!("CARGO_PKG_VERSION").into(),
                rules: PHASE.into(),
                dropped: 0,
                container: None,
            }],
            roles: vec![Role {
                name: self.name.clone(),
                container: None,
                processes: 0,
                phases: vec![phase],
            }],
        };
        let section = StaticSection {
            reachable_from: self.syscalls.clone(),
            whole_image: self.whole_image.iter().cloned().collect(),
            provenance: self.provenance.clone(),
        };
        (profile, section)
    }
}
