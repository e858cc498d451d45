//! Reads the whole counter map in a few system calls (BPF_MAP_LOOKUP_BATCH, Linux 5.6), where
//! walking it key by key takes two per entry. The map holds an entry per process, segment
//! and syscall, and the agent reads all of it every second: with ten thousand processes that
//! walk alone was most of the agent's CPU time.
use std::io;
use std::os::fd::{AsFd, AsRawFd};

use aya::maps::{HashMap, IterableMap, MapData};
use phasebox_common::{CountKey, Counts};

/// `BPF_MAP_LOOKUP_BATCH` (include/uapi/linux/bpf.h).
const BPF_MAP_LOOKUP_BATCH: libc::c_int = 24;

/// Entries asked for per call.
const CHUNK: usize = 4096;

/// The batch commands' part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Every entry of `map`. Err when the kernel refuses batch lookups (the caller then walks
/// the map).
pub(super) fn counts(
    map: &HashMap<MapData, CountKey, Counts>,
) -> io::Result<Vec<(CountKey, Counts)>> {
    let fd = map.map().fd().as_fd().as_raw_fd();
    let mut keys = vec![CountKey::default(); CHUNK];
    let mut values = vec![Counts::default(); CHUNK];
    // The hash map's position token (a bucket index): none for the first call.
    let (mut token_in, mut token_out) = (None::<u32>, 0u32);
    let mut out = Vec::new();
    loop {
        let mut attr = BatchAttr {
            in_batch: token_in.as_ref().map_or(0, |t| t as *const u32 as u64),
            out_batch: &raw mut token_out as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: CHUNK as u32,
            map_fd: fd as u32,
            ..BatchAttr::default()
        };
        // SAFETY: the attribute points at buffers of CHUNK keys and CHUNK values of the map's
        // key and value types, and at two u32 tokens; the kernel writes no more than `count`
        // entries.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &raw mut attr,
                size_of::<BatchAttr>(),
            )
        };
        let err = (rc < 0).then(io::Error::last_os_error);
        let done = match &err {
            None => false,
            // The last chunk: `count` says how much of it was filled.
            Some(e) if e.raw_os_error() == Some(libc::ENOENT) => true,
            Some(_) => return Err(err.unwrap_or_else(|| io::Error::other("bpf"))),
        };
        let n = attr.count as usize;
        out.extend(keys.iter().copied().zip(values.iter().copied()).take(n));
        if done {
            return Ok(out);
        }
        token_in = Some(token_out);
    }
}
