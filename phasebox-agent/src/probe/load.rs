//! Loading the kernel object: the settings it gets before load, map sizes, and attaching the
//! programs a mode needs (and no other: every program on the syscall path costs every process
//! on the host).
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData},
    programs::{
        RawTracePoint, TracePoint, raw_trace_point::RawTracePointLinkId,
        trace_point::TracePointLinkId,
    },
};
use phasebox_common::{COMM_LEN, Config, MAX_SYSCALLS, NO_FIELD, mode, names};
use phasebox_core::sysnames;

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
        pidns_dev: opts.pidns.map_or(0, |(dev, _)| dev),
        pidns_ino: opts.pidns.map_or(0, |(_, ino)| ino),
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
    Sched(&'static str, TracePointLinkId),
}

/// Loads the object with its settings and map sizes, and attaches what `opts` needs.
pub(super) fn load(opts: &ProbeOptions) -> Result<(Ebpf, Vec<Attached>), ProbeError> {
    let config = config(opts)?;
    let mode = mode_bits(opts);
    let words = pid_max() / 64 + 1;
    // No CO-RE relocation needs the kernel's BTF (tracepoint fields come from tracefs): not
    // reading and parsing /sys/kernel/btf/vmlinux saves a good part of the start-up time.
    let mut ebpf = EbpfLoader::new()
        .btf(None)
        .override_global(names::CONFIG, &config, true)
        .override_global(names::MODE, &mode, true)
        .map_max_entries(names::EVENTS, opts.ring_bytes)
        .map_max_entries(names::USER_BITS, words)
        .map_max_entries(names::KERNEL_BITS, words)
        .load(OBJECT)
        .map_err(ProbeError::Load)?;
    // Summary mode counts calls on entry and never looks at returns: no exit program.
    let mut links = vec![attach_raw(&mut ebpf, names::PROG_SYS_ENTER, "sys_enter")?];
    if opts.stream || opts.errors {
        links.push(attach_raw(&mut ebpf, names::PROG_SYS_EXIT, "sys_exit")?);
    }
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
    fill_path_args(&mut ebpf)?;
    Ok((ebpf, links))
}

/// Loads the object and attaches only one of the floor programs to raw_syscalls/sys_enter:
/// what any tracer on that tracepoint costs the host (`pb_floor`, empty), and the steps of the
/// untracked path on top of it (`pb_floor_pid`, `pb_floor_bit`), for the cost benchmark.
pub(super) fn load_floor(program: &'static str) -> Result<Ebpf, ProbeError> {
    preflight::check_privileges().map_err(preflight_error)?;
    tracefs::ensure_mounted().map_err(preflight_error)?;
    let words = pid_max() / 64 + 1;
    let mut ebpf = EbpfLoader::new()
        .btf(None)
        .map_max_entries(names::USER_BITS, words)
        .map_max_entries(names::KERNEL_BITS, 1)
        .load(OBJECT)
        .map_err(ProbeError::Load)?;
    attach_raw(&mut ebpf, program, "sys_enter")?;
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

fn attach_raw(
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

/// Detaches everything at once: each detach waits for the kernel to be sure no CPU still runs
/// the program (tens of ms on a busy machine), so they wait together, one thread each.
pub(super) fn detach_all(ebpf: &mut Ebpf, links: Vec<Attached>) {
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
            Attached::Sched(name, id) => {
                if let Ok(p) = program::<TracePoint>(ebpf, name)
                    && let Ok(l) = p.take_link(id)
                {
                    owned.push(Box::new(l));
                }
            }
        }
    }
    std::thread::scope(|s| {
        for l in owned {
            s.spawn(move || drop(l));
        }
    });
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
