//! `phasebox trace dump FILE`: a trace file, one line per event, strace-like.
use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::Path;

use phasebox_common::syscall_flags;

use phasebox_core::{event::Event, sysnames, tracefile};

/// One event as a line: time since start, tid, what happened. `path` is the syscall's path
/// argument when it has one.
pub fn render(ev: &Event, start_ns: u64, path: Option<&str>) -> Option<String> {
    let secs = |ts: u64| ts.saturating_sub(start_ns) as f64 / 1e9;
    let args = path.map(|p| format!("{p:?}")).unwrap_or_default();
    Some(match ev {
        // Paths show in their syscall's line; segment openers only matter to phases.
        Event::Path(_) | Event::Segment(_) => return None,
        Event::Syscall(r) => {
            let name = sysnames::name(r.nr);
            if r.header.flags & syscall_flags::NO_RETURN != 0 {
                format!("{:12.6} {:>7} {name}({args}) = ?", secs(r.enter_ns), r.tid)
            } else {
                format!(
                    "{:12.6} {:>7} {name}({args}) = {} <{:.6}>",
                    secs(r.enter_ns),
                    r.tid,
                    sysnames::render_return(r.ret),
                    r.duration_ns as f64 / 1e9
                )
            }
        }
        Event::Filtered(f) => format!(
            "{:12.6} {:>7} {}(…) = {} (answered by a seccomp filter)",
            secs(f.ts_ns),
            f.tid,
            sysnames::name(f.nr),
            sysnames::render_return(f.ret)
        ),
        Event::Fork(r) => format!(
            "{:12.6} {:>7} +++ forked {}",
            secs(r.ts_ns),
            r.parent_tid,
            r.child_tid
        ),
        Event::Exec(e) => format!(
            "{:12.6} {:>7} +++ exec {} (comm {})",
            secs(e.ts_ns),
            e.tid,
            e.filename,
            e.comm
        ),
        Event::Exit(r) => {
            let what = if r.group_dead != 0 {
                "process exited"
            } else {
                "thread exited"
            };
            format!(
                "{:12.6} {:>7} +++ {what} (pid {})",
                secs(r.ts_ns),
                r.tid,
                r.header.tgid
            )
        }
    })
}

pub fn dump(path: &Path) -> anyhow::Result<i32> {
    let mut trace = tracefile::read(path)?;
    // Records arrive per CPU and syscalls at their exit: show them in time order.
    trace.events.sort_by_key(Event::ts_ns);
    let h = &trace.header;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut go = || -> std::io::Result<()> {
        let what = match h.target_pid {
            Some(pid) => format!("pid {pid}"),
            None => h.command.join(" "),
        };
        writeln!(
            out,
            "# phasebox trace: {} of {what}, {} on kernel {}",
            h.mode, h.arch, h.kernel_release
        )?;
        writeln!(out, "# {:>10} {:>7} event", "seconds", "tid")?;
        let paths: HashMap<(u32, u64), &str> = trace
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Path(p) => Some(((p.tid, p.enter_ns), p.path.as_str())),
                _ => None,
            })
            .collect();
        for ev in &trace.events {
            let path = match ev {
                Event::Syscall(r) => paths.get(&(r.tid, r.enter_ns)).copied(),
                _ => None,
            };
            if let Some(line) = render(ev, h.started_monotonic_ns, path) {
                writeln!(out, "{line}")?;
            }
        }
        writeln!(
            out,
            "# {} events, {} dropped while recording",
            trace.events.len(),
            trace.footer.summary.dropped
        )?;
        out.flush()
    };
    super::stdout_result(go())?;
    Ok(0)
}
