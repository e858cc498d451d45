//! Time on a timeline: each phase's span from its recorded calls, the piecewise-linear x axis,
//! and the longest stretch without a recorded call (what makes a band wide).
//!
//! Startup phases last microseconds and serving lasts seconds, so x is piecewise linear: the
//! stretch between two ticks (the role's start, each phase's first call, the last call) gets
//! half of its width in proportion to its duration and half in equal share with the others.
use crate::profile::{Phase, Role};

/// Human time, from ns.
pub fn fmt_ns(ns: u64) -> String {
    let t = ns as f64;
    if t < 1e6 {
        format!("{:.0} µs", t / 1e3)
    } else if t < 1e9 {
        format!("{:.1} ms", t / 1e6)
    } else {
        format!("{:.2} s", t / 1e9)
    }
}

/// A phase's first and last recorded call (ns since its role started), or None when it
/// kept no call times (a merge). A phase's recorded start can precede its first call.
pub fn span(ph: &Phase) -> Option<(u64, u64)> {
    let times = ph
        .syscalls
        .values()
        .flat_map(|u| u.times_ns.iter().copied());
    let (lo, hi) = times.fold((u64::MAX, 0), |(lo, hi), t| (lo.min(t), hi.max(t)));
    if lo == u64::MAX {
        return None;
    }
    let first = ph.syscalls.values().map(|u| u.first_seen_ns).min();
    let from = first.map_or(lo, |f| f.min(lo));
    Some((from, hi.max(ph.end_ns).max(from)))
}

/// The piecewise-linear x axis: ticks (ns) and where each sits on 0..1.
#[derive(Debug)]
pub struct Axis {
    pub at_ns: Vec<u64>,
    pub pos: Vec<f64>,
}

impl Axis {
    /// Ticks at 0, every phase's first call and the last call.
    pub fn new(role: &Role) -> Axis {
        let spans: Vec<(u64, u64)> = role.phases.iter().filter_map(span).collect();
        let mut at_ns: Vec<u64> = spans.iter().map(|s| s.0).collect();
        at_ns.push(0);
        at_ns.push(spans.iter().map(|s| s.1).max().unwrap_or(0));
        at_ns.sort_unstable();
        at_ns.dedup();
        if at_ns.len() == 1 {
            at_ns.push(at_ns[0] + 1);
        }
        let total = (at_ns[at_ns.len() - 1] - at_ns[0]).max(1) as f64;
        let k = (at_ns.len() - 1) as f64;
        let mut pos = vec![0.0];
        for w in at_ns.windows(2) {
            pos.push(pos[pos.len() - 1] + 0.5 * (w[1] - w[0]) as f64 / total + 0.5 / k);
        }
        Axis { at_ns, pos }
    }

    /// Where `t` ns falls on 0..1.
    pub fn x(&self, t: u64) -> f64 {
        let j = match self.at_ns.partition_point(|&b| b <= t) {
            0 => return 0.0,
            j if j >= self.at_ns.len() => return 1.0,
            j => j - 1,
        };
        let (a, b) = (self.at_ns[j], self.at_ns[j + 1]);
        self.pos[j] + (self.pos[j + 1] - self.pos[j]) * (t - a) as f64 / (b - a) as f64
    }
}

/// The longest stretch between two recorded calls of a role.
#[derive(Clone, Debug, PartialEq)]
pub struct Gap {
    pub from_ns: u64,
    pub to_ns: u64,
    /// The calls at either end.
    pub before: String,
    pub after: String,
    /// The phase of the call that opens it.
    pub phase: String,
}

/// The longest stretch without a recorded call, None with fewer than two calls.
pub fn longest_gap(role: &Role) -> Option<Gap> {
    let mut calls: Vec<(u64, &str, &str)> = role
        .phases
        .iter()
        .flat_map(|ph| {
            ph.syscalls.iter().flat_map(move |(name, u)| {
                u.times_ns
                    .iter()
                    .map(move |&t| (t, name.as_str(), ph.name.as_str()))
            })
        })
        .collect();
    calls.sort_unstable();
    let w = calls.windows(2).max_by_key(|w| w[1].0 - w[0].0)?;
    Some(Gap {
        from_ns: w[0].0,
        to_ns: w[1].0,
        before: w[0].1.to_string(),
        after: w[1].1.to_string(),
        phase: w[0].2.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::timeline::tests::role;

    #[test]
    fn axis_is_monotone_and_gives_every_stretch_room() {
        let a = Axis::new(&role());
        assert_eq!(a.at_ns, [0, 9_000, 2_000_000]);
        assert_eq!((a.x(0), a.x(2_000_000)), (0.0, 1.0));
        // 9 µs of 2 ms still gets over a quarter of the width
        assert!(a.x(9_000) > 0.25 && a.x(9_000) < 0.5, "{}", a.x(9_000));
        let xs: Vec<f64> = (0..200).map(|i| a.x(i * 10_000)).collect();
        assert!(xs.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(a.x(5_000_000), 1.0);
    }

    #[test]
    fn a_span_starts_at_the_first_call_whatever_start_the_phase_recorded() {
        let mut r = role();
        r.phases[1].start_ns = 0;
        assert_eq!(span(&r.phases[1]), Some((9_000, 2_000_000)));
        assert_eq!(Axis::new(&r).at_ns, [0, 9_000, 2_000_000]);
        r.phases[1]
            .syscalls
            .values_mut()
            .for_each(|u| u.times_ns.clear());
        assert_eq!(span(&r.phases[1]), None);
    }

    #[test]
    fn the_longest_gap_names_its_calls() {
        let g = longest_gap(&role()).unwrap();
        assert_eq!((g.from_ns, g.to_ns), (9_000, 2_000_000));
        assert_eq!((g.before.as_str(), g.after.as_str()), ("brk", "brk"));
        assert_eq!(g.phase, "serving");
        assert_eq!(fmt_ns(1_991_000), "2.0 ms");
        assert_eq!(fmt_ns(57_000), "57 µs");
    }
}
