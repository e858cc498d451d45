//! Files that appear whole or not at all: written to a temporary file beside the target,
//! synced, then renamed over it.
//!
//! phasebox often runs as root in directories other users can write, so the temporary file has
//! an unpredictable name and is created exclusively (a link planted at its name is never
//! followed), a symbolic link at the destination is replaced rather than written through, and
//! only regular files are ever replaced: a device node, FIFO, socket or directory at the
//! destination is refused before anything runs. Outputs hold command lines (which may carry
//! secrets), so every file is created readable and writable by its owner only (0600), whatever
//! the umask, and owned by whoever runs phasebox: a file planted at the destination by another
//! user gives the result neither its owner nor its mode.
use std::ffi::OsString;
use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Seek, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::file_error::{FileCause, FileError, special_kind};

/// Random characters in a temporary file's name.
const RANDOM_CHARS: usize = 12;
/// Bytes of the destination's name kept in a temporary file's name (names are at most 255).
const NAME_IN_TEMP: usize = 100;
/// The mode of every file written: its owner's alone.
pub const MODE: u32 = 0o600;

/// A file being written; it takes its final name only on [`AtomicFile::commit`], and its
/// temporary file is removed when it is dropped uncommitted.
#[derive(Debug)]
pub struct AtomicFile {
    file: File,
    /// The temporary file's name, beside the destination.
    temp: PathBuf,
    dest: PathBuf,
    /// Renamed into place, or not ours any more: nothing to remove on drop.
    done: bool,
}

/// The start of the names of the temporary files for `name`, made by process `pid`.
fn temp_prefix(name: &[u8], pid: u32) -> OsString {
    let mut p = b".".to_vec();
    p.extend_from_slice(&name[..name.len().min(NAME_IN_TEMP)]);
    p.extend_from_slice(format!(".phasebox-{pid}-").as_bytes());
    OsString::from_vec(p)
}

/// Refuses a destination that is not a regular file (a link is fine: the rename replaces it,
/// never follows it).
fn check_destination(dest: &Path) -> Result<(), FileError> {
    match std::fs::symlink_metadata(dest) {
        Ok(m) if m.file_type().is_symlink() => Ok(()),
        Ok(m) => match special_kind(&m) {
            None => Ok(()),
            Some(what) => Err(FileError::new(
                "write",
                dest,
                FileCause::NotRegular {
                    what,
                    verb: "writes",
                },
            )),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FileError::io("write", dest, e)),
    }
}

