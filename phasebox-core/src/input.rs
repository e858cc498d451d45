//! Reading the files phasebox is given (profiles, policies, rule files, scenario files, trace
//! files, manifests): every one goes through here. A regular file of a bounded size is read as
//! it is; a pipe (`-` for standard input, `<(…)`, a FIFO) is read once to its end into an
//! unnamed temporary file, bounded the same way, which every later read of the same path in
//! this process reads again (a trace is read twice: footer, then records). Nothing else is read:
//! /dev/zero never fills the memory, and a FIFO with no writer ends at once.
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::file_error::{FileCause, FileError, special_kind};

/// A kind of input file and the largest one phasebox reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    /// What it is, for messages ("a JSON or TOML file").
    pub name: &'static str,
    /// The largest size read, in bytes.
    pub max_bytes: u64,
}

/// Profiles, policies, rule files, scenario files, manifests: far above any real one.
pub const TEXT: Kind = Kind {
    name: "a profile, policy, rule, scenario or manifest file",
    max_bytes: 64 << 20,
};

/// Trace files, read as a stream in bounded memory: the limit bounds how long a read takes.
pub const TRACE: Kind = Kind {
    name: "a trace file",
    max_bytes: 8 << 30,
};

fn too_large(path: &Path, kind: Kind, size: Option<u64>) -> FileError {
    let cause = FileCause::TooLarge {
        size,
        max_bytes: kind.max_bytes,
        kind: kind.name,
    };
    FileError::new("read", path, cause)
}

fn not_regular(path: &Path, what: &'static str) -> FileError {
    let cause = FileCause::NotRegular {
        what,
        verb: "reads pipes and",
    };
    FileError::new("read", path, cause)
}

/// The path that names standard input.
pub const STDIN: &str = "-";

/// How messages name the file at `path`: "standard input" for `-`.
pub fn origin(path: &Path) -> String {
    if path == Path::new(STDIN) {
        "standard input".to_string()
    } else {
        path.display().to_string()
    }
}

/// Opens `path` for reading: a regular file of at most `kind.max_bytes`, which the reader
/// never reads past (a file that grows meanwhile is cut there), or a pipe's whole content.
pub fn open(path: &Path, kind: Kind) -> Result<io::Take<File>, FileError> {
    if path == Path::new(STDIN) {
        return spooled(path, kind, stdin);
    }
    // O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever. It changes
    // nothing for a regular file.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            // A socket cannot be opened at all (ENXIO): say what it is instead.
            match std::fs::metadata(path).ok().as_ref().and_then(special_kind) {
                Some(what) => not_regular(path, what),
                None => FileError::io("read", path, e),
            }
        })?;
    let meta = file.metadata().map_err(FileError::on("read", path))?;
    if meta.file_type().is_fifo() {
        return spooled(path, kind, move || Ok(file));
    }
    if let Some(what) = special_kind(&meta) {
        return Err(not_regular(path, what));
    }
    if meta.len() > kind.max_bytes {
        return Err(too_large(path, kind, Some(meta.len())));
    }
    Ok(file.take(kind.max_bytes))
}

/// Standard input, for reading: refused when it is a terminal (nothing was piped in).
fn stdin() -> Result<File, FileError> {
    let name = Path::new("standard input");
    // SAFETY: isatty on the standard input descriptor.
    if unsafe { libc::isatty(libc::STDIN_FILENO) } == 1 {
        return Err(not_regular(name, "a terminal"));
    }
    let dup = std::os::fd::AsFd::as_fd(&io::stdin())
        .try_clone_to_owned()
        .map_err(FileError::on("read", name))?;
    Ok(File::from(dup))
}

/// Pipes read so far, by the path that named them: their content in unnamed files.
static SPOOLED: Mutex<Option<HashMap<PathBuf, File>>> = Mutex::new(None);

/// The content of the pipe `path` (opened by `source` the first time it is asked for), read to
/// its end into an unnamed temporary file; each call opens that file anew, from its start.
fn spooled(
    path: &Path,
    kind: Kind,
    source: impl FnOnce() -> Result<File, FileError>,
) -> Result<io::Take<File>, FileError> {
    let mut all = SPOOLED.lock().unwrap_or_else(|e| e.into_inner());
    let all = all.get_or_insert_with(HashMap::new);
    if !all.contains_key(path) {
        let copy = spool(path, kind, source()?)?;
        all.insert(path.to_path_buf(), copy);
    }
    let copy = &all[path];
    // A new open file description: its own offset, from the start.
    let again = File::open(format!("/proc/self/fd/{}", copy.as_raw_fd()))
        .map_err(FileError::on("read", path))?;
    Ok(again.take(kind.max_bytes))
}

/// Reads `pipe` to its end (blocking: a writer is there, or it ends at once) into an unnamed
/// temporary file, refusing more than `kind.max_bytes`.
fn spool(path: &Path, kind: Kind, pipe: File) -> Result<File, FileError> {
    // SAFETY: fcntl on a descriptor this process owns; clearing O_NONBLOCK.
    unsafe {
        let fd = pipe.as_raw_fd();
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
    }
    let mut copy = tempfile::tempfile().map_err(FileError::on("read", path))?;
    let copied = io::copy(&mut pipe.take(kind.max_bytes + 1), &mut copy)
        .map_err(FileError::on("read", path))?;
    if copied > kind.max_bytes {
        return Err(too_large(path, kind, None));
    }
    copy.rewind().map_err(FileError::on("read", path))?;
    Ok(copy)
}

