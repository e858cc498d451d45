//! phasebox's kernel programs: filter by tracked tgid, count per (process, segment, syscall),
//! emit what userspace needs.
//!
//! - `pb_sys_enter` (raw tracepoint raw_syscalls/sys_enter): the only program every syscall on
//!   the host runs in summary mode. A thread is looked up in the thread cache (PB_THREADS, by
//!   the address of its saved registers): an untracked one leaves there, a tracked one gets its
//!   ids from it; a thread not found there costs the pid helper and two inlined array lookups.
//!   Tracked ones: their segment (a new one at a marker-candidate call), the counter, and a
//!   record for segment openers and first uses (every call in stream mode, at exit). A
//!   process's state and counters are in its slot (PB_SLOTS, PB_SLOT_COUNTS: arrays, found by
//!   index) when the slot was free, else in the hash maps (PB_PROCS, PB_COUNTS).
//!   `pb_sys_enter_btf` is the same on the BTF-typed tracepoint, where the argument registers
//!   are plain loads: the agent attaches it instead where the kernel has BTF and arguments are
//!   recorded.
//! - `pb_sys_exit` (raw_syscalls/sys_exit, stream and errors modes only): failed calls, and the
//!   paired record with duration and return value (in sessions read at their end, held in the
//!   thread's batch, PB_BATCHES, and sent four at a time).
//! - `pb_fork` / `pb_exec` / `pb_exit` (sched tracepoints): follow children, report execs and
//!   exits, clean up.
//! - `pb_floor`: does nothing; the cost benchmark attaches it alone to measure a tracepoint's
//!   own cost (the floor every tracer pays).
#![no_std]
#![no_main]
// Atomic read-modify-write on map memory: core's atomic types have none on the BPF target.
#![feature(core_intrinsics)]
#![allow(internal_features)]
#![deny(clippy::undocumented_unsafe_blocks)]

use core::hint::cold_path;
use core::intrinsics::{AtomicOrdering, atomic_xadd, atomic_xsub};

use aya_ebpf::{
    EbpfContext, Global,
    bindings::{
        BPF_F_MMAPABLE, BPF_NOEXIST, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP,
        bpf_pidns_info,
    },
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel,
        bpf_probe_read_kernel_str_bytes, bpf_probe_read_user_str_bytes,
        generated::{
            bpf_get_current_task_btf, bpf_get_ns_current_pid_tgid, bpf_send_signal,
            bpf_task_pt_regs,
        },
    },
    macros::{btf_tracepoint, map, raw_tracepoint, tracepoint},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
};
use phasebox_common::{
    ALLOWED_WORDS, ARG_SLOTS, Allowed, ArgSpec, ArgsKey, ArgsRecord, BATCH_LEN, BatchRecord,
    COMM_LEN, Config, CountKey, Counts, ExecRecord, ExitRecord, FORK_MARKER_SLOT, FULL_MARKER_SET,
    FilteredRecord, ForkRecord, Header, MAX_MARKER_SETS, MAX_SYSCALLS, NO_FIELD, NO_SLOT,
    PROC_SLOTS, PathRecord, Pending, ProcState, Record, SIGKILL, SLOT_SYSCALLS, Scope,
    SegmentRecord, SetRequest, Slot, SlotCount, SyscallRecord, ThreadEntry, Verdict, drop_slot,
    exec_flags, is_error, mode, proc_flags, scope_flags, segment_flags, stat_slot, syscall_flags,
    thread_cache,
};

/// Settings written by the agent before load (see `Config`).
#[unsafe(no_mangle)]
static PB_CONFIG: Global<Config> = Global::new(Config::UNSET);

/// `phasebox_common::mode` bits, written by the agent before load. The verifier sees the
/// frozen value and removes the branches a mode does not take.
#[unsafe(no_mangle)]
static PB_MODE: Global<u32> = Global::new(0);

/// The tracked processes: one bit per pid (word = pid / 64), so the first filter of every
/// program is an array lookup the verifier inlines and untracked processes (nearly all) never
/// reach a hash lookup. The agent alone writes PB_USER_BITS (processes it launched or attached
/// to); the programs alone change PB_KERNEL_BITS, with atomic adds (children followed at fork,
/// cleared at exit). Both are sized from pid_max by the agent.
#[map]
static PB_USER_BITS: Array<u64> = Array::with_max_entries(1, 0);
#[map]
static PB_KERNEL_BITS: Array<u64> = Array::with_max_entries(1, 0);

/// The pid phasebox launched, while it waits for its execve: its calls before that (the
/// launcher's) are not traced. 0 when none.
#[map]
static PB_AWAIT: Array<u32> = Array::with_max_entries(1, 0);

/// syscall number → 1 + index of its path argument (0: it takes no path).
#[map]
static PB_PATH_ARGS: Array<u32> = Array::with_max_entries(MAX_SYSCALLS, 0);

/// syscall number → 1 when a stream sends its calls one record each (`mode::SHOWN`, `-e
/// trace=`); the others are counted as in summary mode.
#[map]
static PB_SHOWN: Array<u8> = Array::with_max_entries(MAX_SYSCALLS, 0);

/// syscall number → 1 for a call a thread waits in (`phasebox_core::sysnames::WAITING`): with
/// `mode::BATCH`, a thread sends its batch before it enters one.
#[map]
static PB_WAITS: Array<u8> = Array::with_max_entries(MAX_SYSCALLS, 0);

/// syscall number → which of its arguments are recorded (`mode::ARGS`), and with what mask.
#[map]
static PB_ARG_SPECS: Array<ArgSpec> = Array::with_max_entries(MAX_SYSCALLS, 0);

/// The argument combinations each process segment has sent (summary mode sends each once).
/// Least recently used entries make room for new ones: an evicted combination is only sent
/// again, so the map never fills and needs no cleaning.
#[map]
static PB_ARGS_SEEN: LruHashMap<ArgsKey, u8> = LruHashMap::with_max_entries(16384, 0);

/// Per CPU and syscall, the argument combination (with its process and segment) this CPU
/// last found sent: a call repeating it (a loop of the same call) skips the hash lookup.
#[map]
static PB_ARGS_LAST: PerCpuArray<ArgsKey> = PerCpuArray::with_max_entries(MAX_SYSCALLS, 0);

/// Marker sets: `set * MAX_SYSCALLS + nr` → 1 when a call of `nr` may start a later phase for
/// a process using that set (slot FORK_MARKER_SLOT: forks may). Set 0 holds every marker.
#[map]
static PB_MARKERS: Array<u8> = Array::with_max_entries(MAX_MARKER_SETS * MAX_SYSCALLS, 0);

/// tgid (and the tid of every thread, made at its clone in case it is a process) → the
/// process's instance, current segment, marker set and flags, for processes whose slot in
/// PB_SLOTS was taken. Only the programs write it, except that the agent deletes a `GONE`
/// entry once it has read the exit.
#[map]
static PB_PROCS: HashMap<u32, ProcState> = HashMap::with_max_entries(65536, 0);

/// Process slots (see `phasebox_common::Slot`): the state of a process whose slot was free,
/// found by an index instead of a hash lookup. Mapped into the agent's memory.
#[map]
static PB_SLOTS: Array<Slot> = Array::with_max_entries(PROC_SLOTS, BPF_F_MMAPABLE);

/// What the programs found of a thread (see `phasebox_common::thread_cache`); entry 0's tag is
/// the generation, which the agent writes. Mapped into the agent's memory.
#[map]
static PB_THREADS: Array<ThreadEntry> =
    Array::with_max_entries(thread_cache::ENTRIES + 1, BPF_F_MMAPABLE);

/// One number per CPU through which a typed pointer becomes a plain number: the verifier
/// allows no shift or mask on a pointer, and a value stored in a map loads back as a number.
#[map]
static PB_SCRATCH: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// The counters of the processes in PB_SLOTS (see `phasebox_common::SlotCount`): slot ×
/// syscall, one segment each. Mapped into the agent's memory.
#[map]
static PB_SLOT_COUNTS: Array<SlotCount> =
    Array::with_max_entries(PROC_SLOTS * SLOT_SYSCALLS, BPF_F_MMAPABLE);

/// The next process instance number (1, 2, 3…: never reused, unlike pids).
#[map]
static PB_NEXT_INSTANCE: Array<u32> = Array::with_max_entries(1, 0);

