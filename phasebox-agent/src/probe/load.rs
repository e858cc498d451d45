//! Loading the kernel object: the settings it gets before load, map sizes, and attaching the
//! programs a mode needs (and no other: every program on the syscall path costs every process
//! on the host).
use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{Array, MapData},
    programs::{
        BtfTracePoint, RawTracePoint, TracePoint, raw_trace_point::RawTracePointLinkId,
        tp_btf::BtfTracePointLinkId, trace_point::TracePointLinkId,
    },
};
use phasebox_common::{
    ArgSpec, COMM_LEN, Config, MAX_SYSCALLS, NO_FIELD, PENDING_BY_TID_MAX, mode, names,
};
use phasebox_core::{call_args, sysnames};
use std::os::fd::AsRawFd;

use super::{ProbeError, ProbeOptions, preflight, tracefs};

/// The kernel object built by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/phasebox"));

/// The kernel's highest pid + 1 (/proc/sys/kernel/pid_max; the largest possible if unreadable).
pub(super) fn pid_max() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 22)
}

/// A loader for the object. aya 0.14's `EbpfLoader::new()` reads and parses the kernel's BTF
/// (/sys/kernel/btf/vmlinux: most of phasebox's start-up time, and memory while it parses) even when
/// `.btf(None)` follows, and phasebox needs none of it: no CO-RE relocation, tracepoint fields
/// come from tracefs. So a short-lived thread makes the loader in a mount namespace of its own
/// where that file reads empty, and the parse fails at once. Where that cannot be done (no
/// CAP_SYS_ADMIN), the loader is made as usual, only slower.
fn loader() -> EbpfLoader<'static> {
    std::thread::spawn(|| {
        let _ = hide_kernel_btf();
        EbpfLoader::new()
    })
    .join()
    .unwrap_or_else(|_| EbpfLoader::new())
}

