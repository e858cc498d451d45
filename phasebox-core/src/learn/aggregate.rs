//! What a learner keeps per role, phase and syscall, and how it becomes a profile.
use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::{
    call_args::Values,
    phase::Detector,
    profile::{self, MAX_ARG_SETS, MAX_PATHS, MAX_TIMES, SyscallUse},
    sysnames,
};

/// One call of a record, on its way into an aggregate.
#[derive(Debug)]
pub(super) struct Item {
    pub nr: u32,
    pub ts_ns: u64,
    pub path: Option<String>,
    /// Its recorded arguments (`call_args`), when they were recorded.
    pub args: Option<Values>,
    /// Whether the call failed (records with a return value).
    pub failed: bool,
}

/// What one syscall did in one phase of a role.
#[derive(Debug)]
pub(super) struct Use {
    pub calls: u64,
    pub errors: u64,
    /// First call seen in a record, in ns since the role's start (u64::MAX: none yet).
    pub first_ns: u64,
    pub paths: BTreeSet<String>,
    /// Calls seen in records, for sampling their times.
    pub seen: u64,
    /// Sampled call times and the sampling stride (every `stride`-th seen call is kept).
    pub times: Vec<u64>,
    pub stride: u64,
    /// Argument combinations seen (`call_args`); None once more than MAX_ARG_SETS were.
    pub args: Option<BTreeSet<Values>>,
}

impl Use {
    pub fn new() -> Use {
        Use {
            calls: 0,
            errors: 0,
            first_ns: u64::MAX,
            paths: BTreeSet::new(),
            seen: 0,
            times: Vec::new(),
            stride: 1,
            args: Some(BTreeSet::new()),
        }
    }

    /// Notes a combination of recorded arguments.
    pub fn args(&mut self, v: Values) {
        if let Some(set) = &mut self.args {
            set.insert(v);
            if set.len() > MAX_ARG_SETS {
                self.args = None;
            }
        }
    }

    /// Notes a call seen at `t` ns; keeps its time when it falls on the stride, and halves
    /// the sample (doubling the stride) when it reaches twice MAX_TIMES.
    pub fn saw(&mut self, t: u64) {
        self.first_ns = self.first_ns.min(t);
        if self.seen.is_multiple_of(self.stride) {
            self.times.push(t);
            if self.times.len() >= 2 * MAX_TIMES {
                self.times = self.times.iter().step_by(2).copied().collect();
                self.stride *= 2;
            }
        }
        self.seen += 1;
    }
}

/// One phase of a role: its syscalls, and its first and last call seen (ns since the role's
/// start).
#[derive(Debug, Default)]
pub(super) struct PhaseAgg {
    pub calls: BTreeMap<u32, Use>,
    pub first_ns: u64,
    pub last_ns: u64,
    /// Calls a seccomp filter denied before they ran: syscall → (calls, errno).
    pub filtered: BTreeMap<u32, (u64, u32)>,
}

impl PhaseAgg {
    pub fn syscall(&mut self, nr: u32) -> &mut Use {
        self.calls.entry(nr).or_insert_with(Use::new)
    }
}

/// A role and what its processes did, phase by phase.
#[derive(Debug)]
pub(super) struct RoleAgg {
    pub name: String,
    /// The container its processes run in (None: the host).
    pub container: Option<String>,
    pub start_ns: u64,
    /// Its live processes, as (pid, instance): a long-running agent keeps only these.
    pub procs: HashSet<(u32, u32)>,
    /// Processes it has had, live or gone.
    pub processes: u64,
    /// Phase index → what happened in it.
    pub phases: BTreeMap<usize, PhaseAgg>,
}

impl RoleAgg {
    pub fn new(name: String, container: Option<String>, start_ns: u64) -> RoleAgg {
        RoleAgg {
            name,
            container,
            start_ns,
            procs: HashSet::new(),
            processes: 0,
            phases: BTreeMap::new(),
        }
    }