/// tgid → a narrower marker set the agent asks for (see `SetRequest`). The agent writes it;
/// the kernel deletes it when the process exits.
#[map]
static PB_SET_REQUESTS: HashMap<u32, SetRequest> = HashMap::with_max_entries(65536, 0);

/// Monitor mode with kill: tgid → the syscalls its instance may still make (its phase and
/// the later ones). The agent writes it; the kernel deletes it when the process exits.
#[map]
static PB_ALLOWED: HashMap<u32, Allowed> = HashMap::with_max_entries(16384, 0);

/// tgid → the agent's verdict on a process found at its exec (`proc_flags::UNCONFIRMED`).
/// The agent writes it; the kernel deletes it once applied, or when the process exits.
#[map]
static PB_VERDICTS: HashMap<u32, Verdict> = HashMap::with_max_entries(16384, 0);

/// Which untracked processes `pb_exec` starts tracking (one entry; the agent rewrites it when
/// its scope changes).
#[map]
static PB_SCOPE: Array<Scope> = Array::with_max_entries(1, 0);

/// tid → the syscall it is in (stream and errors modes), for tids beyond PB_PENDING_TID.
#[map]
static PB_PENDING: HashMap<u32, Pending> = HashMap::with_max_entries(65536, 0);

/// The same by index: tid → the syscall it is in, for tids below its size (the agent sizes it
/// at pid_max, at most `PENDING_BY_TID_MAX`, when it loads an exit program; else 1). An
/// inlined array access instead of two hash lookups a call; the exit program clears a thread's
/// element when it ends.
#[map]
static PB_PENDING_TID: Array<Pending> = Array::with_max_entries(1, 0);

/// Record mode: the syscall records each thread holds until it sends them in one reservation
/// (`phasebox_common::BatchRecord`), indexed by tid and sized like PB_PENDING_TID by the agent
/// (one element when nothing is batched: tid 0 is never traced). Mapped into the agent's
/// memory: it reads what the threads still hold once their programs are detached.
#[map]
static PB_BATCHES: Array<BatchRecord> = Array::with_max_entries(1, BPF_F_MMAPABLE);

/// (tgid, instance, segment, syscall) → calls and errors: exact even when the ring buffer is
/// full. The agent reads and deletes the entries of exited processes. Preallocated, and shared
/// by the CPUs (atomic adds): entries allocated at first use (per CPU) failed to allocate when
/// thousands of processes started at once, and their calls were lost while the map had room.
#[map]
static PB_COUNTS: HashMap<CountKey, Counts> = HashMap::with_max_entries(COUNT_ENTRIES, 0);

/// PB_COUNTS's size: one entry per process, segment and syscall in use (a program uses 20 to
/// 60 syscalls a phase).
const COUNT_ENTRIES: u32 = 1 << 17;

#[map]
static PB_EVENTS: RingBuf = RingBuf::with_byte_size(1 << 23, 0);

/// Per-CPU loss counters, indexed by `phasebox_common::drop_slot`.
#[map]
static PB_DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(drop_slot::SLOTS, 0);

/// Per-CPU counters of what the programs did, indexed by `phasebox_common::stat_slot`.
#[map]
static PB_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat_slot::SLOTS, 0);

/// Where the first three syscall arguments (those a path can be in) are in this
/// architecture's `struct pt_regs`, from aya's bindings of the kernel's struct.
#[cfg(bpf_target_arch = "x86_64")]
const PATH_ARG_OFFSETS: &[usize] = &[
    core::mem::offset_of!(aya_ebpf::bindings::pt_regs, rdi),
    core::mem::offset_of!(aya_ebpf::bindings::pt_regs, rsi),
    core::mem::offset_of!(aya_ebpf::bindings::pt_regs, rdx),
];
/// aarch64's `struct pt_regs` starts with `user_pt_regs`, whose `regs[0..]` hold the arguments
/// (aya's binding of it is opaque there).
#[cfg(bpf_target_arch = "aarch64")]
const PATH_ARG_OFFSETS: &[usize] = &[0, 8, 16];
/// Elsewhere phasebox does not read path arguments.
#[cfg(not(any(bpf_target_arch = "x86_64", bpf_target_arch = "aarch64")))]
const PATH_ARG_OFFSETS: &[usize] = &[];

/// Where the first three syscall arguments start in `struct pt_regs`, and whether they are
/// stored last first: x86_64 keeps rdx, rsi, rdi in a row (arguments 2, 1, 0), aarch64's
/// `regs[0..3]` are arguments 0, 1, 2.
#[cfg(bpf_target_arch = "x86_64")]
const ARGS_AT: Option<(usize, bool)> = Some((
    core::mem::offset_of!(aya_ebpf::bindings::pt_regs, rdx),
    true,
));
#[cfg(bpf_target_arch = "x86_64")]
const _: () = assert!(
    core::mem::offset_of!(aya_ebpf::bindings::pt_regs, rdi)
        == core::mem::offset_of!(aya_ebpf::bindings::pt_regs, rdx) + 16
        && core::mem::offset_of!(aya_ebpf::bindings::pt_regs, rsi)
            == core::mem::offset_of!(aya_ebpf::bindings::pt_regs, rdx) + 8
);
#[cfg(bpf_target_arch = "aarch64")]
const ARGS_AT: Option<(usize, bool)> = Some((0, false));
#[cfg(not(any(bpf_target_arch = "x86_64", bpf_target_arch = "aarch64")))]
const ARGS_AT: Option<(usize, bool)> = None;

/// Where `struct pt_regs` keeps the syscall number through the call (seccomp leaves it there
/// when it answers a call itself): `orig_ax` on x86_64, `syscallno` after `user_pt_regs` (31
/// registers, sp, pc, pstate) and `orig_x0` on aarch64.
#[cfg(bpf_target_arch = "x86_64")]
const SYSCALL_NR_OFFSET: Option<usize> =
    Some(core::mem::offset_of!(aya_ebpf::bindings::pt_regs, orig_rax));
#[cfg(bpf_target_arch = "aarch64")]
const SYSCALL_NR_OFFSET: Option<usize> = Some(34 * 8 + 8);
#[cfg(not(any(bpf_target_arch = "x86_64", bpf_target_arch = "aarch64")))]
const SYSCALL_NR_OFFSET: Option<usize> = None;

/// What the programs on sys_enter read of the call: its number, and the caller's registers
/// (`struct pt_regs`). The raw tracepoint's context is untyped, so each read of a register goes
/// through the probe helper; the BTF-typed one (`tp_btf`) tells the verifier the registers'
/// type, so the argument registers are plain loads.
trait SysEnter {
    /// The syscall number.
    fn nr(&self) -> u32;
    /// The first three syscall arguments, in order.
    fn args(&self) -> Option<[u64; ARG_SLOTS]>;
    /// Syscall argument `i` (0, 1 or 2).
    fn argument(&self, i: usize) -> Option<u64>;
    /// Where the caller's registers are saved, as a number (the thread cache's key).
    fn regs(&self) -> u64;
}

impl SysEnter for RawTracePointContext {
    #[inline(always)]
    fn nr(&self) -> u32 {
        self.arg::<i64>(1) as u32
    }

    #[inline(always)]
    fn args(&self) -> Option<[u64; ARG_SLOTS]> {
        let (at, last_first) = ARGS_AT?;
        let regs = self.arg::<u64>(0) as *const u8;
        // SAFETY: `regs` is the tracepoint's pt_regs and `at` the place of three argument
        // registers in it; the read goes through the probe helper, which fails cleanly.
        let raw = unsafe { bpf_probe_read_kernel(regs.add(at).cast::<[u64; ARG_SLOTS]>()) }.ok()?;
        Some(in_order(raw, last_first))
    }

    #[inline(always)]
    fn argument(&self, i: usize) -> Option<u64> {
        let &off = PATH_ARG_OFFSETS.get(i)?;
        let regs = self.arg::<u64>(0) as *const u8;
        // SAFETY: as above, one register.
        unsafe { bpf_probe_read_kernel(regs.add(off).cast::<u64>()) }.ok()
    }

    #[inline(always)]
    fn regs(&self) -> u64 {
        self.arg::<u64>(0)
    }
}

/// sys_enter's BTF-typed context: the verifier knows argument 0 is `struct pt_regs *`.
struct BtfSysEnter(BtfTracePointContext);

impl SysEnter for BtfSysEnter {
    #[inline(always)]
    fn nr(&self) -> u32 {
        self.0.arg::<i64>(1) as u32
    }

