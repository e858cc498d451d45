//! Phase-aware enforcement (`run --seccomp-phases MANIFEST`): one filter for the whole run,
//! the union of every phase, in which the calls a role needs only before its serving phase go
//! to phasebox as user notifications, as do the argument combinations of later calls that only
//! the phases before serving used. phasebox allows them while the calling process has not
//! reached its serving phase, and denies them (EPERM) once it has. Everything needed in serving
//! and after is allowed by the kernel without a round trip. A decision uses only the syscall
//! number and the process's phase, which phasebox learns from its own trace: never the
//! target's memory. Design: ARCHITECTURE.md.
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use anyhow::Context as _;

use phasebox_core::{
    call_classes,
    seccomp::{
        action::Action,
        arg_rules::{self, Restrictions},
        export::{self, DefaultAction, Policy, Target},
        manifest::Manifest,
        oci::OciProfile,
    },
};

use super::board::PhaseBoard;
use super::{filter::FilterSpec, notify::Verdict};
use crate::procfs;
use phasebox_core::phase::Detector;

/// A manifest read back, with the sets the filter needs.
pub struct Plan {
    /// The phase rules the profile was learned with (a rule set, or automatic phases).
    pub detector: Detector,
    /// Every phase of every role, and what the phase files answer for calls none allows
    /// (ENOSYS for calls with a fallback, a kill for calls whose errno is misread).
    pub union: Policy,
    /// Needed only before a role's serving phase: these are notified.
    pub early_only: BTreeSet<String>,
    /// Argument combinations of later calls used only before serving (`openat` with
    /// O_CREAT at start-up, say): these are notified too.
    pub early_args: Restrictions,
    pub arch: String,
}

/// Whether phase `name` of `role` is its steady phase or a later one, for every phase of a
/// role in one pass: the rule set's phases are indexed once (the manifest may list thousands).
/// A role none of whose phases is its steady one (automatic phases of a run too short for its
/// loop to be recognized: `work`, never `steady`) does not say where its serving begins, so
/// none of its calls is startup-only: every phase counts as a later one.
fn late_phases(detector: &Detector, role: &str, names: &[&str]) -> Vec<bool> {
    let late = steady_or_later(detector, role, names);
    if late.iter().any(|&l| l) {
        late
    } else {
        vec![true; names.len()]
    }
}

/// [`late_phases`] as the phases name it: the steady phase and every phase after it.
fn steady_or_later(detector: &Detector, role: &str, names: &[&str]) -> Vec<bool> {
    let steady = match detector {
        Detector::Rules(r) => r.steady_index(role),
        Detector::Auto(_) => None,
    };
    let index: HashMap<&str, usize> = match detector {
        Detector::Rules(r) => r
            .phases(role)
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.as_str(), i))
            .collect(),
        Detector::Auto(_) => HashMap::new(),
    };
    let mut late = false;
    names
        .iter()
        .map(|n| {
            late |= match detector {
                Detector::Rules(_) => {
                    matches!((index.get(n), steady), (Some(i), Some(s)) if *i >= s)
                }
                Detector::Auto(_) => detector.is_steady_or_later(role, n),
            };
            late
        })
        .collect()
}

/// Reads `manifest` and the phase files beside it.
pub fn plan(manifest: &Path) -> anyhow::Result<Plan> {
    let m = Manifest::load(manifest)?;
    let origin = manifest.display();
    let detector = Detector::load(&m.rules)
        .with_context(|| format!("{origin} names phase rules that cannot be loaded"))?;
    let dir = manifest.parent().unwrap_or(Path::new("."));
    let (mut union, mut late) = (Policy::default(), BTreeSet::new());
    // Every phase file read back, and which of them are serving's or later.
    let (mut read, mut late_files) = (Vec::new(), Vec::new());
    for role in &m.roles {
        let files = role
            .phases
            .iter()
            .map(|ph| OciProfile::load(&dir.join(&ph.file)))
            .collect::<Result<Vec<_>, _>>()?;
        let first = read.len();
        read.extend(files.iter().map(arg_rules::read_back));
        let allowed: Vec<&BTreeSet<String>> = read[first..].iter().map(|(n, _)| n).collect();
        // The files carry each phase's effective set; applied again for manifests written
        // before they did.
        let sets =
            call_classes::effective_sets(allowed.iter().map(|a| a.iter().map(String::as_str)));
        let names: Vec<&str> = role.phases.iter().map(|p| p.name.as_str()).collect();
        let late_ones = late_phases(&detector, &role.role, &names);
        for (i, (set, &is_late)) in sets.iter().zip(&late_ones).enumerate() {
            if is_late {
                late.extend(set.iter().map(|n| n.to_string()));
                late_files.push(first + i);
            }
            union.allow.extend(set.iter().map(|n| n.to_string()));
        }
        for f in &files {
            add_denials(&mut union, f);
        }
    }
    if union.allow.is_empty() {
        anyhow::bail!("{origin} allows no syscall at all: no program could start under it");
    }
    // The kernel's filter is one for the run: it allows every phase's argument combinations,
    // and those only the phases before serving used go to phasebox, as early-only calls do.
    union = union.with_args(arg_rules::union(&read));
    let late_args = arg_rules::union(late_files.iter().map(|&i| &read[i]));
    union.errno.retain(|n, _| !union.allow.contains(n));
    union
        .kill
        .retain(|n| !union.allow.contains(n) && !union.errno.contains_key(n));
    // A call whose errno is misread is never denied with one once learned.
    let early_only = union
        .allow
        .iter()
        .filter(|n| !late.contains(*n) && call_classes::no_errno(n).is_none())
        .cloned()
        .collect();
    let early_args = arg_rules::only_in(&union.args, &late_args);
    Ok(Plan {
        detector,
        union,
        early_only,
        early_args,
        arch: m.arch,
    })
}

/// The explicit ENOSYS, errno and kill rules of a phase file.
fn add_denials(union: &mut Policy, f: &OciProfile) {
    for (name, action, errno) in f.explicit_denials() {
        match (action, errno) {
            (Action::Errno, Some(e)) => {
                union.errno.entry(name).or_insert(e);
            }
            (a, _) if a.kills() => {
                union.kill.insert(name);
            }
            _ => {}
        }
    }
}

impl Plan {
    /// The filter: the union allowed, the early-only calls notified.
    pub fn spec(&self) -> anyhow::Result<FilterSpec> {
        let target = Target {
            arch: &self.arch,
            label: "phase-aware union".into(),
            action: DefaultAction::Errno,
            errno: libc::EPERM as u32,
        };
        let mut spec = FilterSpec::from_oci(&export::oci_profile(&self.union, &target))?;
        spec.notify(&self.early_only);
        for (name, sets) in &self.early_args {
            for v in sets {
                spec.notify_with_args(name, &arg_rules::conditions(name, v));
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_without_a_steady_phase_has_no_startup_only_phase() {
        let auto = Detector::load("auto").unwrap();
        assert_eq!(
            late_phases(&auto, "main", &["exec", "loading", "steady", "exit"]),
            [false, false, true, true]
        );
        // redis learned through a few operations: its loop was never recognized.
        assert_eq!(
            late_phases(
                &auto,
                "main",
                &["exec", "loading", "config", "work", "exit"]
            ),
            [true; 5]
        );
        let nginx = Detector::load("nginx").unwrap();
        let worker = [
            "worker-process-initialization",
            "entering-event-loop",
            "accepting-and-serving-requests",
        ];
        assert_eq!(late_phases(&nginx, "worker", &worker), [false, false, true]);
        assert_eq!(late_phases(&nginx, "worker-child", &["unphased"]), [true]);
    }
}
