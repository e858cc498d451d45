//! The online segmenter of one process (the algorithm is described in `auto/mod.rs` and
//! docs/phases.md). It holds calls back while their phase is undecided and releases them in
//! order with their phase slot.
use std::collections::{HashSet, VecDeque};

use super::activity::{Activity, Tag, table};
use super::syscall_set::SyscallSet;
use super::{AutoParams, EXIT, STEADY, activity_slot};

/// A call waiting for its phase.
#[derive(Debug)]
struct Held<T> {
    nr: u32,
    tag: Option<Tag>,
    slot: u16,
    item: T,
}

/// The window being filled: how many calls, which syscalls and activity tags, where it
/// starts.
#[derive(Debug, Default)]
struct Window {
    calls: usize,
    set: SyscallSet,
    tags: u8,
    start: u64,
}

/// Consecutive windows that add (almost) no syscall to what they already hold: a loop.
#[derive(Debug)]
struct Run {
    /// The first call of its first window.
    start: u64,
    /// The syscalls of its first window (which may hold the change into the loop).
    first: SyscallSet,
    /// The syscalls of its later windows: the loop's own calls.
    core: SyscallSet,
    /// The loop's transitions: each call of its later windows with the call before it.
    steps: HashSet<u32>,
    windows: usize,
    /// The activities tagged in it, and the one tagged last before it (bit per activity).
    tags: u8,
    /// Calls of its later windows, and how many of them continue none of those activities.
    calls: usize,
    outside: usize,
}

/// Where the steady state was left: its first call after it, and the windows since.
#[derive(Debug, Clone, Copy)]
struct Left {
    from: u64,
    windows: usize,
}

/// Where a process is with respect to its steady state.
#[derive(Debug)]
enum State {
    /// No steady state found yet; the run of windows so far, once a window closed.
    Searching { run: Option<Run> },
    /// In the steady state, whose syscalls are `vocab`.
    Steady { vocab: SyscallSet },
    /// Out of the steady state `vocab`: the run of windows since, and where the state was
    /// left while that is recent enough for a return to make the excursion part of it.
    Away {
        vocab: SyscallSet,
        run: Run,
        left: Option<Left>,
    },
}

impl Default for State {
    fn default() -> Self {
        State::Searching { run: None }
    }
}

/// The steady state found before, for a process out of it: its syscalls and where it was left.
#[derive(Debug, Clone, Copy)]
struct Found {
    vocab: SyscallSet,
    left: Option<Left>,
}

/// One process's segmentation: calls go in one at a time and come out in the same order with
/// their phase slot, after at most `AutoParams::max_hold` calls.
#[derive(Debug)]
pub struct Segmenter<T> {
    p: AutoParams,
    /// The process was running before tracing began: what comes before its first state is
    /// part of it.
    attached: bool,
    held: VecDeque<Held<T>>,
    /// The index (in the process's calls) of `held[0]`.
    base: u64,
    win: Window,
    state: State,
    /// The one-time activity being labelled (out of the steady state).
    activity: Activity,
    /// Where the current fallback stretch began, and the activity before it.
    other_from: Option<(u64, Activity)>,
    last_tag: Option<Activity>,
    /// Where exit_group was called: everything after it waits for the end.
    exit_at: Option<u64>,
}

impl<T> Segmenter<T> {
    pub fn new(p: AutoParams, attached: bool) -> Self {
        Segmenter {
            p,
            attached,
            held: VecDeque::new(),
            base: 0,
            win: Window::default(),
            state: State::default(),
            activity: Activity::Other,
            other_from: None,
            last_tag: None,
            exit_at: None,
        }
    }

    /// Whether the process has reached its steady state.
    pub fn steady(&self) -> bool {
        !matches!(self.state, State::Searching { .. })
    }

    /// Adds a call; returns the calls whose phase is now decided.
    pub fn push(&mut self, nr: u32, path: Option<&str>, item: T) -> Vec<(usize, T)> {
        let tag = table().tag(nr, path);
        let at = self.end();
        let slot = if matches!(self.state, State::Steady { .. }) {
            STEADY
        } else {
            self.label(at, nr, tag)
        };
        self.held.push_back(Held {
            nr,
            tag,
            slot,
            item,
        });
        if tag == Some(Tag::Exit) {
            self.exit_at.get_or_insert(at);
        }
        if self.exit_at.is_some() {
            return Vec::new(); // the process is ending: `flush` gives the end its phase
        }
        if self.win.calls == 0 {
            self.win.start = at;
        }
        self.win.calls += 1;
        self.win.set.insert(nr);
        if let Some(Tag::Starts(a)) = tag {
            self.win.tags |= 1 << a as u8;
        }
        if self.win.calls < self.p.window {
            return Vec::new();
        }
        self.close_window()
    }