    #[inline(always)]
    fn args(&self) -> Option<[u64; ARG_SLOTS]> {
        let (at, last_first) = ARGS_AT?;
        let regs = self.0.arg::<*const u8>(0);
        // SAFETY: `regs` is the kernel's pt_regs of the calling task, typed so for the
        // verifier, which checks each load against the struct's fields; `at` is the place of
        // three consecutive argument registers in it (asserted above), at constant offsets.
        let raw = unsafe {
            [
                core::ptr::read_volatile(regs.add(at).cast::<u64>()),
                core::ptr::read_volatile(regs.add(at + 8).cast::<u64>()),
                core::ptr::read_volatile(regs.add(at + 16).cast::<u64>()),
            ]
        };
        Some(in_order(raw, last_first))
    }

    /// From the three loaded at constant offsets (the verifier allows no variable offset
    /// into the typed registers).
    #[inline(always)]
    fn argument(&self, i: usize) -> Option<u64> {
        self.args()?.get(i).copied()
    }

    /// The typed pointer's value, through PB_SCRATCH.
    #[inline(always)]
    fn regs(&self) -> u64 {
        as_number(self.0.arg::<u64>(0))
    }
}

/// Three argument registers as stored (last first on x86_64) → arguments 0, 1, 2.
#[inline(always)]
fn in_order(raw: [u64; ARG_SLOTS], last_first: bool) -> [u64; ARG_SLOTS] {
    if last_first {
        [raw[2], raw[1], raw[0]]
    } else {
        raw
    }
}

#[inline(always)]
fn mode_has(bit: u32) -> bool {
    PB_MODE.load() & bit != 0
}

/// Whether a stream sends call `nr` one record each: every call, unless `-e trace=` chose.
#[inline(always)]
fn shown(nr: u32) -> bool {
    !mode_has(mode::SHOWN) || PB_SHOWN.get(nr).is_some_and(|v| *v != 0)
}

#[inline(always)]
fn lost(slot: u32) {
    bump(&PB_DROPS, slot);
}

/// Adds `n` to this CPU's drop counter `slot`.
#[inline(always)]
fn lost_n(slot: u32, n: u64) {
    if let Some(c) = PB_DROPS.get_ptr_mut(slot) {
        // SAFETY: this CPU's slot; nothing else writes it while this program runs here.
        unsafe { *c += n };
    }
}

/// Adds one to this CPU's `slot` of a per-CPU counter array.
#[inline(always)]
fn bump(counters: &PerCpuArray<u64>, slot: u32) {
    if let Some(n) = counters.get_ptr_mut(slot) {
        // SAFETY: this CPU's slot; nothing else writes it while this program runs here.
        unsafe { *n += 1 };
    }
}

#[inline(always)]
fn bit(pid: u32) -> (u32, u64) {
    (pid >> 6, 1u64 << (pid & 63))
}

/// Whether `tgid` is tracked.
#[inline(always)]
fn tracked(tgid: u32) -> bool {
    let (word, mask) = bit(tgid);
    let user = PB_USER_BITS.get(word).copied().unwrap_or(0);
    let kernel = PB_KERNEL_BITS.get(word).copied().unwrap_or(0);
    (user | kernel) & mask != 0
}

/// Whether the agent's bit for `pid` is set (attached or launched by the agent).
#[inline(always)]
fn user_tracked(pid: u32) -> bool {
    let (word, mask) = bit(pid);
    PB_USER_BITS.get(word).copied().unwrap_or(0) & mask != 0
}

/// Sets or clears `pid`'s kernel bit. Each bit has one writer at a time (the fork that created
/// the pid, later its exit), so adding a bit known clear, or subtracting one known set, never
/// carries into other pids' bits.
#[inline(always)]
fn set_kernel_bit(pid: u32, on: bool) {
    let (word, mask) = bit(pid);
    let Some(w) = PB_KERNEL_BITS.get_ptr_mut(word) else {
        return;
    };
    // SAFETY: `w` points at an array element, valid for this run; other writers change other
    // bits of it, and only atomically.
    let set = unsafe { core::ptr::read_volatile(w) } & mask != 0;
    if on && !set {
        // SAFETY: as above; the bit is clear, so the add cannot carry.
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(w, mask) };
    } else if !on && set {
        // SAFETY: as above; the bit is set, so the subtraction cannot borrow.
        unsafe { atomic_xsub::<u64, u64, { AtomicOrdering::Relaxed }>(w, mask) };
    }
}

#[inline(always)]
fn current() -> (u32, u32) {
    let id = bpf_get_current_pid_tgid();
    ((id >> 32) as u32, id as u32)
}

/// The filter: the calling thread's (tgid, tid) if its process is tracked, else None. The
/// thread cache first (its registers saved at `regs()`): found untracked, the call leaves; found
/// tracked, its ids come from there; otherwise the pid helper and the bitmaps, and the thread
/// is remembered. The generation is read first, before the entry and the bitmaps.
#[inline(always)]
fn filter(regs: impl FnOnce() -> u64) -> Option<(u32, u32)> {
    if !mode_has(mode::THREAD_CACHE) {
        let (tgid, tid) = current();
        return tracked(tgid).then_some((tgid, tid));
    }
    let regs = regs();
    let generation = match PB_THREADS.get_ptr(0) {
        // SAFETY: an array element for this run, written by the agent with single stores.
        Some(g) => unsafe { core::ptr::read_volatile(&raw const (*g).tag) },
        None => 0,
    };
    let untracked = thread_cache::tag(regs, generation, false);
    let entry = PB_THREADS.get_ptr_mut(thread_cache::index(regs));
    if let Some(e) = entry
        && untracked != 0
    {
        // SAFETY: an array element for this run; its words are written with single stores,
        // a tracked entry's as a sequence lock (written below).
        unsafe {
            let tag = core::ptr::read_volatile(&raw const (*e).tag);
            if tag == untracked {
                return None;
            }
            if tag == thread_cache::tag(regs, generation, true) {
                let ids = core::ptr::read_volatile(&raw const (*e).ids);
                if core::ptr::read_volatile(&raw const (*e).tag) == tag {
                    let (tgid, tid) = ((ids >> 32) as u32, ids as u32);
                    if tracked(tgid) {
                        return Some((tgid, tid));
                    }
                }
            }
        }
    }
    // A thread not in the cache: once per thread and generation.
    cold_path();
    let (tgid, tid) = current();
    let found = tracked(tgid);
    if let Some(e) = entry {
        let tag = thread_cache::tag(regs, generation, found);
        if tag != 0 {
            // SAFETY: as above. A tracked entry: tag 0, ids, tag, so that a reader that sees
            // the tag twice read these ids between.
            unsafe {
                if found {
                    core::ptr::write_volatile(&raw mut (*e).tag, 0);
                    core::ptr::write_volatile(&raw mut (*e).ids, thread_cache::ids(tgid, tid));
                }
                core::ptr::write_volatile(&raw mut (*e).tag, tag);
            }
        }
    }
    found.then_some((tgid, tid))
}

/// Clears the calling thread's entry in the thread cache: at its exit (its stack may become a
/// new thread's) and at its exec (the program may be one that is tracked).
#[inline(always)]
fn forget_thread() {
    if !mode_has(mode::THREAD_CACHE) {
        return;
    }
    // SAFETY: helpers on the current task, which the verifier types; the agent sets
    // `mode::THREAD_CACHE` only on kernels that have both (5.15 and later).
    let regs = as_number(unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) } as u64);
    if let Some(e) = PB_THREADS.get_ptr_mut(thread_cache::index(regs)) {
        // SAFETY: an array element for this run; tags are single u64 stores. Clearing
        // another thread's entry only makes it be looked up by pid again.
        unsafe {
            if thread_cache::holds(core::ptr::read_volatile(&raw const (*e).tag), regs) {
                core::ptr::write_volatile(&raw mut (*e).tag, 0);
            }
        }
    }
}

/// A pointer's value as a plain number (see PB_SCRATCH).
#[inline(always)]
fn as_number(pointer: u64) -> u64 {
    let Some(s) = PB_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: this CPU's element; nothing else uses it while this program runs here.
    unsafe {
        core::ptr::write_volatile(s, pointer);
        core::ptr::read_volatile(s)
    }
}

#[inline(always)]
fn now() -> u64 {
    // SAFETY: a helper without arguments.
    unsafe { bpf_ktime_get_ns() }
}

