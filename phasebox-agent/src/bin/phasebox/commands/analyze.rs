//! `phasebox analyze TRACE --phases R --profile FILE`: learn a profile from a trace file, with
//! the same pipeline as a live run. The trace is read as a stream (its footer first, from the
//! end: the processes it starts with), so memory does not grow with its size.
use crate::cli::AnalyzeArgs;
use phasebox_core::{
    atomic_file::{AtomicFile, write_atomic},
    learn::{Counting, Learner, RunInfo},
    phase::Detector,
    process::ProcessTree,
    tracefile,
};

pub fn analyze(args: &AnalyzeArgs) -> anyhow::Result<i32> {
    let det = Detector::load(&args.phases)?;
    AtomicFile::check(&args.profile)?;
    let mut trace = tracefile::open(&args.trace)?;
    let f = tracefile::read_footer(&args.trace)?;
    let mut tree = ProcessTree::new();
    for pid in f.root_pids.iter().chain(&f.attached_pids) {
        if tree.get(*pid).is_some() {
            continue;
        }
        if let Some(p) = f.summary.processes.iter().find(|p| p.pid == *pid) {
            tree.add(p.pid, p.ppid, p.exe.clone(), p.comm.clone(), None);
        }
    }
    let mut learner = Learner::new(det, Counting::Records, &f.root_pids, &f.attached_pids);
    while let Some(ev) = trace.next_event()? {
        tree.apply(&ev);
        learner.observe(&ev, &tree);
    }
    let h = trace.header();
    let run = RunInfo {
        name: match h.target_pid {
            Some(pid) => format!("record -p {pid}"),
            None => h.command.join(" "),
        },
        launched: h.mode == "run",
        started_unix_ms: h.started_unix_ms,
        kernel_release: h.kernel_release.clone(),
        dropped: f.summary.dropped,
        container: None,
    };
    let profile = learner.finish(&tree, &run);
    write_atomic(&args.profile, profile.to_json().as_bytes())?;
    phasebox::say!("phasebox: profile written to {}", args.profile.display());
    Ok(0)
}
