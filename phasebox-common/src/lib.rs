//! Wire types shared by phasebox's kernel programs and its agent.
//!
//! Every record the kernel writes to the ring buffer starts with a [`Header`]; its `kind` says
//! which fixed-size record follows. Records are `#[repr(C)]` with explicit padding so the layout
//! is the same on both sides and in trace files (which store these records as they are).
#![no_std]

/// Version of the record layout below; trace files carry it.
pub const WIRE_VERSION: u32 = 1;

/// Map and program names, used by the kernel crate (as symbol names) and the agent.
pub mod names {
    pub const AWAIT: &str = "PB_AWAIT";
    pub const USER_BITS: &str = "PB_USER_BITS";
    pub const KERNEL_BITS: &str = "PB_KERNEL_BITS";
    pub const PENDING: &str = "PB_PENDING";
    pub const COUNTS: &str = "PB_COUNTS";
    pub const EVENTS: &str = "PB_EVENTS";
    pub const DROPS: &str = "PB_DROPS";
    pub const PATH_ARGS: &str = "PB_PATH_ARGS";
    pub const EPOCH: &str = "PB_EPOCH";
    pub const MARKERS: &str = "PB_MARKERS";
    pub const ALLOWED: &str = "PB_ALLOWED";
    pub const CONFIG: &str = "PB_CONFIG";
    pub const PROG_SYS_ENTER: &str = "pb_sys_enter";
    pub const PROG_SYS_EXIT: &str = "pb_sys_exit";
    pub const PROG_FORK: &str = "pb_fork";
    pub const PROG_EXEC: &str = "pb_exec";
    pub const PROG_EXIT: &str = "pb_exit";
    /// Every phasebox program name starts with this.
    pub const PROG_PREFIX: &str = "pb_";
}

/// Record kinds (the `kind` of [`Header`]). Fixed numbers: new kinds get new numbers.
pub mod kind {
    pub const SYSCALL: u16 = 1;
    pub const FORK: u16 = 2;
    pub const EXEC: u16 = 3;
    pub const EXIT: u16 = 4;
    pub const PATH: u16 = 5;
}

/// Flags of an [`ExecRecord`].
pub mod exec_flags {
    /// The process was not tracked: it is tracked from this exec on (`--exec-name`).
    pub const NEW_ROOT: u16 = 1;
}

/// Flags of a [`SyscallRecord`].
pub mod syscall_flags {
    /// The syscall does not return (exit, exit_group): `ret` and `duration_ns` are 0.
    pub const NO_RETURN: u16 = 1;
    /// Summary mode: sent at entry (`ret` and `duration_ns` are 0).
    pub const AT_ENTRY: u16 = 2;
    /// Summary mode: the process's first use of this syscall in its current phase.
    pub const FIRST_USE: u16 = 4;
}

/// Slots of the per-CPU loss counters.
pub mod drop_slot {
    /// A ring-buffer reserve failed: one record lost.
    pub const RINGBUF: u32 = 0;
    /// The counter map was full: a syscall went uncounted.
    pub const COUNTS: u32 = 1;
    /// Not a loss: processes killed for a syscall outside their allowed set.
    pub const KILLED: u32 = 2;
    /// Number of slots.
    pub const SLOTS: u32 = 3;
}

/// `Config::mode` bits.
pub mod mode {
    /// Send one record per syscall to the ring buffer (the timeline). Without it only the
    /// kernel counters and process records are kept.
    pub const STREAM: u32 = 1;
    /// With STREAM: also send the path argument of path-taking syscalls (for profiles and
    /// trace files; a summary alone does not need them).
    pub const PATHS: u32 = 2;
    /// Monitor mode with kill: a process calling a syscall outside its PB_ALLOWED set gets
    /// SIGKILL from the kernel.
    pub const KILL: u32 = 4;
}

/// Bits of a PB_ALLOWED value: one per syscall number below MAX_SYSCALLS.
pub const ALLOWED_WORDS: usize = (MAX_SYSCALLS / 64) as usize;

/// `PB_EPOCH` value bit: the process is in a phase after which no marker matters, so marker
/// syscalls need not be sent any more (only first uses).
pub const EPOCH_NO_MARKERS: u32 = 1 << 31;

/// `Config` field value for a tracepoint field the running kernel does not have.
pub const NO_FIELD: u32 = u32::MAX;