/// Sends one record; a full ring buffer is counted, never silent.
#[inline(always)]
fn emit<T: Record>(rec: T, flags: u64) {
    match PB_EVENTS.reserve::<T>(0) {
        Some(mut entry) => {
            entry.write(rec);
            entry.submit(flags);
        }
        None => lost(drop_slot::RINGBUF),
    }
}

/// Sends a call's record: into its thread's batch where the thread has one (record mode),
/// the batch going out once full; else on its own.
#[inline(always)]
fn send_call(rec: SyscallRecord) {
    if !mode_has(mode::BATCH) {
        emit(rec, batched_wakeup());
        return;
    }
    let Some(b) = PB_BATCHES.get_ptr_mut(rec.tid) else {
        emit(rec, batched_wakeup());
        return;
    };
    // SAFETY: the element of this tid: only its thread writes it while it lives (the agent
    // reads it once the syscall programs are detached).
    unsafe {
        let n = (*b).count as usize;
        if n >= BATCH_LEN {
            // Never: a full batch is sent at once. The bound is the verifier's.
            cold_path();
            emit(rec, batched_wakeup());
            return;
        }
        (*b).calls[n] = rec;
        (*b).count = n as u32 + 1;
        if n + 1 == BATCH_LEN {
            send_batch(b, rec.header.tgid);
        }
    }
}

/// Sends what thread `tid` holds, before any other record of its own (so that its records
/// stay in order) and when it ends.
#[inline(always)]
fn send_held(tid: u32, tgid: u32) {
    if !mode_has(mode::BATCH) {
        return;
    }
    if let Some(b) = PB_BATCHES.get_ptr_mut(tid) {
        // SAFETY: as in `send_call`.
        if unsafe { (*b).count } != 0 {
            send_batch(b, tgid);
        }
    }
}

/// Sends batch `b` (1 to BATCH_LEN calls) in one reservation, and empties it; a full ring
/// buffer loses its calls, counted. A function of its own: the programs that may send a
/// batch call it from one place or several, and stay small.
#[inline(never)]
fn send_batch(b: *mut BatchRecord, tgid: u32) {
    // SAFETY: `b` is an element of PB_BATCHES its thread owns (see `send_call`); the bytes
    // sent are its first `wire_len(n)`, within the element.
    unsafe {
        let n = (*b).count as usize;
        if n == 0 || n > BATCH_LEN {
            return;
        }
        (*b).header = Header::of::<BatchRecord>(0, tgid);
        let bytes = core::slice::from_raw_parts(b as *const u8, BatchRecord::wire_len(n));
        if PB_EVENTS.output::<[u8]>(bytes, batched_wakeup()).is_err() {
            lost_n(drop_slot::RINGBUF, n as u64);
        }
        (*b).count = 0;
    }
}

/// Wakes the reader only when enough bytes are waiting; it also drains on a timer.
#[inline(always)]
fn batched_wakeup() -> u64 {
    if PB_EVENTS.query(BPF_RB_AVAIL_DATA.into()) >= u64::from(PB_CONFIG.load().wakeup_bytes) {
        BPF_RB_FORCE_WAKEUP.into()
    } else {
        BPF_RB_NO_WAKEUP.into()
    }
}

/// A fresh process instance number. Two processes created at the same instant may get the
/// same number; they have different tgids, and userspace tells instances apart by (tgid,
/// instance), so only a reused pid needs a new number, which it gets.
#[inline(always)]
fn new_instance() -> u32 {
    let Some(next) = PB_NEXT_INSTANCE.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: `next` points at the array's only element; it is changed only atomically. The
    // add's result is not used (the BPF ISA this builds for has no fetching atomics): the
    // value is read back, never smaller than our own increment made it.
    unsafe {
        atomic_xadd::<u32, u32, { AtomicOrdering::Relaxed }>(next, 1);
        core::ptr::read_volatile(next)
    }
}

/// Starts keeping state for `tgid` at its first segment: in its slot if that is free, else in
/// PB_PROCS. State an earlier process with this pid left is replaced. Returns None when the
/// map is full (its calls are then counted under instance 0, without segments).
#[inline(always)]
fn start_process(tgid: u32, instance: u32, flags: u32) -> Option<ProcState> {
    let st = ProcState {
        instance,
        seg: 1,
        marker_set: FULL_MARKER_SET,
        execs: 0,
        flags,
        _pad: 0,
    };
    let _ = PB_PROCS.remove(tgid);
    if let Some(slot) = PB_SLOTS.get_ptr_mut(tgid % PROC_SLOTS) {
        // SAFETY: `slot` points at an array element for this run. Its fields other than
        // `claims` are written only by the program that owns the slot (`take` returned true),
        // `live` after `state`, so a program that finds its tgid there finds its state.
        unsafe {
            if core::ptr::read_volatile(&raw const (*slot).live) == tgid {
                // An earlier process with this pid (no longer traced): its counters stay for
                // the agent, which gives the slot back.
                core::ptr::write_volatile(&raw mut (*slot).live, 0);
            } else if take(&raw mut (*slot).claims) {
                (*slot).state = st;
                core::ptr::write_volatile(&raw mut (*slot).live, tgid);
                // Last: the agent reads a slot with an owner as in use.
                core::ptr::write_volatile(&raw mut (*slot).owner, tgid);
                return Some(st);
            }
        }
    }
    match PB_PROCS.insert(tgid, st, 0) {
        Ok(()) => Some(st),
        Err(_) => {
            lost(drop_slot::PROCS);
            None
        }
    }
}

/// Takes a claim word that is 0 (a free slot or counter): adds one and reads it back. Returns
/// whether this caller alone took it. A caller that reads more than 1 shares it with another
/// and takes its add back (both may then fail, and use the hash maps).
#[inline(always)]
fn take(claims: *mut u32) -> bool {
    // SAFETY: `claims` points at a map value for this run, changed only atomically (the agent
    // gives a claim back by subtracting it).
    unsafe {
        if core::ptr::read_volatile(claims) != 0 {
            return false;
        }
        atomic_xadd::<u32, u32, { AtomicOrdering::Relaxed }>(claims, 1);
        if core::ptr::read_volatile(claims) == 1 {
            return true;
        }
        // Adding u32::MAX subtracts one (the BPF ISA has no 32-bit atomic subtraction).
        atomic_xadd::<u32, u32, { AtomicOrdering::Relaxed }>(claims, u32::MAX);
    }
    false
}

/// The state of `tgid` and its slot (`NO_SLOT` when it is in PB_PROCS), if it has one.
#[inline(always)]
fn state_of(tgid: u32) -> Option<(*mut ProcState, u32)> {
    let index = tgid % PROC_SLOTS;
    if let Some(slot) = PB_SLOTS.get_ptr_mut(index) {
        // SAFETY: an array element for this run; see `start_process` for its writers.
        if unsafe { core::ptr::read_volatile(&raw const (*slot).live) } == tgid {
            // SAFETY: as above.
            return Some((unsafe { &raw mut (*slot).state }, index));
        }
    }
    PB_PROCS.get_ptr_mut(tgid).map(|st| (st, NO_SLOT))
}

/// Drops the state of `tgid`: its slot's state goes out of use (its counters stay for the
/// agent), or its PB_PROCS entry goes.
#[inline(always)]
fn forget(tgid: u32) {
    if let Some(slot) = PB_SLOTS.get_ptr_mut(tgid % PROC_SLOTS) {
        // SAFETY: as in `state_of`.
        unsafe {
            if core::ptr::read_volatile(&raw const (*slot).live) == tgid {
                core::ptr::write_volatile(&raw mut (*slot).live, 0);
            }
        }
    }
    let _ = PB_PROCS.remove(tgid);
}

/// Whether a call of `nr` (or a fork, FORK_MARKER_SLOT) may start a later phase under `set`.
#[inline(always)]
fn is_marker(set: u32, nr: u32) -> bool {
    if set >= MAX_MARKER_SETS || nr >= MAX_SYSCALLS {
        return false;
    }
    PB_MARKERS
        .get(set * MAX_SYSCALLS + nr)
        .copied()
        .unwrap_or(0)
        != 0
}

