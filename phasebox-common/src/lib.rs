//! Wire types shared by phasebox's kernel programs and its agent.
//!
//! Every record the kernel writes to the ring buffer starts with a [`Header`]; its `kind` says
//! which fixed-size record follows. Records are `#[repr(C)]` with explicit padding so the layout
//! is the same on both sides and in trace files (which store these records as they are).
//!
//! **Segments.** The kernel splits each process's life into segments at every call that could
//! start a new phase (a phase-marker syscall, an exec, a fork when forks are markers) and keys
//! its counters by (process, segment, syscall). Userspace names the phase of each segment when
//! it reads the record that opened it ([`SegmentRecord`]), so every call is counted in the
//! phase its process was in when it made it, whenever userspace happens to read the counters.
#![no_std]

/// Version of the record layout below; trace files carry it.
pub const WIRE_VERSION: u32 = 4;

/// Map and program names, used by the kernel crate (as symbol names) and the agent.
pub mod names {
    pub const AWAIT: &str = "PB_AWAIT";
    pub const USER_BITS: &str = "PB_USER_BITS";
    pub const KERNEL_BITS: &str = "PB_KERNEL_BITS";
    pub const PENDING: &str = "PB_PENDING";
    pub const PENDING_TID: &str = "PB_PENDING_TID";
    pub const BATCHES: &str = "PB_BATCHES";
    pub const WAITS: &str = "PB_WAITS";
    pub const COUNTS: &str = "PB_COUNTS";
    pub const PROCS: &str = "PB_PROCS";
    pub const SLOTS: &str = "PB_SLOTS";
    pub const SLOT_COUNTS: &str = "PB_SLOT_COUNTS";
    pub const THREADS: &str = "PB_THREADS";
    pub const NEXT_INSTANCE: &str = "PB_NEXT_INSTANCE";
    pub const SET_REQUESTS: &str = "PB_SET_REQUESTS";
    pub const EVENTS: &str = "PB_EVENTS";
    pub const DROPS: &str = "PB_DROPS";
    pub const STATS: &str = "PB_STATS";
    pub const PATH_ARGS: &str = "PB_PATH_ARGS";
    pub const MARKERS: &str = "PB_MARKERS";
    pub const ALLOWED: &str = "PB_ALLOWED";
    pub const VERDICTS: &str = "PB_VERDICTS";
    pub const SCOPE: &str = "PB_SCOPE";
    pub const ARG_SPECS: &str = "PB_ARG_SPECS";
    pub const SHOWN: &str = "PB_SHOWN";
    pub const ARGS_SEEN: &str = "PB_ARGS_SEEN";
    pub const CONFIG: &str = "PB_CONFIG";
    pub const MODE: &str = "PB_MODE";
    pub const PROG_SYS_ENTER: &str = "pb_sys_enter";
    /// `pb_sys_enter` on the BTF-typed tracepoint: attached instead where the kernel has BTF
    /// and arguments are recorded (it reads them with plain loads).
    pub const PROG_SYS_ENTER_BTF: &str = "pb_sys_enter_btf";
    pub const PROG_SYS_EXIT: &str = "pb_sys_exit";
    pub const PROG_FORK: &str = "pb_fork";
    pub const PROG_EXEC: &str = "pb_exec";
    pub const PROG_EXIT: &str = "pb_exit";
    /// A program that does nothing, for measuring what a tracepoint costs by itself.
    pub const PROG_FLOOR: &str = "pb_floor";
    /// The floor plus reading the caller's pid (the first step of any per-process filter).
    pub const PROG_FLOOR_PID: &str = "pb_floor_pid";
    /// The floor plus the pid and one word of a pid bitmap (half of the agent's filter).
    pub const PROG_FLOOR_BIT: &str = "pb_floor_bit";
    /// An empty program for raw_syscalls/sys_exit: with `pb_floor`, what any tracer that sees
    /// both ends of a call costs.
    pub const PROG_FLOOR_EXIT: &str = "pb_floor_exit";
    /// Every phasebox program name starts with this.
    pub const PROG_PREFIX: &str = "pb_";
}