    /// Adds a call seen in a record; counts it when `count` (records are the counts).
    pub fn record(&mut self, phase: usize, item: Item, count: bool) {
        let t = item.ts_ns.saturating_sub(self.start_ns);
        let ph = self.phases.entry(phase).or_insert_with(|| PhaseAgg {
            first_ns: t,
            last_ns: t,
            ..Default::default()
        });
        (ph.first_ns, ph.last_ns) = (ph.first_ns.min(t), ph.last_ns.max(t));
        let u = ph.syscall(item.nr);
        u.saw(t);
        if count {
            u.calls += 1;
            u.errors += u64::from(item.failed);
        }
        if let Some(p) = item.path
            && u.paths.len() < MAX_PATHS
        {
            u.paths.insert(p);
        }
        if let Some(v) = item.args {
            u.args(v);
        }
    }

    /// Adds a combination of arguments a call of `nr` was made with (summary mode: sent once
    /// per combination and segment).
    pub fn args(&mut self, phase: usize, nr: u32, v: Values) {
        self.phases.entry(phase).or_default().syscall(nr).args(v);
    }

    /// Takes process `(pid, instance)` into the role (counted once).
    pub fn admit(&mut self, pid: u32, instance: u32) {
        if self.procs.insert((pid, instance)) {
            self.processes += 1;
        }
    }

    /// Adds a call a seccomp filter denied with `errno`.
    pub fn filtered(&mut self, phase: usize, nr: u32, errno: u32) {
        let f = self.phases.entry(phase).or_default().filtered.entry(nr);
        let (calls, e) = f.or_insert((0, errno));
        *calls += 1;
        *e = errno;
    }

    /// Adds calls the kernel counted.
    pub fn count(&mut self, phase: usize, nr: u32, calls: u64, errors: u64) {
        let u = self.phases.entry(phase).or_default().syscall(nr);
        u.calls = u.calls.saturating_add(calls);
        u.errors = u.errors.saturating_add(errors);
    }

    /// The role as a profile role; the detector names, orders and bounds its phases (`notes`
    /// says what it merged).
    pub fn to_profile(&self, det: &Detector, notes: &mut Vec<String>) -> profile::Role {
        let phases = self
            .phases
            .iter()
            .map(|(idx, ph)| (*idx, phase_to_profile(det, &self.name, *idx, ph)))
            .collect();
        profile::Role {
            name: self.name.clone(),
            container: self.container.clone(),
            processes: self.processes,
            phases: det.arrange(&self.name, phases, notes),
        }
    }
}

/// One phase as a profile phase.
fn phase_to_profile(det: &Detector, role: &str, idx: usize, ph: &PhaseAgg) -> profile::Phase {
    let syscalls = ph
        .calls
        .iter()
        .map(|(nr, u)| {
            let first = if u.first_ns == u64::MAX {
                ph.first_ns
            } else {
                u.first_ns
            };
            let use_ = SyscallUse {
                calls: u.calls,
                errors: u.errors,
                first_seen_ns: first,
                paths: u.paths.iter().cloned().collect(),
                times_ns: u.times.clone(),
                // Only what was seen restricts a call: none seen (not recorded) is any.
                args: u
                    .args
                    .as_ref()
                    .filter(|s| !s.is_empty())
                    .map(|s| s.iter().copied().collect()),
            };
            (sysnames::name(*nr).into_owned(), use_)
        })
        .collect();
    let filtered = ph
        .filtered
        .iter()
        .map(|(&nr, &(calls, errno))| {
            let f = profile::Filtered { calls, errno };
            (sysnames::name(nr).into_owned(), f)
        })
        .collect();
    profile::Phase {
        name: det.phase_name(role, idx),
        start_ns: ph.first_ns,
        end_ns: ph.last_ns,
        syscalls,
        filtered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_times_are_sampled_evenly() {
        let mut u = Use::new();
        for t in 0..10_000u64 {
            u.saw(t);
        }
        assert_eq!(u.seen, 10_000);
        assert!(
            u.times.len() >= MAX_TIMES && u.times.len() < 2 * MAX_TIMES,
            "{}",
            u.times.len()
        );
        // evenly spread: a constant step, from the first call to near the last
        let step = u.times[1] - u.times[0];
        assert!(u.times.windows(2).all(|w| w[1] - w[0] == step));
        assert!(*u.times.last().unwrap() >= 10_000 - step);
        let mut few = Use::new();
        (0..5).for_each(|t| few.saw(t * 7));
        assert_eq!(few.times, [0, 7, 14, 21, 28]);
        assert_eq!(few.first_ns, 0);
    }
}
