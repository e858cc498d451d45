//! What a session does with the kernel's records: the trace file, the process tree, the
//! learner; and what it tells the kernel back (narrower marker sets, verdicts, the phase
//! board). The ring buffer is emptied first, each record only decoded (so the kernel gets its
//! space back at once); the work (/proc reads for processes found at exec, the learner, the
//! trace file) is done on the drained batch.
use std::collections::HashSet;

use phasebox_common::{FULL_MARKER_SET, SyscallRecord};
use phasebox_core::{
    event::{self, Event},
    learn::{Learner, PhaseChange},
    phase::{Detector, markers},
    process::ProcessTree,
    tracefile::TraceWriter,
};

use super::{Session, scope::Decision, scope::Finder, verdicts::Verdicts};
use crate::enforce::board::Place;
use crate::procfs;

/// What happened in a drained batch that needs the probe afterwards.
#[derive(Default)]
struct Batch {
    /// Processes whose last task exited: their user bit is cleared.
    gone: Vec<u32>,
    /// A process found at exec runs under a seccomp filter.
    filtered: bool,
    /// The container awaited was found: the kernel's prefilter changes.
    scope_changed: bool,
    /// Processes found at exec and left out (outside the scope).
    rejected: u64,
}

/// The parts of a session a record changes.
struct Sink<'a> {
    tree: &'a mut ProcessTree,
    learner: Option<&'a mut Learner>,
    trace: Option<&'a mut TraceWriter>,
    roots: &'a mut Vec<u32>,
    /// Decides on processes found at their exec.
    finder: &'a mut Finder,
    verdicts: &'a mut Verdicts,
    /// Whether a program found under a seccomp filter should attach the exit program (set
    /// up for it, and not attached yet).
    watch_filters: bool,
    bad_records: &'a mut u64,
    batch: Batch,
    /// The calls taken, by tid and entry time, while held calls wait to be taken after them.
    sent: Option<HashSet<(u32, u64)>>,
}

/// How many records are decoded before they are taken in.
const BATCH: usize = 1024;

/// Records drained from the ring buffer, decoded, with their bytes when a trace file wants
/// them as they came.
#[derive(Default)]
struct Drained {
    events: Vec<(Option<Event>, std::ops::Range<usize>)>,
    bytes: Vec<u8>,
}

impl Drained {
    /// Takes one record: decoded (None when it cannot be), and kept whole with `keep_bytes`.
    fn push(&mut self, bytes: &[u8], keep_bytes: bool) {
        let at = self.bytes.len();
        if keep_bytes {
            self.bytes.extend_from_slice(bytes);
        }
        self.events
            .push((event::decode(bytes).ok(), at..self.bytes.len()));
    }
}

impl Sink<'_> {
    fn take(&mut self, ev: Option<Event>, bytes: &[u8]) {
        let Some(ev) = ev else {
            *self.bad_records += 1;
            self.write(bytes);
            return;
        };
        match &ev {
            Event::Syscall(r) => {
                if let Some(sent) = &mut self.sent {
                    sent.insert((r.tid, r.enter_ns));
                }
            }
            Event::Exec(e) if e.new_root => self.found(e),
            // A program started under a filter (a container's init, a sandboxing launcher).
            Event::Exec(e) if self.watch_filters => {
                self.batch.filtered |= procfs::under_seccomp(e.tgid);
            }
            Event::Exit(x) if x.group_dead != 0 => self.batch.gone.push(x.header.tgid),
            _ => {}
        }
        self.tree.apply(&ev);
        self.verdicts.observe(&ev, self.tree);
        if self.tree.ignores(&ev) {
            return;
        }
        self.write(bytes);
        if let Some(l) = self.learner.as_deref_mut() {
            l.observe(&ev, self.tree);
        }
    }

    /// Writes a record to the trace file, if there is one. A failed write ends the trace,
    /// not the run: the writer keeps the error.
    fn write(&mut self, bytes: &[u8]) {
        if let Some(w) = self.trace.as_deref_mut() {
            w.record(bytes);
        }
    }

    /// A process the kernel found at its exec (`--exec-name`, `--container`): a root, seen
    /// from its start, if it is in the session's scope; else it is left out of everything.
    fn found(&mut self, e: &phasebox_core::event::Exec) {
        let ppid = procfs::stat(e.tgid).map_or(0, |s| s.ppid);
        let had_target = self.finder.target().is_some();
        let decision = self.finder.decide(e);
        self.batch.scope_changed |= !had_target && self.finder.target().is_some();
        let exe = e.filename.clone();
        self.tree
            .add(e.tgid, ppid, exe, e.comm.clone(), Some(e.ts_ns));
        match decision {
            Decision::Accept { container } => {
                self.tree.set_container(e.tgid, container);
                self.roots.push(e.tgid);
                self.verdicts.decided(e.tgid, true);
                if self.watch_filters {
                    self.batch.filtered |= procfs::under_seccomp(e.tgid);
                }
            }
            Decision::Reject => {
                self.tree.set_ignored(e.tgid);
                self.verdicts.decided(e.tgid, false);
                self.batch.rejected += 1;
            }
        }
    }
}

impl Session {
    /// Reads every record waiting in the ring buffer, then tells the kernel and the phase
    /// board what changed.
    pub(super) fn drain(&mut self) -> anyhow::Result<()> {
        self.drain_then(Vec::new())
    }