/// Record kinds (the `kind` of [`Header`]). Fixed numbers: new kinds get new numbers.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Syscall = 1,
    Fork = 2,
    Exec = 3,
    Exit = 4,
    Path = 5,
    Segment = 6,
    Filtered = 7,
    Args = 8,
    /// Several syscall records of one thread ([`BatchRecord`]): userspace splits it.
    Batch = 9,
}

impl Kind {
    /// The kind with this number, if there is one.
    pub const fn from_u16(n: u16) -> Option<Kind> {
        Some(match n {
            1 => Kind::Syscall,
            2 => Kind::Fork,
            3 => Kind::Exec,
            4 => Kind::Exit,
            5 => Kind::Path,
            6 => Kind::Segment,
            7 => Kind::Filtered,
            8 => Kind::Args,
            9 => Kind::Batch,
            _ => return None,
        })
    }
}

/// A ring-buffer record.
///
/// # Safety
/// Implementors are `#[repr(C)]`, start with a [`Header`], have no implicit padding (every
/// byte is a field: the layout asserts below check the sizes), and are valid for any bit
/// pattern (plain integers and byte arrays only). Reading one from bytes, or viewing one as
/// bytes, is then sound.
pub unsafe trait Record: Copy + 'static {
    /// The `kind` its header carries.
    const KIND: Kind;
}

/// Flags of an [`ExecRecord`].
pub mod exec_flags {
    /// The process was not tracked: it is tracked from this exec on, found by the session's
    /// scope (`--exec-name`, `--container`). Its state is `proc_flags::UNCONFIRMED` until the
    /// agent's verdict: the kernel's match is a prefilter (a comm of 15 bytes, a pid
    /// namespace), the agent decides on the whole name or the container's cgroup.
    pub const NEW_ROOT: u16 = 1;
    /// Found by its comm (`--exec-name`).
    pub const BY_NAME: u16 = 2;
    /// Found in the scope's pid namespace (a container's own).
    pub const BY_PIDNS: u16 = 4;
    /// Found outside the host's pid namespace (waiting for a container to start).
    pub const BY_FOREIGN_PIDNS: u16 = 8;
    /// Found by an exec anywhere (a container in the host's pid namespace: only its cgroup,
    /// which the agent reads, tells).
    pub const BY_ANY: u16 = 16;
}

/// Flags of a [`ProcState`].
pub mod proc_flags {
    /// Found at its exec by the scope (or forked by such a process): counted, never enforced,
    /// until the agent's verdict (`PB_VERDICTS`) confirms it; a rejected process is untracked.
    pub const UNCONFIRMED: u32 = 1;
    /// The process with this pid, tracked by the agent's bit, has exited: a later process that
    /// gets the pid outside the traced tree is not traced (the agent clears its bit and this
    /// entry when it reads the exit). A fork by a traced process replaces it.
    pub const GONE: u32 = 2;
}

/// `Scope::flags`: which untracked processes `pb_exec` starts tracking at their exec.
pub mod scope_flags {
    /// A program whose comm is `Config::exec_comm`.
    pub const NAME: u32 = 1;
    /// Any program executed in the pid namespace `Scope::pidns_*`.
    pub const PIDNS: u32 = 2;
    /// Any program executed outside the host's pid namespace (`Scope::host_pidns_*`).
    pub const FOREIGN_PIDNS: u32 = 4;
    /// Any program executed anywhere (the agent decides by cgroup).
    pub const ANY: u32 = 8;
}

/// Flags of a [`SyscallRecord`].
pub mod syscall_flags {
    /// The syscall does not return (exit, exit_group): `ret` and `duration_ns` are 0.
    pub const NO_RETURN: u16 = 1;
    /// Sent at entry (`ret` and `duration_ns` are 0): summary mode's first uses.
    pub const AT_ENTRY: u16 = 2;
    /// Summary mode: the first call of this syscall in its segment.
    pub const FIRST_USE: u16 = 4;
}

/// Why a segment opened (the `flags` of a [`SegmentRecord`]'s header).
pub mod segment_flags {
    /// A call of a syscall that a later phase's marker looks at (`nr` says which).
    pub const MARKER: u16 = 1;
    /// The process's first traced call: it was not known to the kernel before (attached, or
    /// launched and now at its execve). May come with MARKER.
    pub const FIRST: u16 = 2;
    /// The process executed a new program (after its [`super::ExecRecord`]).
    pub const EXEC: u16 = 4;
    /// The process forked while forks are phase markers.
    pub const FORK: u16 = 8;
}

