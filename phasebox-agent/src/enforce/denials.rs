//! The calls a seccomp filter denied, placed in the role and phase their process was in, and
//! said one line per call.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use phasebox_core::{call_args, sysnames};

use super::{
    board::{PhaseBoard, Place},
    notify::Denial,
};
use crate::procfs;

/// A denied call, where it happened.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Denied {
    pub role: String,
    pub phase: String,
    pub syscall: String,
    /// The call with its recorded arguments (`openat(O_WRONLY|O_CREAT)`), or its name.
    pub call: String,
    pub pid: u32,
    /// Killed instead of failed: an errno answer to the call is misread.
    pub killed: bool,
}

/// How long a denial waits for the trace to place its process, and how often it looks.
const PLACE_DEADLINE: Duration = Duration::from_millis(500);
const PLACE_POLL: Duration = Duration::from_millis(2);
/// Looks in a row that must see the same place before it counts as current.
const PLACE_SETTLED: u32 = 3;

/// The role and phase of `tgid` once the trace has caught up with its calls. The kernel
/// asks about a denied call at once, while the calls before it (a new process's first, a
/// marker that starts its phase) may still wait in the ring buffer: the board is read until
/// it shows the process and stops changing, within a deadline.
fn settled_place(board: &PhaseBoard, tgid: u32) -> Option<Place> {
    let deadline = Instant::now() + PLACE_DEADLINE;
    let (mut last, mut same) = (None, 0);
    while Instant::now() < deadline {
        let now = board.get(tgid);
        if now.is_some() && now == last {
            same += 1;
            if same >= PLACE_SETTLED {
                break;
            }
        } else {
            same = 0;
        }
        last = now;
        std::thread::sleep(PLACE_POLL);
    }
    last
}

impl Denied {
    /// Call `nr` of thread `pid` with arguments `args`, placed in its process's role and phase
    /// as the trace has them.
    pub fn at(board: &PhaseBoard, pid: u32, nr: u32, args: &[u64]) -> Denied {
        let tgid = procfs::tgid(pid).unwrap_or(pid);
        let place = settled_place(board, tgid);
        let unknown = || "? (not traced yet)".to_string();
        Denied {
            role: place.as_ref().map_or_else(unknown, |p| p.role.clone()),
            phase: place.map_or_else(unknown, |p| p.phase),
            syscall: sysnames::name(nr).into_owned(),
            call: call_args::describe_raw(&sysnames::name(nr), args),
            pid: tgid,
            killed: false,
        }
    }
}

/// One line per denied call: `denied: NAME×N in role R, phase P (pid N)`.
pub fn lines(denied: &[Denied]) -> Vec<String> {
    let mut groups: BTreeMap<&Denied, usize> = BTreeMap::new();
    for d in denied {
        *groups.entry(d).or_default() += 1;
    }
    groups
        .into_iter()
        .map(|(d, n)| {
            let killed = if d.killed {
                ", killed: an errno answer to it is misread"
            } else {
                ""
            };
            format!(
                "denied: {}×{n} in role {}, phase {} (pid {}){killed}",
                d.call, d.role, d.phase, d.pid
            )
        })
        .collect()
}

/// The denials by name, `name×count`, most frequent first.
pub fn by_name(denials: &[Denial]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for d in denials {
        *counts.entry(d.call.as_str()).or_default() += 1;
    }
    let mut v: Vec<(&str, usize)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let all: Vec<String> = v.iter().map(|(n, c)| format!("{n}×{c}")).collect();
    all.join(" ")
}

/// What phase-aware enforcement denied, in one line.
pub fn phase_aware_line(denials: &[Denial]) -> String {
    let Some(first) = denials.first() else {
        return "phase-aware seccomp denied no call".into();
    };
    format!(
        "phase-aware seccomp denied {} calls made after serving began: {} (first: {} by pid {})",
        denials.len(),
        by_name(denials),
        first.call,
        first.pid
    )
}
