//! `phasebox analyze TRACE --phases R --profile FILE`: learn a profile from a trace file, with
//! the same pipeline as a live run.
use crate::cli::AnalyzeArgs;
use phasebox_core::{
    atomic_file::{AtomicFile, file_error},
    learn::{Counting, Learner, RunInfo},
    phase::Detector,
    process::ProcessTree,
    tracefile,
};
use std::io::Write as _;

pub fn analyze(args: &AnalyzeArgs) -> anyhow::Result<i32> {
    let det = Detector::load(&args.phases)?;
    let mut out = AtomicFile::create(&args.profile)?;
    let trace = tracefile::read(&args.trace)?;
    let (h, f) = (&trace.header, &trace.footer);
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
    for ev in &trace.events {
        tree.apply(ev);
        learner.observe(ev, &tree);
    }
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
    let dest = args.profile.clone();
    out.file()
        .write_all(profile.to_json().as_bytes())
        .map_err(|e| file_error("write", &dest, &e))?;
    out.commit()?;
    crate::say!("phasebox: profile written to {}", dest.display());
    Ok(0)
}
