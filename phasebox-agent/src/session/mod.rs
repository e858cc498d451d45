//! A tracing session: the one API under `run`, `record`, `agent`, `validate` and the
//! scenarios. It owns the probe (the kernel programs), the outputs and the run's identity; it
//! drains the kernel's records into the process tree and the learner, harvests the exact
//! counters, tells the kernel which markers still matter, and writes what it learned.
//!
//! ```text
//! let mut s = Session::builder(Mode::Record).outputs(paths).phases(det).start()?;
//! s.attach(&[pid])?;
//! let why = s.run(interrupted(), true).await?;
//! s.finish()?;
//! ```
mod agent;
mod launched;
mod outputs;
mod records;
mod run_loop;
mod scope;
mod signals;
mod targets;
mod verdicts;

use std::time::{Duration, Instant};

use phasebox_common::COMM_LEN;
use phasebox_core::trace_filter::TraceFilter;
use phasebox_core::{
    harvest::{Attributed, Harvester},
    learn::{Counting, Learner, RunInfo},
    phase::{Detector, markers::MarkerSets},
    process::ProcessTree,
    profile::{ContainerRef, Profile},
    summary::{Losses, Summary},
    sysnames,
    tracefile::{FORMAT_VERSION, TraceFooter, TraceHeader},
};
use tokio::io::{Interest, unix::AsyncFd};

use crate::containers::{ContainerTarget, Found};
use crate::enforce::board::PhaseBoard;
use crate::probe::{EventStream, Probe, ProbeOptions};
pub use agent::{Agent, AgentSettings};
pub use launched::Launched;
use outputs::Outputs;
pub use outputs::{EXIT_OUTPUT_LOST, OutputPaths, OutputsLost};
pub use run_loop::{Stop, interrupted};
use scope::{Finder, Watch};
pub use signals::{Caught, Signals};
pub use targets::check_target;
use verdicts::Verdicts;

/// What kind of session this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A command phasebox launches, seen from its execve.
    Run,
    /// Processes phasebox attaches to.
    Record,
    /// The long-running agent (attached, or finding programs by name at their exec).
    Agent,
    /// A command run under a profile to see what it denies.
    Validate,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Run => "run",
            Mode::Record => "record",
            Mode::Agent => "agent",
            Mode::Validate => "validate",
        }
    }
}

/// How to build a session.
#[derive(Clone, Debug)]
pub struct SessionBuilder {
    mode: Mode,
    probe: ProbeOptions,
    outputs: OutputPaths,
    phases: Option<Detector>,
    exec_name: Option<String>,
    command: Vec<String>,
    board: Option<PhaseBoard>,
    container: Option<Found>,
    keep_exited: bool,
}

impl SessionBuilder {
    /// Trace this container: its processes now ([`Session::attach_container`]) and every
    /// program executed in it later (`docker exec`); one that does not run yet is waited
    /// for, and traced from its first process.
    pub fn container(mut self, found: Found) -> Self {
        self.container = Some(found);
        self
    }

    /// Notice calls a seccomp filter in force denies (they never reach the enter
    /// tracepoint). On when a traced process runs under a filter it is set up for: the
    /// processes of a container, those found by name, and attached ones under a filter.
    pub fn filtered(mut self, on: bool) -> Self {
        self.probe.filtered = on;
        self
    }

    /// Keep every exited process in the tree (the summary lists them). A long-running agent
    /// forgets them once their counts are read for the last time.
    pub fn keep_exited(mut self, keep: bool) -> Self {
        self.keep_exited = keep;
        self
    }

    /// The ring buffer's size (a power of two).
    pub fn ring_bytes(mut self, bytes: u32) -> Self {
        self.probe.ring_bytes = bytes;
        self
    }

    /// Every call as a record (the timeline), not only first uses per segment.
    pub fn stream(mut self, on: bool) -> Self {
        self.probe.stream = on;
        self
    }

    /// In stream mode, each call at its entry: no return values, durations or failures, and
    /// no exit program (every other process pays the entry filter only).
    pub fn entry_only(mut self, on: bool) -> Self {
        self.probe.entry_only = on;
        self
    }

