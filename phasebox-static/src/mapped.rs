//! A program or library mapped read-only: opened as every input of phasebox is (a regular
//! file of a bounded size, `phasebox_core::input`), its pages read only when the analysis
//! touches them, so a large or sparse file costs the headers and code it holds, not its size.
use std::ffi::c_void;
use std::path::Path;

use phasebox_core::input;
use rustix::mm::{MapFlags, ProtFlags};

use crate::Error;

/// Programs and libraries: far above any real one (chromium is 300 MB), and within what a
/// mapping can hold on every machine phasebox runs on.
pub const PROGRAM: input::Kind = input::Kind {
    name: "a program or library",
    max_bytes: 4 << 30,
};

/// A read-only private mapping of a whole file.
#[derive(Debug)]
pub struct Mapped {
    ptr: *mut c_void,
    len: usize,
}

impl Mapped {
    /// Maps the file at `path`; a file that is not regular, cannot be opened or is larger
    /// than [`PROGRAM`] allows is refused in one sentence.
    pub fn open(path: &Path) -> Result<Mapped, Error> {
        // A missing file keeps its own error: the loader searches on past it.
        if let Err(e) = std::fs::metadata(path)
            && e.kind() == std::io::ErrorKind::NotFound
        {
            return Err(Error::io(path, &e));
        }
        let file = input::open(path, PROGRAM)?.into_inner();
        let len = file.metadata().map_err(|e| Error::io(path, &e))?.len() as usize;
        if len == 0 {
            return Ok(Mapped::empty());
        }
        // SAFETY: a new mapping chosen by the kernel, of the file's whole length; it is never
        // written (PROT_READ) and unmapped only in Drop.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ,
                MapFlags::PRIVATE,
                &file,
                0,
            )
        }
        .map_err(|e| Error::io(path, &e.into()))?;
        Ok(Mapped { ptr, len })
    }

    /// No file: no bytes.
    pub fn empty() -> Mapped {
        Mapped {
            ptr: std::ptr::null_mut(),
            len: 0,
        }
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: the mapping is `len` readable bytes and lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        if self.len != 0 {
            // SAFETY: the mapping made in `open`, unmapped once.
            let _ = unsafe { rustix::mm::munmap(self.ptr, self.len) };
        }
    }
}
