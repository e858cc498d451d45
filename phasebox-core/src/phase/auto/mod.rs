//! Automatic phases for programs without a rule set (`--phases auto`), per process and online:
//!
//! - **The steady state.** Calls are grouped into windows of `window` calls. A window that
//!   adds at most `novel_calls` syscalls to those of the windows before it continues their
//!   run; a run that lasts `stable_windows` more windows is a loop (serving, polling), however
//!   its calls interleave. It begins after the last call of its first window that the loop
//!   never makes again. Every loop of a process is its one steady state, whose syscalls grow
//!   with each: a state that recurs is one phase.
//! - **Leaving it.** A window with more new calls leaves the steady state at its first new
//!   call. An excursion that ends in a loop, or back in the steady state, within
//!   `excursion_windows` windows was part of it.
//! - **One-time phases** (before the first state and between states) are named by what their
//!   calls do (`activity.rs`): exec, loading, config, privileges, sockets, workers, and a
//!   fallback for work no tag names. A run whose calls all continue the activity it began in
//!   (the loader opening many libraries) stays that activity unless it lasts `long_windows`.
//! - **Exit.** exit_group ends the process; the calls of the shutdown before it are the exit.
//! - **Bounds.** Phases are slots, one per kind: nine at most; a role that used more than
//!   `max_phases` has its smallest one-time phases folded into their neighbours, and the
//!   profile says so. At most `max_hold` calls wait for their phase (and a process's calls
//!   after its exit_group, until it ends).
//!
//! The phase index a tracker releases is a slot: a fixed number per kind of phase, so the
//! processes of a role line up, and `arrange` names the slots and orders them by time when
//! the profile is built.
mod activity;
mod segmenter;
mod syscall_set;

pub use segmenter::Segmenter;
pub use syscall_set::SyscallSet;

use activity::Activity;

use crate::profile::{self, MAX_PATHS, MAX_TIMES};

/// Parameters (docs/phases.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AutoParams {
    /// Calls per window.
    pub window: usize,
    /// New syscalls a window may bring and still continue a run or a state.
    pub novel_calls: usize,
    /// Windows a run must last after its first to be a loop.
    pub stable_windows: usize,
    /// The longest excursion from the steady state, in windows, that still belongs to it.
    pub excursion_windows: usize,
    /// Windows after which a run is a loop even if all its calls continue a one-time
    /// activity.
    pub long_windows: usize,
    /// Fallback stretches shorter than this many calls belong to the activity before them.
    pub min_other: usize,
    /// Calls held back at most while no state is found.
    pub max_hold: usize,
    /// Phases per role.
    pub max_phases: usize,
}

impl Default for AutoParams {
    fn default() -> Self {
        AutoParams {
            window: 32,
            novel_calls: 2,
            stable_windows: 4,
            excursion_windows: 16,
            long_windows: 64,
            min_other: 4,
            max_hold: 4096,
            max_phases: 8,
        }
    }
}

/// The steady state's slot.
pub const STEADY: u16 = Activity::ALL.len() as u16;
/// The exit's slot.
pub const EXIT: u16 = STEADY + 1;

/// The slot of a one-time activity.
fn activity_slot(a: Activity) -> u16 {
    a as u16
}

/// The name of a slot (the fallback is renamed by `arrange`).
pub fn slot_name(slot: usize) -> String {
    match slot as u16 {
        0 => "exec".into(),
        1 => "loading".into(),
        2 => "config".into(),
        3 => "privileges".into(),
        4 => "sockets".into(),
        5 => "workers".into(),
        6 => INIT.into(),
        STEADY => "steady".into(),
        EXIT => "exit".into(),
        s => format!("phase-{s}"),
    }
}

/// The fallback's name before a steady state, and after it or without one.
const INIT: &str = "init";
const WORK: &str = "work";

/// A role's phases from the learner (slot, phase) as the profile shows them: the fallback
/// named, ordered by when they happened (`when`), at most `max_phases` (the smallest one-time
/// phases folded into the phase before them, or after them for the first; `notes` says so).
pub fn arrange(
    p: &AutoParams,
    role: &str,
    slotted: Vec<(usize, profile::Phase)>,
    notes: &mut Vec<String>,
) -> Vec<profile::Phase> {
    let mut phases: Vec<(u16, profile::Phase)> = slotted
        .into_iter()
        .map(|(slot, ph)| (slot as u16, ph))
        .collect();
    let steady = phases
        .iter()
        .find(|(s, _)| *s == STEADY)
        .map(|(_, ph)| when(ph));
    for (s, ph) in &mut phases {
        if *s == activity_slot(Activity::Other) && steady.is_none_or(|t| t < when(ph)) {
            ph.name = WORK.into();
        }
    }
    phases.sort_by_key(|(s, ph)| (when(ph), *s));
    let before = phases.len();
    while phases.len() > p.max_phases {
        let calls = |ph: &profile::Phase| ph.syscalls.values().map(|u| u.calls).sum::<u64>();
        let Some(i) = (0..phases.len())
            .filter(|&i| phases[i].0 != STEADY && phases[i].0 != EXIT)
            .min_by_key(|&i| (calls(&phases[i].1), std::cmp::Reverse(i)))
        else {
            break;
        };
        let (_, ph) = phases.remove(i);
        let into = if i == 0 { 0 } else { i - 1 };
        absorb(&mut phases[into].1, ph);
    }
    if phases.len() < before {
        notes.push(format!(
            "role {role}: its processes went through {before} different phases; the smallest \
             one-time phases were merged into a neighbouring phase to keep {}",
            p.max_phases
        ));
    }
    phases.into_iter().map(|(_, ph)| ph).collect()
}

/// When a phase happened, for ordering: the median of its syscalls' first calls. A phase's
/// earliest call can be far older than the phase: a call that blocked since startup (a worker
/// thread's first epoll_wait) is recorded, with its entry time, when it returns.
fn when(ph: &profile::Phase) -> u64 {
    let mut firsts: Vec<u64> = ph.syscalls.values().map(|u| u.first_seen_ns).collect();
    firsts.sort_unstable();
    firsts.get(firsts.len() / 2).copied().unwrap_or(ph.start_ns)
}

/// Adds `from`'s calls to `into`.
fn absorb(into: &mut profile::Phase, from: profile::Phase) {
    into.start_ns = into.start_ns.min(from.start_ns);
    into.end_ns = into.end_ns.max(from.end_ns);
    for (name, f) in from.filtered {
        let have = into.filtered.entry(name).or_insert(profile::Filtered {
            calls: 0,
            errno: f.errno,
        });
        have.calls += f.calls;
    }
    for (name, u) in from.syscalls {
        let Some(have) = into.syscalls.get_mut(&name) else {
            into.syscalls.insert(name, u);
            continue;
        };
        have.calls += u.calls;
        have.first_seen_ns = have.first_seen_ns.min(u.first_seen_ns);
        for p in u.paths {
            if have.paths.len() < MAX_PATHS && !have.paths.contains(&p) {
                have.paths.push(p);
            }
        }
        have.paths.sort();
        have.times_ns.extend(u.times_ns);
        have.times_ns.sort_unstable();
        while have.times_ns.len() >= 2 * MAX_TIMES {
            have.times_ns = have.times_ns.iter().step_by(2).copied().collect();
        }
    }
}

#[cfg(test)]
mod tests;
