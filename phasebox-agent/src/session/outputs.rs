//! What a session writes: the summary table, the summary JSON, the trace, the profile. Every
//! file is opened before tracing starts, so a bad path fails up front, and appears whole, at
//! the end, or not at all.
use std::io::Write as _;
use std::path::{Path, PathBuf};

use phasebox_core::{
    atomic_file::{AtomicFile, file_error},
    profile::Profile,
    summary::Summary,
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
}

/// Outputs opened before tracing starts.
pub struct Outputs {
    summary: Option<AtomicFile>,
    profile: Option<AtomicFile>,
    pub(super) trace: Option<TraceWriter>,
    quiet: bool,
}

fn write_file(mut file: AtomicFile, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    let dest = file.dest().to_path_buf();
    file.file()
        .write_all(bytes)
        .map_err(|e| file_error("write", &dest, &e))?;
    file.commit()?;
    Ok(dest)
}

impl Outputs {
    /// Opens every output (the trace file gets its header now).
    pub fn open(paths: &OutputPaths, header: &TraceHeader) -> anyhow::Result<Outputs> {
        let create = |p: &Option<PathBuf>| p.as_deref().map(AtomicFile::create).transpose();
        Ok(Outputs {
            summary: create(&paths.summary)?,
            profile: create(&paths.profile)?,
            trace: paths
                .trace
                .as_deref()
                .map(|p| TraceWriter::create(p, header))
                .transpose()?,
            quiet: paths.quiet,
        })
    }

    /// Where the profile goes (checkpoints write there too).
    pub fn profile_path(&self) -> Option<&Path> {
        self.profile.as_ref().map(AtomicFile::dest)
    }

    /// Writes everything: the table (unless quiet), the summary, the trace's footer and the
    /// profile.
    pub fn finish(
        self,
        summary: &Summary,
        footer: TraceFooter,
        profile: Option<Profile>,
    ) -> anyhow::Result<()> {
        if !self.quiet {
            crate::logging::write_stderr(&summary.render_text());
        }
        if let Some(file) = self.summary {
            write_file(file, summary.to_json().as_bytes())?;
        }
        if let Some(w) = self.trace {
            let dest = w.finish(&footer)?;
            if !self.quiet {
                crate::say!("phasebox: trace written to {}", dest.display());
            }
        }
        if let (Some(file), Some(profile)) = (self.profile, profile) {
            let dest = write_file(file, profile.to_json().as_bytes())?;
            if !self.quiet {
                let phases: usize = profile.roles.iter().map(|r| r.phases.len()).sum();
                crate::say!(
                    "phasebox: profile written to {} ({} roles, {phases} phases)",
                    dest.display(),
                    profile.roles.len()
                );
            }
        }
        Ok(())
    }
}