    /// Pending calls of tids from `max` on in the kernel's hash map instead of its array (to
    /// test that path; by default every tid below pid_max uses the array).
    pub fn pending_by_tid_max(mut self, max: Option<u32>) -> Self {
        self.probe.pending_by_tid_max = max;
        self
    }

    /// Record the "kind" arguments of the calls `call_args` lists (on by default).
    pub fn args(mut self, on: bool) -> Self {
        self.probe.args = on;
        self
    }

    /// Count failed calls (the exit program; stream mode always does).
    pub fn errors(mut self, on: bool) -> Self {
        self.probe.errors = on;
        self
    }

    /// Have the kernel kill processes that call outside their allowed set.
    pub fn kill(mut self, on: bool) -> Self {
        self.probe.kill = on;
        self
    }

    pub fn outputs(mut self, paths: OutputPaths) -> Self {
        self.outputs = paths;
        self
    }

    /// Learn roles and phases with `det` (a profile output needs it).
    pub fn phases(mut self, det: Detector) -> Self {
        self.phases = Some(det);
        self
    }

    /// Track programs with this name from their execve on.
    pub fn exec_name(mut self, name: Option<String>) -> Self {
        self.exec_name = name;
        self
    }

    /// The command line, for the run's name.
    pub fn command(mut self, argv: Vec<String>) -> Self {
        self.command = argv;
        self
    }

    /// Publish each process's role and phase here as they are learned.
    pub fn board(mut self, board: PhaseBoard) -> Self {
        self.board = Some(board);
        self
    }

    /// Checks the outputs, loads the probe and opens the outputs.
    pub fn start(mut self) -> anyhow::Result<Session> {
        let exec_comm = exec_comm(self.exec_name.as_deref())?;
        self.probe.exec_comm = exec_comm;
        let learn = self.phases.is_some();
        // Markers look at paths; profiles and trace files keep them.
        self.probe.paths = learn || self.outputs.trace.is_some();
        let header = self.header();
        let outputs = Outputs::open(&self.outputs, &header)?;
        self.probe.shown = self.outputs.shown.as_ref().map(TraceFilter::bits);
        // A session read at its end lets threads send their calls a few at a time; one that
        // shows phases live (the agent, phase-aware enforcement) gets each call at once.
        self.probe.batch = self.mode != Mode::Agent && self.board.is_none();
        let (probe, stream) = Probe::load(self.probe)?;
        // SAFETY: the stream owns its fd, which stays open until the AsyncFd is dropped.
        let stream = unsafe { AsyncFd::register_with_interest(stream, Interest::READABLE) }
            .map_err(|e| anyhow::anyhow!("cannot watch the ring buffer: {e}"))?;
        // Live, counts come from the kernel's exact counters (automatic segmentation, which
        // has no kernel segments, counts records whatever is asked).
        let finder = self.finder();
        let run = self.run_info(&header, &finder);
        let learner = self
            .phases
            .map(|det| Learner::new(det, Counting::Kernel, &[], &[]));
        let mut session = Session {
            mode: self.mode,
            probe,
            stream,
            tree: ProcessTree::new(),
            learner,
            outputs,
            board: self.board,
            run,
            finder,
            verdicts: Verdicts::default(),
            keep_exited: self.keep_exited,
            rejected: 0,
            harvester: Harvester::default(),
            marker_sets: MarkerSets::default(),
            roots: Vec::new(),
            attached: Vec::new(),
            events: 0,
            bad_records: 0,
            attributed: None,
            last_harvest: Instant::now(),
            last_sweep: Instant::now(),
        };
        session.write_full_marker_set()?;
        let scope = session.finder.scope();
        session.probe.set_scope(scope)?;
        Ok(session)
    }

    /// What finds programs at their exec: the container, or the program's name.
    fn finder(&mut self) -> Finder {
        match (self.container.take(), &self.exec_name) {
            (Some(Found::Running(t)), _) => Finder::Container(Watch::running(t)),
            (Some(Found::Waiting(w)), _) => Finder::Container(Watch::waiting(w)),
            (None, Some(name)) => Finder::Name(exec_base(name).to_string()),
            (None, None) => Finder::Nothing,
        }
    }

