//! Monitor mode: a learned profile as the expected behaviour. A syscall outside the set of the
//! caller's current role and phase is a violation; with kill on, the kernel kills a process that
//! calls outside its phase and the later ones (phases only move forward, so a process that has
//! not yet been told of its next phase is never killed for that phase's calls).
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use phasebox_common::{ALLOWED_WORDS, MAX_SYSCALLS};

use crate::{
    call_classes,
    harvest::Attributed,
    learn::{Learner, Place},
    profile::Profile,
    sysnames,
};

/// A call outside the profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub pid: u32,
    /// Where the process was when it made the call.
    pub place: Place,
    pub syscall: String,
    /// Calls of it since the last check.
    pub calls: u64,
    /// The first time this (role, phase, syscall) violates: log it.
    pub first: bool,
}

pub struct Monitor {
    profile: Profile,
    pub kill: bool,
    logged: HashSet<(String, String, String)>,
    applied: HashMap<u32, [u64; ALLOWED_WORDS]>,
}

impl Monitor {
    pub fn load(path: &Path, kill: bool) -> anyhow::Result<Monitor> {
        Ok(Monitor {
            profile: Profile::load(path)?,
            kill,
            logged: HashSet::new(),
            applied: HashMap::new(),
        })
    }

    pub fn new(profile: Profile, kill: bool) -> Monitor {
        Monitor {
            profile,
            kill,
            logged: HashSet::new(),
            applied: HashMap::new(),
        }
    }

    /// Whether `syscall` is outside the effective set of `role`'s `phase` in the profile (its
    /// calls, and the state-dependent calls the role made before: call_classes); an unknown
    /// role or phase has no allowed calls.
    pub fn violates(&self, role: &str, phase: &str, syscall: &str) -> bool {
        let Some(r) = self.profile.role(role) else {
            return true;
        };
        let Some(at) = r.phases.iter().position(|p| p.name == phase) else {
            return true;
        };
        // Most calls are in the phase itself: only a miss needs the carried calls.
        if r.phases[at].syscalls.contains_key(syscall) {
            return false;
        }
        !call_classes::role_effective_sets(r)[at].contains(syscall)
    }

    /// True the first time (role, phase, syscall) is seen violating: log it then.
    pub fn first_report(&mut self, role: &str, phase: &str, syscall: &str) -> bool {
        self.logged
            .insert((role.to_string(), phase.to_string(), syscall.to_string()))
    }

    /// The syscalls `role` may make from `phase` on, as kernel bits; None when the profile
    /// does not know the role or phase (then nothing is enforced).
    pub fn allowed_from(&self, role: &str, phase: &str) -> Option<[u64; ALLOWED_WORDS]> {
        let r = self.profile.role(role)?;
        let at = r.phases.iter().position(|p| p.name == phase)?;
        let sets = call_classes::role_effective_sets(r);
        let names: BTreeSet<&str> = sets[at..].iter().flatten().copied().collect();
        let mut bits = [0u64; ALLOWED_WORDS];
        for n in names
            .iter()
            .filter_map(|n| sysnames::number(n))
            .filter(|&n| n < MAX_SYSCALLS)
        {
            bits[(n / 64) as usize] |= 1 << (n % 64);
        }
        Some(bits)
    }

    /// Whether `bits` differ from what `tgid` has in the kernel (and records them as applied).
    pub fn needs_update(&mut self, tgid: u32, bits: [u64; ALLOWED_WORDS]) -> bool {
        self.applied.insert(tgid, bits) != Some(bits)
    }

    /// The violations among counter growth the learner attributed: each call is judged in
    /// the role and phase its process was in when it made it.
    pub fn check(&mut self, attributed: &[Attributed], learner: &Learner) -> Vec<Violation> {
        let mut out = Vec::new();
        for a in attributed {
            let place = learner.names(a.role, a.phase);
            let syscall = sysnames::name(a.key.nr);
            if a.grew.calls == 0 || !self.violates(&place.role, &place.phase, &syscall) {
                continue;
            }
            let first = self.first_report(&place.role, &place.phase, &syscall);
            out.push(Violation {
                pid: a.key.tgid,
                place,
                syscall: syscall.into_owned(),
                calls: a.grew.calls,
                first,
            });
        }
        out
    }

    /// Kill mode: the allowed sets of processes whose phase is known and whose set changed.
    pub fn kill_sets(
        &mut self,
        places: &[(u32, String, String)],
    ) -> Vec<(u32, [u64; ALLOWED_WORDS])> {
        let mut out = Vec::new();
        for (tgid, role, phase) in places {
            if let Some(bits) = self.allowed_from(role, phase)
                && self.needs_update(*tgid, bits)
            {
                out.push((*tgid, bits));
            }
        }
        out
    }

    /// Forgets what was applied for processes that are gone.
    pub fn forget(&mut self, tgid: u32) {
        self.applied.remove(&tgid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::tests::sample;

    #[test]
    fn violations_and_allowed_sets() {
        let p = sample(&[(
            "main",
            &[
                ("init", &["socket", "bind"]),
                ("serving", &["accept4", "read"]),
                ("exit", &["exit_group"]),
            ],
        )]);
        let mut m = Monitor::new(p, true);
        assert!(!m.violates("main", "serving", "accept4"));
        assert!(m.violates("main", "serving", "socket"));
        assert!(m.violates("main", "serving", "ptrace"));
        assert!(m.violates("other", "serving", "read"));
        assert!(m.first_report("main", "serving", "ptrace"));
        assert!(!m.first_report("main", "serving", "ptrace"));
        let bits = m.allowed_from("main", "serving").unwrap();
        let has = |n: &str| {
            let nr = sysnames::number(n).unwrap();
            bits[(nr / 64) as usize] & (1 << (nr % 64)) != 0
        };
        assert!(has("accept4") && has("exit_group") && !has("socket") && !has("ptrace"));
        assert!(m.needs_update(7, bits));
        assert!(!m.needs_update(7, bits));
        assert_eq!(m.allowed_from("main", "nope"), None);
    }

    #[test]
    fn state_dependent_calls_of_earlier_phases_are_no_violation() {
        let p = sample(&[(
            "worker",
            &[
                ("init", &["brk", "mmap", "setuid"]),
                ("serving", &["accept4"]),
            ],
        )]);
        let m = Monitor::new(p, true);
        assert!(!m.violates("worker", "serving", "brk"));
        assert!(!m.violates("worker", "serving", "mmap"));
        assert!(
            m.violates("worker", "serving", "setuid"),
            "the program's path"
        );
        assert!(
            m.violates("worker", "serving", "madvise"),
            "never made by the role"
        );
        assert!(m.violates("worker", "init", "accept4"));
        let bits = m.allowed_from("worker", "serving").unwrap();
        let nr = sysnames::number("brk").unwrap();
        assert!(bits[(nr / 64) as usize] & (1 << (nr % 64)) != 0);
        let nr = sysnames::number("setuid").unwrap();
        assert!(bits[(nr / 64) as usize] & (1 << (nr % 64)) == 0);
    }
}
