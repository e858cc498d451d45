//! What `run` and `record` write at the end: the summary table, the summary JSON, the trace,
//! the profile. Every output is opened before tracing starts, so a bad path fails up front.
use std::io::Write as _;

use phasebox_core::{
    atomic_file::{AtomicFile, file_error},
    learn::{Learner, RunInfo},
    phase::Detector,
    summary::Summary,
    sysnames,
    tracefile::{FORMAT_VERSION, TraceHeader, TraceWriter},
};

use crate::{
    cli::TraceOptions,
    probe::{Probe, ProbeOptions},
    procfs,
    session::{Origin, Session},
};

/// Outputs opened before tracing starts.
pub struct Outputs {
    summary: Option<AtomicFile>,
    profile: Option<(AtomicFile, Detector)>,
    trace: Option<std::path::PathBuf>,
    quiet: bool,
    run: RunInfo,
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Everything a tracing command needs before its target runs.
pub struct Started {
    pub outputs: Outputs,
    pub probe: Probe,
    pub ring: aya::maps::RingBuf<aya::maps::MapData>,
    pub writer: Option<TraceWriter>,
}

/// The comm the kernel sees for `--exec-name NAME` (a program's name, at most 15 bytes).
fn exec_comm(name: &Option<String>) -> anyhow::Result<Option<[u8; phasebox_common::COMM_LEN]>> {
    let Some(name) = name else { return Ok(None) };
    let base = name.rsplit('/').next().unwrap_or(name);
    if base.is_empty() {
        anyhow::bail!("--exec-name needs a program name");
    }
    // The kernel keeps the first 15 bytes of the program's file name as its comm.
    let mut comm = [0u8; phasebox_common::COMM_LEN];
    let n = base.len().min(phasebox_common::COMM_LEN - 1);
    comm[..n].copy_from_slice(&base.as_bytes()[..n]);
    Ok(Some(comm))
}

/// What the kernel sends besides its exact counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct Capture {
    /// Every syscall (else summary mode: first uses per phase and marker calls).
    pub stream: bool,
    /// Path arguments even without a profile or trace file (phase markers use them).
    pub markers_need_paths: bool,
    /// Monitor mode kills from the kernel.
    pub kill: bool,
}

/// Checks the outputs and phase rules, loads the probe and opens the trace file.
pub fn start(
    opts: &TraceOptions,
    mode: &str,
    command: Vec<String>,
    target_pid: Option<u32>,
    capture: Capture,
) -> anyhow::Result<Started> {
    let summary = opts
        .summary
        .as_deref()
        .map(AtomicFile::create)
        .transpose()?;
    let profile = match &opts.profile {
        Some(path) => Some((AtomicFile::create(path)?, Detector::load(&opts.phases)?)),
        None => None,
    };
    let started_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let header = TraceHeader {
        format_version: FORMAT_VERSION,
        wire_version: phasebox_common::WIRE_VERSION,
        phasebox_version: env!("CARGO_PKG_VERSION").to_string(),
        arch: sysnames::ARCH.to_string(),
        kernel_release: procfs::kernel_release(),
        mode: mode.to_string(),
        command: command.clone(),
        target_pid,
        started_unix_ms,
        started_monotonic_ns: monotonic_ns(),
    };
    let writer = opts
        .output
        .as_deref()
        .map(|p| TraceWriter::create(p, &header))
        .transpose()?;
    let paths = opts.profile.is_some() || opts.output.is_some() || capture.markers_need_paths;
    let (probe, ring) = Probe::load(ProbeOptions {
        ring_bytes: opts.ring_bytes,
        stream: capture.stream,
        paths,
        kill: capture.kill,
        exec_comm: exec_comm(&opts.exec_name)?,
    })?;
    let run = RunInfo {
        name: match target_pid {
            Some(pid) => format!("record -p {pid}"),
            None => command.join(" "),
        },
        launched: mode == "run",
        started_unix_ms,
        kernel_release: header.kernel_release.clone(),
        dropped: 0,
    };
    let outputs = Outputs {
        summary,
        profile,
        trace: opts.output.clone(),
        quiet: opts.quiet,
        run,
    };
    Ok(Started {
        outputs,
        probe,
        ring,
        writer,
    })
}

impl Outputs {
    /// A learner when a profile was asked for.
    pub fn learner(&self, origin: &Origin) -> Option<Learner> {
        self.profile
            .as_ref()
            .map(|(_, det)| Learner::new(det.clone(), &origin.roots, &origin.attached))
    }

    /// Ends the session and writes everything it learned.
    pub fn finish(self, session: Session) -> anyhow::Result<Summary> {
        let done = session.finish()?;
        let summary = done.summary;
        if !self.quiet {
            eprint!("{}", summary.render_text());
        }
        if let Some(mut file) = self.summary {
            let dest = file.dest().to_path_buf();
            file.file()
                .write_all(summary.to_json().as_bytes())
                .map_err(|e| file_error("write", &dest, &e))?;
            file.commit()?;
        }
        if let (Some((mut file, _)), Some(learner)) = (self.profile, done.learner) {
            let run = RunInfo {
                dropped: summary.dropped,
                ..self.run
            };
            let profile = learner.finish(&done.tree, &run);
            let dest = file.dest().to_path_buf();
            file.file()
                .write_all(profile.to_json().as_bytes())
                .map_err(|e| file_error("write", &dest, &e))?;
            file.commit()?;
            if !self.quiet {
                let phases: usize = profile.roles.iter().map(|r| r.phases.len()).sum();
                eprintln!(
                    "phasebox: profile written to {} ({} roles, {phases} phases)",
                    dest.display(),
                    profile.roles.len()
                );
            }
        }
        if let (Some(path), false) = (&self.trace, self.quiet) {
            eprintln!("phasebox: trace written to {}", path.display());
        }
        Ok(summary)
    }
}
