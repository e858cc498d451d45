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
    learn::{Learner, Place, ProcessPlace},
    profile::{Profile, ProfileError},
    sysnames,
};

/// What monitor mode makes of a process whose role (or phase) the profile does not have: a
/// program the profile never saw run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnknownRole {
    /// Its calls are violations (counted, logged, and with kill, the process is killed at
    /// its next call): the default, since the profile allows it nothing.
    #[default]
    Violation,
    /// It is left alone: not counted, not logged, never killed.
    Ignore,
}

/// A kill set for the kernel: process `tgid`, instance `instance`, may make these calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KillSet {
    pub tgid: u32,
    pub instance: u32,
    pub bits: [u64; ALLOWED_WORDS],
}

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
    /// What a process of a role the profile lacks gets.
    pub unknown: UnknownRole,
    logged: HashSet<(String, String, String)>,
    /// The kill set last written for each live process instance (pid, instance): a reused
    /// pid is another process and gets its own.
    applied: HashMap<(u32, u32), [u64; ALLOWED_WORDS]>,
}

impl Monitor {
    /// A monitor of the profile at `path`.
    pub fn load(path: &Path, kill: bool) -> Result<Monitor, ProfileError> {
        Ok(Monitor::new(Profile::load(path)?, kill))
    }

    pub fn new(profile: Profile, kill: bool) -> Monitor {
        Monitor {
            profile,
            kill,
            unknown: UnknownRole::default(),
            logged: HashSet::new(),
            applied: HashMap::new(),
        }
    }

    /// The first phase of `role` in the profile, if it has the role.
    fn first_phase(&self, role: &str) -> Option<String> {
        Some(self.profile.role(role)?.phases.first()?.name.clone())
    }

    /// Whether the profile has this role.
    fn knows_role(&self, role: &str) -> bool {
        self.profile.role(role).is_some()
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

    /// Whether `bits` differ from what process `(tgid, instance)` has in the kernel (and
    /// records them as applied).
    pub fn needs_update(&mut self, tgid: u32, instance: u32, bits: [u64; ALLOWED_WORDS]) -> bool {
        self.applied.insert((tgid, instance), bits) != Some(bits)
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
            if self.unknown == UnknownRole::Ignore && !self.knows_role(&place.role) {
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

    /// Kill mode: the allowed sets of process instances whose phase is known and whose set
    /// changed. A process of a role or phase the profile lacks gets an empty set (killed at
    /// its next call) unless unknown roles are ignored. A process whose instance is not known
    /// yet gets nothing: the kernel could not tell it from another process with its pid.
    pub fn kill_sets(&mut self, places: &[ProcessPlace]) -> Vec<KillSet> {
        let mut out = Vec::new();
        for p in places.iter().filter(|p| p.instance != 0) {
            let bits = match (
                self.allowed_from(&p.role, &p.phase),
                self.first_phase(&p.role),
            ) {
                (Some(bits), _) => bits,
                // A known program in a place the profile never saw it in (attached in a
                // phase its run did not reach): all it was seen doing.
                (None, Some(first)) => self.allowed_from(&p.role, &first).unwrap_or_default(),
                (None, None) if self.unknown == UnknownRole::Violation => [0; ALLOWED_WORDS],
                (None, None) => continue,
            };
            if self.needs_update(p.tgid, p.instance, bits) {
                out.push(KillSet {
                    tgid: p.tgid,
                    instance: p.instance,
                    bits,
                });
            }
        }
        out
    }

    /// Forgets what was applied for a process instance that is gone.
    pub fn forget(&mut self, tgid: u32, instance: u32) {
        self.applied.remove(&(tgid, instance));
    }

    /// Keeps what was applied for the live processes in `places` only.
    pub fn retain(&mut self, places: &[ProcessPlace]) {
        let live: HashSet<(u32, u32)> = places.iter().map(|p| (p.tgid, p.instance)).collect();
        self.applied.retain(|k, _| live.contains(k));
    }

    /// Process instances with a kill set applied.
    pub fn applied(&self) -> usize {
        self.applied.len()
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
        assert!(m.needs_update(7, 1, bits));
        assert!(!m.needs_update(7, 1, bits));
        // The same pid, another process: its own set.
        assert!(m.needs_update(7, 2, bits));
        assert_eq!(m.allowed_from("main", "nope"), None);
    }

    #[test]
    fn kill_sets_are_per_instance_and_unknown_roles_get_none() {
        let p = sample(&[("main", &[("init", &["socket"]), ("serving", &["accept4"])])]);
        let place = |tgid, instance, role: &str, phase: &str| ProcessPlace {
            tgid,
            instance,
            role: role.into(),
            phase: phase.into(),
        };
        let mut m = Monitor::new(p, true);
        let serving = m.allowed_from("main", "serving").unwrap();
        let all = m.allowed_from("main", "init").unwrap();
        let places = [
            place(10, 1, "main", "serving"),
            // A known role in a phase the profile never saw it in: all it was seen doing.
            place(11, 2, "main", "exit"),
            // A program the profile never saw: nothing.
            place(12, 3, "sh", "initialization"),
            // Its instance unknown yet: no set (the kernel could not tell it apart).
            place(13, 0, "main", "serving"),
        ];
        let sets = m.kill_sets(&places);
        let got: Vec<(u32, u32, bool, bool)> = sets
            .iter()
            .map(|k| (k.tgid, k.instance, k.bits == serving, k.bits == all))
            .collect();
        assert_eq!(
            got,
            [
                (10, 1, true, false),
                (11, 2, false, true),
                (12, 3, false, false)
            ]
        );
        assert!(sets[2].bits.iter().all(|&w| w == 0));
        // Unchanged: nothing to write; pid 10 reused by another instance: its own set.
        assert!(m.kill_sets(&places).is_empty());
        let reused = [place(10, 9, "main", "serving")];
        assert_eq!(m.kill_sets(&reused).len(), 1);
        m.retain(&reused);
        assert_eq!(m.applied(), 1);
        // Ignoring unknown roles: no set for them.
        m.unknown = UnknownRole::Ignore;
        assert!(m.kill_sets(&[place(20, 4, "sh", "x")]).is_empty());
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