/// Slots of the per-CPU loss counters (`PB_DROPS`): what the kernel could not keep.
pub mod drop_slot {
    /// A ring-buffer reserve failed: one record lost.
    pub const RINGBUF: u32 = 0;
    /// The counter map was full: a syscall went uncounted.
    pub const COUNTS: u32 = 1;
    /// The process map was full: a process's calls were counted without segments.
    pub const PROCS: u32 = 2;
    /// Number of slots.
    pub const SLOTS: u32 = 3;
}

/// Slots of the per-CPU counters of what the kernel did (`PB_STATS`).
pub mod stat_slot {
    /// Processes killed for a syscall outside their allowed set (monitor mode's kill).
    pub const KILLED: u32 = 0;
    /// Number of slots.
    pub const SLOTS: u32 = 1;
}

/// `PB_MODE` bits.
pub mod mode {
    /// Send one record per syscall to the ring buffer (the timeline). Without it only the
    /// counters, segment openers, first uses and process records are sent.
    pub const STREAM: u32 = 1;
    /// Also send the path argument of path-taking syscalls (phase markers, profiles and trace
    /// files use them).
    pub const PATHS: u32 = 2;
    /// Monitor mode with kill: a process calling a syscall outside its PB_ALLOWED set gets
    /// SIGKILL from the kernel.
    pub const KILL: u32 = 4;
    /// Count failed calls (needs the sys_exit program; implied by STREAM).
    pub const ERRORS: u32 = 8;
    /// Notice calls a seccomp filter denied before the syscall-enter tracepoint (they reach
    /// sys_exit only): the enter program notes every call, the exit program sends a
    /// `FilteredRecord` for an exit without an enter.
    pub const FILTERED: u32 = 16;
    /// Record the "kind" arguments of the syscalls `PB_ARG_SPECS` names (an `ArgsRecord` per
    /// call in stream mode, per new combination in a process's segment otherwise).
    pub const ARGS: u32 = 32;
    /// In stream mode, send one record per call only for the syscalls `PB_SHOWN` marks (`-e
    /// trace=`); the others are counted, and their first uses sent, as in summary mode.
    pub const SHOWN: u32 = 64;
    /// In stream mode, send each call's record at its entry (`syscall_flags::AT_ENTRY`: no
    /// return value, duration or failure): no exit program, so other processes pay only the
    /// entry filter.
    pub const ENTRY_ONLY: u32 = 128;
    /// The syscall programs look the calling thread up in the `thread_cache` before the pid
    /// helper (set where the kernel has what the cache needs).
    pub const THREAD_CACHE: u32 = 256;
    /// Stream mode: each thread holds its syscall records in PB_BATCHES and sends several in
    /// one reservation (sessions read at their end).
    pub const BATCH: u32 = 512;
}

/// Syscall arguments the kernel programs can record: the first three (every "kind" argument
/// phasebox records is among them on x86_64 and aarch64).
pub const ARG_SLOTS: usize = 3;

/// Which arguments of one syscall are recorded (`PB_ARG_SPECS[nr]`): argument `i` is kept as
/// `arg & masks[i]`; a zero mask leaves it out, and a spec of zero masks records nothing.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArgSpec {
    pub masks: [u64; ARG_SLOTS],
}

impl ArgSpec {
    /// Whether any argument is recorded.
    pub const fn any(&self) -> bool {
        self.masks[0] | self.masks[1] | self.masks[2] != 0
    }
}

/// Key of `PB_ARGS_SEEN`: one combination of argument values a process's segment has sent
/// (summary mode sends each once).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArgsKey {
    pub tgid: u32,
    pub instance: u32,
    pub seg: u32,
    pub nr: u32,
    pub values: [u64; ARG_SLOTS],
}

/// Number of syscall numbers the per-syscall tables cover.
pub const MAX_SYSCALLS: u32 = 1024;
/// Slot of a marker set that says forks are markers (no syscall has this number).
pub const FORK_MARKER_SLOT: u32 = MAX_SYSCALLS - 1;
/// Number of marker sets (`PB_MARKERS` holds `MAX_MARKER_SETS * MAX_SYSCALLS` entries).
pub const MAX_MARKER_SETS: u32 = 64;
/// Marker set 0: every marker of the rule set, what a process starts with (and after an exec).
pub const FULL_MARKER_SET: u32 = 0;

