//! `phasebox record -p PID`: attach to a running process tree.
use std::collections::BTreeSet;

use super::output::{self, Capture};
use crate::{
    cli::RecordArgs,
    probe::Probe,
    procfs,
    session::{Origin, Session, Stop, interrupted},
};
use phasebox_core::process::ProcessTree;

/// Tracks `root` and every descendant /proc shows (twice, to catch forks made meanwhile; after
/// that the kernel follows new children itself).
pub(super) fn attach(probe: &mut Probe, tree: &mut ProcessTree, root: u32) -> anyhow::Result<()> {
    let me = std::process::id();
    let mut seen = BTreeSet::new();
    for pass in 0..2 {
        let parents = procfs::parents();
        let mut pids = procfs::descendants(&parents, root, me);
        if pass == 0 {
            pids.remove(&root);
            pids.insert(root);
        }
        for pid in std::iter::once(root).chain(pids) {
            if !seen.insert(pid) {
                continue;
            }
            let Some(st) = procfs::stat(pid) else {
                continue;
            };
            probe.track(pid)?;
            tree.add(pid, st.ppid, procfs::exe(pid), st.comm, None);
        }
    }
    Ok(())
}

/// Refuses phasebox's own pid and pids that do not exist or have exited.
pub(super) fn check_target(pid: u32) -> anyhow::Result<()> {
    if pid == std::process::id() {
        anyhow::bail!("phasebox cannot trace itself (pid {pid})");
    }
    match procfs::stat(pid) {
        None => anyhow::bail!("no process with pid {pid} exists"),
        Some(s) if s.state == 'Z' || s.state == 'X' => {
            anyhow::bail!("process {pid} has already exited")
        }
        Some(_) => {}
    }
    Ok(())
}

pub async fn record(args: RecordArgs) -> anyhow::Result<i32> {
    let pid = args.pid;
    check_target(pid)?;
    let output::Started {
        outputs,
        mut probe,
        ring,
        writer,
    } = output::start(
        &args.trace,
        "record",
        Vec::new(),
        Some(pid),
        Capture {
            stream: true,
            ..Default::default()
        },
    )?;
    let mut tree = ProcessTree::new();
    attach(&mut probe, &mut tree, pid)?;
    if tree.is_empty() {
        anyhow::bail!("process {pid} exited before phasebox could attach to it");
    }
    let n = tree.processes().len();
    eprintln!(
        "phasebox: tracing pid {pid} and its descendants ({n} process{}); Ctrl-C to stop",
        if n == 1 { "" } else { "es" }
    );
    let attached: Vec<u32> = tree.processes().iter().map(|p| p.pid).collect();
    let origin = Origin {
        roots: vec![pid],
        attached,
    };
    let learner = outputs.learner(&origin);
    let mut session = Session::new(probe, ring, tree, writer, learner, origin)?;
    let duration = args.duration;
    let stop = async move {
        match duration {
            Some(d) => tokio::select! {
                s = interrupted() => s,
                _ = tokio::time::sleep(d) => Stop::Duration,
            },
            None => interrupted().await,
        }
    };
    let why = session.run(stop, true).await?;
    if why == Stop::TreeExited && !args.trace.quiet {
        eprintln!("phasebox: process {pid} and its descendants have exited");
    }
    outputs.finish(session)?;
    Ok(0)
}
