//! Phase detection: which phase of its role a process is in, from its events alone (live or
//! replayed from a trace file). Rule sets (`crate::rules`, followed by `markers`) or automatic
//! segmentation (`auto`).
pub mod auto;
pub mod markers;

use std::collections::HashMap;

use crate::rules::{Obs, Rules, RulesError};
use auto::{AutoParams, Segmenter};

/// The one phase of a role that the rule set gives no phases.
pub const UNPHASED: &str = "unphased";

/// How phases are found.
#[derive(Clone, Debug)]
pub enum Detector {
    Rules(Rules),
    Auto(AutoParams),
}

impl Detector {
    /// `generic`, `nginx`, a rule file's path, or `auto`.
    pub fn load(spec: &str) -> Result<Detector, RulesError> {
        if spec == "auto" {
            return Ok(Detector::Auto(AutoParams::default()));
        }
        Rules::load(spec).map(Detector::Rules)
    }

    pub fn name(&self) -> String {
        match self {
            Detector::Rules(r) => r.name.clone(),
            Detector::Auto(_) => "auto".into(),
        }
    }

    /// The name of phase `index` of `role`.
    pub fn phase_name(&self, role: &str, index: usize) -> String {
        match self {
            // A role the rules give no phases to keeps all its calls in one.
            Detector::Rules(r) => r
                .phases(role)
                .get(index)
                .map_or_else(|| UNPHASED.to_string(), |p| p.name.clone()),
            Detector::Auto(_) => auto::slot_name(index),
        }
    }

    /// A role's phases as the profile lists them, from the learner's (index, phase): as they
    /// are for rule sets; named, ordered and bounded for automatic phases (`notes` says what
    /// was merged).
    pub fn arrange(
        &self,
        role: &str,
        phases: Vec<(usize, crate::profile::Phase)>,
        notes: &mut Vec<String>,
    ) -> Vec<crate::profile::Phase> {
        match self {
            Detector::Rules(_) => phases.into_iter().map(|(_, ph)| ph).collect(),
            Detector::Auto(p) => auto::arrange(p, role, phases, notes),
        }
    }

    /// Whether phase `name` of `role` is its steady (serving) phase or, for a rule set, one
    /// after it (automatic phases are named `steady`).
    pub fn is_steady_or_later(&self, role: &str, name: &str) -> bool {
        match self {
            Detector::Rules(r) => {
                let index = r.phases(role).iter().position(|p| p.name == name);
                matches!((index, r.steady_index(role)), (Some(i), Some(s)) if i >= s)
            }
            Detector::Auto(_) => name == auto::slot_name(auto::STEADY as usize),
        }
    }

    /// A fresh tracker for a process of `role`; `attached` when it was running before tracing.
    pub fn tracker<T>(&self, role: &str, attached: bool) -> Tracker<T> {
        match self {
            Detector::Rules(r) => Tracker::Rules {
                phase: if attached { r.steady_phase(role) } else { 0 },
                seen: HashMap::new(),
            },
            Detector::Auto(p) => Tracker::Auto(Box::new(Segmenter::new(*p, attached))),
        }
    }
}

/// One process's position in its phases.
#[derive(Debug)]
pub enum Tracker<T> {
    Rules {
        phase: usize,
        seen: HashMap<u32, u32>,
    },
    /// Boxed: a segmenter's windows and sets are far larger than a rules tracker.
    Auto(Box<Segmenter<T>>),
}

impl<T> Tracker<T> {
    /// A syscall; returns the calls whose phase is now known (at once with rules, a window
    /// later with automatic segmentation).
    pub fn syscall(
        &mut self,
        det: &Detector,
        role: &str,
        nr: u32,
        path: Option<&str>,
        item: T,
    ) -> Vec<(usize, T)> {
        match (self, det) {
            (Tracker::Rules { phase, seen }, Detector::Rules(r)) => {
                let n = seen.entry(nr).or_insert(0);
                *n += 1;
                advance(r, role, phase, &Obs::Syscall { nr, path, seen: *n });
                vec![(*phase, item)]
            }
            (Tracker::Auto(s), _) => s.push(nr, path, item),
            (Tracker::Rules { phase, .. }, Detector::Auto(_)) => vec![(*phase, item)],
        }
    }

