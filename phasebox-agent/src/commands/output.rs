//! What `run` and `record` write at the end: the summary table, the summary JSON, the trace.
use std::io::Write as _;
use std::path::Path;

use crate::{
    atomic_file::{AtomicFile, file_error},
    cli::TraceOptions,
    probe::{Probe, ProbeOptions},
    procfs,
    session::Session,
    summary::Summary,
    sysnames,
    tracefile::{FORMAT_VERSION, TraceHeader, TraceWriter},
};

/// Output files opened before tracing starts, so an unwritable path fails up front.
pub struct Outputs {
    summary: Option<AtomicFile>,
    quiet: bool,
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

/// Checks the outputs, loads the probe and opens the trace file.
pub fn start(
    opts: &TraceOptions,
    mode: &str,
    command: Vec<String>,
    target_pid: Option<u32>,
) -> anyhow::Result<(
    Outputs,
    Probe,
    aya::maps::RingBuf<aya::maps::MapData>,
    Option<TraceWriter>,
)> {
    let summary = opts
        .summary
        .as_deref()
        .map(AtomicFile::create)
        .transpose()?;
    let header = TraceHeader {
        format_version: FORMAT_VERSION,
        wire_version: phasebox_common::WIRE_VERSION,
        phasebox_version: env!("CARGO_PKG_VERSION").to_string(),
        arch: sysnames::ARCH.to_string(),
        kernel_release: procfs::kernel_release(),
        mode: mode.to_string(),
        command,
        target_pid,
        started_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        started_monotonic_ns: monotonic_ns(),
    };
    let writer = opts
        .output
        .as_deref()
        .map(|p| TraceWriter::create(p, &header))
        .transpose()?;
    let (probe, ring) = Probe::load(ProbeOptions {
        ring_bytes: opts.ring_bytes,
        stream: true,
    })?;
    Ok((
        Outputs {
            summary,
            quiet: opts.quiet,
        },
        probe,
        ring,
        writer,
    ))
}

impl Outputs {
    /// Ends the session and writes everything it learned.
    pub fn finish(self, session: Session, trace: Option<&Path>) -> anyhow::Result<Summary> {
        let summary = session.finish()?;
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
        if let (Some(path), false) = (trace, self.quiet) {
            eprintln!("phasebox: trace written to {}", path.display());
        }
        Ok(summary)
    }
}