/// Bits of a PB_ALLOWED value: one per syscall number below MAX_SYSCALLS.
pub const ALLOWED_WORDS: usize = (MAX_SYSCALLS / 64) as usize;

/// `Config` field value for a tracepoint field the running kernel does not have.
pub const NO_FIELD: u32 = u32::MAX;

/// The signal monitor mode's kill sends.
pub const SIGKILL: u32 = 9;

/// Length of a task's comm.
pub const COMM_LEN: usize = 16;
/// Length of a captured path argument (longer ones are cut).
pub const PATH_LEN: usize = 256;
/// Length of the path kept from an exec.
pub const EXEC_PATH_LEN: usize = 256;

/// Settings the agent writes into the kernel programs before loading them (the hot `mode`
/// bits are a global of their own, `PB_MODE`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The agent's own tgid: never tracked.
    pub self_tgid: u32,
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
    /// `--exec-name`: an untracked process that executes a program with this comm is tracked
    /// from its execve on (all zero: off).
    pub exec_comm: [u8; COMM_LEN],
    /// Wake the reader once this many bytes wait in the ring buffer (syscall records are
    /// submitted without a wakeup below it; the reader also drains on a timer).
    pub wakeup_bytes: u32,
}

impl Config {
    /// What the kernel programs use before the agent overrides it.
    pub const UNSET: Config = Config {
        self_tgid: 0,
        fork_child_pid_off: NO_FIELD,
        exec_filename_off: NO_FIELD,
        exec_old_pid_off: NO_FIELD,
        exit_group_dead_off: NO_FIELD,
        nr_execve: u32::MAX,
        nr_execveat: u32::MAX,
        nr_exit: u32::MAX,
        nr_exit_group: u32::MAX,
        exec_comm: [0; COMM_LEN],
        wakeup_bytes: 0,
    };
}

/// Which untracked processes start being tracked at their exec (`PB_SCOPE[0]`, written by the
/// agent whenever its scope changes: a container found, or waited for again).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// `scope_flags`.
    pub flags: u32,
    pub _pad: u32,
    /// The pid namespace of `scope_flags::PIDNS` (device and inode of /proc/PID/ns/pid).
    pub pidns_dev: u64,
    pub pidns_ino: u64,
    /// The host's pid namespace, for `scope_flags::FOREIGN_PIDNS`.
    pub host_pidns_dev: u64,
    pub host_pidns_ino: u64,
}

/// The agent's decision on a process found at its exec (`PB_VERDICTS[tgid]`): the kernel
/// applies it at the process's next call if `instance` matches, and deletes it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub instance: u32,
    /// 1: it belongs to the session's scope (it is confirmed); 0: it does not (untracked).
    pub accept: u32,
}

/// Monitor mode with kill: the syscalls a process instance may still make (`PB_ALLOWED[tgid]`).
/// The kernel kills only the instance named: a pid reused by another process is never hit.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allowed {
    pub instance: u32,
    pub _pad: u32,
    /// One bit per syscall number below MAX_SYSCALLS.
    pub bits: [u64; ALLOWED_WORDS],
}

/// Start of every ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub kind: u16,
    pub flags: u16,
    pub tgid: u32,
}

impl Header {
    /// The header of a record of type `R`.
    pub const fn of<R: Record>(flags: u16, tgid: u32) -> Header {
        Header {
            kind: R::KIND as u16,
            flags,
            tgid,
        }
    }
}

/// One system call (enter and exit paired in the kernel in stream mode; its entry alone for
/// summary mode's first uses).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallRecord {
    pub header: Header,
    pub tid: u32,
    pub nr: u32,
    /// The process instance and its segment the call was counted in.
    pub instance: u32,
    pub seg: u32,
    /// CLOCK_MONOTONIC (bpf_ktime_get_ns) at entry.
    pub enter_ns: u64,
    pub duration_ns: u64,
    pub ret: i64,
}

