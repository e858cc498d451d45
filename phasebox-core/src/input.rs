//! Reading the files phasebox is given (profiles, policies, rule files, scenario files, trace
//! files, manifests): every one goes through here. Only a regular file of a bounded size is
//! read, so a FIFO never hangs a command and /dev/zero never fills the memory.
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::atomic_file::{file_error, special_kind};

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

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

fn too_large(path: &Path, kind: Kind, size: Option<u64>) -> anyhow::Error {
    let size = size.map_or("more".to_string(), |s| format!("{} ({s} bytes),", mib(s)));
    anyhow::anyhow!(
        "cannot read {}: it has {size} and phasebox reads at most {} in {}",
        path.display(),
        mib(kind.max_bytes),
        kind.name
    )
}

/// Opens `path` for reading: a regular file of at most `kind.max_bytes`, which the reader
/// never reads past (a file that grows meanwhile is cut there).
pub fn open(path: &Path, kind: Kind) -> anyhow::Result<io::Take<File>> {
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
                None => file_error("read", path, &e),
            }
        })?;
    let meta = file.metadata().map_err(|e| file_error("read", path, &e))?;
    if let Some(what) = special_kind(&meta) {
        return Err(not_regular(path, what));
    }
    if meta.len() > kind.max_bytes {
        return Err(too_large(path, kind, Some(meta.len())));
    }
    Ok(file.take(kind.max_bytes))
}

fn not_regular(path: &Path, what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot read {}: it is {what}, and phasebox reads regular files only",
        path.display()
    )
}

/// Reads a whole text file: a regular file of at most `kind.max_bytes`, in UTF-8.
pub fn read_text(path: &Path, kind: Kind) -> anyhow::Result<String> {
    let mut r = open(path, kind)?;
    // One byte more than allowed tells a file that grew past the limit (or a /proc file,
    // whose size says 0) from one that ends at it.
    r.set_limit(kind.max_bytes + 1);
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes)
        .map_err(|e| file_error("read", path, &e))?;
    if bytes.len() as u64 > kind.max_bytes {
        return Err(too_large(path, kind, None));
    }
    String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("cannot read {}: it is not UTF-8 text", path.display()))
}

/// A TOML error in one line: `file:line:column: message`.
pub fn toml_error(text: &str, origin: &str, err: &toml::de::Error) -> anyhow::Error {
    // The message may carry the serde path on further lines; the first says what is wrong.
    let msg = err
        .message()
        .lines()
        .next()
        .unwrap_or("malformed TOML")
        .trim();
    let Some(start) = err.span().map(|s| s.start.min(text.len())) else {
        return anyhow::anyhow!("{origin}: {msg}");
    };
    let before = text.get(..start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    anyhow::anyhow!("{origin}:{line}:{column}: {msg}")
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
