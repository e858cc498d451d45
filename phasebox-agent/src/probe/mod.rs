//! The only module that knows aya: loads the kernel programs, sets map sizes, attaches, and
//! reads and writes the maps. Everything else sees records, counters and losses.
mod error;
mod events;
mod load;
pub mod preflight;
pub mod stats;
pub mod tracefs;

use std::collections::BTreeSet;

use aya::{
    Ebpf,
    maps::{Array, HashMap, MapData, PerCpuArray, PerCpuHashMap},
};
use phasebox_common::{
    ALLOWED_WORDS, COMM_LEN, CountKey, Counts, MAX_MARKER_SETS, MAX_SYSCALLS, SetRequest,
    drop_slot, names,
};
use phasebox_core::summary::Losses;

pub use error::ProbeError;
pub use events::EventStream;

/// Ring-buffer sizes accepted by `--ring-buffer`.
pub const MIN_RING_BYTES: u64 = 4096;
pub const MAX_RING_BYTES: u64 = 1 << 30;

/// How to load the programs.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProbeOptions {
    /// Ring-buffer size in bytes: a power of two, at least a page.
    pub ring_bytes: u32,
    /// Send a record per syscall (the timeline), not only counters, segment openers, first
    /// uses and process records.
    pub stream: bool,
    /// Send path arguments (phase markers, profiles and trace files use them).
    pub paths: bool,
    /// Count failed calls (attaches the exit program; stream mode always does).
    pub errors: bool,
    /// Kill processes that call outside their allowed set (monitor mode).
    pub kill: bool,
    /// Track any process that executes a program with this comm, from its execve on.
    pub exec_comm: Option<[u8; COMM_LEN]>,
    /// Track any process that executes a program in this pid namespace (device, inode).
    pub pidns: Option<(u64, u64)>,
}

/// Checks a `--ring-buffer` size.
pub fn check_ring_bytes(bytes: u64) -> Result<u32, ProbeError> {
    if !bytes.is_power_of_two() {
        return Err(ProbeError::RingNotPowerOfTwo(bytes));
    }
    if bytes < MIN_RING_BYTES {
        return Err(ProbeError::RingTooSmall(bytes));
    }
    if bytes > MAX_RING_BYTES {
        return Err(ProbeError::RingTooLarge(bytes));
    }
    Ok(bytes as u32)
}

/// Run time and runs of one kernel program, and its size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramStats {
    pub name: &'static str,
    pub run_time: std::time::Duration,
    pub runs: u64,
    /// Instructions after verification, and bytes of machine code.
    pub xlated_bytes: u32,
    pub jited_bytes: u32,
}

/// The empty program, attached while this lives.
pub struct Floor {
    _ebpf: Ebpf,
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.detach();
    }
}

/// Loaded and attached kernel programs with their maps.
pub struct Probe {
    // Keeps programs and links alive; dropping it detaches everything.
    ebpf: Ebpf,
    /// The attachments, detached together when the probe goes.
    links: Vec<load::Attached>,
    await_exec: Array<MapData, u32>,
    /// PB_USER_BITS and the agent's copy of it (the agent is its only writer).
    user_bits: Array<MapData, u64>,
    user_words: Vec<u64>,
    counts: PerCpuHashMap<MapData, CountKey, Counts>,
    markers: Array<MapData, u8>,
    set_requests: HashMap<MapData, u32, SetRequest>,
    allowed: HashMap<MapData, u32, [u64; ALLOWED_WORDS]>,
    drops: PerCpuArray<MapData, u64>,
}

fn take<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, ProbeError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or(ProbeError::Missing { what: "map", name })?;
    T::try_from(map).map_err(ProbeError::map("open", name))
}

impl Probe {
    /// Checks privileges, mounts tracefs if needed, loads and attaches the programs `opts`
    /// needs. Returns the probe and the stream the records arrive on.
    pub fn load(opts: ProbeOptions) -> Result<(Probe, EventStream), ProbeError> {
        let (mut ebpf, links) = load::load(&opts)?;
        let ring = take(&mut ebpf, names::EVENTS)?;
        let probe = Probe {
            await_exec: take(&mut ebpf, names::AWAIT)?,
            user_bits: take(&mut ebpf, names::USER_BITS)?,
            user_words: vec![0; (load::pid_max() / 64 + 1) as usize],
            counts: take(&mut ebpf, names::COUNTS)?,
            markers: take(&mut ebpf, names::MARKERS)?,
            set_requests: take(&mut ebpf, names::SET_REQUESTS)?,
            allowed: take(&mut ebpf, names::ALLOWED)?,
            drops: take(&mut ebpf, names::DROPS)?,
            ebpf,
            links,
        };
        Ok((probe, EventStream::new(ring)))
    }

    /// Loads only one floor program on raw_syscalls/sys_enter (the cost benchmark's floor:
    /// `names::PROG_FLOOR`, `PROG_FLOOR_PID` or `PROG_FLOOR_BIT`).
    pub fn load_floor(program: &'static str) -> Result<Floor, ProbeError> {
        load::load_floor(program).map(|ebpf| Floor { _ebpf: ebpf })
    }

    /// Starts tracing `tgid` and the children it forks from now on.
    pub fn track(&mut self, tgid: u32) -> Result<(), ProbeError> {
        self.set_user_bit(tgid, true)
    }

