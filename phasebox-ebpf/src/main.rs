//! phasebox's kernel programs: filter by tracked tgid, count, emit.
//!
//! - `pb_sys_enter` / `pb_sys_exit` (raw tracepoints on raw_syscalls): per-(tgid, syscall)
//!   counters, and in stream mode one record per syscall with enter and exit paired here.
//! - `pb_fork` / `pb_exec` / `pb_exit` (sched tracepoints): follow children, report execs and
//!   exits, clean up.
#![no_std]
#![no_main]
// Atomic add on map memory: core's atomic types have no read-modify-write on the BPF target.
#![feature(core_intrinsics)]
#![allow(internal_features)]

use core::intrinsics::{AtomicOrdering, atomic_xadd, atomic_xsub};

use aya_ebpf::{
    EbpfContext,
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel,
        bpf_probe_read_kernel_str_bytes, bpf_probe_read_user_str_bytes, generated::bpf_send_signal,
    },
    macros::{map, raw_tracepoint, tracepoint},
    maps::{Array, HashMap, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::{RawTracePointContext, TracePointContext},
};
use phasebox_common::{
    ALLOWED_WORDS, Config, CountKey, Counts, EPOCH_NO_MARKERS, ExecRecord, ExitRecord, ForkRecord,
    Header, MAX_SYSCALLS, NO_FIELD, PathRecord, Pending, SyscallRecord, drop_slot, exec_flags,
    is_error, kind, mode, syscall_flags,
};

/// Written by the agent before load (see `Config`).
#[unsafe(no_mangle)]
static PB_CONFIG: Config = Config {
    self_tgid: 0,
    mode: 0,
    fork_child_pid_off: NO_FIELD,
    exec_filename_off: NO_FIELD,
    exec_old_pid_off: NO_FIELD,
    exit_group_dead_off: NO_FIELD,
    nr_execve: u32::MAX,
    nr_execveat: u32::MAX,
    nr_exit: u32::MAX,
    nr_exit_group: u32::MAX,
    arg_offsets: [NO_FIELD; 6],
    exec_comm: [0; 16],
    wakeup_bytes: 0,
    _pad: 0,
};

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

/// Summary mode: tgid → phase epoch (set by the agent when the process changes phase; bit 31:
/// no marker matters any more).
#[map]
static PB_EPOCH: HashMap<u32, u32> = HashMap::with_max_entries(16384, 0);

/// Summary mode: syscall number → 1 when phase markers use it (always reported).
#[map]
static PB_MARKERS: Array<u32> = Array::with_max_entries(MAX_SYSCALLS, 0);

/// Monitor mode with kill: tgid → syscalls it may still make (its phase and the later ones).
#[map]
static PB_ALLOWED: HashMap<u32, [u64; ALLOWED_WORDS]> = HashMap::with_max_entries(16384, 0);

/// tid → the syscall it is in.
#[map]
static PB_PENDING: HashMap<u32, Pending> = HashMap::with_max_entries(65536, 0);

/// (tgid, syscall) → calls and errors, per CPU: exact even when the ring buffer is full. In
/// summary mode the value also keeps the epoch of its last first-use report (`seen`).
#[map]
static PB_COUNTS: PerCpuHashMap<CountKey, Counts> = PerCpuHashMap::with_max_entries(65536, 0);

#[map]
static PB_EVENTS: RingBuf = RingBuf::with_byte_size(1 << 23, 0);

/// Per-CPU loss counters, indexed by `phasebox_common::drop_slot`.
#[map]
static PB_DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(drop_slot::SLOTS, 0);

macro_rules! cfg {
    ($field:ident) => {{
        // SAFETY: PB_CONFIG lives in .rodata, written once by the loader before any run.
        #[allow(unused_unsafe)]
        let v = unsafe { core::ptr::read_volatile(&PB_CONFIG.$field) };
        v
    }};
}