/// Applies the agent's narrower marker set for `tgid`, if it asked for one for this program.
#[inline(always)]
fn apply_set_request(tgid: u32, st: *mut ProcState) {
    // SAFETY: a map value read for this run; only the agent writes it, whole.
    let Some(req) = (unsafe { PB_SET_REQUESTS.get(tgid) }) else {
        return;
    };
    // SAFETY: `st` points at this process's state (its slot or PB_PROCS value); see `open_segment` for writers.
    unsafe {
        if req.execs == (*st).execs && req.instance == (*st).instance {
            (*st).marker_set = req.marker_set;
        }
    }
}

/// Opens the process's next segment and reports it; returns the new segment.
#[inline(always)]
fn open_segment(tgid: u32, tid: u32, st: *mut ProcState, nr: u32, why: u16, ts_ns: u64) -> u32 {
    // SAFETY: `st` points at this process's state (its slot or PB_PROCS value). Its threads may race here: the
    // atomic add never loses a step, so segments only move forward; two threads opening at the
    // same instant may read the same new number (userspace then takes both markers for it).
    let (instance, seg) = unsafe {
        let seg = &raw mut (*st).seg;
        atomic_xadd::<u32, u32, { AtomicOrdering::Relaxed }>(seg, 1);
        ((*st).instance, core::ptr::read_volatile(seg))
    };
    emit_segment(tgid, tid, nr, instance, seg, why, ts_ns);
    seg
}

/// Tells the agent that a process's calls from now on count in segment `seg`. Phase changes
/// reach the agent at once: it narrows the marker set in reply.
#[inline(always)]
fn emit_segment(tgid: u32, tid: u32, nr: u32, instance: u32, seg: u32, why: u16, ts_ns: u64) {
    send_held(tid, tgid);
    emit(
        SegmentRecord {
            header: Header::of::<SegmentRecord>(why, tgid),
            tid,
            nr,
            instance,
            seg,
            ts_ns,
        },
        BPF_RB_FORCE_WAKEUP.into(),
    );
}

/// Sends the path argument of syscall `nr`, if it takes one.
#[inline(always)]
fn emit_path(ctx: &impl SysEnter, tgid: u32, tid: u32, nr: u32, enter_ns: u64) {
    let Some(&arg) = PB_PATH_ARGS.get(nr) else {
        return;
    };
    if arg == 0 || arg > 3 {
        return;
    }
    let Some(ptr) = ctx.argument(arg as usize - 1) else {
        return;
    };
    let Some(mut entry) = PB_EVENTS.reserve::<PathRecord>(0) else {
        lost(drop_slot::RINGBUF);
        return;
    };
    let rec = entry.as_mut_ptr();
    // SAFETY: `rec` points into the reserved entry, which is filled field by field (the record
    // is too large for the BPF stack); the user string is read by the probe helper.
    unsafe {
        (*rec).header = Header::of::<PathRecord>(0, tgid);
        (*rec).tid = tid;
        (*rec).nr = nr;
        (*rec).enter_ns = enter_ns;
        (*rec).path[0] = 0;
        let _ = bpf_probe_read_user_str_bytes(ptr as *const u8, &mut (*rec).path);
    }
    entry.submit(BPF_RB_NO_WAKEUP.into());
}

/// Monitor mode with kill: SIGKILL for a call outside the allowed set of this process
/// instance (a set written for an earlier process with the same pid is never applied).
#[inline(always)]
fn enforce(tgid: u32, instance: u32, nr: u32) {
    // SAFETY: a map value read for this run; only the agent writes it, whole.
    let Some(allowed) = (unsafe { PB_ALLOWED.get(tgid) }) else {
        return; // no set yet (a new process): nothing to enforce
    };
    if allowed.instance != instance || instance == 0 {
        return;
    }
    let word = (nr / 64) as usize;
    let allowed_here = word < ALLOWED_WORDS && allowed.bits[word] & (1u64 << (nr % 64)) != 0;
    if !allowed_here {
        // SAFETY: a helper that signals the current process.
        unsafe { bpf_send_signal(SIGKILL) };
        bump(&PB_STATS, stat_slot::KILLED);
    }
}

/// Adds one call (or failure) to a counter the CPUs share.
#[inline(always)]
fn add_one(c: *mut Counts, error: bool) {
    // SAFETY: `c` points at a PB_COUNTS value for this run; every writer adds atomically.
    unsafe {
        let field = if error {
            &raw mut (*c).errors
        } else {
            &raw mut (*c).calls
        };
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(field, 1);
    }
}

/// Counts one call of a process in `slot` (or `NO_SLOT`): in the slot's counter when it
/// counts this segment (or is free), else in PB_COUNTS. Returns whether it is the first call
/// of its syscall in its segment.
#[inline(always)]
fn count_at(slot: u32, key: &CountKey) -> bool {
    if slot != NO_SLOT
        && key.nr < SLOT_SYSCALLS
        && let Some(c) = PB_SLOT_COUNTS.get_ptr_mut(slot * SLOT_SYSCALLS + key.nr)
    {
        // SAFETY: an array element for this run. `seg` is written once per claim, by the
        // program that took it; `calls` only atomically; the agent clears them only once the
        // segment is over (or the process has gone) and then gives the claim back.
        unsafe {
            let seg = core::ptr::read_volatile(&raw const (*c).seg);
            if seg == key.seg {
                atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*c).calls, 1);
                return false;
            }
            cold_path();
            if seg == 0 && take(&raw mut (*c).claim) {
                core::ptr::write_volatile(&raw mut (*c).seg, key.seg);
                atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*c).calls, 1);
                // The first, unless calls of this segment went to PB_COUNTS while the counter
                // still held an earlier one.
                return PB_COUNTS.get(key).is_none();
            }
        }
    }
    count(key)
}

/// Counts one failed call: its counter in PB_COUNTS (its calls may be in a slot).
#[inline(always)]
fn count_error(key: &CountKey) {
    if let Some(c) = PB_COUNTS.get_ptr_mut(key) {
        add_one(c, true);
        return;
    }
    let one = Counts {
        calls: 0,
        errors: 1,
    };
    if PB_COUNTS.insert(key, one, BPF_NOEXIST.into()).is_err() {
        match PB_COUNTS.get_ptr_mut(key) {
            Some(c) => add_one(c, true),
            None => lost(drop_slot::COUNTS),
        }
    }
}

/// Counts one call in PB_COUNTS; returns whether it is the first of its syscall in its segment.
#[inline(always)]
fn count(key: &CountKey) -> bool {
    if let Some(c) = PB_COUNTS.get_ptr_mut(key) {
        add_one(c, false);
        return false;
    }
    let one = Counts {
        calls: 1,
        errors: 0,
    };
    match PB_COUNTS.insert(key, one, BPF_NOEXIST.into()) {
        Ok(()) => true,
        Err(_) => {
            // Another CPU created it first (or the map is full).
            match PB_COUNTS.get_ptr_mut(key) {
                Some(c) => add_one(c, false),
                None => lost(drop_slot::COUNTS),
            }
            false
        }
    }
}

/// Where a tracked process's call is counted: its instance and segment (a new segment when
/// the call may start a later phase). None: the process is not to be traced (the pid of an
/// exited root taken by another process, or a found process the agent rejected).
#[inline(always)]
fn segment_of(ctx: &impl SysEnter, tgid: u32, tid: u32, nr: u32) -> Option<Place> {
    let mut why = 0;
    let (st, slot) = match state_of(tgid) {
        Some(found) => found,
        None => {
            cold_path();
            let Some(fresh) = start_process(tgid, new_instance(), 0) else {
                return Some(Place::UNKNOWN);
            };
            why |= segment_flags::FIRST;
            match state_of(tgid) {
                Some(found) => found,
                None => return Some(Place::of(&fresh)),
            }
        }
    };
    // SAFETY: `st` points at this process's state (its slot or PB_PROCS value) for this run.
    let flags = unsafe { (*st).flags };
    if flags & (proc_flags::GONE | proc_flags::UNCONFIRMED) != 0 {
        cold_path();
        if flags & proc_flags::GONE != 0 || !apply_verdict(tgid, st) {
            return None;
        }
    }
    // SAFETY: as above.
    let (instance, seg, set) = unsafe { ((*st).instance, (*st).seg, (*st).marker_set) };
    // SAFETY: as above (the verdict may just have confirmed it).
    let confirmed = unsafe { (*st).flags } & proc_flags::UNCONFIRMED == 0;
    let place = |seg| Place {
        instance,
        seg,
        slot,
        confirmed,
    };
    if is_marker(set, nr) {
        cold_path();
        apply_set_request(tgid, st);
        // SAFETY: as above.
        if is_marker(unsafe { (*st).marker_set }, nr) {
            why |= segment_flags::MARKER;
        }
    }
    if why == 0 {
        return Some(place(seg));
    }
    let ts_ns = now();
    if why & segment_flags::MARKER != 0 && mode_has(mode::PATHS) {
        emit_path(ctx, tgid, tid, nr, ts_ns);
    }
    if why & segment_flags::FIRST != 0 {
        // A process's first segment needs no new number: report it as it is.
        emit_segment(tgid, tid, nr, instance, seg, why, ts_ns);
        return Some(place(seg));
    }
    Some(place(open_segment(tgid, tid, st, nr, why, ts_ns)))
}