    /// The last drain of a session whose threads batch their calls: the ring buffer, then the
    /// calls the threads still held (those a thread sent as it ended meanwhile came on the
    /// ring buffer: kept once).
    pub(super) fn drain_last(&mut self) -> anyhow::Result<()> {
        self.drain()?;
        let held = self.probe.take_held_calls();
        if held.is_empty() {
            return Ok(());
        }
        self.drain_then(held)
    }

    /// `drain`, and then `held`: calls that came on the ring buffer in this drain are not
    /// taken again.
    fn drain_then(&mut self, held: Vec<SyscallRecord>) -> anyhow::Result<()> {
        let mut sink = Sink {
            tree: &mut self.tree,
            learner: self.learner.as_mut(),
            trace: self.outputs.trace.as_mut(),
            roots: &mut self.roots,
            finder: &mut self.finder,
            verdicts: &mut self.verdicts,
            watch_filters: self.probe.may_watch_filtered(),
            bad_records: &mut self.bad_records,
            batch: Batch::default(),
            sent: (!held.is_empty()).then(HashSet::new),
        };
        let keep_bytes = sink.trace.is_some();
        let mut drained = Drained::default();
        // In batches of at most BATCH records, so that a burst costs no more memory than one.
        loop {
            let took = self
                .stream
                .get_mut()
                .drain(BATCH, |bytes| drained.push(bytes, keep_bytes));
            self.events += took.records as u64;
            for (ev, at) in drained.events.drain(..) {
                sink.take(ev, &drained.bytes[at]);
            }
            drained.bytes.clear();
            if took.entries < BATCH {
                break;
            }
        }
        for call in held {
            if sink
                .sent
                .as_ref()
                .is_some_and(|s| s.contains(&(call.tid, call.enter_ns)))
            {
                continue;
            }
            self.events += 1;
            sink.take(Some(Event::Syscall(call)), event::as_bytes(&call));
        }
        let batch = sink.batch;
        self.rejected += batch.rejected;
        for (tgid, instance, accept) in self.verdicts.take_due() {
            self.probe.set_verdict(tgid, instance, accept);
        }
        if batch.scope_changed {
            self.found_container();
        }
        if batch.filtered {
            self.watch_filtered();
        }
        // Phase changes first, exits after: a process that exited in this batch gets no
        // marker-set request (the kernel has dropped its entries already), and whatever the
        // agent asked for it goes with its bit.
        // Once per batch, not per record: the kernel learns of phase changes a batch later.
        let changes = match self.learner.as_mut() {
            Some(l) => l.take_phase_changes(),
            None => Vec::new(),
        };
        for ch in changes {
            self.phase_changed(&ch)?;
        }
        for tgid in batch.gone {
            self.probe.untrack(tgid);
            if let Some(b) = &self.board {
                b.remove(tgid);
            }
        }
        Ok(())
    }

    /// A process reached another phase: only the markers of its later phases still matter
    /// (a process in its last phase opens no segment any more), and the board shows it.
    fn phase_changed(&mut self, ch: &PhaseChange) -> anyhow::Result<()> {
        if let Some(b) = &self.board {
            let place = Place {
                role: ch.role.clone(),
                phase: ch.phase_name.clone(),
                serving: ch.serving,
            };
            b.set(ch.tgid, place);
        }
        let (Some(Detector::Rules(rules)), Some(phase)) =
            (self.learner.as_ref().map(Learner::detector), ch.phase)
        else {
            return Ok(());
        };
        if self.tree.has_exited(ch.tgid, ch.instance) {
            return Ok(());
        }
        let later = markers::after(rules, &ch.role, phase);
        let (set, new) = self.marker_sets.intern(later.clone());
        if set == FULL_MARKER_SET {
            return Ok(());
        }
        if new {
            self.probe.set_markers(set, &later)?;
        }
        self.probe
            .request_markers(ch.tgid, ch.instance, set, ch.execs)?;
        Ok(())
    }

    /// The container awaited runs: the kernel's prefilter follows it, and the run names it.
    fn found_container(&mut self) {
        if let Some(t) = self.finder.target() {
            log::info!(
                "container {} found (pid {})",
                t.name.as_deref().unwrap_or(&t.id),
                t.init_pid
            );
            self.run.container = Some(super::container_ref(t));
        }
        let scope = self.finder.scope();
        if let Err(e) = self.probe.set_scope(scope) {
            log::error!("{e}");
        }
    }

    /// A traced process runs under a seccomp filter: the calls it denies are noticed from now
    /// on (when the session was set up for it), or the profile says they were not.
    pub(super) fn watch_filtered(&mut self) {
        match self.probe.watch_filtered() {
            Ok(true) => log::debug!(
                "a traced process runs under a seccomp filter: the calls it denies are noticed from now on"
            ),
            Ok(false) => {}
            Err(e) => log::error!("{e}"),
        }
    }

    /// Writes marker set 0, every marker of the rule set: what a process starts with.
    pub(super) fn write_full_marker_set(&mut self) -> anyhow::Result<()> {
        if let Some(Detector::Rules(rules)) = self.learner.as_ref().map(Learner::detector) {
            let full = markers::full(rules);
            self.probe.set_markers(FULL_MARKER_SET, &full)?;
        }
        Ok(())
    }
}