#[inline(always)]
fn lost(slot: u32) {
    if let Some(n) = PB_DROPS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot, no other writer on this CPU while we run.
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

/// Sets or clears `pid`'s kernel bit. Each bit has one writer at a time (the fork that created
/// the pid, later its exit), so adding a bit known clear, or subtracting one known set, never
/// carries into other pids' bits.
#[inline(always)]
fn set_kernel_bit(pid: u32, on: bool) {
    let (word, mask) = bit(pid);
    if let Some(w) = PB_KERNEL_BITS.get_ptr_mut(word) {
        // SAFETY: pointer to an array element, valid for this run; changed only atomically.
        unsafe {
            let set = core::ptr::read_volatile(w) & mask != 0;
            if on && !set {
                atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(w, mask);
            } else if !on && set {
                atomic_xsub::<u64, u64, { AtomicOrdering::Relaxed }>(w, mask);
            }
        }
    }
}

#[inline(always)]
fn current() -> (u32, u32) {
    let id = bpf_get_current_pid_tgid();
    ((id >> 32) as u32, id as u32)
}

#[inline(always)]
fn count(tgid: u32, nr: u32, calls: u64, errors: u64) {
    let key = CountKey { tgid, nr };
    match PB_COUNTS.get_ptr_mut(&key) {
        // SAFETY: per-CPU value, no other writer on this CPU while we run.
        Some(c) => unsafe {
            (*c).calls += calls;
            (*c).errors += errors;
        },
        None => {
            if PB_COUNTS
                .insert(
                    &key,
                    &Counts {
                        calls,
                        errors,
                        ..Counts::default()
                    },
                    0,
                )
                .is_err()
            {
                lost(drop_slot::COUNTS);
            }
        }
    }
}

/// Wakes the reader only when enough bytes are waiting; it also drains on a timer.
#[inline(always)]
fn syscall_wakeup_flags() -> u64 {
    if PB_EVENTS.query(BPF_RB_AVAIL_DATA.into()) >= u64::from(cfg!(wakeup_bytes)) {
        BPF_RB_FORCE_WAKEUP.into()
    } else {
        BPF_RB_NO_WAKEUP.into()
    }
}

#[inline(always)]
fn emit_syscall(rec: SyscallRecord) {
    emit(rec, syscall_wakeup_flags());
}

/// Sends one record; a full ring buffer is counted, never silent.
#[inline(always)]
fn emit<T: 'static>(rec: T, flags: u64) {
    match PB_EVENTS.reserve::<T>(0) {
        Some(mut entry) => {
            entry.write(rec);
            entry.submit(flags);
        }
        None => lost(drop_slot::RINGBUF),
    }
}

/// Sends the path argument of syscall `nr`, if it takes one (PATHS mode).
#[inline(always)]
fn emit_path(ctx: &RawTracePointContext, tgid: u32, tid: u32, nr: u32, enter_ns: u64) {
    let Some(&arg) = PB_PATH_ARGS.get(nr) else {
        return;
    };
    if arg == 0 || arg > 3 {
        return;
    }
    let off = match arg {
        1 => cfg!(arg_offsets)[0],
        2 => cfg!(arg_offsets)[1],
        _ => cfg!(arg_offsets)[2],
    };
    if off == NO_FIELD {
        return;
    }
    let regs = ctx.arg::<u64>(0) as *const u8;
    // SAFETY: `regs` is the tracepoint's pt_regs; reads go through the probe helpers.
    let Ok(ptr) = (unsafe { bpf_probe_read_kernel(regs.add(off as usize).cast::<u64>()) }) else {
        return;
    };
    let Some(mut entry) = PB_EVENTS.reserve::<PathRecord>(0) else {
        lost(drop_slot::RINGBUF);
        return;
    };
    let rec = entry.as_mut_ptr();
    // SAFETY: `rec` points into the reserved entry, filled field by field.
    unsafe {
        (*rec).header = Header {
            kind: kind::PATH,
            flags: 0,
            tgid,
        };
        (*rec).tid = tid;
        (*rec).nr = nr;
        (*rec).enter_ns = enter_ns;
        (*rec).path[0] = 0;
        let _ = bpf_probe_read_user_str_bytes(ptr as *const u8, &mut (*rec).path);
    }
    entry.submit(BPF_RB_NO_WAKEUP.into());
}

/// Monitor mode with kill: SIGKILL for a call outside the process's allowed set.
#[inline(always)]
fn enforce(tgid: u32, nr: u32) {
    let Some(allowed) = (unsafe { PB_ALLOWED.get(&tgid) }) else {
        return; // no set yet (a new process): nothing to enforce
    };
    let word = (nr / 64) as usize;
    let allowed_here = word < ALLOWED_WORDS && allowed[word] & (1u64 << (nr % 64)) != 0;
    if !allowed_here {
        // SAFETY: plain helper call; signals the current process.
        unsafe { bpf_send_signal(9) };
        lost(drop_slot::KILLED);
    }
}

