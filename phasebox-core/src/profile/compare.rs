//! Merging profiles (union, calls summed, provenance kept) and diffing them (per role and
//! phase, what was gained or lost).
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::{Filtered, MAX_ARG_SETS, MAX_PATHS, Profile, SyscallUse};
use crate::{call_args::Values, display};

fn merge_use(into: &mut SyscallUse, from: &SyscallUse) {
    // Counts from files are untrusted: a sum past u64 stays at the top instead of wrapping.
    into.calls = into.calls.saturating_add(from.calls);
    into.errors = into.errors.saturating_add(from.errors);
    into.first_seen_ns = into.first_seen_ns.min(from.first_seen_ns);
    let paths: BTreeSet<String> = into
        .paths
        .drain(..)
        .chain(from.paths.iter().cloned())
        .collect();
    into.paths = paths.into_iter().take(MAX_PATHS).collect();
    into.args = merge_args(into.args.take(), from.args.as_deref());
}

/// The union of two calls' argument combinations; any arguments when either allows any, or
/// when the union passes MAX_ARG_SETS.
pub fn merge_args(a: Option<Vec<Values>>, b: Option<&[Values]>) -> Option<Vec<Values>> {
    let (a, b) = (a?, b?);
    let all: BTreeSet<Values> = a.into_iter().chain(b.iter().copied()).collect();
    (all.len() <= MAX_ARG_SETS).then(|| all.into_iter().collect())
}

/// Filtered calls: calls summed, the errno of the first profile that had the call kept.
fn merge_filtered(into: &mut BTreeMap<String, Filtered>, from: &BTreeMap<String, Filtered>) {
    for (name, f) in from {
        let have = into.entry(name.clone()).or_insert(Filtered {
            calls: 0,
            errno: f.errno,
        });
        have.calls = have.calls.saturating_add(f.calls);
    }
}

/// Runs have no common clock: a merged profile keeps no call times.
fn forget_times(p: &mut Profile) {
    for ph in p.roles.iter_mut().flat_map(|r| r.phases.iter_mut()) {
        (ph.start_ns, ph.end_ns) = (0, 0);
        for u in ph.syscalls.values_mut() {
            u.times_ns.clear();
        }
    }
}

/// Why profiles cannot be merged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MergeError {
    #[error("nothing to merge")]
    Nothing,
    #[error("cannot merge profiles of different architectures ({0} and {1})")]
    Arch(String, String),
}

/// The union of `profiles`: roles and phases matched by name (new ones appended in the order
/// they come), calls summed, earliest first-seen kept, every run listed.
pub fn merge(profiles: &[Profile]) -> Result<Profile, MergeError> {
    let Some(first) = profiles.first() else {
        return Err(MergeError::Nothing);
    };
    let mut out = first.clone();
    // What a merge writes reads as this phasebox's schema (older ones are a subset of it).
    out.schema = super::SCHEMA.into();
    for p in &profiles[1..] {
        if p.arch != out.arch {
            return Err(MergeError::Arch(out.arch, p.arch.clone()));
        }
        out.complete &= p.complete;
        for r in &p.incomplete_reasons {
            if !out.incomplete_reasons.contains(r) {
                out.incomplete_reasons.push(r.clone());
            }
        }
        for n in &p.notes {
            if !out.notes.contains(n) {
                out.notes.push(n.clone());
            }
        }
        out.runs.extend(p.runs.iter().cloned());
        for role in &p.roles {
            let same = |r: &&mut super::Role| r.name == role.name && r.container == role.container;
            let Some(into) = out.roles.iter_mut().find(same) else {
                out.roles.push(role.clone());
                continue;
            };
            into.processes = into.processes.saturating_add(role.processes);
            for phase in &role.phases {
                let Some(ph) = into.phases.iter_mut().find(|q| q.name == phase.name) else {
                    into.phases.push(phase.clone());
                    continue;
                };
                for (name, u) in &phase.syscalls {
                    match ph.syscalls.get_mut(name) {
                        Some(have) => merge_use(have, u),
                        None => {
                            ph.syscalls.insert(name.clone(), u.clone());
                        }
                    }
                }
                merge_filtered(&mut ph.filtered, &phase.filtered);
            }
        }
    }
    if profiles.len() > 1 {
        forget_times(&mut out);
    }
    Ok(out)
}

