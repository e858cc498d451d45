//! Reads the whole counter map in a few system calls (BPF_MAP_LOOKUP_BATCH, Linux 5.6), where
//! walking it key by key takes two per entry. The map holds an entry per process, segment
//! and syscall, and the agent reads all of it every second: with ten thousand processes that
//! walk alone was most of the agent's CPU time.
use std::io;
use std::os::fd::{AsFd, AsRawFd};

use aya::maps::{IterableMap, MapData, PerCpuHashMap};
use phasebox_common::{CountKey, Counts};

/// `BPF_MAP_LOOKUP_BATCH` (include/uapi/linux/bpf.h).
const BPF_MAP_LOOKUP_BATCH: libc::c_int = 24;

// The per-CPU values are read as two u64 words: calls, then errors.
const _: () = assert!(size_of::<Counts>() == 16);

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

/// Every entry of `map`, its per-CPU values summed. Err when the kernel refuses batch
/// lookups (the caller then walks the map).
pub(super) fn counts(
    map: &PerCpuHashMap<MapData, CountKey, Counts>,
    cpus: usize,
) -> io::Result<Vec<(CountKey, Counts)>> {
    let fd = map.map().fd().as_fd().as_raw_fd();
    // A per-CPU value is rounded up to 8 bytes and repeated for every possible CPU.
    let per_cpu = size_of::<Counts>().div_ceil(8) * 8;
    let mut keys = vec![CountKey::default(); CHUNK];
    let mut values = vec![0u8; CHUNK * per_cpu * cpus];
    // The hash map's position token: a bucket index.
    let (mut token_in, mut token_out) = (0u32, 0u32);
    let mut out = Vec::new();
    let mut first = true;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { &raw const token_in as u64 },
            out_batch: &raw mut token_out as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: CHUNK as u32,
            map_fd: fd as u32,
            ..BatchAttr::default()
        };
        // SAFETY: the attribute points at buffers of CHUNK keys and CHUNK per-CPU values,
        // the sizes the map's key and value have, and at two u32 tokens; the kernel writes
        // no more than `count` entries.
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
        for (i, key) in keys.iter().take(attr.count as usize).enumerate() {
            let mut sum = Counts::default();
            for cpu in 0..cpus {
                let at = (i * cpus + cpu) * per_cpu;
                let word = |o: usize| {
                    u64::from_ne_bytes(values[at + o..at + o + 8].try_into().unwrap_or_default())
                };
                sum.calls += word(0);
                sum.errors += word(8);
            }
            out.push((*key, sum));
        }
        if done {
            return Ok(out);
        }
        token_in = token_out;
        first = false;
    }
}
