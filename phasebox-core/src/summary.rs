//! The end-of-run summary: per process and syscall, calls and errors (like `strace -f -c`),
//! and what was lost. Its JSON form is a stable interface for scripts.
use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::{display, process::ProcessTree, sysnames};

/// What the kernel could not deliver or count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Losses {
    /// Records lost because the ring buffer was full (the counters still saw those syscalls).
    pub ringbuf_full: u64,
    /// Syscalls not counted because the counter map was full.
    pub counter_map_full: u64,
    /// Processes the kernel could not keep state for (its process map was full): their calls
    /// were counted, without phases.
    #[serde(default)]
    pub process_map_full: u64,
}

/// Calls and errors of one syscall.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyscallStat {
    pub calls: u64,
    pub errors: u64,
}

/// One process of the summary (a pid reused during the run is two processes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSummary {
    pub pid: u32,
    /// The kernel's number for this process: two processes with the same pid differ here.
    #[serde(default)]
    pub instance: u32,
    pub ppid: u32,
    pub exe: String,
    pub comm: String,
    pub syscalls: BTreeMap<String, SyscallStat>,
}

/// The whole summary (`--summary FILE` writes it as JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Events lost on the way to userspace (ring buffer full). Counts stay exact regardless.
    pub dropped: u64,
    /// Records delivered to userspace.
    pub events: u64,
    pub losses: Losses,
    /// The syscall table the numbers were named with.
    pub arch: String,
    pub processes: Vec<ProcessSummary>,
    /// Whether failed calls were counted (`errors`): not with `--entry-only`, which sends
    /// calls at their entry.
    #[serde(default = "yes")]
    pub errors_counted: bool,
}

fn yes() -> bool {
    true
}

impl Summary {
    /// Builds the summary from the process tree and the exact counts harvested into it.
    pub fn build(tree: &ProcessTree, losses: Losses, events: u64) -> Summary {
        let processes = tree
            .processes()
            .map(|p| ProcessSummary {
                pid: p.pid,
                instance: p.instance,
                ppid: p.ppid,
                exe: p.exe.clone(),
                comm: p.comm.clone(),
                syscalls: p
                    .counts
                    .iter()
                    .map(|(&nr, c)| {
                        let stat = SyscallStat {
                            calls: c.calls,
                            errors: c.errors,
                        };
                        (sysnames::name(nr).into_owned(), stat)
                    })
                    .collect(),
            })
            .collect();
        Summary {
            dropped: losses.ringbuf_full,
            events,
            losses,
            arch: sysnames::ARCH.to_string(),
            processes,
            errors_counted: true,
        }
    }

    /// Calls and errors summed over all processes, by syscall name.
    pub fn totals(&self) -> BTreeMap<String, SyscallStat> {
        let mut t: BTreeMap<String, SyscallStat> = BTreeMap::new();
        for p in &self.processes {
            for (name, s) in &p.syscalls {
                let e = t.entry(name.clone()).or_default();
                e.calls += s.calls;
                e.errors += s.errors;
            }
        }
        t
    }