/// Where a call of a tracked process counts, and whether monitor mode may act on it.
#[derive(Clone, Copy)]
struct Place {
    instance: u32,
    seg: u32,
    /// The process's slot, or `NO_SLOT`.
    slot: u32,
    /// Not waiting for the agent's verdict (found at exec): it may be enforced.
    confirmed: bool,
}

impl Place {
    /// A process the full process map could not take: counted without segments, never
    /// enforced (the kernel could not tell it from another process with its pid).
    const UNKNOWN: Place = Place {
        instance: 0,
        seg: 0,
        slot: NO_SLOT,
        confirmed: false,
    };

    fn of(st: &ProcState) -> Place {
        Place {
            instance: st.instance,
            seg: st.seg,
            slot: NO_SLOT,
            confirmed: st.flags & proc_flags::UNCONFIRMED == 0,
        }
    }
}

/// Applies the agent's verdict on a process found at its exec, if there is one yet. Returns
/// whether the process is still traced: a rejected one is forgotten here (its calls from now
/// on cost it the filter only).
#[inline(always)]
fn apply_verdict(tgid: u32, st: *mut ProcState) -> bool {
    // SAFETY: a map value read for this run; only the agent writes it, whole.
    let Some(v) = (unsafe { PB_VERDICTS.get(tgid) }).copied() else {
        return true; // not decided yet: counted, never enforced
    };
    // SAFETY: `st` points at this process's state (its slot or PB_PROCS value) for this run.
    if v.instance != unsafe { (*st).instance } {
        return true; // a verdict for an earlier process with this pid
    }
    let _ = PB_VERDICTS.remove(tgid);
    if v.accept != 0 {
        // SAFETY: as above; only this process's own calls and exit change its flags.
        unsafe { (*st).flags &= !proc_flags::UNCONFIRMED };
        return true;
    }
    set_kernel_bit(tgid, false);
    forget(tgid);
    false
}

/// A syscall record sent at entry, with no duration or return value.
#[inline(always)]
fn emit_at_entry(key: &CountKey, tid: u32, enter_ns: u64, flags: u16) {
    emit(
        SyscallRecord {
            header: Header::of::<SyscallRecord>(flags, key.tgid),
            tid,
            nr: key.nr,
            instance: key.instance,
            seg: key.seg,
            enter_ns,
            duration_ns: 0,
            ret: 0,
        },
        batched_wakeup(),
    );
}

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn pb_sys_enter(ctx: RawTracePointContext) -> i32 {
    enter(&ctx)
}

/// `pb_sys_enter` on the BTF-typed tracepoint (where the kernel has BTF): the same work, with
/// the argument registers read as plain loads. The agent attaches one of the two.
#[btf_tracepoint(function = "sys_enter")]
pub fn pb_sys_enter_btf(ctx: BtfTracePointContext) -> i32 {
    enter(&BtfSysEnter(ctx))
}

/// Untracked threads (nearly all of them) leave here, through a program that is no more than
/// the filter: the rest is a function of its own, so its registers and stack are set up only
/// for tracked processes.
#[inline(always)]
fn enter(ctx: &impl SysEnter) -> i32 {
    if let Some((tgid, tid)) = filter(|| ctx.regs()) {
        traced_enter(ctx, tgid, tid);
    }
    0
}

/// A tracked process enters a syscall: its segment, its counter, and what userspace needs.
#[inline(never)]
fn traced_enter(ctx: &impl SysEnter, tgid: u32, tid: u32) {
    let nr = ctx.nr();
    if let Some(waiting) = PB_AWAIT.get_ptr_mut(0) {
        // SAFETY: the array's only element; only the launched process's thread clears it.
        if unsafe { *waiting } == tgid {
            cold_path();
            let cfg = PB_CONFIG.load();
            if nr != cfg.nr_execve && nr != cfg.nr_execveat {
                return;
            }
            // SAFETY: as above.
            unsafe { *waiting = 0 };
        }
    }
    let Some(Place {
        instance,
        seg,
        slot,
        confirmed,
    }) = segment_of(ctx, tgid, tid, nr)
    else {
        return;
    };
    if mode_has(mode::KILL) && confirmed {
        enforce(tgid, instance, nr);
    }
    let key = CountKey {
        tgid,
        instance,
        seg,
        nr,
    };
    let first = count_at(slot, &key);
    if mode_has(mode::BATCH) && PB_WAITS.get(nr).is_some_and(|w| *w != 0) {
        // It may wait long: what it holds goes now, not after the wait.
        send_held(tid, tgid);
    }
    if mode_has(mode::STREAM) && shown(nr) {
        let enter_ns = now();
        let cfg = PB_CONFIG.load();
        if nr == cfg.nr_exit || nr == cfg.nr_exit_group {
            send_held(tid, tgid);
            emit_at_entry(&key, tid, enter_ns, syscall_flags::NO_RETURN);
            return;
        }
        if mode_has(mode::PATHS) {
            emit_path(ctx, tgid, tid, nr, enter_ns);
        }
        if mode_has(mode::ARGS)
            && let Some(values) = arg_values(ctx, nr)
        {
            emit_args(&key, tid, enter_ns, values);
        }
        if !mode_has(mode::ENTRY_ONLY) {
            remember(tid, &key, enter_ns);
            return;
        }
        emit_at_entry(&key, tid, enter_ns, syscall_flags::AT_ENTRY);
        if mode_has(mode::FILTERED) {
            // For the exit program, once attached: an exit without this is a filtered call.
            remember(tid, &key, 1);
        }
    } else {
        if mode_has(mode::ARGS)
            && let Some(values) = arg_values(ctx, nr)
            && new_args(&key, values)
        {
            emit_args(&key, tid, now(), values);
        }
        if mode_has(mode::ERRORS)
            || mode_has(mode::FILTERED)
            || mode_has(mode::STREAM) && !mode_has(mode::ENTRY_ONLY)
        {
            remember(tid, &key, 1);
        }
        if first {
            cold_path();
            // A call not shown (`-e trace=`) reports its first use: after the thread's batch.
            send_held(tid, tgid);
            // The clock is read only for a call that is reported.
            let enter_ns = now();
            if mode_has(mode::PATHS) {
                emit_path(ctx, tgid, tid, nr, enter_ns);
            }
            let flags = syscall_flags::AT_ENTRY | syscall_flags::FIRST_USE;
            emit_at_entry(&key, tid, enter_ns, flags);
        }
    }
}

/// The recorded arguments of call `nr`, masked by its spec; None when it has no spec.
#[inline(always)]
fn arg_values(ctx: &impl SysEnter, nr: u32) -> Option<[u64; ARG_SLOTS]> {
    let spec = PB_ARG_SPECS.get(nr)?;
    if !spec.any() {
        return None;
    }
    let raw = ctx.args()?;
    Some([
        raw[0] & spec.masks[0],
        raw[1] & spec.masks[1],
        raw[2] & spec.masks[2],
    ])
}

/// Whether this combination of arguments is new in the call's segment (it is remembered).
#[inline(always)]
fn new_args(key: &CountKey, values: [u64; ARG_SLOTS]) -> bool {
    let seen = ArgsKey {
        tgid: key.tgid,
        instance: key.instance,
        seg: key.seg,
        nr: key.nr,
        values,
    };
    let last = PB_ARGS_LAST.get_ptr_mut(key.nr);
    if let Some(last) = last {
        // SAFETY: this CPU's slot; nothing else writes it while this program runs here.
        if same_args(unsafe { &*last }, &seen) {
            return false;
        }
    }
    // SAFETY: a map value read for this run; only its presence is used.
    let new = unsafe { PB_ARGS_SEEN.get(seen) }.is_none();
    if new {
        let _ = PB_ARGS_SEEN.insert(seen, 1u8, 0);
    }
    if let Some(last) = last {
        // SAFETY: as above.
        unsafe { *last = seen };
    }
    new
}

