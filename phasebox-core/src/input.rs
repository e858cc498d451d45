//! Reading the files phasebox is given (profiles, policies, rule files, scenario files, trace
//! files, manifests): every one goes through here. Only a regular file of a bounded size is
//! read, so a FIFO never hangs a command and /dev/zero never fills the memory.
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

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
        verb: "reads",
    };
    FileError::new("read", path, cause)
}

/// Opens `path` for reading: a regular file of at most `kind.max_bytes`, which the reader
/// never reads past (a file that grows meanwhile is cut there).
pub fn open(path: &Path, kind: Kind) -> Result<io::Take<File>, FileError> {
    // O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever. It changes
    // nothing for a regular file, the only kind read on.
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
    if let Some(what) = special_kind(&meta) {
        return Err(not_regular(path, what));
    }
    if meta.len() > kind.max_bytes {
        return Err(too_large(path, kind, Some(meta.len())));
    }
    Ok(file.take(kind.max_bytes))
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
    fn only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        // No writer: without O_NONBLOCK this would wait forever.
        let e = read_text(&fifo, TEXT).unwrap_err().to_string();
        assert!(e.contains("it is a FIFO"), "{e}");
        let e = read_text(Path::new("/dev/zero"), TEXT)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "cannot read /dev/zero: it is a character device, and phasebox reads regular files only"
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
}
