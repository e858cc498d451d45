//! The only module that knows aya: loads the kernel programs, sets map sizes, attaches, and
//! reads the maps. Everything else sees events, counters and losses.
pub mod preflight;
pub mod tracefs;

use std::collections::BTreeMap;

use anyhow::Context as _;
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues, RingBuf},
    programs::{RawTracePoint, TracePoint},
};
use phasebox_common::{
    ALLOWED_WORDS, Config, CountKey, Counts, EPOCH_NO_MARKERS, MAX_SYSCALLS, NO_FIELD, drop_slot,
    mode, names,
};

use phasebox_core::{summary::Losses, sysnames};

/// The kernel object built by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/phasebox"));

/// Turns on the kernel's BPF run-time statistics while the returned fd lives.
pub fn enable_run_time_stats() -> anyhow::Result<std::os::fd::OwnedFd> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .map_err(|e| anyhow::anyhow!("cannot enable BPF run-time statistics: {e}"))
}

/// Ring-buffer sizes accepted by `--ring-buffer`.
pub const MIN_RING_BYTES: u64 = 4096;
pub const MAX_RING_BYTES: u64 = 1 << 30;

/// How to load the programs.
#[derive(Clone, Copy, Debug)]
pub struct ProbeOptions {
    /// Ring-buffer size in bytes: a power of two, at least a page.
    pub ring_bytes: u32,
    /// Send a record per syscall (the timeline), not only counters and process records.
    pub stream: bool,
    /// Kill processes that call outside their allowed set (monitor mode).
    pub kill: bool,
    /// Track any process that executes a program with this comm, from its execve on.
    pub exec_comm: Option<[u8; phasebox_common::COMM_LEN]>,
    /// With `stream`: also send path arguments (profiles and trace files use them).
    pub paths: bool,
}

/// Loaded and attached kernel programs with their maps.
pub struct Probe {
    // Keeps programs and links alive; dropping it detaches everything.
    ebpf: Ebpf,
    await_exec: Array<MapData, u32>,
    /// PB_USER_BITS and the agent's copy of it (the agent is its only writer).
    user_bits: Array<MapData, u64>,
    user_words: Vec<u64>,
    counts: PerCpuHashMap<MapData, CountKey, Counts>,
    epoch: HashMap<MapData, u32, u32>,
    markers: Array<MapData, u32>,
    allowed: HashMap<MapData, u32, [u64; ALLOWED_WORDS]>,
    drops: PerCpuArray<MapData, u64>,
}

/// The kernel's highest pid + 1 (/proc/sys/kernel/pid_max; the largest possible if unreadable).
fn pid_max() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 22)
}

/// Checks a `--ring-buffer` size.
pub fn check_ring_bytes(bytes: u64) -> Result<u32, String> {
    if !bytes.is_power_of_two() {
        return Err(format!(
            "ring buffer size {bytes} is not a power of two (try 8M)"
        ));
    }
    if bytes < MIN_RING_BYTES {
        return Err(format!(
            "ring buffer size {bytes} is too small: the minimum is {MIN_RING_BYTES} bytes"
        ));
    }
    if bytes > MAX_RING_BYTES {
        return Err(format!(
            "ring buffer size {bytes} is too large: the maximum is 1G"
        ));
    }
    Ok(bytes as u32)
}

fn field_offset(
    fields: &std::collections::HashMap<String, tracefs::Field>,
    tp: &str,
    name: &str,
) -> anyhow::Result<u32> {
    fields
        .get(name)
        .map(|f| f.offset)
        .ok_or_else(|| anyhow::anyhow!("tracepoint {tp} has no field {name} on this kernel"))
}

