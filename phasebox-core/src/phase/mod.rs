//! Phase detection: which phase of its role a process is in, from its events alone (live or
//! replayed from a trace file). Rule sets (`rules`) or automatic segmentation (`auto`).
pub mod auto;
pub mod markers;
pub mod rules;

use std::collections::HashMap;

use auto::{AutoParams, Segmenter};
use rules::{Obs, Rules};

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
    pub fn load(spec: &str) -> anyhow::Result<Detector> {
        if spec == "auto" {
            return Ok(Detector::Auto(AutoParams::default()));
        }
        Rules::load(spec).map(Detector::Rules)
    }

    pub fn name(&self) -> String {
        match self {
            Detector::Rules(r) => r.name.clone(),
            Detector::Auto(p) => format!("auto (window {}, threshold {})", p.window, p.threshold),
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
            Detector::Auto(_) => format!("segment-{}", index + 1),
        }
    }

    /// A fresh tracker for a process of `role`; `attached` when it was running before tracing.
    pub fn tracker<T>(&self, role: &str, attached: bool) -> Tracker<T> {
        match self {
            Detector::Rules(r) => Tracker::Rules {
                phase: if attached { r.steady_phase(role) } else { 0 },
                seen: HashMap::new(),
            },
            Detector::Auto(p) => Tracker::Auto(Segmenter::new(*p)),
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
    Auto(Segmenter<T>),
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
            (Tracker::Auto(s), _) => s.push(nr, item),
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