/// Gives the calling thread a mount namespace of its own in which /sys/kernel/btf/vmlinux is
/// /dev/null. Nothing of it outlives the thread.
fn hide_kernel_btf() -> rustix::io::Result<()> {
    use rustix::mount::{MountPropagationFlags, mount_bind, mount_change};
    use rustix::thread::UnshareFlags;
    // SAFETY: only this thread's filesystem context and mount namespace change; it uses them
    // for nothing but making the loader, and ends.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::FS | UnshareFlags::NEWNS)? };
    // Private first, so that the bind mount below never propagates to the host's namespace.
    mount_change(
        c"/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )?;
    mount_bind(c"/dev/null", c"/sys/kernel/btf/vmlinux")
}

fn preflight_error(e: anyhow::Error) -> ProbeError {
    let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    ProbeError::Preflight(msg.join(": "))
}

/// Checks what loading needs, and the settings the programs get.
fn config(opts: &ProbeOptions) -> Result<Config, ProbeError> {
    preflight::check_privileges().map_err(preflight_error)?;
    preflight::check_kernel().map_err(preflight_error)?;
    preflight::check_btf().map_err(preflight_error)?;
    let tracefs = tracefs::ensure_mounted().map_err(preflight_error)?;
    let fields = |event: &str| tracefs::fields(&tracefs, "sched", event).map_err(preflight_error);
    let (fork, exec, exit) = (
        fields("sched_process_fork")?,
        fields("sched_process_exec")?,
        fields("sched_process_exit")?,
    );
    let offset = |f: &std::collections::HashMap<String, tracefs::Field>, tp: &str, name: &str| {
        f.get(name).map(|f| f.offset).ok_or_else(|| {
            ProbeError::Preflight(format!(
                "tracepoint {tp} has no field {name} on this kernel"
            ))
        })
    };
    let nr = sysnames::special();
    Ok(Config {
        self_tgid: std::process::id(),
        fork_child_pid_off: offset(&fork, "sched_process_fork", "child_pid")?,
        exec_filename_off: offset(&exec, "sched_process_exec", "filename")?,
        exec_old_pid_off: offset(&exec, "sched_process_exec", "old_pid")?,
        exit_group_dead_off: exit.get("group_dead").map_or(NO_FIELD, |f| f.offset),
        nr_execve: nr.execve,
        nr_execveat: nr.execveat,
        nr_exit: nr.exit,
        nr_exit_group: nr.exit_group,
        exec_comm: opts.exec_comm.unwrap_or([0; COMM_LEN]),
        // Wake the reader when a quarter of the ring is full; it drains on a timer too.
        wakeup_bytes: opts.ring_bytes / 4,
    })
}

/// The `PB_MODE` bits of `opts`.
fn mode_bits(opts: &ProbeOptions) -> u32 {
    let mut bits = 0;
    for (on, bit) in [
        (opts.stream, mode::STREAM),
        (opts.paths, mode::PATHS),
        (opts.kill, mode::KILL),
        (opts.errors, mode::ERRORS),
        (opts.filtered, mode::FILTERED),
        (opts.args, mode::ARGS),
        (opts.shown.is_some(), mode::SHOWN),
        (opts.stream && opts.entry_only, mode::ENTRY_ONLY),
        (batches(opts), mode::BATCH),
        (
            preflight::thread_cache_works(&crate::procfs::kernel_release()),
            mode::THREAD_CACHE,
        ),
    ] {
        if on {
            bits |= bit;
        }
    }
    bits
}

/// An attachment of a program, to detach at the end.
pub(super) enum Attached {
    Raw(&'static str, RawTracePointLinkId),
    Btf(&'static str, BtfTracePointLinkId),
    Sched(&'static str, TracePointLinkId),
}

/// PB_PENDING_TID's size: every tid below pid_max (up to `PENDING_BY_TID_MAX`) where an
/// exit program may be attached, else one element (the map then serves no tid but 0, never
/// traced).
fn pending_by_tid(opts: &ProbeOptions) -> u32 {
    if needs_exit(opts) || opts.filtered {
        let most = opts.pending_by_tid_max.unwrap_or(PENDING_BY_TID_MAX);
        pid_max().min(most).max(1)
    } else {
        1
    }
}

/// PB_BATCHES' size: as PB_PENDING_TID's where calls are batched, else one element (tid 0,
/// never traced: no thread batches).
pub(super) fn batches_by_tid(opts: &ProbeOptions) -> u32 {
    if batches(opts) {
        pending_by_tid(opts)
    } else {
        1
    }
}

/// Whether threads hold their calls to send several in one reservation: in stream mode with
/// the exit program, where nobody reads the records live (`ProbeOptions::batch`).
fn batches(opts: &ProbeOptions) -> bool {
    opts.batch && opts.stream && !opts.entry_only
}

/// Whether `opts` need the exit program from the start: return values and durations (stream
/// mode, unless entry only), failed calls.
pub(super) fn needs_exit(opts: &ProbeOptions) -> bool {
    opts.stream && !opts.entry_only || opts.errors
}

/// Loads the object with its settings and map sizes, and attaches what `opts` needs. The
/// flag: whether the programs use the thread cache.
pub(super) fn load(opts: &ProbeOptions) -> Result<(Ebpf, Vec<Attached>, bool), ProbeError> {
    // The kernel's BTF is parsed (tens of ms) beside the rest of the loading, and only when
    // it pays: arguments are read on every call that has them.
    let btf = opts.args.then(|| std::thread::spawn(Btf::from_sys_fs));
    let config = config(opts)?;
    let mode = mode_bits(opts);
    let words = pid_max() / 64 + 1;
    let mut ebpf = loader()
        .btf(None)
        .override_global(names::CONFIG, &config, true)
        .override_global(names::MODE, &mode, true)
        .map_max_entries(names::EVENTS, opts.ring_bytes)
        .map_max_entries(names::USER_BITS, words)
        .map_max_entries(names::KERNEL_BITS, words)
        .map_max_entries(names::PENDING_TID, pending_by_tid(opts))
        .map_max_entries(names::BATCHES, batches_by_tid(opts))
        .load(OBJECT)
        .map_err(ProbeError::Load)?;
    // Summary mode counts calls on entry and never looks at returns: no exit program (with
    // `filtered`, it is attached once a traced process runs under a seccomp filter).
    let btf = btf.and_then(|t| t.join().ok()).and_then(Result::ok);
    // The process programs first, the syscall programs after them: when phasebox ends
    // without detaching (SIGKILL), the kernel closes its descriptors in ascending order and
    // lets go of the links in the reverse order, so the syscall programs leave first and never
    // run without the exit program (which clears the thread cache's entry of an ending thread).
    let mut links = Vec::new();
    for (prog, tp) in [
        (names::PROG_FORK, "sched_process_fork"),
        (names::PROG_EXEC, "sched_process_exec"),
        (names::PROG_EXIT, "sched_process_exit"),
    ] {
        let p: &mut TracePoint = program(&mut ebpf, prog)?;
        p.load()
            .map_err(|source| ProbeError::Program { name: prog, source })?;
        let id = p.attach("sched", tp).map_err(|source| ProbeError::Attach {
            name: prog,
            tracepoint: tp,
            source,
        })?;
        links.push(Attached::Sched(prog, id));
    }
    links.push(attach_sys_enter(&mut ebpf, btf.as_ref())?);
    if needs_exit(opts) {
        links.push(attach_raw(&mut ebpf, names::PROG_SYS_EXIT, "sys_exit")?);
    }
    fill_path_args(&mut ebpf)?;
    fill_arg_specs(&mut ebpf)?;
    if batches(opts) {
        fill_waits(&mut ebpf)?;
    }
    if let Some(bits) = &opts.shown {
        fill_shown(&mut ebpf, bits)?;
    }
    Ok((ebpf, links, mode & mode::THREAD_CACHE != 0))
}

/// Loads the object and attaches only one of the floor programs to raw_syscalls/sys_enter:
/// what any tracer on that tracepoint costs the host (`pb_floor`, empty), and the steps of the
/// untracked path on top of it (`pb_floor_pid`, `pb_floor_bit`), for the cost benchmark; with
/// `exit`, also the empty program on raw_syscalls/sys_exit.
pub(super) fn load_floor(program: &'static str, exit: bool) -> Result<Ebpf, ProbeError> {
    preflight::check_privileges().map_err(preflight_error)?;
    tracefs::ensure_mounted().map_err(preflight_error)?;
    let words = pid_max() / 64 + 1;
    let mut ebpf = loader()
        .btf(None)
        .map_max_entries(names::USER_BITS, words)
        .map_max_entries(names::KERNEL_BITS, 1)
        .load(OBJECT)
        .map_err(ProbeError::Load)?;
    attach_raw(&mut ebpf, program, "sys_enter")?;
    if exit {
        attach_raw(&mut ebpf, names::PROG_FLOOR_EXIT, "sys_exit")?;
    }
    Ok(ebpf)
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, ProbeError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(ProbeError::Missing {
            what: "program",
            name,
        })?
        .try_into()
        .map_err(|source| ProbeError::Program { name, source })
}

/// The sys_enter program: the BTF-typed one where `btf` was read and it loads, else the raw
/// one.
fn attach_sys_enter(ebpf: &mut Ebpf, btf: Option<&Btf>) -> Result<Attached, ProbeError> {
    if let Some(btf) = btf {
        let name = names::PROG_SYS_ENTER_BTF;
        match attach_btf(ebpf, name, "sys_enter", btf) {
            Ok(a) => return Ok(a),
            Err(e) => {
                let why = anyhow::Error::from(e);
                log::debug!("{name}: {why:#}; the raw tracepoint's program instead")
            }
        }
    }
    attach_raw(ebpf, names::PROG_SYS_ENTER, "sys_enter")
}

fn attach_btf(
    ebpf: &mut Ebpf,
    name: &'static str,
    tracepoint: &'static str,
    btf: &Btf,
) -> Result<Attached, ProbeError> {
    let p: &mut BtfTracePoint = program(ebpf, name)?;
    p.load(tracepoint, btf)
        .map_err(|source| ProbeError::Program { name, source })?;
    let id = p.attach().map_err(|source| ProbeError::Attach {
        name,
        tracepoint,
        source,
    })?;
    Ok(Attached::Btf(name, id))
}

pub(super) fn attach_raw(
    ebpf: &mut Ebpf,
    name: &'static str,
    tracepoint: &'static str,
) -> Result<Attached, ProbeError> {
    let p: &mut RawTracePoint = program(ebpf, name)?;
    p.load()
        .map_err(|source| ProbeError::Program { name, source })?;
    let id = p.attach(tracepoint).map_err(|source| ProbeError::Attach {
        name,
        tracepoint,
        source,
    })?;
    Ok(Attached::Raw(name, id))
}

/// Detaches everything without making phasebox wait for it. Removing a program from a sched
/// tracepoint waits for the kernel's grace periods, one tracepoint at a time (tens of ms each:
/// most of a short run's wall time). So a child process keeps a copy of every link, phasebox
/// drops its own (quickly: they are not the last references) and tells the child, and the
/// child exits and does the waiting. Where no child can be made, the links are dropped here,
/// all at once.
pub(super) fn detach_all(ebpf: &mut Ebpf, links: Vec<Attached>) {
    let owned = take_links(ebpf, links);
    if owned.is_empty() {
        return;
    }
    let Ok((done_r, done_w)) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC) else {
        drop_together(owned);
        return;
    };
    // Which descriptors the child closes at once: all but the links and the pipe's read end
    // (it must not hold a listening socket, an output or a standard stream a moment longer).
    let (links, others) = open_descriptors();
    let keep: Vec<i32> = links.into_iter().chain([done_r.as_raw_fd()]).collect();
    let close: Vec<i32> = others.into_iter().filter(|fd| !keep.contains(fd)).collect();
    // SAFETY: the child calls only async-signal-safe functions (close, read, _exit) on what
    // was made before the fork, and touches nothing another thread may hold locked.
    match unsafe { libc::fork() } {
        0 => unsafe { drop_last_and_exit(&close, done_r.as_raw_fd()) },
        -1 => drop_together(owned),
        child => {
            drop(owned);
            drop(done_w);
            // Reaped on a thread that phasebox's exit does not wait for.
            std::thread::spawn(move || {
                let mut status = 0;
                // SAFETY: waiting for our own child.
                unsafe { libc::waitpid(child, &mut status, 0) };
            });
        }
    }
}

/// This process's open descriptors: the BPF links, and the others.
fn open_descriptors() -> (Vec<i32>, Vec<i32>) {
    let (links, others): (Vec<_>, Vec<_>) = crate::procfs::descriptors()
        .into_iter()
        .partition(|(_, target)| target.as_os_str() == "anon_inode:bpf_link");
    let fds = |v: Vec<(i32, _)>| v.into_iter().map(|(fd, _)| fd).collect();
    (fds(links), fds(others))
}

/// The detaching child: closes `close`, waits until phasebox has dropped its links (the pipe
/// reads end of file), and exits, which drops the last references.
///
/// # Safety
/// Only in the child of a fork; `close` holds no descriptor the child still needs.
unsafe fn drop_last_and_exit(close: &[i32], done_r: i32) -> ! {
    // SAFETY: plain system calls on descriptors of this process, then _exit.
    unsafe {
        for &fd in close {
            libc::close(fd);
        }
        let mut byte = 0u8;
        while libc::read(done_r, (&raw mut byte).cast(), 1) < 0
            && *libc::__errno_location() == libc::EINTR
        {}
        libc::_exit(0)
    }
}

/// Detaches the syscall programs now, and waits for it (the raw tracepoints' links go at
/// once); the process programs stay. No thread adds to its batch after this.
pub(super) fn detach_syscall_programs(ebpf: &mut Ebpf, links: &mut Vec<Attached>) {
    let (syscall, process): (Vec<_>, Vec<_>) = std::mem::take(links)
        .into_iter()
        .partition(|l| !matches!(l, Attached::Sched(..)));
    *links = process;
    drop(take_links(ebpf, syscall));
    // A run that began before the detach may still be going: it ends within a grace period.
    // SAFETY: a system call without pointers.
    let waited = unsafe { libc::syscall(libc::SYS_membarrier, libc::MEMBARRIER_CMD_GLOBAL, 0, 0) };
    if waited != 0 {
        // Refused (nohz_full, a seccomp filter): a run lasts microseconds.
        log::debug!("membarrier: {}", std::io::Error::last_os_error());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Takes the links out of their programs, to drop them when phasebox decides.
fn take_links(ebpf: &mut Ebpf, links: Vec<Attached>) -> Vec<Box<dyn Send>> {
    let mut owned: Vec<Box<dyn Send>> = Vec::new();
    for link in links {
        match link {
            Attached::Raw(name, id) => {
                if let Ok(p) = program::<RawTracePoint>(ebpf, name)
                    && let Ok(l) = p.take_link(id)
                {
                    owned.push(Box::new(l));
                }
            }
            Attached::Btf(name, id) => {
                if let Ok(p) = program::<BtfTracePoint>(ebpf, name)
                    && let Ok(l) = p.take_link(id)
                {
                    owned.push(Box::new(l));
                }
            }
            Attached::Sched(name, id) => {
                if let Ok(p) = program::<TracePoint>(ebpf, name)
                    && let Ok(l) = p.take_link(id)
                {
                    owned.push(Box::new(l));
                }
            }
        }
    }
    owned
}

/// Drops the links together, one thread each, so that their grace periods overlap where the
/// kernel lets them.
fn drop_together(owned: Vec<Box<dyn Send>>) {
    std::thread::scope(|s| {
        for l in owned {
            s.spawn(move || drop(l));
        }
    });
}

/// Which arguments of each syscall `call_args` lists are recorded, under which masks.
fn fill_arg_specs(ebpf: &mut Ebpf) -> Result<(), ProbeError> {
    let map = ebpf.map_mut(names::ARG_SPECS).ok_or(ProbeError::Missing {
        what: "map",
        name: names::ARG_SPECS,
    })?;
    let mut specs: Array<&mut MapData, ArgSpec> =
        Array::try_from(map).map_err(ProbeError::map("open", names::ARG_SPECS))?;
    for c in call_args::CALLS {
        if let Some(nr) = sysnames::number(c.syscall).filter(|&n| n < MAX_SYSCALLS) {
            specs
                .set(nr, c.spec(), 0)
                .map_err(ProbeError::map("fill", names::ARG_SPECS))?;
        }
    }
    Ok(())
}

/// The syscalls a stream sends one record per call of (`-e trace=`).
fn fill_shown(ebpf: &mut Ebpf, bits: &[u64]) -> Result<(), ProbeError> {
    let shown = (0..MAX_SYSCALLS).filter(|nr| bits[(nr / 64) as usize] & (1 << (nr % 64)) != 0);
    mark_syscalls(ebpf, names::SHOWN, shown)
}

/// The calls a thread sends its batch before (it may wait in them long).
fn fill_waits(ebpf: &mut Ebpf) -> Result<(), ProbeError> {
    let waits = sysnames::WAITING
        .iter()
        .filter_map(|name| sysnames::number(name));
    mark_syscalls(ebpf, names::WAITS, waits)
}

/// Sets element `nr` of the per-syscall byte array `name` to 1 for each of `nrs` (numbers
/// beyond the array are skipped).
fn mark_syscalls(
    ebpf: &mut Ebpf,
    name: &'static str,
    nrs: impl IntoIterator<Item = u32>,
) -> Result<(), ProbeError> {
    let map = ebpf
        .map_mut(name)
        .ok_or(ProbeError::Missing { what: "map", name })?;
    let mut marks: Array<&mut MapData, u8> =
        Array::try_from(map).map_err(ProbeError::map("open", name))?;
    for nr in nrs.into_iter().filter(|&n| n < MAX_SYSCALLS) {
        marks.set(nr, 1, 0).map_err(ProbeError::map("fill", name))?;
    }
    Ok(())
}

/// Which argument of each path-taking syscall is the path.
fn fill_path_args(ebpf: &mut Ebpf) -> Result<(), ProbeError> {
    let map = ebpf.map_mut(names::PATH_ARGS).ok_or(ProbeError::Missing {
        what: "map",
        name: names::PATH_ARGS,
    })?;
    let mut path_args: Array<&mut MapData, u32> =
        Array::try_from(map).map_err(ProbeError::map("open", names::PATH_ARGS))?;
    for (name, arg) in sysnames::PATH_ARGS {
        if let Some(nr) = sysnames::number(name).filter(|&n| n < MAX_SYSCALLS) {
            path_args
                .set(nr, arg + 1, 0)
                .map_err(ProbeError::map("fill", names::PATH_ARGS))?;
        }
    }
    Ok(())
}
