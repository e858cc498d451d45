//! Files that appear whole or not at all: written to a temporary file beside the target,
//! synced, then renamed over it.
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::sysnames::describe_io;

/// A file being written; it takes its final name only on [`AtomicFile::commit`].
#[derive(Debug)]
pub struct AtomicFile {
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
}

/// An error that names the file and says what went wrong, in one sentence.
pub fn file_error(action: &str, path: &Path, err: &io::Error) -> anyhow::Error {
    anyhow::anyhow!("cannot {action} {}: {}", path.display(), describe_io(err))
}

impl AtomicFile {
    /// Creates the temporary file now, so an unwritable destination is reported up front.
    pub fn create(dest: &Path) -> anyhow::Result<AtomicFile> {
        let name = dest
            .file_name()
            .ok_or_else(|| anyhow::anyhow!("{} is not a file path", dest.display()))?;
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if dest.is_dir() {
            anyhow::bail!("cannot write {}: it is a directory", dest.display());
        }
        // Unique per file being written: the agent checkpoints a file whose final write is open.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(
            ".{}.tmp-{}-{n}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| file_error("write", dest, &e))?;
        Ok(AtomicFile {
            file: Some(file),
            tmp,
            dest: dest.to_path_buf(),
        })
    }

    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("file is open until commit")
    }

    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Syncs and renames the file to its destination.
    pub fn commit(mut self) -> anyhow::Result<()> {
        let file = self.file.take().expect("commit once");
        file.sync_all()
            .map_err(|e| file_error("write", &self.dest, &e))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| file_error("write", &self.dest, &e))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `dest` atomically.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = AtomicFile::create(dest)?;
    f.file()
        .write_all(bytes)
        .map_err(|e| file_error("write", dest, &e))?;
    f.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_renames_and_drop_cleans_up() {
        let dir = std::env::temp_dir().join(format!("pb-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("out.json");
        write_atomic(&dest, b"{}").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"{}");
        {
            let mut f = AtomicFile::create(&dest).unwrap();
            f.file().write_all(b"partial").unwrap();
        } // dropped without commit
        assert_eq!(std::fs::read(&dest).unwrap(), b"{}");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "temp file left behind"
        );
        let err = write_atomic(&dir.join("no/such/dir/x"), b"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("No such file or directory"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