/// A tracked task created a task (process or thread; a thread's `child_tid` never shows up
/// as a tgid). `child_instance` is the instance the kernel gave the child should it be a
/// process; its first segment is 1.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForkRecord {
    pub header: Header,
    pub parent_tid: u32,
    pub child_tid: u32,
    pub child_instance: u32,
    /// The child's `proc_flags` (`UNCONFIRMED` when its parent awaits the agent's verdict:
    /// the child then needs one too).
    pub child_flags: u32,
    pub ts_ns: u64,
}

/// A process's new segment: from this record on (in segment order), its calls are counted
/// under (`instance`, `seg`). Segments of an instance are numbered 1, 2, 3… without gaps.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentRecord {
    /// `flags`: `segment_flags`.
    pub header: Header,
    pub tid: u32,
    /// The call that opened it (MARKER, FIRST); 0 otherwise.
    pub nr: u32,
    pub instance: u32,
    pub seg: u32,
    /// Entry time of the call (a PathRecord with the same tid and time may precede it).
    pub ts_ns: u64,
}

/// The path argument of a syscall, read at its entry; the syscall's own record or segment
/// opener (same tid and entry time) follows.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathRecord {
    pub header: Header,
    pub tid: u32,
    pub nr: u32,
    pub enter_ns: u64,
    pub path: [u8; PATH_LEN],
}

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

/// A call a seccomp filter denied before the syscall-enter tracepoint (the kernel runs seccomp
/// first): seen at exit only, with the filter's answer. `instance` and `seg` are those of the
/// thread's previous call, so the call is placed in the phase the process was in.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilteredRecord {
    pub header: Header,
    pub tid: u32,
    pub nr: u32,
    pub instance: u32,
    pub seg: u32,
    /// CLOCK_MONOTONIC at the call's exit.
    pub ts_ns: u64,
    /// The raw return value (`-errno`).
    pub ret: i64,
}

/// The recorded arguments of a call (`mode::ARGS`): each already masked by its `ArgSpec`
/// (unrecorded ones are 0). In stream mode one per call of a syscall with a spec, sent at its
/// entry (its `SyscallRecord`, with the same tid and `enter_ns`, follows); in summary mode one
/// per new combination in a segment.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArgsRecord {
    pub header: Header,
    pub tid: u32,
    pub nr: u32,
    pub instance: u32,
    pub seg: u32,
    pub enter_ns: u64,
    pub values: [u64; ARG_SLOTS],
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

// SAFETY: each is repr(C), starts with a Header, and is made of integers and byte arrays with
// explicit padding fields; the size asserts below fail the build on any implicit padding.
unsafe impl Record for SyscallRecord {
    const KIND: Kind = Kind::Syscall;
}
unsafe impl Record for ForkRecord {
    const KIND: Kind = Kind::Fork;
}
unsafe impl Record for ExecRecord {
    const KIND: Kind = Kind::Exec;
}
unsafe impl Record for ExitRecord {
    const KIND: Kind = Kind::Exit;
}
unsafe impl Record for PathRecord {
    const KIND: Kind = Kind::Path;
}
unsafe impl Record for SegmentRecord {
    const KIND: Kind = Kind::Segment;
}
unsafe impl Record for FilteredRecord {
    const KIND: Kind = Kind::Filtered;
}
unsafe impl Record for ArgsRecord {
    const KIND: Kind = Kind::Args;
}
unsafe impl Record for BatchRecord {
    const KIND: Kind = Kind::Batch;
}

/// How many syscall records a thread holds before it sends them in one reservation.
pub const BATCH_LEN: usize = 4;

/// A thread's syscall records, sent together (record mode): one ring-buffer reservation
/// where there were `count`. The element of PB_BATCHES of a thread is one of these, filled in
/// place; only its first `count` calls are sent (16 + 48 × count bytes). A thread sends its
/// batch before any other record of its own (so its records stay in order), when it is full,
/// and when the thread ends; the agent reads the rest at the end of the session.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchRecord {
    pub header: Header,
    pub count: u32,
    pub _pad: u32,
    pub calls: [SyscallRecord; BATCH_LEN],
}

impl BatchRecord {
    /// Bytes before the calls.
    pub const HEAD: usize = 16;

    /// The bytes a batch of `count` calls takes on the wire.
    pub const fn wire_len(count: usize) -> usize {
        Self::HEAD + count * size_of::<SyscallRecord>()
    }
}