/// Field by field (the BPF target has no memcmp).
#[inline(always)]
fn same_args(a: &ArgsKey, b: &ArgsKey) -> bool {
    a.tgid == b.tgid
        && a.instance == b.instance
        && a.seg == b.seg
        && a.nr == b.nr
        && a.values[0] == b.values[0]
        && a.values[1] == b.values[1]
        && a.values[2] == b.values[2]
}

/// Sends a call's recorded arguments.
#[inline(always)]
fn emit_args(key: &CountKey, tid: u32, enter_ns: u64, values: [u64; ARG_SLOTS]) {
    emit(
        ArgsRecord {
            header: Header::of::<ArgsRecord>(0, key.tgid),
            tid,
            nr: key.nr,
            instance: key.instance,
            seg: key.seg,
            enter_ns,
            values,
        },
        BPF_RB_NO_WAKEUP.into(),
    );
}

/// Notes the call `tid` is in, for the exit program.
#[inline(always)]
fn remember(tid: u32, key: &CountKey, enter_ns: u64) {
    let p = Pending {
        nr: key.nr,
        instance: key.instance,
        seg: key.seg,
        live: 1,
        enter_ns,
    };
    if let Some(slot) = PB_PENDING_TID.get_ptr_mut(tid) {
        // SAFETY: the element of this tid; only its thread writes it while it lives.
        unsafe { *slot = p };
        return;
    }
    cold_path();
    // Written in place when the thread has an entry already: an update would take the map's
    // bucket lock and swap elements on every syscall.
    match PB_PENDING.get_ptr_mut(tid) {
        // SAFETY: only this thread reads or writes its own entry.
        Some(slot) => unsafe { *slot = p },
        None => {
            let _ = PB_PENDING.insert(tid, p, 0);
        }
    }
}

/// The call `tid` is in, as `remember` noted it; None if it entered none since it was traced.
#[inline(always)]
fn pending_of(tid: u32) -> Option<*mut Pending> {
    if let Some(slot) = PB_PENDING_TID.get_ptr_mut(tid) {
        // SAFETY: as in `remember`.
        return (unsafe { (*slot).live } != 0).then_some(slot);
    }
    cold_path();
    PB_PENDING.get_ptr_mut(tid)
}

/// Clears the pending call of `tid`, a thread that ended or took another tid at its exec:
/// a later thread with that tid must not pair its first exit with it. Read first, so that the
/// threads that never had a pending call leave their element's line clean.
#[inline(always)]
fn forget_pending_by_tid(tid: u32) {
    if let Some(slot) = PB_PENDING_TID.get_ptr_mut(tid) {
        // SAFETY: the element of `tid`, whose thread has ended or no longer has that tid.
        unsafe {
            if (*slot).live != 0 {
                (*slot).live = 0;
            }
        }
    }
}

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn pb_sys_exit(ctx: RawTracePointContext) -> i32 {
    if let Some((tgid, tid)) = filter(|| ctx.arg::<u64>(0)) {
        traced_exit(&ctx, tgid, tid);
    }
    0
}

/// A tracked process returns from a syscall: a failure counted, the record sent.
#[inline(never)]
fn traced_exit(ctx: &RawTracePointContext, tgid: u32, tid: u32) {
    let Some(pending) = pending_of(tid) else {
        return; // entered before tracking began
    };
    // SAFETY: only this thread reads or writes its own entry.
    let p = unsafe { *pending };
    if p.enter_ns == 0 {
        // Its last call was reported already: this exit had no enter. A seccomp filter
        // answered the call before the enter tracepoint.
        if mode_has(mode::FILTERED) {
            filtered(ctx, tgid, tid, &p);
        }
        return;
    }
    // SAFETY: as above.
    unsafe { (*pending).enter_ns = 0 };
    let ret = ctx.arg::<i64>(1);
    let key = CountKey {
        tgid,
        instance: p.instance,
        seg: p.seg,
        nr: p.nr,
    };
    if is_error(ret) {
        count_error(&key);
    }
    if mode_has(mode::STREAM) && !mode_has(mode::ENTRY_ONLY) && shown(p.nr) {
        send_call(SyscallRecord {
            header: Header::of::<SyscallRecord>(0, tgid),
            tid,
            nr: p.nr,
            instance: p.instance,
            seg: p.seg,
            enter_ns: p.enter_ns,
            duration_ns: now().saturating_sub(p.enter_ns),
            ret,
        });
    }
}

/// Sends a call a seccomp filter denied before the enter tracepoint, placed in the segment of
/// the thread's previous call.
#[inline(always)]
fn filtered(ctx: &RawTracePointContext, tgid: u32, tid: u32, p: &Pending) {
    let ret = ctx.arg::<i64>(1);
    let Some(off) = SYSCALL_NR_OFFSET else {
        return;
    };
    if !is_error(ret) {
        return;
    }
    let regs = ctx.arg::<u64>(0) as *const u8;
    // SAFETY: `regs` is the tracepoint's pt_regs; the read goes through the probe helper,
    // which fails cleanly on a bad address; the offset is this architecture's syscall number.
    let Ok(nr) = (unsafe { bpf_probe_read_kernel(regs.add(off).cast::<i32>()) }) else {
        return;
    };
    send_held(tid, tgid);
    emit(
        FilteredRecord {
            header: Header::of::<FilteredRecord>(0, tgid),
            tid,
            nr: nr as u32,
            instance: p.instance,
            seg: p.seg,
            ts_ns: now(),
            ret,
        },
        batched_wakeup(),
    );
}

/// Does nothing: the per-syscall cost benchmark's floor.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn pb_floor(_ctx: RawTracePointContext) -> i32 {
    0
}

/// Does nothing on sys_exit: with `pb_floor`, the floor of a tracer that sees both ends.
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn pb_floor_exit(_ctx: RawTracePointContext) -> i32 {
    0
}

/// The floor plus reading the caller's pid: what the helper call costs, for the benchmark's
/// breakdown of the untracked path.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn pb_floor_pid(_ctx: RawTracePointContext) -> i32 {
    let (tgid, _) = current();
    i32::from(tgid == 0)
}

/// The floor plus the pid and one bitmap word: the untracked path reads two (user and kernel
/// bits), so the step from here to the agent is the second word.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn pb_floor_bit(_ctx: RawTracePointContext) -> i32 {
    let (tgid, _) = current();
    let (word, mask) = bit(tgid);
    let user = PB_USER_BITS.get(word).copied().unwrap_or(0);
    i32::from(user & mask != 0)
}

/// The state of a process traced now, or None: not traced, or the pid of an exited root that
/// another process has taken (`proc_flags::GONE`).
#[inline(always)]
fn traced_state(tgid: u32) -> Option<*mut ProcState> {
    if !tracked(tgid) {
        return None;
    }
    match state_of(tgid) {
        // SAFETY: `st` points at this process's state for this run.
        Some((st, _)) if unsafe { (*st).flags } & proc_flags::GONE != 0 => None,
        Some((st, _)) => Some(st),
        // Tracked, no state yet (attached, no call seen): a null state, still traced.
        None => Some(core::ptr::null_mut()),
    }
}

#[tracepoint(category = "sched", name = "sched_process_fork")]
pub fn pb_fork(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = current();
    let Some(st) = traced_state(tgid) else {
        return 0;
    };
    let cfg = PB_CONFIG.load();
    // SAFETY: a read of the tracepoint record through the probe helper at an offset read from
    // the kernel's own format file.
    let Ok(child) = (unsafe { ctx.read_at::<i32>(cfg.fork_child_pid_off as usize) }) else {
        return 0;
    };
    let child = child as u32;
    if child == cfg.self_tgid {
        return 0;
    }
    let ts_ns = now();
    let mut child_flags = 0;
    if !st.is_null() {
        // SAFETY: `st` points at the parent's state for this run.
        let (set, flags) = unsafe { ((*st).marker_set, (*st).flags) };
        // A child of an unconfirmed process waits for the agent's verdict too.
        child_flags = flags & proc_flags::UNCONFIRMED;
        // A fork may start the parent's next phase.
        if is_marker(set, FORK_MARKER_SLOT) {
            open_segment(tgid, tid, st, 0, segment_flags::FORK, ts_ns);
        }
    }
    // A thread's bit and state are never looked up as a tgid's while it lives; pb_exit clears
    // them. A GONE entry left at this pid is replaced: the pid is the traced tree's again.
    set_kernel_bit(child, true);
    let child_instance = new_instance();
    start_process(child, child_instance, child_flags);
    send_held(tid, tgid);
    emit(
        ForkRecord {
            header: Header::of::<ForkRecord>(0, tgid),
            parent_tid: tid,
            child_tid: child,
            child_instance,
            child_flags,
            ts_ns,
        },
        0,
    );
    0
}