    /// Releases every call still held (the process ended or executed another program).
    pub fn flush(&mut self) -> Vec<(usize, T)> {
        let end = self.end();
        if end == self.base {
            return Vec::new();
        }
        // Ending shortly after leaving the steady state: the excursion was part of it.
        if let State::Away { left, .. } = &mut self.state
            && let Some(left) = left.take()
            && left.windows < self.p.excursion_windows
        {
            self.other_from = None;
            self.relabel(left.from, end, STEADY);
        }
        if let Some(x) = self.exit_at {
            let from = self.exit_start(x).max(self.base);
            self.end_other(from);
            self.relabel(from, end, EXIT);
        } else {
            self.end_other(end);
        }
        self.win = Window::default();
        self.release(end)
    }

    fn end(&self) -> u64 {
        self.base + self.held.len() as u64
    }

    fn at(&self, abs: u64) -> &Held<T> {
        &self.held[(abs - self.base) as usize]
    }

    fn relabel(&mut self, from: u64, to: u64, slot: u16) {
        let from = from.max(self.base);
        for abs in from..to {
            let i = (abs - self.base) as usize;
            self.held[i].slot = slot;
        }
    }

    /// The calls of [from, to) whose syscall is not in `known`: how many, and the first.
    fn novel(&self, from: u64, to: u64, known: &SyscallSet) -> (usize, Option<u64>) {
        let mut count = 0;
        let mut first = None;
        for abs in from.max(self.base)..to {
            if !known.contains(self.at(abs).nr) {
                count += 1;
                first.get_or_insert(abs);
            }
        }
        (count, first)
    }

    /// The one-time activity of call `at` (between states): a tag starts its activity; an
    /// untagged call continues the current one if it fits it, else starts the fallback.
    fn label(&mut self, at: u64, nr: u32, tag: Option<Tag>) -> u16 {
        let t = table();
        match tag {
            Some(Tag::Starts(a)) => {
                self.end_other(at);
                if a == Activity::Sockets
                    && self.activity != Activity::Sockets
                    && let Some(from) = self.recent_socket(at)
                {
                    self.relabel(from, at, activity_slot(a));
                }
                self.activity = a;
                self.last_tag = Some(a);
            }
            Some(Tag::Exit) => {}
            None if t.continues(self.activity, nr) => {}
            None => {
                self.other_from = Some((at, self.activity));
                self.activity = Activity::Other;
            }
        }
        activity_slot(self.activity)
    }

    /// Ends the fallback stretch at `at`: one shorter than `min_other` calls belongs to the
    /// activity before it.
    fn end_other(&mut self, at: u64) {
        if let Some((from, before)) = self.other_from.take()
            && at.saturating_sub(from) < self.p.min_other as u64
        {
            self.relabel(from, at, activity_slot(before));
        }
    }

    /// The socket() a few calls before `at` with no tag between (the socket a bind sets up).
    fn recent_socket(&self, at: u64) -> Option<u64> {
        const LOOKBACK: u64 = 8;
        let t = table();
        let lo = at.saturating_sub(LOOKBACK).max(self.base);
        (lo..at)
            .rev()
            .take_while(|&a| self.at(a).tag.is_none())
            .find(|&a| t.is_socket(self.at(a).nr))
    }

    /// A window is full: the state decides what it means, and what it becomes.
    fn close_window(&mut self) -> Vec<(usize, T)> {
        let w = std::mem::take(&mut self.win);
        let (state, released) = match std::mem::take(&mut self.state) {
            State::Steady { vocab } => self.steady_window(&w, vocab),
            State::Searching { run } => self.out_window(&w, run, None),
            State::Away { vocab, run, left } => match left {
                Some(l) if self.novel(w.start, self.end(), &vocab).0 <= self.p.novel_calls => {
                    self.resume(vocab, l, w.start)
                }
                _ => {
                    // One more window away from the steady state.
                    let left = left.map(|l| Left {
                        windows: l.windows + 1,
                        ..l
                    });
                    self.out_window(&w, Some(run), Some(Found { vocab, left }))
                }
            },
        };
        self.state = state;
        released
    }