/// Key of the syscall counters: one process instance's segment and syscall.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountKey {
    pub tgid: u32,
    /// Unique per process the kernel has seen (pids are reused, instances are not); 0 when
    /// the process map was full.
    pub instance: u32,
    pub seg: u32,
    pub nr: u32,
}

/// The syscall counters of one process, segment and syscall (the CPUs add atomically).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub calls: u64,
    /// Failed returns (only with mode::ERRORS or STREAM: the exit program counts them).
    pub errors: u64,
}

/// The kernel's state of a tracked process, keyed by tgid. Only the kernel writes it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcState {
    pub instance: u32,
    /// The current segment (1, 2, 3…).
    pub seg: u32,
    /// The marker set in force (`PB_MARKERS`).
    pub marker_set: u32,
    /// Execs so far: a set request made for an earlier program is ignored.
    pub execs: u32,
    /// `proc_flags`.
    pub flags: u32,
    pub _pad: u32,
}

/// Process slots: a traced process whose slot (`tgid % PROC_SLOTS`) is free keeps its state
/// and its counters of syscalls below `SLOT_SYSCALLS` there, in arrays the programs index
/// directly (no hash lookup on a call). Processes whose slot is taken use PB_PROCS and
/// PB_COUNTS.
pub const PROC_SLOTS: u32 = 1024;
/// Syscalls numbered below this are counted in their process's slot.
pub const SLOT_SYSCALLS: u32 = 512;
/// `Place`/slot index of a process kept in PB_PROCS.
pub const NO_SLOT: u32 = u32::MAX;

/// The thread cache (PB_THREADS, mapped into the agent's memory): what the syscall programs
/// found of a thread, so that its next calls need no pid helper (a call: the untracked path's
/// whole cost above an empty program). A thread is known by where the kernel saved its user
/// registers (`struct pt_regs`, the syscall tracepoints' first argument: the top of its kernel
/// stack, which is its own while it lives). An entry (`ThreadEntry`) holds that address's low
/// 48 bits, whether the thread was found tracked, and the generation it was found in; for a
/// tracked thread, also its tgid and tid.
///
/// - Entry 0's `tag` is the generation. The agent moves it on, and clears every entry, each
///   time it starts tracking a process: a thread found untracked before that is looked up
///   again. While it is 0 the cache is off.
/// - A program reads the generation before the pid bitmaps, and writes the entry with the
///   generation it read: an entry written while the agent changed the bitmaps carries the
///   old generation and does not match.
/// - A tracked entry is written tag 0, ids, tag, and read tag, ids, tag (a sequence lock: the
///   tag read twice is the same only if the ids between are that thread's). A thread's ids
///   change only at an exec from another thread than the leader; a tracked hit still tests
///   the tgid's bits (a process may stop being tracked).
/// - The kernel clears a thread's entry when the thread exits (its stack may become a new
///   thread's) and when it executes a program (which may make it tracked, or change its ids).
/// - Only addresses whose top 16 bits are all set are kept: those are unique in their low
///   48 bits. Others are never cached (they are looked up by pid on every call).
pub mod thread_cache {
    /// Entries after the generation's.
    pub const ENTRIES: u32 = 8192;
    /// Bits of the address kept in a tag.
    const ADDRESS_BITS: u32 = 48;
    const ADDRESS_MASK: u64 = (1 << ADDRESS_BITS) - 1;
    /// The top bits of an address that is kept.
    const KEPT_TOP: u64 = u64::MAX >> ADDRESS_BITS;
    /// The tag bit of a thread found tracked.
    const TRACKED: u64 = 1 << ADDRESS_BITS;
    /// Where the generation starts in a tag.
    const GENERATION_SHIFT: u32 = ADDRESS_BITS + 1;
    /// The last generation; the one after it is 1.
    pub const LAST_GENERATION: u64 = u64::MAX >> GENERATION_SHIFT;

    /// The entry of the thread whose registers are saved at `regs` (1..=ENTRIES).
    #[inline(always)]
    pub const fn index(regs: u64) -> u32 {
        1 + ((regs >> 14) as u32 & (ENTRIES - 1))
    }