/// Reads a whole text file: a regular file of at most `kind.max_bytes`, in UTF-8.
pub fn read_text(path: &Path, kind: Kind) -> Result<String, FileError> {
    let mut r = open(path, kind)?;
    // One byte more than allowed tells a file that grew past the limit (or a /proc file,
    // whose size says 0) from one that ends at it.
    r.set_limit(kind.max_bytes + 1);
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes)
        .map_err(FileError::on("read", path))?;
    if bytes.len() as u64 > kind.max_bytes {
        return Err(too_large(path, kind, None));
    }
    String::from_utf8(bytes).map_err(|_| FileError::new("read", path, FileCause::NotUtf8))
}

/// A TOML file that does not parse, in one line: `file:line:column: message`.
#[derive(Debug, thiserror::Error)]
pub struct TomlError {
    pub origin: String,
    /// Where, when the parser said: line and column, from 1.
    pub at: Option<(usize, usize)>,
    /// What is wrong: the first line of the parser's message.
    pub message: String,
}

impl std::fmt::Display for TomlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.at {
            Some((line, column)) => write!(f, "{}:{line}:{column}: {}", self.origin, self.message),
            None => write!(f, "{}: {}", self.origin, self.message),
        }
    }
}

impl TomlError {
    /// The error `err` met parsing `text`; `origin` names the file.
    pub fn new(text: &str, origin: &str, err: &toml::de::Error) -> TomlError {
        // The message may carry the serde path on further lines; the first says what is wrong.
        let message = err
            .message()
            .lines()
            .next()
            .unwrap_or("malformed TOML")
            .trim()
            .to_string();
        let at = err.span().map(|s| {
            let before = text.get(..s.start.min(text.len())).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            (line, column)
        });
        TomlError {
            origin: origin.to_string(),
            at,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn only_regular_files_and_pipes_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        // No writer: without O_NONBLOCK this would wait forever; it reads as empty.
        assert_eq!(read_text(&fifo, TEXT).unwrap(), "");
        let e = read_text(Path::new("/dev/zero"), TEXT)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "cannot read /dev/zero: it is a character device, and phasebox reads pipes and regular files only"
        );
        let e = read_text(dir.path(), TEXT).unwrap_err().to_string();
        assert!(e.contains("it is a directory"), "{e}");
        let sock = dir.path().join("sock");
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let e = read_text(&sock, TEXT).unwrap_err().to_string();
        assert!(e.contains("it is a socket"), "{e}");
        let e = read_text(&dir.path().join("none"), TEXT)
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("No such file or directory"), "{e}");
    }

    #[test]
    fn sizes_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let small = Kind {
            name: "a test file",
            max_bytes: 8,
        };
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345678").unwrap();
        assert_eq!(read_text(&path, small).unwrap(), "12345678");
        std::fs::write(&path, b"123456789").unwrap();
        let e = read_text(&path, small).unwrap_err().to_string();
        assert!(
            e.contains(
                "it has 0.0 MiB (9 bytes), and phasebox reads at most 0.0 MiB in a test file"
            ),
            "{e}"
        );
        // A sparse file past the limit is refused from its size, without reading it.
        let big = dir.path().join("big");
        File::create(&big)
            .unwrap()
            .set_len(TEXT.max_bytes + 1)
            .unwrap();
        let e = read_text(&big, TEXT).unwrap_err().to_string();
        assert!(e.contains("64.0 MiB"), "{e}");
        // A /proc file says it is empty; what it holds is still bounded.
        assert!(read_text(Path::new("/proc/self/status"), small).is_err());
        assert!(read_text(Path::new("/proc/self/status"), TEXT).is_ok());
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        let e = read_text(&path, TEXT).unwrap_err().to_string();
        assert!(e.contains("not UTF-8"), "{e}");
    }

    #[test]
    fn a_pipe_is_read_whole_once_and_again_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                let mut w = OpenOptions::new().write(true).open(&fifo).unwrap();
                std::io::Write::write_all(&mut w, b"{\"a\": 1}\n").unwrap();
            })
        };
        // The writer may not have opened its end yet: a read before it would end at once.
        let text = loop {
            let t = read_text(&fifo, TEXT).unwrap();
            if !t.is_empty() {
                break t;
            }
            SPOOLED.lock().unwrap().as_mut().unwrap().remove(&fifo);
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        writer.join().unwrap();
        assert_eq!(text, "{\"a\": 1}\n");
        // The writer is gone: a second read gets the same content, from its start.
        assert_eq!(read_text(&fifo, TEXT).unwrap(), text);
        let small = Kind {
            name: "a test file",
            max_bytes: 4,
        };
        let fifo2 = dir.path().join("fifo2");
        mkfifo(&fifo2);
        let w = {
            let fifo2 = fifo2.clone();
            std::thread::spawn(move || {
                let mut w = OpenOptions::new().write(true).open(&fifo2).unwrap();
                let _ = std::io::Write::write_all(&mut w, b"0123456789");
            })
        };
        let e = loop {
            match read_text(&fifo2, small) {
                Ok(t) if t.is_empty() => {
                    SPOOLED.lock().unwrap().as_mut().unwrap().remove(&fifo2);
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => break other.unwrap_err().to_string(),
            }
        };
        w.join().unwrap();
        assert!(e.contains("at most 0.0 MiB in a test file"), "{e}");
    }
}
