//! What a session does with the kernel's records: the trace file, the process tree, the
//! learner; and what it tells the kernel back (narrower marker sets, the phase board).
use phasebox_common::FULL_MARKER_SET;
use phasebox_core::{
    event::{self, Event},
    learn::{Learner, PhaseChange},
    phase::{Detector, markers},
    process::ProcessTree,
    tracefile::TraceWriter,
};

use super::{Place, Session};
use crate::procfs;

/// What happened in a drained batch that needs the probe afterwards.
#[derive(Default)]
struct Batch {
    /// Processes whose last task exited: their user bit is cleared.
    gone: Vec<u32>,
}

/// The parts of a session a record changes.
struct Sink<'a> {
    tree: &'a mut ProcessTree,
    learner: Option<&'a mut Learner>,
    trace: Option<&'a mut TraceWriter>,
    roots: &'a mut Vec<u32>,
    /// The `--container` traced: a process found at its exec runs there (it may be gone
    /// before /proc can be asked).
    container: Option<&'a str>,
    bad_records: &'a mut u64,
    batch: Batch,
}

impl Sink<'_> {
    fn take(&mut self, bytes: &[u8]) {
        if let Some(w) = self.trace.as_deref_mut() {
            // A failed write ends the trace, not the run: the writer keeps the error.
            w.record(bytes);
        }
        let ev = match event::decode(bytes) {
            Ok(ev) => ev,
            Err(_) => {
                *self.bad_records += 1;
                return;
            }
        };
        match &ev {
            Event::Exec(e) if e.new_root => {
                // Found at its exec (`--exec-name`, or in `--container`): a root, seen from its
                // start.
                let ppid = procfs::stat(e.tgid).map_or(0, |s| s.ppid);
                self.tree.add(
                    e.tgid,
                    ppid,
                    e.filename.clone(),
                    e.comm.clone(),
                    Some(e.ts_ns),
                );
                let container = match self.container {
                    Some(id) => Some(id.to_string()),
                    None => procfs::container(e.tgid).map(|c| c.id),
                };
                self.tree.set_container(e.tgid, container);
                self.roots.push(e.tgid);
            }
            Event::Exit(x) if x.group_dead != 0 => self.batch.gone.push(x.header.tgid),
            _ => {}
        }
        self.tree.apply(&ev);
        if let Some(l) = self.learner.as_deref_mut() {
            l.observe(&ev, self.tree);
        }
    }
}

impl Session {
    /// Reads every record waiting in the ring buffer, then tells the kernel and the phase
    /// board what changed.
    pub(super) fn drain(&mut self) -> anyhow::Result<()> {
        let mut sink = Sink {
            tree: &mut self.tree,
            learner: self.learner.as_mut(),
            trace: self.outputs.trace.as_mut(),
            roots: &mut self.roots,
            container: self.container.as_ref().map(|c| c.id.as_str()),
            bad_records: &mut self.bad_records,
            batch: Batch::default(),
        };
        self.events += self.stream.get_mut().drain(|bytes| sink.take(bytes));
        for tgid in sink.batch.gone {
            self.probe.untrack(tgid);
            if let Some(b) = &self.board {
                b.remove(tgid);
            }
        }
        // Once per batch, not per record: the kernel learns of phase changes a batch later.
        let changes = match self.learner.as_mut() {
            Some(l) => l.take_phase_changes(),
            None => return Ok(()),
        };
        for ch in changes {
            self.phase_changed(&ch)?;
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

    /// Writes marker set 0, every marker of the rule set: what a process starts with.
    pub(super) fn write_full_marker_set(&mut self) -> anyhow::Result<()> {
        if let Some(Detector::Rules(rules)) = self.learner.as_ref().map(Learner::detector) {
            let full = markers::full(rules);
            self.probe.set_markers(FULL_MARKER_SET, &full)?;
        }
        Ok(())
    }
}
