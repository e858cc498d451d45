//! Writing the many files of a per-phase export: each file still replaces its destination
//! atomically (written in full elsewhere, then renamed), but the whole batch is flushed with
//! one filesystem sync instead of two per file, and no directory is scanned per file. A
//! profile with thousands of phases then exports in about the time it takes to render them.
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::file_error::{FileCause, FileError};

/// Writes `files` (name, contents) into `dir`: staged in a fresh directory inside `dir`,
/// synced once, then each renamed over its destination, which keeps the permission bits
/// and owner of a file it replaces. A destination that is not a regular file (a directory)
/// is an error; a link there is replaced, never followed.
pub fn write_all(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<(), FileError> {
    let staging = tempfile::Builder::new()
        .prefix(".phasebox-phases-")
        .tempdir_in(dir)
        .map_err(FileError::on("write into", dir))?;
    for (name, bytes) in files {
        let path = staging.path().join(name);
        let dest = dir.join(name);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(FileError::on("write", &dest))?;
        f.write_all(bytes).map_err(FileError::on("write", &dest))?;
        keep_owner_and_mode(&f, &dest)?;
    }
    sync_filesystem(staging.path())?;
    for (name, _) in files {
        let dest = dir.join(name);
        std::fs::rename(staging.path().join(name), &dest).map_err(FileError::on("write", &dest))?;
    }
    // The renames last across a crash once the directory is synced; some file systems refuse
    // to sync a directory, which loses nothing but that guarantee.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A file that replaces `dest` gets its permission bits and owner (without root a file
/// cannot be given away: it stays this user's). Nothing to keep when `dest` is absent or a
/// link; anything else but a regular file is an error.
fn keep_owner_and_mode(f: &File, dest: &Path) -> Result<(), FileError> {
    let Ok(old) = std::fs::symlink_metadata(dest) else {
        return Ok(());
    };
    if old.file_type().is_symlink() {
        return Ok(());
    }
    if !old.is_file() {
        return Err(FileError::new("write", dest, FileCause::Occupied));
    }
    match std::os::unix::fs::fchown(f, Some(old.uid()), Some(old.gid())) {
        Err(e) if e.raw_os_error() != Some(libc::EPERM) => {
            return Err(FileError::io("write", dest, e));
        }
        _ => {}
    }
    f.set_permissions(std::fs::Permissions::from_mode(old.mode() & 0o777))
        .map_err(FileError::on("write", dest))
}

/// Flushes every file written under `path` to disk: one syncfs for the whole batch.
fn sync_filesystem(path: &Path) -> Result<(), FileError> {
    let d = File::open(path).map_err(FileError::on("sync", path))?;
    // SAFETY: syncfs on a descriptor this function owns.
    if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
        return Err(FileError::io("sync", path, std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_replace_their_destinations_and_keep_their_mode() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("a.json");
        std::fs::write(&old, "old").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("b.json")).unwrap();
        let files = vec![
            ("a.json".to_string(), b"new a".to_vec()),
            ("b.json".to_string(), b"new b".to_vec()),
        ];
        write_all(dir.path(), &files).unwrap();
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "new a");
        assert_eq!(std::fs::metadata(&old).unwrap().mode() & 0o777, 0o600);
        let b = dir.path().join("b.json");
        assert!(
            !std::fs::symlink_metadata(&b)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "new b");
        // Nothing staged is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        std::fs::create_dir(dir.path().join("c.json")).unwrap();
        let e = write_all(dir.path(), &[("c.json".into(), vec![])])
            .unwrap_err()
            .to_string();
        assert!(e.contains("other than a regular file"), "{e}");
    }
}