/// Whether the current task's comm is the `--exec-name` one.
#[inline(always)]
fn exec_name_matches(comm: &[u8; COMM_LEN], want: &[u8; COMM_LEN]) -> bool {
    if want[0] == 0 {
        return false;
    }
    let mut i = 0;
    while i < COMM_LEN {
        if comm[i] != want[i] {
            return false;
        }
        if want[i] == 0 {
            return true;
        }
        i += 1;
    }
    true
}

/// Whether the current task runs in the pid namespace (`dev`, `ino`).
#[inline(always)]
fn in_pidns(dev: u64, ino: u64) -> bool {
    let mut ns = bpf_pidns_info { pid: 0, tgid: 0 };
    let size = core::mem::size_of::<bpf_pidns_info>() as u32;
    // SAFETY: the helper writes at most `size` bytes into `ns`, a local of that size; it fails
    // (non-zero) when the task is in another pid namespace.
    unsafe { bpf_get_ns_current_pid_tgid(dev, ino, &mut ns, size) == 0 }
}

/// How an untracked process executing a program falls in the session's scope
/// (`exec_flags::BY_*`), or 0 when it does not.
#[inline(always)]
fn scope_match(comm: &[u8; COMM_LEN], cfg: &Config) -> u16 {
    if exec_name_matches(comm, &cfg.exec_comm) {
        return exec_flags::BY_NAME;
    }
    let Some(scope) = PB_SCOPE.get(0) else {
        return 0;
    };
    if scope.flags & scope_flags::PIDNS != 0 && in_pidns(scope.pidns_dev, scope.pidns_ino) {
        return exec_flags::BY_PIDNS;
    }
    if scope.flags & scope_flags::FOREIGN_PIDNS != 0
        && !in_pidns(scope.host_pidns_dev, scope.host_pidns_ino)
    {
        return exec_flags::BY_FOREIGN_PIDNS;
    }
    if scope.flags & scope_flags::ANY != 0 {
        return exec_flags::BY_ANY;
    }
    0
}

#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn pb_exec(ctx: TracePointContext) -> u32 {
    forget_thread();
    let (tgid, tid) = current();
    let cfg = PB_CONFIG.load();
    let comm = bpf_get_current_comm().unwrap_or([0; COMM_LEN]);
    let traced = traced_state(tgid);
    if traced.is_some() {
        // A thread other than the leader that execs takes the leader's tid: the call it was
        // in under its own (this execve, whose exit is looked up under the new tid) goes.
        // SAFETY: a read of the tracepoint record through the probe helper at an offset read
        // from the kernel's own format file.
        let old = unsafe { ctx.read_at::<i32>(cfg.exec_old_pid_off as usize) }.unwrap_or(0) as u32;
        if old != tid {
            cold_path();
            forget_pending_by_tid(old);
            let _ = PB_PENDING.remove(old);
            send_held(old, tgid);
        }
        send_held(tid, tgid);
    }
    let mut flags = 0;
    if traced.is_none() {
        let how = scope_match(&comm, &cfg);
        if how == 0 {
            return 0;
        }
        set_kernel_bit(tgid, true);
        flags = exec_flags::NEW_ROOT | how;
    }
    let ts_ns = now();
    emit_exec(&ctx, &cfg, tgid, tid, flags, comm, ts_ns);
    // A new program: a new segment, and every marker matters again (its role may differ). A
    // process found now starts afresh, unconfirmed, whatever this pid held before.
    let st = match traced {
        Some(st) if !st.is_null() => st,
        _ => {
            let state = if flags & exec_flags::NEW_ROOT != 0 {
                proc_flags::UNCONFIRMED
            } else {
                0
            };
            let Some(fresh) = start_process(tgid, new_instance(), state) else {
                return 0;
            };
            emit(
                SegmentRecord {
                    header: Header::of::<SegmentRecord>(
                        segment_flags::FIRST | segment_flags::EXEC,
                        tgid,
                    ),
                    tid,
                    nr: 0,
                    instance: fresh.instance,
                    seg: fresh.seg,
                    ts_ns,
                },
                0,
            );
            return 0;
        }
    };
    // SAFETY: `st` points at this process's state (its slot or PB_PROCS value); exec has ended its other threads.
    unsafe {
        (*st).marker_set = FULL_MARKER_SET;
        (*st).execs += 1;
    }
    open_segment(tgid, tid, st, 0, segment_flags::EXEC, ts_ns);
    0
}

/// Sends the exec record: the program's path and comm.
#[inline(always)]
fn emit_exec(
    ctx: &TracePointContext,
    cfg: &Config,
    tgid: u32,
    tid: u32,
    flags: u16,
    comm: [u8; COMM_LEN],
    ts_ns: u64,
) {
    let Some(mut entry) = PB_EVENTS.reserve::<ExecRecord>(0) else {
        lost(drop_slot::RINGBUF);
        return;
    };
    let rec = entry.as_mut_ptr();
    // SAFETY: `rec` points into the reserved ring-buffer entry, filled field by field (the
    // record is too large for the BPF stack); tracepoint fields are read through the probe
    // helpers at offsets read from the kernel's own format file.
    unsafe {
        (*rec).header = Header::of::<ExecRecord>(flags, tgid);
        (*rec).tid = tid;
        (*rec).old_tid = ctx
            .read_at::<i32>(cfg.exec_old_pid_off as usize)
            .unwrap_or(0) as u32;
        (*rec).ts_ns = ts_ns;
        (*rec).comm = comm;
        (*rec).filename[0] = 0;
        if let Ok(loc) = ctx.read_at::<u32>(cfg.exec_filename_off as usize) {
            let src = (ctx.as_ptr() as *const u8).add((loc & 0xffff) as usize);
            let _ = bpf_probe_read_kernel_str_bytes(src, &mut (*rec).filename);
        }
    }
    entry.submit(0);
}

#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn pb_exit(ctx: TracePointContext) -> u32 {
    forget_thread();
    let (tgid, tid) = current();
    forget_pending_by_tid(tid);
    // Whether or not its process is still traced: a later thread with this tid starts empty.
    send_held(tid, tgid);
    if traced_state(tgid).is_none() {
        return 0;
    }
    let off = PB_CONFIG.load().exit_group_dead_off;
    let group_dead = if off == NO_FIELD {
        0
    } else {
        // SAFETY: a read of the tracepoint record through the probe helper at an offset read
        // from the kernel's own format file.
        u32::from(unsafe { ctx.read_at::<u8>(off as usize) }.unwrap_or(0))
    };
    let _ = PB_PENDING.remove(tid);
    if tid != tgid {
        set_kernel_bit(tid, false);
        // The state pb_fork made in case the thread was a process.
        forget(tid);
    }
    if group_dead != 0 {
        process_ended(tgid);
    }
    emit(
        ExitRecord {
            header: Header::of::<ExitRecord>(0, tgid),
            tid,
            group_dead,
            ts_ns: now(),
        },
        0,
    );
    0
}

/// A traced process's last task exited: every entry kept for it goes, so the maps hold live
/// processes only. The agent reads its counters before deleting them; a pid the agent tracks
/// by its own bit keeps a `GONE` entry until the agent has read this exit, so that another
/// process taking the pid meanwhile is not traced (or killed) as this one.
#[inline(always)]
fn process_ended(tgid: u32) {
    set_kernel_bit(tgid, false);
    let _ = PB_SET_REQUESTS.remove(tgid);
    let _ = PB_ALLOWED.remove(tgid);
    let _ = PB_VERDICTS.remove(tgid);
    forget(tgid);
    if user_tracked(tgid) {
        let gone = ProcState {
            flags: proc_flags::GONE,
            ..ProcState::default()
        };
        if PB_PROCS.insert(tgid, gone, 0).is_err() {
            lost(drop_slot::PROCS);
        }
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
