//! `phasebox trace dump FILE`: a trace file, one line per event, strace-like, or one JSON
//! object per line (`--json`); `-e trace=SET` shows only those calls.
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use phasebox_common::syscall_flags;

use phasebox_core::{
    ahead::Ahead,
    call_args, display,
    event::Event,
    sysnames,
    trace_filter::TraceFilter,
    tracefile::{self, TraceReader},
};

/// One event as a line: time since start, tid, what happened. `args` are the syscall's
/// arguments as they show (its path, the recorded arguments), when it has any.
pub fn render(ev: &Event, start_ns: u64, args: &str) -> Option<String> {
    let secs = |ts: u64| ts.saturating_sub(start_ns) as f64 / 1e9;
    Some(match ev {
        // Paths and recorded arguments show in their syscall's line; segment openers only
        // matter to phases.
        Event::Path(_) | Event::Segment(_) | Event::Args(_) => return None,
        Event::Syscall(r) => {
            let name = sysnames::name(r.nr);
            if r.header.flags & (syscall_flags::NO_RETURN | syscall_flags::AT_ENTRY) != 0 {
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
            display::text(&e.filename),
            display::text(&e.comm)
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

/// One event as a JSON object (`--json`): `t` (seconds since start), `tid`, `event` and its
/// fields; the same events as [`render`]'s lines.
pub fn render_json(ev: &Event, start_ns: u64, args: &[String]) -> Option<serde_json::Value> {
    use serde_json::json;
    let secs = |ts: u64| ts.saturating_sub(start_ns) as f64 / 1e9;
    Some(match ev {
        Event::Path(_) | Event::Segment(_) | Event::Args(_) => return None,
        Event::Syscall(r) => {
            let returned =
                r.header.flags & (syscall_flags::NO_RETURN | syscall_flags::AT_ENTRY) == 0;
            json!({
                "t": secs(r.enter_ns), "tid": r.tid, "pid": r.header.tgid, "event": "syscall",
                "name": sysnames::name(r.nr), "args": args,
                "ret": returned.then_some(r.ret),
                "error": (returned && (-4095..0).contains(&r.ret))
                    .then(|| sysnames::render_return(r.ret)),
                "duration": returned.then_some(r.duration_ns as f64 / 1e9),
            })
        }
        Event::Filtered(f) => json!({
            "t": secs(f.ts_ns), "tid": f.tid, "pid": f.header.tgid, "event": "filtered",
            "name": sysnames::name(f.nr), "ret": f.ret,
        }),
        Event::Fork(r) => json!({
            "t": secs(r.ts_ns), "tid": r.parent_tid, "event": "fork", "child": r.child_tid,
        }),
        Event::Exec(e) => json!({
            "t": secs(e.ts_ns), "tid": e.tid, "event": "exec",
            "filename": display::text(&e.filename), "comm": display::text(&e.comm),
        }),
        Event::Exit(r) => json!({
            "t": secs(r.ts_ns), "tid": r.tid, "pid": r.header.tgid, "event": "exit",
            "process": r.group_dead != 0,
        }),
    })
}

/// Whether the filter shows `ev` (a call it does not select is left out).
fn shows(filter: Option<&TraceFilter>, ev: &Event) -> bool {
    let nr = match ev {
        Event::Syscall(r) => r.nr,
        Event::Filtered(f) => f.nr,
        _ => return true,
    };
    filter.is_none_or(|f| f.selects(nr))
}

/// How many lines wait to be put in time order before the earliest is printed: bounds the
/// memory `dump` takes whatever the trace's size.
const REORDER_WINDOW: usize = 1 << 16;

/// Prints the trace at `path`, read as a stream: records arrive in the order the kernel sent
/// them (a syscall at its exit), and are printed in time order within a window of
/// [`REORDER_WINDOW`] records; a call that blocked while more records came prints later, its
/// time column still its start. A damaged trace prints what comes before the damage, then
/// says what is wrong.
pub fn dump(path: &Path, filter: Option<&TraceFilter>, json: bool) -> anyhow::Result<i32> {
    let mut trace = tracefile::open(path)?;
    // What the trace was recorded with, unless the command line says otherwise.
    let recorded = match &trace.header().shown {
        Some(spec) => Some(TraceFilter::parse(spec)?),
        None => None,
    };
    let filter = filter.or(recorded.as_ref());
    let mut out = BufWriter::new(std::io::stdout().lock());
    let how = How { filter, json };
    match print(&mut trace, &mut out, how) {
        // A reader that went away (`| head`) ends the dump.
        Err(e) => super::stdout_result(Err(e)).map(|()| 0),
        Ok(Some(damage)) => Err(damage),
        Ok(None) => Ok(0),
    }
}

/// How `dump` prints: the calls it shows, and lines of text or of JSON.
#[derive(Clone, Copy)]
struct How<'a> {
    filter: Option<&'a TraceFilter>,
    json: bool,
}

/// Prints every event; the trace's damage, if it has any, once what came before is printed.
fn print<R: Read>(
    trace: &mut TraceReader<R>,
    out: &mut impl Write,
    how: How,
) -> std::io::Result<Option<anyhow::Error>> {
    let h = trace.header().clone();
    if !how.json {
        head(&h, how.filter, out)?;
    }
    let mut lines = Reorder::default();
    // The path arguments and the recorded arguments of calls whose records have not come
    // yet (they come before the call's record).
    let mut paths: Ahead<String> = Ahead::default();
    let mut recorded: Ahead<String> = Ahead::default();
    let damage = loop {
        let ev = match trace.next_event() {
            Ok(Some(ev)) => ev,
            Ok(None) => break None,
            Err(e) => break Some(e),
        };
        let mut args = Vec::new();
        match &ev {
            Event::Path(p) => {
                paths.hold(p.tid, p.enter_ns, format!("{:?}", p.path));
            }
            Event::Args(a) => {
                let text = call_args::of(&sysnames::name(a.nr))
                    .map(|c| c.arguments(&a.values))
                    .unwrap_or_default();
                recorded.hold(a.tid, a.enter_ns, text);
            }
            Event::Syscall(r) => {
                for held in [&mut paths, &mut recorded] {
                    args.extend(held.take(r.tid, r.enter_ns));
                }
            }
            Event::Exit(r) => {
                paths.forget(r.tid);
                recorded.forget(r.tid);
            }
            _ => {}
        }
        if !shows(how.filter, &ev) {
            continue;
        }
        let line = if how.json {
            render_json(&ev, h.started_monotonic_ns, &args).map(|v| v.to_string())
        } else {
            render(&ev, h.started_monotonic_ns, &args.join(", "))
        };
        if let Some(line) = line
            && let Some(ready) = lines.push(ev.ts_ns(), line)
        {
            writeln!(out, "{ready}")?;
        }
    };
    for l in lines.drain() {
        writeln!(out, "{l}")?;
    }
    if damage.is_none() && !how.json {
        let dropped = trace.footer().map_or(0, |f| f.summary.dropped);
        let n = trace.records();
        writeln!(out, "# {n} events, {dropped} dropped while recording")?;
    }
    out.flush()?;
    Ok(damage.map(Into::into))
}

/// The text dump's first lines: what the trace is of, and the columns.
fn head(
    h: &tracefile::TraceHeader,
    filter: Option<&TraceFilter>,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let what = match h.target_pid {
        Some(pid) => format!("pid {pid}"),
        None if h.command.is_empty() => "attached processes".to_string(),
        None => display::join(&h.command, " "),
    };
    writeln!(
        out,
        "# phasebox trace: {} of {what}, {} on kernel {}",
        display::text(&h.mode),
        display::text(&h.arch),
        display::text(&h.kernel_release)
    )?;
    if let Some(f) = filter {
        writeln!(out, "# shown: trace={}", display::text(f.spec()))?;
    }
    writeln!(out, "# {:>10} {:>7} event", "seconds", "tid")
}

/// Lines put back in time order within a bounded window (ties keep their arrival order).
#[derive(Default)]
struct Reorder {
    heap: BinaryHeap<Reverse<(u64, u64, String)>>,
    arrived: u64,
}

impl Reorder {
    /// Adds a line; returns the earliest one once the window is full.
    fn push(&mut self, ts: u64, line: String) -> Option<String> {
        self.arrived += 1;
        self.heap.push(Reverse((ts, self.arrived, line)));
        (self.heap.len() > REORDER_WINDOW)
            .then(|| self.heap.pop().map(|Reverse((_, _, l))| l))
            .flatten()
    }

    /// The lines left, earliest first.
    fn drain(&mut self) -> impl Iterator<Item = String> + '_ {
        std::iter::from_fn(|| self.heap.pop().map(|Reverse((_, _, l))| l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_out_in_time_order_within_the_window() {
        let mut r = Reorder::default();
        // Out of order, ties in arrival order.
        for (ts, l) in [(5, "e"), (1, "a"), (3, "c1"), (3, "c2"), (2, "b")] {
            assert_eq!(r.push(ts, l.to_string()), None);
        }
        let v: Vec<String> = r.drain().collect();
        assert_eq!(v, ["a", "b", "c1", "c2", "e"]);
        // A full window lets its earliest line go, so memory stays bounded.
        let mut r = Reorder::default();
        let mut out = Vec::new();
        for i in (0..REORDER_WINDOW as u64 + 10).rev() {
            out.extend(r.push(i, i.to_string()));
        }
        assert_eq!(out.len(), 10);
        assert_eq!(r.heap.len(), REORDER_WINDOW);
    }
}