    /// A table per process, most-called syscalls first, like `strace -c`.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        if !self.errors_counted {
            out.push_str("(failed calls not counted: calls were recorded at their entry)\n");
        }
        for p in &self.processes {
            process_table(&mut out, p);
        }
        self.totals_and_losses(&mut out);
        out
    }

    /// The totals, and a warning for each kind of loss.
    fn totals_and_losses(&self, out: &mut String) {
        let all: u64 = self
            .processes
            .iter()
            .flat_map(|p| p.syscalls.values())
            .map(|s| s.calls)
            .sum();
        let _ = writeln!(
            out,
            "total: {} processes, {} syscalls, {} events delivered, {} dropped",
            self.processes.len(),
            all,
            self.events,
            self.dropped
        );
        if self.dropped > 0 {
            let _ = writeln!(
                out,
                "warning: {} events were dropped because the ring buffer was full \
                 (counts above are still exact; use a larger --ring-buffer for a full timeline)",
                self.dropped
            );
        }
        if self.losses.process_map_full > 0 {
            let _ = writeln!(
                out,
                "warning: the kernel's process map was full: {} processes were counted without phases",
                self.losses.process_map_full
            );
        }
        if self.losses.counter_map_full > 0 {
            let _ = writeln!(
                out,
                "warning: the kernel's counter map was full: {} syscalls went uncounted",
                self.losses.counter_map_full
            );
        }
    }

    /// The summary of the syscalls `filter` shows (`-e trace=`): other calls left out of
    /// every process, the counts of those shown unchanged.
    pub fn shown_only(&self, filter: &crate::trace_filter::TraceFilter) -> Summary {
        let mut s = self.clone();
        for p in &mut s.processes {
            p.syscalls.retain(|name, _| filter.selects_name(name));
        }
        s
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("summary serializes")
    }
}

/// One process's table: who it is, then its syscalls, most-called first.
fn process_table(out: &mut String, p: &ProcessSummary) {
    let total: u64 = p.syscalls.values().map(|s| s.calls).sum();
    let prog = if p.exe.is_empty() {
        "?"
    } else {
        p.exe.as_str()
    };
    let _ = writeln!(
        out,
        "pid {} {} ({}), parent {}: {} syscalls",
        p.pid,
        display::text(prog),
        display::text(&p.comm),
        p.ppid,
        total
    );
    if p.syscalls.is_empty() {
        return;
    }
    let _ = writeln!(out, "  {:>10} {:>8}  syscall", "calls", "errors");
    let mut rows: Vec<(&String, &SyscallStat)> = p.syscalls.iter().collect();
    rows.sort_by(|a, b| b.1.calls.cmp(&a.1.calls).then(a.0.cmp(b.0)));
    for (name, s) in rows {
        let errors = if s.errors == 0 {
            String::new()
        } else {
            s.errors.to_string()
        };
        let name = display::text(name);
        let _ = writeln!(out, "  {:>10} {:>8}  {name}", s.calls, errors);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_per_process_tables_from_counters() {
        use phasebox_common::{CountKey, Counts};
        let mut tree = ProcessTree::new();
        tree.add(5, 1, "/usr/bin/pwd".into(), "pwd".into(), None);
        let openat = sysnames::number("openat").unwrap();
        let close = sysnames::number("close").unwrap();
        let key = |tgid, nr| CountKey {
            tgid,
            instance: 1,
            seg: 1,
            nr,
        };
        let c = |calls, errors| Counts { calls, errors };
        tree.add_counts(&key(5, openat), c(4, 1));
        tree.add_counts(&key(5, close), c(3, 0));
        tree.add_counts(&key(9, close), c(1, 0));
        let losses = Losses {
            ringbuf_full: 2,
            ..Default::default()
        };
        let s = Summary::build(&tree, losses, 10);
        assert_eq!(s.dropped, 2);
        assert_eq!(s.processes.len(), 2);
        assert_eq!(
            s.processes[0].syscalls["openat"],
            SyscallStat {
                calls: 4,
                errors: 1
            }
        );
        assert_eq!(s.totals()["close"].calls, 4);
        let text = s.render_text();
        assert!(text.contains("pid 5 /usr/bin/pwd (pwd)"), "{text}");
        assert!(text.contains("2 events were dropped"), "{text}");
        // A program's path and comm are the traced program's to choose: never raw controls.
        let mut hostile = s.clone();
        hostile.processes[0].exe = "/tmp/\x1b[2J\x1b]0;owned\x07x".into();
        hostile.processes[0].comm = "a\nb".into();
        let text = hostile.render_text();
        assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text}");
        assert!(
            text.contains("pid 5 /tmp/\\u{1b}[2J\\u{1b}]0;owned\\u{7}x (a\\nb)"),
            "{text}"
        );
        let back: Summary = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(back, s);
    }
}