    /// A window in the steady state `vocab`: it stays there unless the window brings more new
    /// calls than a state may, and then leaves it at the first of them.
    fn steady_window(&mut self, w: &Window, mut vocab: SyscallSet) -> (State, Vec<(usize, T)>) {
        let end = self.end();
        let (count, first) = self.novel(w.start, end, &vocab);
        let Some(from) = first.filter(|_| count > self.p.novel_calls) else {
            vocab.union_with(&w.set);
            return (State::Steady { vocab }, self.release(end));
        };
        self.activity = Activity::Other;
        self.other_from = None;
        self.last_tag = None;
        for abs in from..end {
            let (nr, tag) = (self.at(abs).nr, self.at(abs).tag);
            let slot = self.label(abs, nr, tag);
            self.held[(abs - self.base) as usize].slot = slot;
        }
        let away = State::Away {
            vocab,
            run: self.new_run(w),
            left: Some(Left { from, windows: 0 }),
        };
        (away, self.release(from))
    }

    /// A window out of the steady state (`found` when there was one): it continues the run of
    /// windows before it or starts a new one; a run that is a loop is the steady state (again).
    fn out_window(
        &mut self,
        w: &Window,
        run: Option<Run>,
        found: Option<Found>,
    ) -> (State, Vec<(usize, T)>) {
        let end = self.end();
        let run = match run {
            Some(r) if self.continues(&r, w, end) => self.extend_run(r, w, end),
            _ => self.new_run(w),
        };
        if self.is_loop(&run) {
            return self.enter_steady(run, found);
        }
        let mut state = match found {
            None => State::Searching { run: Some(run) },
            Some(Found { vocab, left }) => State::Away { vocab, run, left },
        };
        if self.held.len() <= self.p.max_hold {
            return (state, Vec::new());
        }
        // Nothing recurs for long: release the oldest calls as they are labelled.
        let upto = end - (self.p.max_hold / 2) as u64;
        if let State::Away { left, .. } = &mut state
            && left.is_some_and(|l| l.from < upto)
        {
            *left = None; // too long ago to be part of the steady state
        }
        (state, self.release(upto))
    }

    /// Whether the window from `w.start` to `end` adds at most `novel_calls` syscalls to `r`.
    fn continues(&self, r: &Run, w: &Window, end: u64) -> bool {
        let mut known = r.first;
        known.union_with(&r.core);
        self.novel(w.start, end, &known).0 <= self.p.novel_calls
    }

    /// `r` with the window `w` (ending at `end`) added.
    fn extend_run(&self, mut r: Run, w: &Window, end: u64) -> Run {
        let tags = r.tags | w.tags;
        let activities = table().continues_any(tags);
        r.outside += self.novel(w.start, end, &activities).0;
        r.steps
            .extend((w.start.max(self.base + 1)..end).map(|abs| self.step(abs)));
        r.core.union_with(&w.set);
        r.windows += 1;
        r.tags = tags;
        r.calls += w.calls;
        r
    }

    fn new_run(&self, w: &Window) -> Run {
        Run {
            start: w.start,
            first: w.set,
            core: SyscallSet::default(),
            steps: HashSet::new(),
            windows: 1,
            tags: w.tags | self.last_tag.map_or(0, |a| 1 << a as u8),
            calls: 0,
            outside: 0,
        }
    }

    /// A run is a loop once it lasted `stable_windows` windows after its first, unless nearly
    /// all its calls (all but a tenth) continue the one-time activities it began in or tags (a
    /// loader opening a hundred libraries, an interpreter importing modules, a pool of threads
    /// starting) and it is not yet long.
    fn is_loop(&self, r: &Run) -> bool {
        if r.windows <= self.p.stable_windows {
            return false;
        }
        let one_time = r.tags != 0 && r.outside * 10 <= r.calls;
        !one_time || r.windows > self.p.long_windows
    }

    /// Call `abs` with the call before it, as one number.
    fn step(&self, abs: u64) -> u32 {
        let (a, b) = (self.at(abs - 1).nr, self.at(abs).nr);
        (a.min(0xffff) << 16) | b.min(0xffff)
    }