    /// The tag of that thread found tracked or not in `generation`; 0 (never a match, as
    /// generations start at 1) for an address that is not kept.
    #[inline(always)]
    pub const fn tag(regs: u64, generation: u64, tracked: bool) -> u64 {
        if regs >> ADDRESS_BITS != KEPT_TOP || generation == 0 {
            return 0;
        }
        let bit = if tracked { TRACKED } else { 0 };
        regs & ADDRESS_MASK | bit | generation << GENERATION_SHIFT
    }

    /// Whether a tag is that thread's, in any generation.
    #[inline(always)]
    pub const fn holds(tag: u64, regs: u64) -> bool {
        tag != 0 && tag & ADDRESS_MASK == regs & ADDRESS_MASK
    }

    /// The generation after `generation`.
    pub const fn next(generation: u64) -> u64 {
        if generation >= LAST_GENERATION {
            1
        } else {
            generation + 1
        }
    }

    /// A tracked thread's ids, as `bpf_get_current_pid_tgid` gives them (tgid high).
    #[inline(always)]
    pub const fn ids(tgid: u32, tid: u32) -> u64 {
        (tgid as u64) << 32 | tid as u64
    }
}

/// One entry of the thread cache (see `thread_cache`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadEntry {
    pub tag: u64,
    /// A tracked thread's `thread_cache::ids`.
    pub ids: u64,
}

/// One process slot (PB_SLOTS, mapped into the agent's memory).
///
/// - The kernel takes a free slot (`claims` 0) with an atomic add and a read back: it owns it
///   when it reads 1. It writes `state`, then `live`, then `owner`.
/// - The kernel sets `live` to 0 when the process exits or is let go; its counters are then
///   final.
/// - The agent reads them, clears them, and gives the slot back by subtracting its claim.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    pub claims: u32,
    /// The owner's tgid while its state here is in use; 0 after.
    pub live: u32,
    /// The owner's tgid, kept until the agent gives the slot back.
    pub owner: u32,
    pub _pad: u32,
    pub state: ProcState,
}

/// One syscall's counter in a process slot (PB_SLOT_COUNTS, `slot * SLOT_SYSCALLS + nr`,
/// mapped into the agent's memory). It counts one segment: the first caller in a segment
/// takes it (`claim`, as for `Slot`) and writes `seg`; calls of another segment go to
/// PB_COUNTS until the agent, once that segment is over, has read and cleared this one.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotCount {
    pub seg: u32,
    pub claim: u32,
    pub calls: u64,
}

/// The agent asks for a narrower marker set for a process whose phase it now knows (phases
/// only move forward, so later phases need fewer markers). The kernel applies it at the
/// process's next marker-candidate call if `instance` and `execs` still match.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetRequest {
    pub marker_set: u32,
    pub execs: u32,
    /// The process instance it is for (a reused pid is another process).
    pub instance: u32,
    pub _pad: u32,
}

/// A syscall entered and not yet returned, by tid.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pending {
    pub nr: u32,
    pub instance: u32,
    pub seg: u32,
    /// 1 once the thread has entered a traced call (an array element is never absent).
    pub live: u32,
    pub enter_ns: u64,
}

/// The largest size of PB_PENDING_TID, the array of pending calls indexed by tid (24 bytes
/// an element: 3 MiB at most). Where pid_max is larger, higher tids use the hash map.
pub const PENDING_BY_TID_MAX: u32 = 1 << 17;

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
    unsafe impl aya::Pod for ProcState {}
    unsafe impl aya::Pod for Slot {}
    unsafe impl aya::Pod for SlotCount {}
    unsafe impl aya::Pod for SetRequest {}
    unsafe impl aya::Pod for Pending {}
    unsafe impl aya::Pod for Scope {}
    unsafe impl aya::Pod for Verdict {}
    unsafe impl aya::Pod for Allowed {}
    unsafe impl aya::Pod for ArgSpec {}
    unsafe impl aya::Pod for ArgsKey {}
    unsafe impl aya::Pod for BatchRecord {}
}

