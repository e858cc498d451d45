//! What a session writes: the summary table, the summary JSON, the trace, the profile. Every
//! path is checked before tracing starts, so a bad one fails up front; each file appears whole,
//! at the end, or not at all. The trace is written as the records come (to its temporary
//! file); the summary and the profile are written whole at the end, each to a fresh temporary
//! file. An output that cannot be written is lost alone: the others are still written, and the
//! session ends with [`OutputsLost`].
use std::path::{Path, PathBuf};

use phasebox_core::{
    atomic_file::{AtomicFile, write_atomic},
    file_error::FileError,
    profile::Profile,
    summary::Summary,
    trace_filter::TraceFilter,
    tracefile::{TraceFooter, TraceHeader, TraceWriter},
};

/// The files a session was asked for.
#[derive(Clone, Debug, Default)]
pub struct OutputPaths {
    /// The summary as JSON.
    pub summary: Option<PathBuf>,
    /// Every record (a trace file).
    pub trace: Option<PathBuf>,
    /// The learned profile.
    pub profile: Option<PathBuf>,
    /// Print nothing but errors.
    pub quiet: bool,
    /// `-e trace=`: the syscalls the table, the summary and the trace show (the profile and the
    /// trace's footer stay whole).
    pub shown: Option<TraceFilter>,
}

/// Outputs checked (and the trace opened) before tracing starts.
pub struct Outputs {
    summary: Option<PathBuf>,
    profile: Option<PathBuf>,
    pub(super) trace: Option<TraceWriter>,
    quiet: bool,
    shown: Option<TraceFilter>,
}

/// The exit status of a command that could not write one of its outputs (EX_IOERR).
pub const EXIT_OUTPUT_LOST: u8 = 74;

/// Outputs that could not be written, each with why; every other output was written.
#[derive(Debug)]
pub struct OutputsLost {
    errors: Vec<anyhow::Error>,
    written: usize,
}

impl std::fmt::Display for OutputsLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let why: Vec<String> = self.errors.iter().map(|e| format!("{e:#}")).collect();
        write!(f, "{}", why.join("; "))?;
        if self.written > 0 {
            write!(f, " (the other outputs were written)")?;
        }
        Ok(())
    }
}

impl std::error::Error for OutputsLost {}

impl Outputs {
    /// Checks every output path and opens the trace file (which gets its header now).
    pub fn open(paths: &OutputPaths, header: &TraceHeader) -> anyhow::Result<Outputs> {
        for p in [&paths.summary, &paths.profile].into_iter().flatten() {
            AtomicFile::check(p)?;
        }
        Ok(Outputs {
            summary: paths.summary.clone(),
            profile: paths.profile.clone(),
            trace: paths
                .trace
                .as_deref()
                .map(|p| TraceWriter::create(p, header))
                .transpose()?,
            quiet: paths.quiet,
            shown: paths.shown.clone(),
        })
    }

    /// Where the profile goes (checkpoints write there too).
    pub fn profile_path(&self) -> Option<&Path> {
        self.profile.as_deref()
    }

    /// Writes everything that can be written: the table (unless quiet), the summary, the
    /// trace's footer and the profile. Fails with [`OutputsLost`] when one of them could not be.
    pub fn finish(
        self,
        summary: &Summary,
        footer: TraceFooter,
        profile: Option<Profile>,
    ) -> anyhow::Result<()> {
        let shown = self.shown.as_ref().map(|f| summary.shown_only(f));
        let summary = shown.as_ref().unwrap_or(summary);
        if !self.quiet {
            crate::logging::write_stderr(&summary.render_text());
        }
        let mut lost = OutputsLost {
            errors: Vec::new(),
            written: 0,
        };
        let mut outcome = |r: Result<(), FileError>| match r {
            Ok(()) => lost.written += 1,
            Err(e) => lost.errors.push(e.into()),
        };
        if let Some(path) = &self.summary {
            outcome(write_atomic(path, summary.to_json().as_bytes()));
        }
        if let Some(w) = self.trace {
            outcome(w.finish(&footer).map(|dest| {
                if !self.quiet {
                    crate::say!("phasebox: trace written to {}", dest.display());
                }
            }));
        }
        if let (Some(path), Some(profile)) = (&self.profile, profile) {
            outcome(write_atomic(path, profile.to_json().as_bytes()).map(|()| {
                if !self.quiet {
                    let phases: usize = profile.roles.iter().map(|r| r.phases.len()).sum();
                    crate::say!(
                        "phasebox: profile written to {} ({} roles, {phases} phases)",
                        path.display(),
                        profile.roles.len()
                    );
                }
            }));
        }
        if lost.errors.is_empty() {
            Ok(())
        } else {
            Err(lost.into())
        }
    }
}