    /// Whether call `abs` steps into or out of the loop as the loop does (`steps`).
    fn in_loop(&self, abs: u64, steps: &HashSet<u32>) -> bool {
        steps.contains(&self.step(abs))
            || (abs + 1 < self.end() && steps.contains(&self.step(abs + 1)))
    }

    /// The run is the steady state (again). It starts where the loop's transitions start: at
    /// the point of its first window that leaves the fewest calls on the wrong side (calls
    /// before it that step as the loop does, calls after it that do not); or, if that is the
    /// window's start, earlier, over untagged calls that step as the loop does. Back from a
    /// short excursion, the excursion is steady too.
    fn enter_steady(&mut self, r: Run, found: Option<Found>) -> (State, Vec<(usize, T)>) {
        let end = self.end();
        let first_end = (r.start + self.p.window as u64).min(end);
        let start = r.start.max(self.base + 1);
        let inside: Vec<bool> = (start..first_end)
            .map(|abs| self.in_loop(abs, &r.steps))
            .collect();
        let (mut before, mut after) = (0, inside.iter().filter(|x| !**x).count());
        let mut best = (after, 0);
        for (i, inside) in inside.iter().enumerate() {
            if *inside {
                before += 1;
            } else {
                after -= 1;
            }
            if before + after < best.0 {
                best = (before + after, i + 1);
            }
        }
        let mut b = start + best.1 as u64;
        if b == start {
            let lo = start
                .saturating_sub(self.p.window as u64)
                .max(self.base + 1);
            while b > lo && self.at(b - 1).tag.is_none() && self.in_loop(b - 1, &r.steps) {
                b -= 1;
            }
        }
        if let Some(left) = found.and_then(|f| f.left)
            && left.windows < self.p.excursion_windows
        {
            b = left.from.max(self.base);
        }
        if self.attached && found.is_none() {
            b = self.base;
        }
        let mut vocab = found.map_or_else(SyscallSet::default, |f| f.vocab);
        vocab.union_with(&r.core);
        for abs in b..first_end {
            vocab.insert(self.at(abs).nr);
        }
        self.end_other(b);
        self.relabel(b, end, STEADY);
        (State::Steady { vocab }, self.release(end))
    }

    /// Back in the steady state with the window starting at `start`: an excursion shorter than
    /// `excursion_windows` was part of it; after a longer one, the steady state starts again
    /// after the excursion's last call it never makes.
    fn resume(
        &mut self,
        mut vocab: SyscallSet,
        left: Left,
        start: u64,
    ) -> (State, Vec<(usize, T)>) {
        let end = self.end();
        let from = if left.windows < self.p.excursion_windows {
            let from = left.from.max(self.base);
            for abs in from..end {
                vocab.insert(self.at(abs).nr);
            }
            from
        } else {
            self.loop_start(start, &vocab)
        };
        self.end_other(from);
        self.relabel(from, end, STEADY);
        (State::Steady { vocab }, self.release(end))
    }

    /// Where a loop whose calls are `vocab` starts, given that it holds the call at `at`:
    /// earlier over untagged calls it makes, at most a window back.
    fn loop_start(&self, at: u64, vocab: &SyscallSet) -> u64 {
        let lo = at.saturating_sub(self.p.window as u64).max(self.base);
        let mut b = at.max(self.base);
        while b > lo && {
            let h = self.at(b - 1);
            h.tag.is_none() && vocab.contains(h.nr)
        } {
            b -= 1;
        }
        b
    }

    /// Where the exit phase begins, exit_group being call `x`: at the shutdown (reaping
    /// children, removing or syncing files) in the window before it, or else at the cleanup
    /// calls just before it.
    fn exit_start(&self, x: u64) -> u64 {
        let t = table();
        let lo = x.saturating_sub(self.p.window as u64).max(self.base);
        let mut from = x;
        while from > lo && t.cleanup(self.at(from - 1).nr) {
            from -= 1;
        }
        (lo..x)
            .find(|&a| t.shutdown(self.at(a).nr))
            .map_or(from, |a| a.min(from))
    }

    /// Releases the calls before `upto`, each with its slot.
    fn release(&mut self, upto: u64) -> Vec<(usize, T)> {
        let n = (upto.saturating_sub(self.base) as usize).min(self.held.len());
        self.base += n as u64;
        self.held
            .drain(..n)
            .map(|h| (h.slot as usize, h.item))
            .collect()
    }
}