    /// Where the run's profile comes from: its name, whether its programs are seen from
    /// their execve (launched, or found by name), its container.
    fn run_info(&self, header: &TraceHeader, finder: &Finder) -> RunInfo {
        let mut run = RunInfo {
            name: self.command.join(" "),
            launched: self.mode == Mode::Run || self.mode == Mode::Validate,
            started_unix_ms: header.started_unix_ms,
            kernel_release: header.kernel_release.clone(),
            dropped: 0,
            container: finder.target().map(container_ref),
        };
        if let Some(name) = &self.exec_name {
            run.name = format!("{} --exec-name {name}", self.mode.name());
            run.launched = true;
        }
        run
    }

    fn header(&self) -> TraceHeader {
        TraceHeader {
            format_version: FORMAT_VERSION,
            wire_version: phasebox_common::WIRE_VERSION,
            phasebox_version: env!("CARGO_PKG_VERSION").to_string(),
            arch: sysnames::ARCH.to_string(),
            kernel_release: crate::procfs::kernel_release(),
            mode: self.mode.name().to_string(),
            command: self.command.clone(),
            target_pid: None,
            started_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            started_monotonic_ns: monotonic_ns(),
            shown: self.outputs.shown.as_ref().map(|f| f.spec().to_string()),
        }
    }
}

