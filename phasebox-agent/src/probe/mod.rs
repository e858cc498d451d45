//! The only module that knows aya: loads the kernel programs, sets map sizes, attaches, and
//! reads and writes the maps. Everything else sees records, counters and losses.
mod batch;
mod error;
mod events;
mod held;
mod load;
mod mapped;
pub mod preflight;
mod slots;
pub mod stats;
mod threads;
pub mod tracefs;

use std::collections::BTreeSet;

use aya::{
    Ebpf,
    maps::{Array, HashMap, MapData, PerCpuArray},
};
use phasebox_common::{
    ALLOWED_WORDS, Allowed, COMM_LEN, CountKey, Counts, MAX_MARKER_SETS, MAX_SYSCALLS, ProcState,
    Scope, SetRequest, Verdict, drop_slot, names, proc_flags, stat_slot,
};
use phasebox_core::summary::Losses;

pub use error::ProbeError;
pub use events::{EventStream, Took};

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
    /// Count failed calls (attaches the exit program; stream mode does unless `entry_only`).
    pub errors: bool,
    /// In stream mode, send each call at its entry, without return value or duration: no
    /// exit program.
    pub entry_only: bool,
    /// Kill processes that call outside their allowed set (monitor mode).
    pub kill: bool,
    /// Track any process that executes a program with this comm, from its execve on.
    pub exec_comm: Option<[u8; COMM_LEN]>,
    /// Notice calls a seccomp filter denied before the enter tracepoint (the exit program is
    /// attached once a traced process runs under a filter: [`Probe::watch_filtered`]).
    pub filtered: bool,
    /// Record the "kind" arguments of the calls `phasebox_core::call_args` lists.
    pub args: bool,
    /// In stream mode, one record per call only for these syscalls (a bit per number below
    /// MAX_SYSCALLS: `-e trace=`); the others are counted as in summary mode.
    pub shown: Option<[u64; ALLOWED_WORDS]>,
    /// In stream mode, let each thread send its calls a few at a time (fewer ring-buffer
    /// reservations): for sessions read at their end, where a thread's last calls may wait
    /// in the kernel until then ([`Probe::take_held_calls`]), not for live views.
    pub batch: bool,
    /// The tids whose pending calls live in an array, below this (none: pid_max, at most
    /// `PENDING_BY_TID_MAX`); the others' in a hash map. Set only to test the hash map's path.
    pub pending_by_tid_max: Option<u32>,
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
    counts: HashMap<MapData, CountKey, Counts>,
    markers: Array<MapData, u8>,
    set_requests: HashMap<MapData, u32, SetRequest>,
    allowed: HashMap<MapData, u32, Allowed>,
    procs: HashMap<MapData, u32, ProcState>,
    /// The process slots' state and counters, mapped into memory.
    slots: slots::Slots,
    /// The thread cache, where the kernel programs use it.
    threads: Option<threads::ThreadCache>,
    /// The calls threads hold in their batches, where they batch.
    held: Option<held::HeldCalls>,
    verdicts: HashMap<MapData, u32, Verdict>,
    scope: Array<MapData, Scope>,
    drops: PerCpuArray<MapData, u64>,
    stats: PerCpuArray<MapData, u64>,
    /// Whether the exit program is attached.
    exit_attached: bool,
    /// Whether failed calls are counted (the exit program attached from the start).
    counts_errors: bool,
    /// Whether the programs were loaded to notice filtered calls (`ProbeOptions::filtered`).
    filtered: bool,
    /// Updates of agent-written maps that failed because a map was full.
    map_full: MapFull,
}

/// Updates of the agent-written maps refused because the map was full: each is a narrower
/// marker set, a kill set or a verdict the kernel did not get (counted, never fatal).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapFull {
    pub set_requests: u64,
    pub allowed: u64,
    pub verdicts: u64,
}