impl Probe {
    /// Checks privileges, mounts tracefs if needed, loads and attaches every program.
    /// Returns the probe and the ring buffer the records arrive on.
    pub fn load(opts: ProbeOptions) -> anyhow::Result<(Probe, RingBuf<MapData>)> {
        preflight::check_privileges()?;
        preflight::check_btf()?;
        let tracefs = tracefs::ensure_mounted()?;
        let fork = tracefs::fields(&tracefs, "sched", "sched_process_fork")?;
        let exec = tracefs::fields(&tracefs, "sched", "sched_process_exec")?;
        let exit = tracefs::fields(&tracefs, "sched", "sched_process_exit")?;
        let nr = sysnames::special();
        let config = Config {
            self_tgid: std::process::id(),
            mode: match (opts.stream, opts.paths) {
                (true, true) => mode::STREAM | mode::PATHS,
                (true, false) => mode::STREAM,
                (false, true) => mode::PATHS,
                (false, false) => 0,
            } | if opts.kill { mode::KILL } else { 0 },
            fork_child_pid_off: field_offset(&fork, "sched_process_fork", "child_pid")?,
            exec_filename_off: field_offset(&exec, "sched_process_exec", "filename")?,
            exec_old_pid_off: field_offset(&exec, "sched_process_exec", "old_pid")?,
            exit_group_dead_off: exit.get("group_dead").map_or(NO_FIELD, |f| f.offset),
            nr_execve: nr.execve,
            nr_execveat: nr.execveat,
            nr_exit: nr.exit,
            nr_exit_group: nr.exit_group,
            arg_offsets: sysnames::arg_offsets().unwrap_or([NO_FIELD; 6]),
            exec_comm: opts.exec_comm.unwrap_or([0; phasebox_common::COMM_LEN]),
            // Wake the reader when a quarter of the ring is full; it drains on a timer too.
            wakeup_bytes: opts.ring_bytes / 4,
            _pad: 0,
        };
        let words = pid_max() / 64 + 1;
        let mut ebpf = EbpfLoader::new()
            .override_global(names::CONFIG, &config, true)
            .map_max_entries(names::EVENTS, opts.ring_bytes)
            .map_max_entries(names::USER_BITS, words)
            .map_max_entries(names::KERNEL_BITS, words)
            .load(OBJECT)
            .context("cannot load phasebox's eBPF programs")?;

        // Summary mode counts calls on entry and never looks at returns: no exit program.
        let sys_progs: &[(&str, &str)] = if opts.stream {
            &[
                (names::PROG_SYS_ENTER, "sys_enter"),
                (names::PROG_SYS_EXIT, "sys_exit"),
            ]
        } else {
            &[(names::PROG_SYS_ENTER, "sys_enter")]
        };
        for &(prog, tp) in sys_progs {
            let p: &mut RawTracePoint = ebpf
                .program_mut(prog)
                .with_context(|| format!("the eBPF object has no program {prog}"))?
                .try_into()?;
            p.load()
                .with_context(|| format!("the kernel refused program {prog}"))?;
            p.attach(tp)
                .with_context(|| format!("cannot attach {prog} to raw_syscalls/{tp}"))?;
        }
        for (prog, tp) in [
            (names::PROG_FORK, "sched_process_fork"),
            (names::PROG_EXEC, "sched_process_exec"),
            (names::PROG_EXIT, "sched_process_exit"),
        ] {
            let p: &mut TracePoint = ebpf
                .program_mut(prog)
                .with_context(|| format!("the eBPF object has no program {prog}"))?
                .try_into()?;
            p.load()
                .with_context(|| format!("the kernel refused program {prog}"))?;
            p.attach("sched", tp)
                .with_context(|| format!("cannot attach {prog} to sched/{tp}"))?;
        }

        let mut take = |name: &str| {
            ebpf.take_map(name)
                .with_context(|| format!("the eBPF object has no map {name}"))
        };
        let ring = RingBuf::try_from(take(names::EVENTS)?)?;
        let await_exec = Array::try_from(take(names::AWAIT)?)?;
        let user_bits = Array::try_from(take(names::USER_BITS)?)?;
        let counts = PerCpuHashMap::try_from(take(names::COUNTS)?)?;
        let drops = PerCpuArray::try_from(take(names::DROPS)?)?;
        let mut path_args: Array<MapData, u32> = Array::try_from(take(names::PATH_ARGS)?)?;
        for (name, arg) in sysnames::PATH_ARGS {
            if let Some(nr) = sysnames::number(name).filter(|&n| n < MAX_SYSCALLS) {
                path_args
                    .set(nr, arg + 1, 0)
                    .context("cannot fill the path-argument table")?;
            }
        }
        let epoch = HashMap::try_from(take(names::EPOCH)?)?;
        let markers = Array::try_from(take(names::MARKERS)?)?;
        let allowed = HashMap::try_from(take(names::ALLOWED)?)?;
        let user_words = vec![0; words as usize];
        Ok((
            Probe {
                ebpf,
                await_exec,
                user_bits,
                user_words,
                counts,
                drops,
                epoch,
                markers,
                allowed,
            },
            ring,
        ))
    }

    /// Starts tracing `tgid` and the children it forks from now on.
    pub fn track(&mut self, tgid: u32) -> anyhow::Result<()> {
        self.set_user_bit(tgid, true)
    }

