//! Array maps made `BPF_F_MMAPABLE`, read and written in the agent's own memory (the process
//! slots, the thread cache): no system call per access.
use std::os::fd::{AsFd, AsRawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};

use aya::maps::{Map, MapData};

use super::ProbeError;

/// An array map's values in this process's memory (the map was made `BPF_F_MMAPABLE`).
pub(super) struct Mapped<T> {
    base: NonNull<T>,
    pub(super) len: usize,
    backing: Backing<T>,
}

/// What a `Mapped` is over.
enum Backing<T> {
    /// The map, kept open while it is mapped, and the mapping's length.
    Map(#[allow(dead_code)] MapData, usize),
    /// Memory of this process (the unit tests), kept while it is pointed at.
    #[cfg_attr(not(test), allow(dead_code))]
    Owned(#[allow(dead_code)] Vec<T>),
}

impl<T> Mapped<T> {
    pub(super) fn map(map: Map, len: u32, name: &'static str) -> Result<Mapped<T>, ProbeError> {
        let Map::Array(data) = map else {
            return Err(ProbeError::Missing {
                what: "array",
                name,
            });
        };
        let bytes = (len as usize * size_of::<T>()).next_multiple_of(page_size());
        // SAFETY: a shared mapping of the map's fd, of the size of its values rounded to a
        // page (what the kernel allows for an mmapable array); checked for failure below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                data.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(ProbeError::Mmap {
                map: name,
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(Mapped {
            base: NonNull::new(ptr.cast()).expect("mmap succeeded"),
            len: len as usize,
            backing: Backing::Map(data, bytes),
        })
    }

    #[cfg(test)]
    pub(super) fn zeroed(len: usize) -> Mapped<T>
    where
        T: Default + Clone,
    {
        let mut v = vec![T::default(); len];
        Mapped {
            base: NonNull::new(v.as_mut_ptr()).expect("a vector's buffer"),
            len,
            backing: Backing::Owned(v),
        }
    }

    pub(super) fn at(&self, i: usize) -> *mut T {
        assert!(i < self.len);
        // SAFETY: within the mapping (checked above).
        unsafe { self.base.as_ptr().add(i) }
    }
}

impl<T> Drop for Mapped<T> {
    fn drop(&mut self) {
        if let Backing::Map(_, bytes) = self.backing {
            // SAFETY: the mapping made in `map`, unmapped once.
            unsafe { libc::munmap(self.base.as_ptr().cast(), bytes) };
        }
    }
}

fn page_size() -> usize {
    // SAFETY: a query without side effects.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).unwrap_or(4096)
}

/// A u32 the kernel changes, read and written atomically.
///
/// SAFETY (of callers): `p` points into a live mapping, aligned for its type.
pub(super) unsafe fn u32_at<'a>(p: *mut u32) -> &'a AtomicU32 {
    // SAFETY: see above.
    unsafe { AtomicU32::from_ptr(p) }
}

/// A u64 the kernel changes, read and written atomically.
pub(super) unsafe fn u64_at<'a>(p: *mut u64) -> &'a AtomicU64 {
    // SAFETY: as for `u32_at`.
    unsafe { AtomicU64::from_ptr(p) }
}