    /// A call that opened a segment in the kernel because a marker may look at it (rules
    /// only): counts it, and moves to the nearest later phase whose marker matches.
    pub fn mark(&mut self, det: &Detector, role: &str, nr: u32, path: Option<&str>) {
        if let (Tracker::Rules { phase, seen }, Detector::Rules(r)) = (self, det) {
            let n = seen.entry(nr).or_insert(0);
            *n += 1;
            advance(r, role, phase, &Obs::Syscall { nr, path, seen: *n });
        }
    }

    /// An exec or fork by this process (markers may name them).
    pub fn process_event(&mut self, det: &Detector, role: &str, obs: Obs) {
        if let (Tracker::Rules { phase, .. }, Detector::Rules(r)) = (self, det) {
            advance(r, role, phase, &obs);
        }
    }

    /// Whether the process reached its role's steady (serving) phase: with rules, the steady
    /// phase or a later one; automatically, its first recurring state.
    pub fn serving(&self, det: &Detector, role: &str) -> bool {
        match (self, det) {
            (Tracker::Rules { phase, .. }, Detector::Rules(r)) => {
                r.steady_index(role).is_some_and(|s| *phase >= s)
            }
            (Tracker::Auto(s), _) => s.steady(),
            (Tracker::Rules { .. }, Detector::Auto(_)) => false,
        }
    }

    /// The phase a rules tracker is in (None for automatic segmentation).
    pub fn rule_phase(&self) -> Option<usize> {
        match self {
            Tracker::Rules { phase, .. } => Some(*phase),
            Tracker::Auto(_) => None,
        }
    }

    /// The calls still held back.
    pub fn flush(&mut self) -> Vec<(usize, T)> {
        match self {
            Tracker::Auto(s) => s.flush(),
            Tracker::Rules { .. } => Vec::new(),
        }
    }
}

/// Moves to the nearest later phase one of whose markers matches.
fn advance(r: &Rules, role: &str, phase: &mut usize, obs: &Obs) {
    let phases = r.phases(role);
    if let Some(j) =
        (*phase + 1..phases.len()).find(|&j| phases[j].enter.iter().any(|m| m.matches(obs)))
    {
        *phase = j;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysnames;

    fn nr(name: &str) -> u32 {
        sysnames::number(name).unwrap()
    }

    /// The master phase a sequence of (syscall, path) leaves a process of role master in.
    fn master_after(calls: &[(&str, Option<&str>)]) -> (String, bool) {
        let det = Detector::load("nginx").unwrap();
        let mut t = det.tracker::<()>("master", false);
        for (name, path) in calls {
            t.syscall(&det, "master", nr(name), *path, ());
        }
        let at = t.rule_phase().unwrap();
        (det.phase_name("master", at), t.serving(&det, "master"))
    }

    #[test]
    fn nginx_t_and_signal_commands_never_reach_the_masters_serving_phase() {
        // nginx -t (strace of nginx 1.22.1): the pid file is created right after the
        // configuration is read, then the temp paths, the logs and the listening sockets.
        let test = [
            ("openat", Some("/etc/ld.so.cache")),
            ("openat", Some("/conf/nginx.conf")),
            ("openat", Some("/run/nginx.pid")),
            ("mkdir", Some("/tmp/body")),
            ("openat", Some("/logs/error.log")),
            ("socket", None),
            ("setsockopt", None),
            ("bind", None),
            ("listen", None),
            ("exit_group", None),
        ];
        assert_eq!(
            master_after(&test),
            ("creating-and-configuring-sockets".to_string(), false)
        );
        // nginx -s reload: reads the configuration and the pid file, then signals.
        let signal = [
            ("openat", Some("/conf/nginx.conf")),
            ("openat", Some("/run/nginx.pid")),
            ("kill", None),
        ];
        assert!(!master_after(&signal).1);
        // The real master: sockets, signal handlers, the pid file, then its error log on
        // stderr (dup2) and its workers.
        let master = [
            ("openat", Some("/conf/nginx.conf")),
            ("bind", None),
            ("listen", None),
            ("rt_sigaction", None),
            ("openat", Some("/run/nginx.pid")),
            ("dup2", None),
            ("socketpair", None),
            ("clone", None),
        ];
        assert_eq!(
            master_after(&master),
            ("setting-up-worker-processes".to_string(), true)
        );
    }
}