/// The file name of `--exec-name NAME` (a path is allowed: its last component).
fn exec_base(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// A container as a profile names it.
fn container_ref(c: &ContainerTarget) -> ContainerRef {
    ContainerRef {
        id: c.id.clone(),
        name: c.name.clone(),
        image: c.image.clone(),
    }
}

/// The comm the kernel compares for `--exec-name NAME`: a program's file name cut to 15
/// bytes, as the kernel keeps it (the session then checks the whole name of each program the
/// kernel finds).
fn exec_comm(name: Option<&str>) -> anyhow::Result<Option<[u8; COMM_LEN]>> {
    let Some(name) = name else { return Ok(None) };
    let base = exec_base(name);
    if base.is_empty() {
        anyhow::bail!("--exec-name needs a program name");
    }
    // The kernel keeps the first 15 bytes of the program's file name as its comm.
    let mut comm = [0u8; COMM_LEN];
    let n = base.len().min(COMM_LEN - 1);
    comm[..n].copy_from_slice(&base.as_bytes()[..n]);
    Ok(Some(comm))
}

fn monotonic_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A running session.
pub struct Session {
    mode: Mode,
    probe: Probe,
    stream: AsyncFd<EventStream>,
    tree: ProcessTree,
    learner: Option<Learner>,
    outputs: Outputs,
    board: Option<PhaseBoard>,
    run: RunInfo,
    harvester: Harvester,
    marker_sets: MarkerSets,
    /// Launched or attached to, or found by name.
    roots: Vec<u32>,
    /// Already running when tracing began.
    attached: Vec<u32>,
    events: u64,
    bad_records: u64,
    /// Attributed counter growth, kept for a consumer (monitor mode) when it asked.
    attributed: Option<Vec<Attributed>>,
    last_harvest: Instant,
    /// The last liveness sweep: kept across `run` calls, which the agent makes every second,
    /// so the sweep still comes every `SWEEP_EVERY` (kernels whose exit tracepoint lacks
    /// `group_dead`, Debian's 5.10, 6.1 and 6.12 among them, tell of no process exit otherwise).
    last_sweep: Instant,
    /// What the session finds at exec (`--exec-name`, `--container`).
    finder: Finder,
    /// Processes found at exec or forked by them, on their way to the kernel's verdict.
    verdicts: Verdicts,
    /// Keep exited processes (the summary lists them), or forget them (the agent).
    keep_exited: bool,
    /// Processes found at exec and left out: outside the session's scope.
    rejected: u64,
}

/// How often the kernel's counters are harvested (and those of exited processes deleted).
const HARVEST_EVERY: Duration = Duration::from_secs(1);

impl Session {
    pub fn builder(mode: Mode) -> SessionBuilder {
        SessionBuilder {
            mode,
            probe: ProbeOptions {
                ring_bytes: 8 << 20,
                args: true,
                ..Default::default()
            },
            outputs: OutputPaths::default(),
            phases: None,
            exec_name: None,
            command: Vec::new(),
            board: None,
            container: None,
            keep_exited: true,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn tree(&self) -> &ProcessTree {
        &self.tree
    }

    pub fn learner(&self) -> Option<&Learner> {
        self.learner.as_ref()
    }

    pub fn probe(&self) -> &Probe {
        &self.probe
    }

    pub fn probe_mut(&mut self) -> &mut Probe {
        &mut self.probe
    }

    /// Records delivered so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Where the profile goes.
    pub fn profile_path(&self) -> Option<&std::path::Path> {
        self.outputs.profile_path()
    }

    /// Keep attributed counter growth for [`Session::take_attributed`].
    pub fn keep_attributed(&mut self) {
        self.attributed.get_or_insert_with(Vec::new);
    }

    /// Counter growth attributed to roles and phases since the last call.
    pub fn take_attributed(&mut self) -> Vec<Attributed> {
        self.attributed
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Reads the kernel's counters: growth goes to the process totals and the learner;
    /// counters of exited processes are deleted once read, and (unless the session keeps
    /// them) so are the processes.
    pub fn harvest(&mut self) -> anyhow::Result<()> {
        self.last_harvest = Instant::now();
        let reading = self.probe.counts()?;
        let done = self
            .harvester
            .harvest(reading, &mut self.tree, self.learner.as_mut());
        self.probe.delete_counts(&done.finished);
        if let Some(keep) = self.attributed.as_mut() {
            keep.extend(done.attributed);
        }
        if !self.keep_exited {
            for (tgid, instance) in self.tree.prune_exited() {
                if let Some(l) = self.learner.as_mut() {
                    l.forget(tgid, instance);
                }
                self.verdicts.forget(tgid);
            }
            self.roots.retain(|&pid| self.tree.get(pid).is_some());
        }
        self.container_ended();
        Ok(())
    }

    /// Processes found at their exec that were outside the session's scope (another program
    /// with the same first 15 bytes of name, another container), left out so far.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Processes the session traces now (not counting those outside its scope).
    pub fn live(&self) -> usize {
        self.tree
            .processes()
            .filter(|p| p.exited_ns.is_none() && !p.ignored)
            .count()
    }

    /// With `--container`, once every process of the container is gone, the session waits
    /// for it to start again (a new pid namespace: the kernel's prefilter changes).
    fn container_ended(&mut self) {
        let Finder::Container(w) = &mut self.finder else {
            return;
        };
        if w.target.is_none() {
            return;
        }
        let live = self
            .tree
            .processes()
            .any(|p| p.exited_ns.is_none() && !p.ignored);
        if live {
            return;
        }
        w.ended();
        let scope = self.finder.scope();
        if let Err(e) = self.probe.set_scope(scope) {
            log::error!("{e}");
        }
    }

    /// Container activity the session saw: what it is waiting for, or tracing.
    pub fn container_state(&self) -> Option<(String, bool)> {
        match &self.finder {
            Finder::Container(w) => Some((w.spec().to_string(), w.target.is_some())),
            _ => None,
        }
    }

    /// What the kernel lost so far.
    pub fn losses(&self) -> anyhow::Result<Losses> {
        Ok(self.probe.losses()?)
    }

    /// The profile learned so far (checkpoints).
    pub fn snapshot(&mut self) -> anyhow::Result<Option<Profile>> {
        self.run.dropped = self.probe.losses()?.ringbuf_full;
        Ok(self
            .learner
            .as_ref()
            .map(|l| l.snapshot(&self.tree, &self.run)))
    }

    /// Final drain and harvest; writes the summary, the trace and the profile.
    pub fn finish(mut self) -> anyhow::Result<Summary> {
        self.drain_last()?;
        self.harvest()?;
        let losses = self.probe.losses()?;
        self.probe.detach();
        if self.bad_records > 0 {
            crate::say!(
                "phasebox: {} records could not be decoded and were skipped",
                self.bad_records
            );
        }
        let mut summary = Summary::build(&self.tree, losses, self.events);
        summary.errors_counted = self.probe.counts_errors();
        self.run.dropped = losses.ringbuf_full;
        let profile = self.learner.map(|l| l.finish(&self.tree, &self.run));
        let footer = TraceFooter {
            summary: summary.clone(),
            root_pids: self.roots,
            attached_pids: self.attached,
        };
        self.outputs.finish(&summary, footer, profile)?;
        Ok(summary)
    }
}