    /// Starts tracing `tgid` at its next execve: its calls before are the launcher's.
    pub fn track_from_exec(&mut self, tgid: u32) -> Result<(), ProbeError> {
        self.await_exec
            .set(0, tgid, 0)
            .map_err(ProbeError::map("mark the launched pid in", names::AWAIT))?;
        self.set_user_bit(tgid, true)
    }

    /// Stops tracing `tgid` (a process that is gone) and drops what the agent asked for it.
    pub fn untrack(&mut self, tgid: u32) {
        let _ = self.set_user_bit(tgid, false);
        let _ = self.set_requests.remove(&tgid);
        let _ = self.allowed.remove(&tgid);
    }

    fn set_user_bit(&mut self, pid: u32, on: bool) -> Result<(), ProbeError> {
        let (word, mask) = ((pid / 64) as usize, 1u64 << (pid % 64));
        let w = self
            .user_words
            .get_mut(word)
            .ok_or(ProbeError::PidTooLarge(pid))?;
        let old = *w;
        if on {
            *w |= mask
        } else {
            *w &= !mask
        }
        if *w == old {
            return Ok(());
        }
        self.user_bits
            .set(word as u32, *w, 0)
            .map_err(ProbeError::map("update", names::USER_BITS))
    }

    /// Writes marker set `set` (its syscall slots; see `phase::markers`).
    pub fn set_markers(&mut self, set: u32, slots: &BTreeSet<u32>) -> Result<(), ProbeError> {
        if set >= MAX_MARKER_SETS {
            return Ok(());
        }
        for &slot in slots.iter().filter(|&&s| s < MAX_SYSCALLS) {
            self.markers
                .set(set * MAX_SYSCALLS + slot, 1, 0)
                .map_err(ProbeError::map("fill", names::MARKERS))?;
        }
        Ok(())
    }

    /// Asks the kernel to use marker set `set` for process `tgid` (`instance`) from its next
    /// marker candidate on, if it still runs the program it ran after `execs` execs.
    pub fn request_markers(
        &mut self,
        tgid: u32,
        instance: u32,
        set: u32,
        execs: u32,
    ) -> Result<(), ProbeError> {
        let req = SetRequest {
            marker_set: set,
            execs,
            instance,
            _pad: 0,
        };
        self.set_requests
            .insert(tgid, req, 0)
            .map_err(ProbeError::map("update", names::SET_REQUESTS))
    }

    /// Monitor mode with kill: the syscalls `tgid` may make from now on.
    pub fn set_allowed(&mut self, tgid: u32, bits: [u64; ALLOWED_WORDS]) -> Result<(), ProbeError> {
        self.allowed
            .insert(tgid, bits, 0)
            .map_err(ProbeError::map("update", names::ALLOWED))
    }

    fn drop_slot(&self, slot: u32) -> Result<u64, ProbeError> {
        Ok(self
            .drops
            .get(&slot, 0)
            .map_err(ProbeError::map("read", names::DROPS))?
            .iter()
            .sum())
    }

    /// Processes the kernel killed for a syscall outside their allowed set.
    pub fn kills(&self) -> Result<u64, ProbeError> {
        self.drop_slot(drop_slot::KILLED)
    }

    /// What the kernel lost so far, summed over CPUs.
    pub fn losses(&self) -> Result<Losses, ProbeError> {
        Ok(Losses {
            ringbuf_full: self.drop_slot(drop_slot::RINGBUF)?,
            counter_map_full: self.drop_slot(drop_slot::COUNTS)?,
            process_map_full: self.drop_slot(drop_slot::PROCS)?,
        })
    }

    /// Run time, runs and size of each attached program. Run time and runs grow only while
    /// BPF statistics are on (see `stats`).
    pub fn run_stats(&self) -> Vec<ProgramStats> {
        [
            names::PROG_SYS_ENTER,
            names::PROG_SYS_EXIT,
            names::PROG_FORK,
            names::PROG_EXEC,
            names::PROG_EXIT,
        ]
        .into_iter()
        .filter_map(|name| {
            let info = self.ebpf.program(name)?.info().ok()?;
            Some(ProgramStats {
                name,
                run_time: info.run_time(),
                runs: info.run_count(),
                xlated_bytes: info.size_translated().unwrap_or(0),
                jited_bytes: info.size_jitted(),
            })
        })
        .collect()
    }

    /// The exact per-(process, segment, syscall) counters, summed over CPUs.
    pub fn counts(&self) -> Result<Vec<(CountKey, Counts)>, ProbeError> {
        let mut out = Vec::new();
        for item in self.counts.iter() {
            let (key, per_cpu) = item.map_err(ProbeError::map("read", names::COUNTS))?;
            let mut sum = Counts::default();
            for c in per_cpu.iter() {
                sum.calls += c.calls;
                sum.errors += c.errors;
            }
            out.push((key, sum));
        }
        Ok(out)
    }

    /// Detaches every program now (they stay loaded until the probe is dropped).
    pub fn detach(&mut self) {
        load::detach_all(&mut self.ebpf, std::mem::take(&mut self.links));
    }

    /// Deletes counters read for the last time (their processes have exited).
    pub fn delete_counts(&mut self, keys: &[CountKey]) {
        for k in keys {
            let _ = self.counts.remove(k);
        }
    }
}
