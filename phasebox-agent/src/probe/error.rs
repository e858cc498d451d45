//! What can go wrong between phasebox and its kernel programs, each said in one sentence.
use aya::{EbpfError, maps::MapError, programs::ProgramError};

/// An error of the probe (loading, attaching, reading and writing the kernel's maps).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// A check made before loading failed (privileges, BTF, tracefs, kernel version).
    #[error("{0}")]
    Preflight(String),
    #[error("the kernel refused to load phasebox's eBPF programs")]
    Load(#[source] EbpfError),
    #[error("the kernel refused program {name}")]
    Program {
        name: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("cannot attach {name} to {tracepoint}")]
    Attach {
        name: &'static str,
        tracepoint: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("the eBPF object has no {what} {name}")]
    Missing {
        what: &'static str,
        name: &'static str,
    },
    #[error("cannot {action} the kernel map {map}")]
    Map {
        action: &'static str,
        map: &'static str,
        #[source]
        source: MapError,
    },
    #[error("cannot map the kernel map {map} into memory")]
    Mmap {
        map: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("pid {0} is above the kernel's pid_max")]
    PidTooLarge(u32),
    #[error("ring buffer size {0} is not a power of two (try 8M)")]
    RingNotPowerOfTwo(u64),
    #[error("ring buffer size {0} is too small: the minimum is {min} bytes", min = super::MIN_RING_BYTES)]
    RingTooSmall(u64),
    #[error("ring buffer size {0} is too large: the maximum is 1G")]
    RingTooLarge(u64),
    #[error("cannot enable BPF run-time statistics")]
    Stats(#[source] aya::sys::SyscallError),
}

impl ProbeError {
    /// A map error, naming the map and what was being done.
    pub fn map(action: &'static str, map: &'static str) -> impl FnOnce(MapError) -> ProbeError {
        move |source| ProbeError::Map {
            action,
            map,
            source,
        }
    }
}