/// Slot `slot` of a per-CPU counter array, summed over CPUs.
fn per_cpu_sum(
    map: &PerCpuArray<MapData, u64>,
    slot: u32,
    name: &'static str,
) -> Result<u64, ProbeError> {
    Ok(map
        .get(&slot, 0)
        .map_err(ProbeError::map("read", name))?
        .iter()
        .sum())
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

/// A map as it is (to be mapped into memory).
fn take_raw(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, ProbeError> {
    ebpf.take_map(name)
        .ok_or(ProbeError::Missing { what: "map", name })
}

impl Probe {
    /// Checks privileges, mounts tracefs if needed, loads and attaches the programs `opts`
    /// needs. Returns the probe and the stream the records arrive on.
    pub fn load(opts: ProbeOptions) -> Result<(Probe, EventStream), ProbeError> {
        let (mut ebpf, links, thread_cache) = load::load(&opts)?;
        let ring = take(&mut ebpf, names::EVENTS)?;
        let threads = if thread_cache {
            Some(threads::ThreadCache::new(take_raw(
                &mut ebpf,
                names::THREADS,
            )?)?)
        } else {
            None
        };
        if let Some(t) = &threads {
            // Every program is attached: from now on a thread's exit clears its entry.
            t.invalidate();
        }
        let held = match load::batches_by_tid(&opts) {
            1 => None,
            n => Some(held::HeldCalls::new(mapped::Mapped::map(
                take_raw(&mut ebpf, names::BATCHES)?,
                n,
                names::BATCHES,
            )?)),
        };
        let probe = Probe {
            held,
            await_exec: take(&mut ebpf, names::AWAIT)?,
            user_bits: take(&mut ebpf, names::USER_BITS)?,
            user_words: vec![0; (load::pid_max() / 64 + 1) as usize],
            counts: take(&mut ebpf, names::COUNTS)?,
            markers: take(&mut ebpf, names::MARKERS)?,
            set_requests: take(&mut ebpf, names::SET_REQUESTS)?,
            allowed: take(&mut ebpf, names::ALLOWED)?,
            procs: take(&mut ebpf, names::PROCS)?,
            slots: slots::Slots::new(
                take_raw(&mut ebpf, names::SLOTS)?,
                take_raw(&mut ebpf, names::SLOT_COUNTS)?,
            )?,
            threads,
            verdicts: take(&mut ebpf, names::VERDICTS)?,
            scope: take(&mut ebpf, names::SCOPE)?,
            drops: take(&mut ebpf, names::DROPS)?,
            stats: take(&mut ebpf, names::STATS)?,
            exit_attached: load::needs_exit(&opts),
            counts_errors: load::needs_exit(&opts),
            filtered: opts.filtered,
            map_full: MapFull::default(),
            ebpf,
            links,
        };
        Ok((probe, EventStream::new(ring)))
    }

    /// Loads only one floor program on raw_syscalls/sys_enter (the cost benchmark's floor:
    /// `names::PROG_FLOOR`, `PROG_FLOOR_PID` or `PROG_FLOOR_BIT`), and with `exit` the empty
    /// program on raw_syscalls/sys_exit too.
    pub fn load_floor(program: &'static str, exit: bool) -> Result<Floor, ProbeError> {
        load::load_floor(program, exit).map(|ebpf| Floor { _ebpf: ebpf })
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
    /// The kernel kept a `GONE` entry for a pid with the agent's bit, so that no other process
    /// taking the pid was traced meanwhile: with the bit cleared, it goes too.
    pub fn untrack(&mut self, tgid: u32) {
        let _ = self.set_user_bit(tgid, false);
        let _ = self.set_requests.remove(&tgid);
        let _ = self.allowed.remove(&tgid);
        let _ = self.verdicts.remove(&tgid);
        if let Ok(st) = self.procs.get(&tgid, 0)
            && st.flags & proc_flags::GONE != 0
        {
            let _ = self.procs.remove(&tgid);
        }
    }

    /// Ends the process slot of `tgid` (instance `instance`, 0 if unknown), which the agent
    /// found gone in /proc: see `Slots::release`.
    pub fn release_slot(&mut self, tgid: u32, instance: u32) {
        self.slots.release(tgid, instance);
    }

    /// Whether the agent's own bit is set for `tgid` (attached or launched).
    pub fn user_tracked(&self, tgid: u32) -> bool {
        let (word, mask) = ((tgid / 64) as usize, 1u64 << (tgid % 64));
        self.user_words.get(word).is_some_and(|w| w & mask != 0)
    }

    /// Which untracked processes the kernel starts tracking at their exec.
    pub fn set_scope(&mut self, scope: Scope) -> Result<(), ProbeError> {
        self.scope
            .set(0, scope, 0)
            .map_err(ProbeError::map("update", names::SCOPE))
    }

    /// The agent's verdict on a process found at its exec: confirmed (`accept`), or untracked
    /// by the kernel at its next call. A full map is counted; the process then stays
    /// unconfirmed (counted, never enforced) and the agent ignores it.
    pub fn set_verdict(&mut self, tgid: u32, instance: u32, accept: bool) {
        let v = Verdict {
            instance,
            accept: u32::from(accept),
        };
        if self.verdicts.insert(tgid, v, 0).is_err() {
            self.map_full.verdicts += 1;
        }
    }

    /// Attaches the exit program, if it is not, to notice calls a seccomp filter denies
    /// (`ProbeOptions::filtered`). Every process on the host pays for it from now on.
    pub fn watch_filtered(&mut self) -> Result<bool, ProbeError> {
        if self.exit_attached || !self.filtered {
            return Ok(false);
        }
        let link = load::attach_raw(&mut self.ebpf, names::PROG_SYS_EXIT, "sys_exit")?;
        self.links.push(link);
        self.exit_attached = true;
        Ok(true)
    }

    /// Whether failed calls are counted (not in summary mode without `errors`, nor with
    /// `entry_only`).
    pub fn counts_errors(&self) -> bool {
        self.counts_errors
    }

    /// Whether [`Probe::watch_filtered`] would attach the exit program now.
    pub fn may_watch_filtered(&self) -> bool {
        self.filtered && !self.exit_attached
    }

    /// Updates of agent-written maps refused because they were full.
    pub fn map_full(&self) -> MapFull {
        self.map_full
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
            .map_err(ProbeError::map("update", names::USER_BITS))?;
        if on && let Some(t) = &self.threads {
            // The process's threads may be in the cache as untracked.
            t.invalidate();
        }
        Ok(())
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
        // A full map only means more segments for this process, never a wrong phase.
        if self.set_requests.insert(tgid, req, 0).is_err() {
            self.map_full.set_requests += 1;
        }
        Ok(())
    }

    /// Monitor mode with kill: the syscalls process `tgid` (this `instance` only) may make
    /// from now on. Returns false when the map was full (the process is then not enforced).
    pub fn set_allowed(&mut self, tgid: u32, instance: u32, bits: [u64; ALLOWED_WORDS]) -> bool {
        let value = Allowed {
            instance,
            _pad: 0,
            bits,
        };
        let ok = self.allowed.insert(tgid, value, 0).is_ok();
        if !ok {
            self.map_full.allowed += 1;
        }
        ok
    }

    fn drop_slot(&self, slot: u32) -> Result<u64, ProbeError> {
        per_cpu_sum(&self.drops, slot, names::DROPS)
    }

    /// Processes the kernel killed for a syscall outside their allowed set.
    pub fn kills(&self) -> Result<u64, ProbeError> {
        per_cpu_sum(&self.stats, stat_slot::KILLED, names::STATS)
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
            names::PROG_SYS_ENTER_BTF,
            names::PROG_SYS_EXIT,
            names::PROG_FORK,
            names::PROG_EXEC,
            names::PROG_EXIT,
        ]
        .into_iter()
        .filter_map(|name| {
            let info = self.ebpf.program(name)?.info().ok()?;
            Some(ProgramStats {
                // The BTF-typed sys_enter program does the raw one's work: one name for both.
                name: if name == names::PROG_SYS_ENTER_BTF {
                    names::PROG_SYS_ENTER
                } else {
                    name
                },
                run_time: info.run_time(),
                runs: info.run_count(),
                xlated_bytes: info.size_translated().unwrap_or(0),
                jited_bytes: info.size_jitted(),
            })
        })
        .collect()
    }

    /// The exact per-(process, segment, syscall) counters: the hash map's and the process
    /// slots' (whose final counters are cleared and kept here until deleted).
    pub fn counts(&mut self) -> Result<Vec<(CountKey, Counts)>, ProbeError> {
        let mut all: std::collections::HashMap<CountKey, Counts> = match batch::counts(&self.counts)
        {
            Ok(all) => all.into_iter().collect(),
            // A kernel without batch lookups: key by key.
            Err(_) => self
                .counts
                .iter()
                .collect::<Result<_, _>>()
                .map_err(ProbeError::map("read", names::COUNTS))?,
        };
        // After the hash map: a call counts in one place, and the slots are read later.
        self.slots.read(&mut all);
        Ok(all.into_iter().collect())
    }

    /// The calls threads still hold in their batches (none unless `ProbeOptions::batch`),
    /// taken once the syscall programs are detached, so that no thread adds to its batch
    /// meanwhile. Call it at the end, after the last drain: a thread that ends now sends its
    /// batch on the ring buffer too, so the caller drains again and keeps one of each call.
    /// When no thread holds any (the traced threads have all ended: `run`'s usual end), the
    /// programs stay attached until `detach`, and no grace period is waited for.
    pub fn take_held_calls(&mut self) -> Vec<phasebox_common::SyscallRecord> {
        let Some(held) = &self.held else {
            return Vec::new();
        };
        if !held.any() {
            return Vec::new();
        }
        load::detach_syscall_programs(&mut self.ebpf, &mut self.links);
        held.take()
    }

    /// Detaches every program now (they stay loaded until the probe is dropped), once they
    /// are disarmed: the kernel lets go of them some milliseconds after phasebox has ended.
    pub fn detach(&mut self) {
        if self.links.is_empty() {
            return;
        }
        self.disarm();
        load::detach_all(&mut self.ebpf, std::mem::take(&mut self.links));
    }

    /// Makes the programs harmless for the time they stay attached: no kill sets (a monitor
    /// that has ended kills nothing), no thread cache (see `ThreadCache::turn_off`).
    fn disarm(&mut self) {
        let tgids: Vec<u32> = self.allowed.keys().filter_map(Result::ok).collect();
        for tgid in tgids {
            let _ = self.allowed.remove(&tgid);
        }
        if let Some(t) = &self.threads {
            t.turn_off();
        }
    }

    /// Deletes counters read for the last time (their processes have exited).
    pub fn delete_counts(&mut self, keys: &[CountKey]) {
        for k in keys {
            let _ = self.counts.remove(k);
        }
        self.slots.delete(keys);
    }
}