// Sizes and offsets are part of the wire format: a change here is a new WIRE_VERSION. A size
// equal to the sum of the fields' sizes means no implicit padding.
use core::mem::{offset_of, size_of};
const _: () = assert!(size_of::<Header>() == 8);
const _: () = assert!(size_of::<SyscallRecord>() == 48);
const _: () = assert!(offset_of!(SyscallRecord, enter_ns) == 24);
const _: () = assert!(size_of::<ForkRecord>() == 32);
const _: () = assert!(size_of::<SegmentRecord>() == 32);
const _: () = assert!(offset_of!(SegmentRecord, ts_ns) == 24);
const _: () = assert!(size_of::<ExecRecord>() == 24 + COMM_LEN + EXEC_PATH_LEN);
const _: () = assert!(size_of::<ExitRecord>() == 24);
const _: () = assert!(size_of::<PathRecord>() == 24 + PATH_LEN);
const _: () = assert!(size_of::<Config>() == 4 * 9 + COMM_LEN + 4);
const _: () = assert!(size_of::<FilteredRecord>() == 40);
const _: () = assert!(offset_of!(FilteredRecord, ret) == 32);
const _: () = assert!(size_of::<Scope>() == 40);
const _: () = assert!(size_of::<ArgsRecord>() == 56);
const _: () = assert!(offset_of!(ArgsRecord, values) == 32);
const _: () = assert!(size_of::<ArgSpec>() == 24);
const _: () = assert!(size_of::<ArgsKey>() == 40);
const _: () = assert!(size_of::<Verdict>() == 8);
const _: () = assert!(size_of::<Allowed>() == 8 + 8 * ALLOWED_WORDS);
const _: () = assert!(size_of::<CountKey>() == 16);
const _: () = assert!(offset_of!(CountKey, nr) == 12);
const _: () = assert!(size_of::<Counts>() == 16);
const _: () = assert!(offset_of!(Counts, errors) == 8);
const _: () = assert!(size_of::<ProcState>() == 24);
const _: () = assert!(size_of::<Slot>() == 40);
const _: () = assert!(size_of::<ThreadEntry>() == 16);
const _: () = assert!(size_of::<SlotCount>() == 16);
const _: () = assert!(size_of::<SetRequest>() == 16);
const _: () = assert!(size_of::<Pending>() == 24);
const _: () = assert!(offset_of!(Pending, enter_ns) == 16);
const _: () = assert!(offset_of!(BatchRecord, calls) == BatchRecord::HEAD);
const _: () = assert!(size_of::<BatchRecord>() == BatchRecord::wire_len(BATCH_LEN));

#[cfg(test)]
mod tests {
    extern crate std;

    use super::thread_cache::*;

    const STACK: u64 = 0xffff_c900_0123_7f58;

    #[test]
    fn a_thread_matches_only_its_own_entry_of_the_current_generation() {
        let untracked = tag(STACK, 7, false);
        assert_eq!(untracked, tag(STACK, 7, false));
        assert_ne!(untracked, tag(STACK, 8, false), "another generation");
        assert_ne!(untracked, tag(STACK + (1 << 14), 7, false), "another stack");
        assert_ne!(untracked, tag(STACK, 7, true), "found tracked");
        assert!(holds(untracked, STACK) && holds(tag(STACK, 7, true), STACK));
        assert!(!holds(untracked, STACK + 8));
        assert!(
            !holds(0, STACK & !((1 << 48) - 1)),
            "an empty entry is nobody's"
        );
        assert_eq!(ids(7, 9), 7 << 32 | 9);
    }

    #[test]
    fn addresses_not_unique_in_48_bits_and_generation_0_are_never_kept() {
        assert_eq!(
            tag(0xff11_0000_0123_7f58, 3, false),
            0,
            "a 5-level direct-map address"
        );
        assert_eq!(tag(STACK, 0, true), 0, "the cache is off");
        assert_eq!(tag(STACK, LAST_GENERATION, true) >> 49, LAST_GENERATION);
        assert_ne!(tag(STACK, LAST_GENERATION, false), tag(STACK, 1, false));
    }

    #[test]
    fn generations_cycle_without_0_and_stacks_spread_over_the_entries() {
        assert_eq!(next(1), 2);
        assert_eq!(next(LAST_GENERATION), 1);
        assert_eq!(next(0), 1);
        let used: std::collections::BTreeSet<u32> = (0..ENTRIES as u64)
            .map(|k| index(STACK + (k << 14)))
            .collect();
        assert_eq!(
            used.len(),
            ENTRIES as usize,
            "consecutive stacks, distinct entries"
        );
        assert!(used.iter().all(|&i| (1..=ENTRIES).contains(&i)));
    }
}
