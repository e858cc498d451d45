//! Phase-aware enforcement (`run --seccomp-phases MANIFEST`): one filter for the whole run,
//! the union of every phase, in which the calls a role needs only before its serving phase go
//! to phasebox as user notifications. phasebox allows them while the calling process has not
//! reached its serving phase, and denies them (EPERM) once it has. Everything needed in serving
//! and after is allowed by the kernel without a round trip. A decision uses only the syscall
//! number and the process's phase, which phasebox learns from its own trace: never the
//! target's memory. Design: ARCHITECTURE.md.
use std::collections::BTreeSet;
use std::path::Path;

use phasebox_core::seccomp::{export::Manifest, oci::OciProfile};

use super::{filter::FilterSpec, notify::Verdict};
use crate::{procfs, session::PhaseBoard};
use phasebox_core::phase::Detector;

/// A manifest read back, with the sets the filter needs.
pub struct Plan {
    /// The phase rules the profile was learned with (a rule set, or automatic phases).
    pub detector: Detector,
    /// Every phase of every role.
    pub union: BTreeSet<String>,
    /// Needed only before a role's serving phase: these are notified.
    pub early_only: BTreeSet<String>,
    pub arch: String,
}

/// Reads `manifest` and the phase files beside it.
pub fn plan(manifest: &Path) -> anyhow::Result<Plan> {
    let m = Manifest::load(manifest)?;
    let origin = manifest.display();
    let detector = Detector::load(&m.rules)
        .map_err(|e| anyhow::anyhow!("{origin} names phase rules that cannot be loaded: {e}"))?;
    let dir = manifest.parent().unwrap_or(Path::new("."));
    let (mut union, mut late) = (BTreeSet::new(), BTreeSet::new());
    for role in &m.roles {
        let mut in_serving = false;
        for ph in &role.phases {
            let names = OciProfile::load(&dir.join(&ph.file))?.allowed();
            // Phases are listed in order, so everything from the steady phase on is late.
            in_serving |= detector.is_steady_or_later(&role.role, &ph.name);
            if in_serving {
                late.extend(names.iter().cloned());
            }
            union.extend(names);
        }
    }
    if union.is_empty() {
        anyhow::bail!("{origin} allows no syscall at all: no program could start under it");
    }
    let early_only = union.difference(&late).cloned().collect();
    Ok(Plan {
        detector,
        union,
        early_only,
        arch: m.arch,
    })
}

impl Plan {
    /// The filter: the union allowed, the early-only calls notified.
    pub fn spec(&self) -> anyhow::Result<FilterSpec> {
        let mut spec = FilterSpec::from_oci(&OciProfile::allow_list(
            &self.union,
            &self.arch,
            "SCMP_ACT_ERRNO",
            1,
        ))?;
        spec.notify(&self.early_only);
        Ok(spec)
    }
}

/// Allows an early-only call unless the calling thread's process is serving.
pub fn decide(board: &PhaseBoard, pid: u32) -> Verdict {
    let tgid = procfs::tgid(pid).unwrap_or(pid);
    if board.serving(tgid) {
        Verdict::Deny(libc::EPERM)
    } else {
        Verdict::Allow
    }
}