/// What changed in one role's phase from A to B.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PhaseDiff {
    pub role: String,
    pub phase: String,
    /// In B, not in A.
    pub gained: Vec<String>,
    /// In A, not in B.
    pub lost: Vec<String>,
    pub only_in_a: bool,
    pub only_in_b: bool,
    /// Calls a seccomp filter denied while learning: in B only, in A only.
    pub filtered_gained: Vec<String>,
    pub filtered_lost: Vec<String>,
}

/// Per role and phase (in A's order, then B's new ones), the syscalls gained and lost, and
/// the argument combinations (`openat(O_WRONLY|O_CREAT)`).
pub fn diff(a: &Profile, b: &Profile) -> Vec<PhaseDiff> {
    let mut keys: Vec<(String, String)> = Vec::new();
    for p in [a, b] {
        for role in &p.roles {
            for ph in &role.phases {
                let k = (role.name.clone(), ph.name.clone());
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
    }
    // A call's names, and each argument combination it was restricted to (`openat(O_RDONLY)`).
    let set = |p: &Profile, role: &str, phase: &str| -> Option<BTreeSet<String>> {
        p.role(role)?.phase(phase).map(|ph| {
            let mut all: BTreeSet<String> = ph.syscalls.keys().cloned().collect();
            for (n, u) in &ph.syscalls {
                let sets = u.args.iter().flatten();
                all.extend(sets.map(|v| crate::call_args::describe(n, v)));
            }
            all
        })
    };
    let filtered = |p: &Profile, role: &str, phase: &str| -> BTreeSet<String> {
        p.role(role)
            .and_then(|r| r.phase(phase))
            .map(|ph| ph.filtered.keys().cloned().collect())
            .unwrap_or_default()
    };
    keys.into_iter()
        .map(|(role, phase)| {
            let (sa, sb) = (set(a, &role, &phase), set(b, &role, &phase));
            let (ea, eb) = (
                sa.clone().unwrap_or_default(),
                sb.clone().unwrap_or_default(),
            );
            let (fa, fb) = (filtered(a, &role, &phase), filtered(b, &role, &phase));
            PhaseDiff {
                gained: eb.difference(&ea).cloned().collect(),
                lost: ea.difference(&eb).cloned().collect(),
                only_in_a: sb.is_none(),
                only_in_b: sa.is_none(),
                filtered_gained: fb.difference(&fa).cloned().collect(),
                filtered_lost: fa.difference(&fb).cloned().collect(),
                role,
                phase,
            }
        })
        .collect()
}

/// The diff as text: one line per role and phase that changed.
pub fn render_diff(diffs: &[PhaseDiff]) -> String {
    let mut out = String::new();
    for d in diffs {
        let tag = if d.only_in_a {
            " (only in A)"
        } else if d.only_in_b {
            " (only in B)"
        } else {
            ""
        };
        let filtered_changed = !(d.filtered_gained.is_empty() && d.filtered_lost.is_empty());
        if d.gained.is_empty() && d.lost.is_empty() && !filtered_changed {
            continue;
        }
        let (role, phase) = (display::text(&d.role), display::text(&d.phase));
        let _ = write!(out, "{role} / {phase}{tag}:");
        if !d.gained.is_empty() {
            let _ = write!(out, " +{}", display::join(&d.gained, " +"));
        }
        if !d.lost.is_empty() {
            let _ = write!(out, " -{}", display::join(&d.lost, " -"));
        }
        if filtered_changed {
            out.push_str(" filtered by seccomp while learning:");
            for n in &d.filtered_gained {
                let _ = write!(out, " +{n}");
            }
            for n in &d.filtered_lost {
                let _ = write!(out, " -{n}");
            }
        }
        out.push('\n');
    }
    if out.is_empty() {
        out.push_str("no differences in syscall sets\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample;
    use super::*;

    #[test]
    fn merge_is_a_union_with_summed_calls() {
        let a = sample(&[(
            "worker",
            &[("init", &["setuid"]), ("serving", &["accept4"])],
        )]);
        let mut b = sample(&[
            (
                "worker",
                &[
                    ("serving", &["accept4", "sendfile"]),
                    ("exit", &["exit_group"]),
                ],
            ),
            ("master", &[("start", &["execve"])]),
        ]);
        b.complete = false;
        b.incomplete_reasons = vec!["attached".into()];
        let m = merge(&[a.clone(), b]).unwrap();
        let w = m.role("worker").unwrap();
        let names: Vec<&str> = w.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["init", "serving", "exit"]);
        assert_eq!(w.phase("serving").unwrap().syscalls["accept4"].calls, 2);
        assert!(
            w.phase("serving")
                .unwrap()
                .syscalls
                .contains_key("sendfile")
        );
        assert!(m.role("master").is_some());
        assert_eq!(m.runs.len(), 2);
        assert!(!m.complete);
        assert_eq!(m.incomplete_reasons, ["attached"]);
        assert_eq!(merge(std::slice::from_ref(&a)).unwrap(), a);
    }

    #[test]
    fn merged_counts_saturate_instead_of_wrapping() {
        let mut a = sample(&[("main", &[("run", &["read"])])]);
        a.roles[0].processes = u64::MAX - 1;
        a.roles[0].phases[0].syscalls.get_mut("read").unwrap().calls = u64::MAX - 1;
        let m = merge(&[a.clone(), a.clone(), a]).unwrap();
        assert_eq!(m.roles[0].processes, u64::MAX);
        assert_eq!(m.roles[0].phases[0].syscalls["read"].calls, u64::MAX);
    }

    #[test]
    fn filtered_calls_merge_and_diff() {
        let f = |calls, errno| Filtered { calls, errno };
        let mut a = sample(&[("main", &[("run", &["read"])])]);
        a.roles[0].phases[0]
            .filtered
            .insert("clone3".into(), f(2, 38));
        let mut b = sample(&[("main", &[("run", &["read"])])]);
        b.roles[0].phases[0]
            .filtered
            .insert("clone3".into(), f(3, 1));
        b.roles[0].phases[0]
            .filtered
            .insert("faccessat2".into(), f(1, 1));
        let m = merge(&[a.clone(), b.clone()]).unwrap();
        let got = &m.roles[0].phases[0].filtered;
        assert_eq!(got["clone3"], f(5, 38), "calls summed, errno kept");
        assert_eq!(got["faccessat2"], f(1, 1));
        let text = render_diff(&diff(&a, &b));
        assert_eq!(
            text, "main / run: filtered by seccomp while learning: +faccessat2\n",
            "{text}"
        );
    }

    #[test]
    fn diff_shows_gains_and_losses() {
        let a = sample(&[(
            "worker",
            &[("serving", &["accept4", "writev"]), ("init", &["setuid"])],
        )]);
        let b = sample(&[("worker", &[("serving", &["accept4", "sendfile"])])]);
        let d = diff(&a, &b);
        let serving = d.iter().find(|x| x.phase == "serving").unwrap();
        assert_eq!(serving.gained, ["sendfile"]);
        assert_eq!(serving.lost, ["writev"]);
        let init = d.iter().find(|x| x.phase == "init").unwrap();
        assert!(init.only_in_a);
        let text = render_diff(&d);
        assert!(
            text.contains("worker / serving: +sendfile -writev"),
            "{text}"
        );
        assert!(
            text.contains("worker / init (only in A): -setuid"),
            "{text}"
        );
        assert_eq!(
            render_diff(&diff(&a, &a)),
            "no differences in syscall sets\n"
        );
    }

    #[test]
    fn arguments_merge_as_a_union_and_show_in_a_diff() {
        let with = |sets: Option<Vec<crate::call_args::Values>>| {
            let mut p = sample(&[("worker", &[("serving", &["openat"])])]);
            p.roles[0].phases[0]
                .syscalls
                .get_mut("openat")
                .unwrap()
                .args = sets;
            p
        };
        let (a, b) = (with(Some(vec![[0, 0, 0]])), with(Some(vec![[0, 0, 0o101]])));
        let m = merge(&[a.clone(), b.clone()]).unwrap();
        let args = &m.roles[0].phases[0].syscalls["openat"].args;
        assert_eq!(args.as_deref(), Some(&[[0, 0, 0], [0, 0, 0o101]][..]));
        assert_eq!(m.schema, crate::profile::SCHEMA);
        // A profile that allows any arguments (an older one) opens the call.
        let m = merge(&[a.clone(), with(None)]).unwrap();
        assert_eq!(m.roles[0].phases[0].syscalls["openat"].args, None);
        let text = render_diff(&diff(&a, &b));
        assert!(
            text.contains("+openat(O_WRONLY|O_CREAT) -openat(O_RDONLY)"),
            "{text}"
        );
    }
}