    /// Starts tracing `tgid` at its next execve: its calls before are the launcher's.
    pub fn track_from_exec(&mut self, tgid: u32) -> anyhow::Result<()> {
        self.await_exec
            .set(0, tgid, 0)
            .with_context(|| format!("cannot mark pid {tgid} as launched"))?;
        self.set_user_bit(tgid, true)
    }

    /// Stops tracing `tgid` (a process that is gone).
    pub fn untrack(&mut self, tgid: u32) {
        let _ = self.set_user_bit(tgid, false);
    }

    fn set_user_bit(&mut self, pid: u32, on: bool) -> anyhow::Result<()> {
        let (word, mask) = ((pid / 64) as usize, 1u64 << (pid % 64));
        let Some(w) = self.user_words.get_mut(word) else {
            anyhow::bail!("pid {pid} is above the kernel's pid_max");
        };
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
            .with_context(|| format!("cannot update the tracked-pid bitmap for pid {pid}"))
    }

    /// Summary mode: `tgid` entered phase epoch `epoch`; `markers_done` when no later phase
    /// has a marker.
    pub fn set_epoch(&mut self, tgid: u32, epoch: u32, markers_done: bool) {
        let word = epoch | if markers_done { EPOCH_NO_MARKERS } else { 0 };
        let _ = self.epoch.insert(tgid, word, 0);
    }

    /// Summary mode: forgets an exited process's first-use state (its pid may be reused); its
    /// counts stay.
    pub fn forget(&mut self, tgid: u32) {
        let _ = self.epoch.remove(&tgid);
        let keys: Vec<CountKey> = self
            .counts
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.tgid == tgid)
            .collect();
        for k in keys {
            let Ok(values) = self.counts.get(&k, 0) else {
                continue;
            };
            let cleared: Vec<Counts> = values.iter().map(|c| Counts { seen: 0, ..*c }).collect();
            if let Ok(v) = PerCpuValues::try_from(cleared) {
                let _ = self.counts.insert(k, v, 0);
            }
        }
    }

    /// Monitor mode with kill: the syscalls `tgid` may make from now on.
    pub fn set_allowed(&mut self, tgid: u32, bits: [u64; ALLOWED_WORDS]) -> anyhow::Result<()> {
        self.allowed
            .insert(tgid, bits, 0)
            .with_context(|| format!("cannot set the allowed syscalls of pid {tgid}"))
    }

    /// Processes the kernel killed for a syscall outside their allowed set.
    pub fn kills(&self) -> anyhow::Result<u64> {
        Ok(self
            .drops
            .get(&drop_slot::KILLED, 0)
            .context("cannot read the kill counter")?
            .iter()
            .sum())
    }

    /// Summary mode: syscalls phase markers use, reported at every call.
    pub fn set_markers(&mut self, nrs: &[u32]) -> anyhow::Result<()> {
        for &nr in nrs.iter().filter(|&&n| n < MAX_SYSCALLS) {
            self.markers
                .set(nr, 1, 0)
                .context("cannot fill the marker table")?;
        }
        Ok(())
    }

    /// Run time and run count of each kernel program (BPF run-time statistics must be on:
    /// see `enable_run_time_stats`).
    pub fn run_stats(&self) -> Vec<(&'static str, std::time::Duration, u64)> {
        let names = [
            names::PROG_SYS_ENTER,
            names::PROG_SYS_EXIT,
            names::PROG_FORK,
            names::PROG_EXEC,
            names::PROG_EXIT,
        ];
        names
            .into_iter()
            .filter_map(|n| {
                let info = self.ebpf.program(n)?.info().ok()?;
                Some((n, info.run_time(), info.run_count()))
            })
            .collect()
    }

    /// The exact per-(process, syscall) counters, summed over CPUs.
    pub fn counts(&self) -> anyhow::Result<BTreeMap<CountKey, Counts>> {
        let mut out: BTreeMap<CountKey, Counts> = BTreeMap::new();
        for item in self.counts.iter() {
            let (key, per_cpu) = item.context("cannot read the syscall counters")?;
            let sum = out.entry(key).or_default();
            for c in per_cpu.iter() {
                sum.calls += c.calls;
                sum.errors += c.errors;
            }
        }
        Ok(out)
    }

    /// What the kernel lost so far, summed over CPUs.
    pub fn losses(&self) -> anyhow::Result<Losses> {
        let slot = |i: u32| -> anyhow::Result<u64> {
            Ok(self
                .drops
                .get(&i, 0)
                .context("cannot read the loss counters")?
                .iter()
                .sum())
        };
        Ok(Losses {
            ringbuf_full: slot(drop_slot::RINGBUF)?,
            counter_map_full: slot(drop_slot::COUNTS)?,
        })
    }
}