/// Summary mode: counts the call, and reports it at entry when it is the process's first use
/// of it in its current phase epoch (on this CPU), or when phase markers use it (until the
/// agent says none matters). One counter lookup does both; no exit program runs.
#[inline(always)]
fn summary_enter(ctx: &RawTracePointContext, tgid: u32, tid: u32, nr: u32) {
    let epoch_word = unsafe { PB_EPOCH.get(&tgid) }.copied().unwrap_or(0);
    let tag = (epoch_word & !EPOCH_NO_MARKERS) + 1;
    let key = CountKey { tgid, nr };
    let first = match PB_COUNTS.get_ptr_mut(&key) {
        // SAFETY: per-CPU value, no other writer on this CPU while we run.
        Some(c) => unsafe {
            (*c).calls += 1;
            let first = (*c).seen != tag;
            (*c).seen = tag;
            first
        },
        None => {
            let fresh = Counts {
                calls: 1,
                seen: tag,
                ..Counts::default()
            };
            let ok = PB_COUNTS.insert(&key, &fresh, 0).is_ok();
            if !ok {
                lost(drop_slot::COUNTS);
            }
            ok
        }
    };
    let marker =
        epoch_word & EPOCH_NO_MARKERS == 0 && PB_MARKERS.get(nr).copied().unwrap_or(0) != 0;
    if !first && !marker {
        return;
    }
    // The clock is read only for a call that is reported.
    let enter_ns = unsafe { bpf_ktime_get_ns() };
    if cfg!(mode) & mode::PATHS != 0 {
        emit_path(ctx, tgid, tid, nr, enter_ns);
    }
    let flags = syscall_flags::AT_ENTRY | if first { syscall_flags::FIRST_USE } else { 0 };
    emit_at_entry(tgid, tid, nr, enter_ns, flags);
}

/// A syscall record sent at entry, with no duration or return value (summary mode, and calls
/// that never return).
#[inline(always)]
fn emit_at_entry(tgid: u32, tid: u32, nr: u32, enter_ns: u64, flags: u16) {
    emit_syscall(SyscallRecord {
        header: Header {
            kind: kind::SYSCALL,
            flags,
            tgid,
        },
        tid,
        nr,
        enter_ns,
        duration_ns: 0,
        ret: 0,
    });
}

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn pb_sys_enter(ctx: RawTracePointContext) -> i32 {
    let (tgid, tid) = current();
    // Untracked processes (nearly all of them) leave here.
    if !tracked(tgid) {
        return 0;
    }
    let nr = ctx.arg::<i64>(1) as u32;
    if let Some(waiting) = PB_AWAIT.get_ptr_mut(0) {
        // SAFETY: pointer to an array element; only the launched process's thread writes it.
        if unsafe { *waiting } == tgid {
            if nr != cfg!(nr_execve) && nr != cfg!(nr_execveat) {
                return 0;
            }
            unsafe { *waiting = 0 };
        }
    }
    if cfg!(mode) & mode::KILL != 0 {
        enforce(tgid, nr);
    }
    if cfg!(mode) & mode::STREAM == 0 {
        summary_enter(&ctx, tgid, tid, nr);
        return 0;
    }
    let enter_ns = unsafe { bpf_ktime_get_ns() };
    count(tgid, nr, 1, 0);
    if nr == cfg!(nr_exit) || nr == cfg!(nr_exit_group) {
        emit_at_entry(tgid, tid, nr, enter_ns, syscall_flags::NO_RETURN);
        return 0;
    }
    if cfg!(mode) & mode::PATHS != 0 {
        emit_path(&ctx, tgid, tid, nr, enter_ns);
    }
    // Written in place when the thread has an entry already: an update would take the map's
    // bucket lock and swap elements on every syscall.
    match PB_PENDING.get_ptr_mut(&tid) {
        // SAFETY: only this thread reads or writes its own entry.
        Some(p) => unsafe {
            (*p).nr = nr;
            (*p).enter_ns = enter_ns;
        },
        None => {
            let _ = PB_PENDING.insert(
                &tid,
                &Pending {
                    nr,
                    _pad: 0,
                    enter_ns,
                },
                0,
            );
        }
    }
    0
}

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn pb_sys_exit(ctx: RawTracePointContext) -> i32 {
    let (tgid, tid) = current();
    if !tracked(tgid) {
        return 0;
    }
    let Some(pending) = PB_PENDING.get_ptr_mut(&tid) else {
        return 0;
    };
    // SAFETY: pointer to a map value, valid for this program run.
    let p = unsafe { *pending };
    if p.enter_ns == 0 {
        return 0; // entered before tracking began, or already reported
    }
    unsafe { (*pending).enter_ns = 0 };
    let ret = ctx.arg::<i64>(1);
    if is_error(ret) {
        count(tgid, p.nr, 0, 1);
    }
    if cfg!(mode) & mode::STREAM != 0 {
        let now = unsafe { bpf_ktime_get_ns() };
        emit_syscall(SyscallRecord {
            header: Header {
                kind: kind::SYSCALL,
                flags: 0,
                tgid,
            },
            tid,
            nr: p.nr,
            enter_ns: p.enter_ns,
            duration_ns: now.saturating_sub(p.enter_ns),
            ret,
        });
    }
    0
}