/// Whether process `pid` is gone (so its temporary files are leftovers of a killed run).
fn process_gone(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let r = unsafe { libc::kill(pid, 0) };
    r == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// Removes the temporary files for `name` in `dir` that a phasebox process that is gone left
/// behind (killed before it could rename or remove them). Only files owned by this user, whose
/// names phasebox made, are touched.
fn remove_leftovers(dir: &Path, name: &[u8]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let start = temp_prefix(name, 0);
    // ".NAME.phasebox-": everything before the pid.
    let start = &start.as_bytes()[..start.len() - 2];
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.as_bytes().strip_prefix(start) else {
            continue;
        };
        let Some((pid, random)) = std::str::from_utf8(rest)
            .ok()
            .and_then(|r| r.split_once('-'))
        else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if random.len() != RANDOM_CHARS || pid == std::process::id() || !process_gone(pid) {
            continue;
        }
        if entry.metadata().is_ok_and(|m| m.uid() == me) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The directory `dest` is in and its file name.
fn split(dest: &Path) -> Result<(&Path, &std::ffi::OsStr), FileError> {
    let name = dest
        .file_name()
        .ok_or_else(|| FileError::new("write", dest, FileCause::NoFileName))?;
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

/// A new temporary file for `dest` in `dir`: an unpredictable name, created exclusively, 0600.
fn new_temp(dir: &Path, name: &std::ffi::OsStr, dest: &Path) -> Result<(File, PathBuf), FileError> {
    let prefix = temp_prefix(name.as_bytes(), std::process::id());
    let tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .rand_bytes(RANDOM_CHARS)
        .make_in(dir, |path| {
            // O_EXCL: a file or link already at the name is an error (another name is tried),
            // never opened; O_NOFOLLOW says the same for links once more. Readable too: a temp
            // file removed under phasebox is copied from this descriptor at the end.
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(MODE)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(path)
        })
        .map_err(FileError::on("write", dest))?;
    let (file, path) = tmp.into_parts();
    // From here on the name is ours to remove (AtomicFile's drop), not tempfile's.
    let path = path
        .keep()
        .map_err(|e| FileError::io("write", dest, e.error))?;
    // The umask may have taken bits from the mode asked for (0400 under umask 0277).
    if let Err(e) = file.set_permissions(Permissions::from_mode(MODE)) {
        let _ = std::fs::remove_file(&path);
        return Err(FileError::io("write", dest, e));
    }
    Ok((file, path))
}

/// Whether `path` is still the file open as `file` (a cleaner of temporary directories may
/// have removed it, and someone else may have made another file at its name since).
fn same_file(path: &Path, file: &File) -> bool {
    match (std::fs::symlink_metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

impl AtomicFile {
    /// Creates the temporary file now, so an unwritable destination is reported up front.
    pub fn create(dest: &Path) -> Result<AtomicFile, FileError> {
        let (dir, name) = split(dest)?;
        check_destination(dest)?;
        remove_leftovers(dir, name.as_bytes());
        let (file, temp) = new_temp(dir, name, dest)?;
        Ok(AtomicFile {
            file,
            temp,
            dest: dest.to_path_buf(),
            done: false,
        })
    }

    /// Checks now that `dest` can be written (a temporary file is made beside it and removed),
    /// for an output written whole at the end with a fresh [`AtomicFile`].
    pub fn check(dest: &Path) -> Result<(), FileError> {
        AtomicFile::create(dest).map(drop)
    }

    /// The open temporary file, to write into.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Where the file goes on commit.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Syncs and renames the file to its destination. A temporary file that is no longer there
    /// (removed by a cleaner during a long run) is written again from the open descriptor first:
    /// nothing written is lost.
    pub fn commit(mut self) -> Result<(), FileError> {
        let dest = self.dest.clone();
        self.file
            .sync_all()
            .map_err(FileError::on("write", &dest))?;
        if !same_file(&self.temp, &self.file) {
            return self.copy_to_fresh_temp()?.commit();
        }
        std::fs::rename(&self.temp, &dest).map_err(FileError::on("write", &dest))?;
        self.done = true;
        // The rename lasts across a crash once the directory is synced; some file systems
        // refuse to sync a directory, which loses nothing but that guarantee.
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// A new temporary file with everything written to this one, whose name is gone.
    fn copy_to_fresh_temp(&mut self) -> Result<AtomicFile, FileError> {
        // The name is not ours any more: never remove or rename what is there now.
        self.done = true;
        let mut fresh = AtomicFile::create(&self.dest)?;
        self.file
            .rewind()
            .and_then(|()| io::copy(&mut self.file, &mut fresh.file))
            .map_err(FileError::on("write", &self.dest))?;
        Ok(fresh)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.done && same_file(&self.temp, &self.file) {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Writes `bytes` to `dest` atomically.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let mut f = AtomicFile::create(dest)?;
    f.file()
        .write_all(bytes)
        .map_err(FileError::on("write", dest))?;
    f.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::os::unix::fs::FileTypeExt;

    /// A fresh directory, removed on drop.
    struct Dir(tempfile::TempDir);

    impl Dir {
        fn new() -> Dir {
            Dir(tempfile::Builder::new()
                .prefix("pb-atomic-")
                .tempdir()
                .unwrap())
        }
        fn path(&self, name: &str) -> PathBuf {
            self.0.path().join(name)
        }
        fn names(&self) -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(self.0.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        }
    }

    fn mknod(path: &Path, mode: libc::mode_t, dev: libc::dev_t) {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        let r = unsafe { libc::mknod(c.as_ptr(), mode, dev) };
        assert_eq!(
            r,
            0,
            "mknod {}: {}",
            path.display(),
            io::Error::last_os_error()
        );
    }

    #[test]
    fn commit_renames_and_drop_cleans_up() {
        let dir = Dir::new();
        let dest = dir.path("out.json");
        write_atomic(&dest, b"{}").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"{}");
        {
            let mut f = AtomicFile::create(&dest).unwrap();
            f.file().write_all(b"partial").unwrap();
        } // dropped without commit
        assert_eq!(std::fs::read(&dest).unwrap(), b"{}");
        assert_eq!(dir.names(), ["out.json"], "temp file left behind");
        let err = write_atomic(&dir.path("no/such/dir/x"), b"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("No such file or directory"), "{err}");
    }

    #[test]
    fn temp_names_are_unpredictable_and_name_the_destination() {
        let dir = Dir::new();
        let dest = dir.path("p.json");
        let a = AtomicFile::create(&dest).unwrap();
        let b = AtomicFile::create(&dest).unwrap();
        let (na, nb) = (dir.names()[0].clone(), dir.names()[1].clone());
        let prefix = format!(".p.json.phasebox-{}-", std::process::id());
        assert!(
            na.starts_with(&prefix) && nb.starts_with(&prefix),
            "{na} {nb}"
        );
        assert_ne!(na, nb);
        assert_eq!(na.len(), prefix.len() + RANDOM_CHARS);
        drop((a, b));
    }

    #[test]
    fn links_and_files_planted_at_temp_names_are_never_used() {
        let dir = Dir::new();
        let victim = dir.path("victim");
        std::fs::write(&victim, b"precious").unwrap();
        // Every name the old scheme (.NAME.tmp-PID-N) would have used: links to the victim and
        // plain files made beforehand; and a link at the destination itself.
        let mut planted = Vec::new();
        for n in 0..64 {
            let at = dir.path(&format!(".out.tmp-{}-{n}", std::process::id()));
            if n % 2 == 0 {
                std::os::unix::fs::symlink(&victim, &at).unwrap();
            } else {
                std::fs::write(&at, b"planted").unwrap();
                planted.push(at);
            }
        }
        std::os::unix::fs::symlink(&victim, dir.path("out")).unwrap();
        write_atomic(&dir.path("out"), b"mine").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        for p in &planted {
            assert_eq!(std::fs::read(p).unwrap(), b"planted", "{}", p.display());
        }
        let out = std::fs::symlink_metadata(dir.path("out")).unwrap();
        assert!(out.file_type().is_file(), "the link was replaced");
        assert_eq!(std::fs::read(dir.path("out")).unwrap(), b"mine");
        assert_eq!(dir.names().len(), 64 + 2, "no temp file left");
    }

    #[test]
    fn devices_fifos_sockets_and_directories_are_refused() {
        let dir = Dir::new();
        let null = dir.path("mynull");
        mknod(&null, libc::S_IFCHR | 0o666, libc::makedev(1, 3));
        let fifo = dir.path("fifo");
        mknod(&fifo, libc::S_IFIFO | 0o600, 0);
        let sock = dir.path("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        for (path, kind) in [
            (&null, "a character device"),
            (&fifo, "a FIFO"),
            (&sock, "a socket"),
            (&dir.0.path().to_path_buf(), "a directory"),
        ] {
            let err = write_atomic(path, b"x").unwrap_err().to_string();
            assert!(err.contains(&format!("it is {kind}")), "{err}");
        }
        let meta = std::fs::symlink_metadata(&null).unwrap();
        assert!(meta.file_type().is_char_device(), "mynull still a device");
        assert_eq!(meta.rdev(), libc::makedev(1, 3));
        assert!(
            std::fs::symlink_metadata(&fifo)
                .unwrap()
                .file_type()
                .is_fifo()
        );
        assert_eq!(
            dir.names(),
            ["fifo", "mynull", "sock"],
            "nothing else created"
        );
    }

    /// Sets the umask to `mask` for the life of the guard.
    struct Umask(libc::mode_t);

    impl Umask {
        fn set(mask: libc::mode_t) -> Umask {
            // SAFETY: umask has no preconditions.
            Umask(unsafe { libc::umask(mask) })
        }
    }

    impl Drop for Umask {
        fn drop(&mut self) {
            // SAFETY: as above.
            unsafe { libc::umask(self.0) };
        }
    }

    #[test]
    fn files_are_the_owners_alone_whatever_was_there_and_whatever_the_umask() {
        let dir = Dir::new();
        // A file another user planted at the destination, open to all: its owner and mode do
        // not carry over (its owner could otherwise rewrite what phasebox wrote).
        let dest = dir.path("planted.json");
        std::fs::write(&dest, b"old").unwrap();
        std::fs::set_permissions(&dest, Permissions::from_mode(0o666)).unwrap();
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        if me == 0 {
            std::os::unix::fs::chown(&dest, Some(65534), Some(65534)).unwrap();
        }
        write_atomic(&dest, b"new").unwrap();
        let meta = std::fs::metadata(&dest).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o600);
        assert_eq!(meta.uid(), me);
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        // A new file under umask 0 (which would leave 0666): still 0600. (Only a permissive
        // umask is tried: tests run in parallel, and a strict one could deny another test's
        // files to a user who is not root.)
        let _umask = Umask::set(0);
        let fresh = dir.path("fresh.json");
        let mut f = AtomicFile::create(&fresh).unwrap();
        // The partial file is no one else's to read either.
        assert_eq!(std::fs::metadata(&f.temp).unwrap().mode() & 0o777, 0o600);
        f.file().write_all(b"{}").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::metadata(&fresh).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_temporary_file_removed_meanwhile_loses_nothing() {
        let dir = Dir::new();
        let dest = dir.path("trace");
        let mut f = AtomicFile::create(&dest).unwrap();
        f.file().write_all(b"first half, ").unwrap();
        // A cleaner of temporary directories removes it; another file takes its name.
        let temp = f.temp.clone();
        std::fs::remove_file(&temp).unwrap();
        std::fs::write(&temp, b"someone else's").unwrap();
        f.file().write_all(b"second half").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"first half, second half");
        assert_eq!(std::fs::read(&temp).unwrap(), b"someone else's");
        // Dropped uncommitted after the same: the other file stays.
        let mut f = AtomicFile::create(&dest).unwrap();
        let temp2 = f.temp.clone();
        std::fs::remove_file(&temp2).unwrap();
        std::fs::write(&temp2, b"theirs").unwrap();
        f.file().write_all(b"x").unwrap();
        drop(f);
        assert_eq!(std::fs::read(&temp2).unwrap(), b"theirs");
        assert_eq!(std::fs::read(&dest).unwrap(), b"first half, second half");
    }

    #[test]
    fn check_leaves_nothing_behind() {
        let dir = Dir::new();
        AtomicFile::check(&dir.path("p.json")).unwrap();
        assert!(dir.names().is_empty(), "{:?}", dir.names());
        let e = AtomicFile::check(&dir.path("none/p.json")).unwrap_err();
        assert!(e.to_string().starts_with("cannot write "), "{e}");
    }

    #[test]
    fn leftovers_of_a_killed_run_are_removed_and_no_others() {
        let dir = Dir::new();
        // A process that is gone: a child that has been reaped.
        let mut child = std::process::Command::new("/bin/true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let live = std::process::id();
        let r = "abcdefABCDEF";
        let names = [
            format!(".out.json.phasebox-{dead}-{r}"), // ours, its maker gone: removed
            format!(".out.json.phasebox-1-{r}"),      // its maker alive (init): kept
            format!(".other.json.phasebox-{dead}-{r}"), // another destination: kept
            format!(".out.json.phasebox-{dead}-short"), // not a name phasebox makes: kept
            "out.json.keep".to_string(),
        ];
        for n in &names {
            std::fs::write(dir.path(n), b"").unwrap();
        }
        let mut f = AtomicFile::create(&dir.path("out.json")).unwrap();
        f.file().write_all(b"x").unwrap();
        f.commit().unwrap();
        let mut want: Vec<String> = names[1..].to_vec();
        want.push("out.json".into());
        want.sort();
        assert_eq!(dir.names(), want);
        assert!(!process_gone(live));
    }
}