/// Settings the agent writes into the kernel programs before loading them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// The agent's own tgid: never tracked.
    pub self_tgid: u32,
    /// `mode` bits.
    pub mode: u32,
    /// Offsets into the tracepoint records, read from tracefs `format` files at run time.
    pub fork_child_pid_off: u32,
    pub exec_filename_off: u32,
    pub exec_old_pid_off: u32,
    pub exit_group_dead_off: u32,
    /// Syscall numbers of this architecture that need special handling.
    pub nr_execve: u32,
    pub nr_execveat: u32,
    pub nr_exit: u32,
    pub nr_exit_group: u32,
    /// Byte offsets of the six syscall arguments in `struct pt_regs` (NO_FIELD: no path
    /// capture on this architecture).
    pub arg_offsets: [u32; 6],
    /// `--exec-name`: an untracked process that executes a program with this comm is tracked
    /// from its execve on (all zero: off).
    pub exec_comm: [u8; COMM_LEN],
    /// Wake the reader once this many bytes wait in the ring buffer (syscall records are
    /// submitted without a wakeup below it; the reader also drains on a timer).
    pub wakeup_bytes: u32,
    pub _pad: u32,
}

/// Start of every ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub kind: u16,
    pub flags: u16,
    pub tgid: u32,
}

/// One system call, enter and exit paired in the kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallRecord {
    pub header: Header,
    pub tid: u32,
    pub nr: u32,
    /// CLOCK_MONOTONIC (bpf_ktime_get_ns) at entry.
    pub enter_ns: u64,
    pub duration_ns: u64,
    pub ret: i64,
}

/// A tracked task created a task (process or thread; a thread's `child_tid` never shows up
/// as a tgid).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForkRecord {
    pub header: Header,
    pub parent_tid: u32,
    pub child_tid: u32,
    pub ts_ns: u64,
}

/// Number of syscall numbers PB_PATH_ARGS covers.
pub const MAX_SYSCALLS: u32 = 1024;
/// Length of a captured path argument (longer ones are cut).
pub const PATH_LEN: usize = 256;

/// The path argument of a syscall, read at its entry; the syscall's own record (same tid and
/// `enter_ns`) follows.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathRecord {
    pub header: Header,
    pub tid: u32,
    pub nr: u32,
    pub enter_ns: u64,
    pub path: [u8; PATH_LEN],
}

/// Length of the path kept from an exec.
pub const EXEC_PATH_LEN: usize = 256;
/// Length of a task's comm.
pub const COMM_LEN: usize = 16;

/// A tracked process executed a new program.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecRecord {
    pub header: Header,
    pub tid: u32,
    pub old_tid: u32,
    pub ts_ns: u64,
    pub comm: [u8; COMM_LEN],
    pub filename: [u8; EXEC_PATH_LEN],
}

/// A tracked task exited; `group_dead` is 1 when it was the process's last task.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitRecord {
    pub header: Header,
    pub tid: u32,
    pub group_dead: u32,
    pub ts_ns: u64,
}

/// Key of the per-process syscall counters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountKey {
    pub tgid: u32,
    pub nr: u32,
}

/// Per-CPU value of the syscall counters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub calls: u64,
    /// Failed returns (stream mode only: summary mode does not watch syscall exits).
    pub errors: u64,
    /// Summary mode: 1 + the phase epoch in which this CPU last reported the call (0: never).
    pub seen: u32,
    pub _pad: u32,
}

/// A syscall entered and not yet returned, keyed by tid.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pending {
    pub nr: u32,
    pub _pad: u32,
    pub enter_ns: u64,
}

/// Highest errno a syscall returns as `-errno` (the kernel's MAX_ERRNO).
pub const MAX_ERRNO: i64 = 4095;

/// Whether a raw syscall return value is an error.
pub const fn is_error(ret: i64) -> bool {
    ret < 0 && ret >= -MAX_ERRNO
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all of these are repr(C) with explicit padding and plain integer fields.
    unsafe impl aya::Pod for Config {}
    unsafe impl aya::Pod for CountKey {}
    unsafe impl aya::Pod for Counts {}
}

// Sizes are part of the wire format: a change here is a new WIRE_VERSION.
const _: () = assert!(core::mem::size_of::<Header>() == 8);
const _: () = assert!(core::mem::size_of::<SyscallRecord>() == 40);
const _: () = assert!(core::mem::size_of::<ForkRecord>() == 24);
const _: () = assert!(core::mem::size_of::<ExecRecord>() == 24 + COMM_LEN + EXEC_PATH_LEN);
const _: () = assert!(core::mem::size_of::<ExitRecord>() == 24);
const _: () = assert!(core::mem::size_of::<Config>() == 88);
const _: () = assert!(core::mem::size_of::<PathRecord>() == 24 + PATH_LEN);