#[tracepoint(category = "sched", name = "sched_process_fork")]
pub fn pb_fork(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = current();
    if !tracked(tgid) {
        return 0;
    }
    let Ok(child) = (unsafe { ctx.read_at::<i32>(cfg!(fork_child_pid_off) as usize) }) else {
        return 0;
    };
    let child = child as u32;
    if child == cfg!(self_tgid) {
        return 0;
    }
    // A thread's bit is never looked up as a tgid while it lives; pb_exit clears it.
    set_kernel_bit(child, true);
    emit(
        ForkRecord {
            header: Header {
                kind: kind::FORK,
                flags: 0,
                tgid,
            },
            parent_tid: tid,
            child_tid: child,
            ts_ns: unsafe { bpf_ktime_get_ns() },
        },
        0,
    );
    0
}

/// Whether the current task's comm is the `--exec-name` one.
#[inline(always)]
fn exec_name_matches(comm: &[u8; 16]) -> bool {
    let want = cfg!(exec_comm);
    if want[0] == 0 {
        return false;
    }
    let mut i = 0;
    while i < 16 {
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

#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn pb_exec(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = current();
    let comm = bpf_get_current_comm().unwrap_or([0; 16]);
    let mut flags = 0;
    if !tracked(tgid) {
        if !exec_name_matches(&comm) {
            return 0;
        }
        set_kernel_bit(tgid, true);
        flags = exec_flags::NEW_ROOT;
    }
    let Some(mut entry) = PB_EVENTS.reserve::<ExecRecord>(0) else {
        lost(drop_slot::RINGBUF);
        return 0;
    };
    let rec = entry.as_mut_ptr();
    // SAFETY: `rec` points into the reserved ring-buffer entry, which we fill field by field
    // (the record is too large for the BPF stack).
    unsafe {
        (*rec).header = Header {
            kind: kind::EXEC,
            flags,
            tgid,
        };
        (*rec).tid = tid;
        (*rec).old_tid = ctx
            .read_at::<i32>(cfg!(exec_old_pid_off) as usize)
            .unwrap_or(0) as u32;
        (*rec).ts_ns = bpf_ktime_get_ns();
        (*rec).comm = comm;
        (*rec).filename[0] = 0;
        if let Ok(loc) = ctx.read_at::<u32>(cfg!(exec_filename_off) as usize) {
            let src = (ctx.as_ptr() as *const u8).add((loc & 0xffff) as usize);
            let _ = bpf_probe_read_kernel_str_bytes(src, &mut (*rec).filename);
        }
    }
    entry.submit(0);
    0
}

#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn pb_exit(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = current();
    if !tracked(tgid) {
        return 0;
    }
    let off = cfg!(exit_group_dead_off);
    let group_dead = if off == NO_FIELD {
        0
    } else {
        u32::from(unsafe { ctx.read_at::<u8>(off as usize) }.unwrap_or(0))
    };
    let _ = PB_PENDING.remove(&tid);
    if tid != tgid {
        set_kernel_bit(tid, false);
    }
    if group_dead != 0 {
        // The agent clears the process's user bit when it reads this record.
        set_kernel_bit(tgid, false);
    }
    emit(
        ExitRecord {
            header: Header {
                kind: kind::EXIT,
                flags: 0,
                tgid,
            },
            tid,
            group_dead,
            ts_ns: unsafe { bpf_ktime_get_ns() },
        },
        0,
    );
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
