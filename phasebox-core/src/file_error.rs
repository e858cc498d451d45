//! Errors about one file, said in one sentence that names it: `cannot read /x: it is a
//! directory, and phasebox reads pipes and regular files only`. Every file phasebox reads or writes reports its
//! failures so (`input`, `atomic_file`, trace files, per-phase exports).
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use crate::sysnames::describe_io;

/// Reading or writing a file failed. The message says why, so the error ends its chain.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}: {cause}", path.display())]
pub struct FileError {
    /// What was being done: read, write, write into, sync, create, find.
    pub action: &'static str,
    pub path: PathBuf,
    pub cause: FileCause,
}

/// Why a file could not be read or written.
#[derive(Debug)]
pub enum FileCause {
    /// The system refused (said as the errno's description, without "(os error N)").
    Io(io::Error),
    /// It is no regular file: `what` it is, and the verb of the action ("reads", "writes").
    NotRegular {
        what: &'static str,
        verb: &'static str,
    },
    /// Larger than phasebox reads for its kind (`size` when known).
    TooLarge {
        size: Option<u64>,
        max_bytes: u64,
        kind: &'static str,
    },
    NotUtf8,
    /// A file to be replaced is not a regular one.
    Occupied,
    /// The path ends in no file name (`/`, `..`).
    NoFileName,
}

impl std::fmt::Display for FileCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileCause::Io(e) => f.write_str(&describe_io(e)),
            FileCause::NotRegular { what, verb } => {
                write!(f, "it is {what}, and phasebox {verb} regular files only")
            }
            FileCause::TooLarge {
                size,
                max_bytes,
                kind,
            } => {
                let size = size.map_or("more".to_string(), |s| format!("{} ({s} bytes),", mib(s)));
                write!(
                    f,
                    "it has {size} and phasebox reads at most {} in {kind}",
                    mib(*max_bytes)
                )
            }
            FileCause::NotUtf8 => f.write_str("it is not UTF-8 text"),
            FileCause::Occupied => f.write_str("something other than a regular file is there"),
            FileCause::NoFileName => f.write_str("it names no file"),
        }
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

impl FileError {
    /// `action` on `path` failed for `cause`.
    pub fn new(action: &'static str, path: &Path, cause: FileCause) -> FileError {
        FileError {
            action,
            path: path.to_path_buf(),
            cause,
        }
    }

    /// `action` on `path` failed with the system's error `err`.
    pub fn io(action: &'static str, path: &Path, err: io::Error) -> FileError {
        FileError::new(action, path, FileCause::Io(err))
    }

    /// The error for the system's errors of `action` on `path`, for `map_err`.
    pub fn on<'p>(
        action: &'static str,
        path: &'p Path,
    ) -> impl FnOnce(io::Error) -> FileError + 'p {
        move |err| FileError::io(action, path, err)
    }
}

/// What a file that is not a regular one is, for messages; None for a regular file.
pub fn special_kind(meta: &Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    let kind = if t.is_file() {
        return None;
    } else if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    };
    Some(kind)
}
