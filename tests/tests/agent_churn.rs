//! An agent on a busy host: a shell that runs 100,000 short-lived processes one after the
//! other. The agent keeps running, counts every execve, and its memory and the kernel's maps
//! stay flat (every per-process entry goes when its process exits).
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use phasebox_tests::{
    CARGO_LIBRARY_PATH, Guard, TempDir,
    metrics::{eventually, scrape, sum, value},
    nginx::free_port,
};

const PROCESSES: u64 = 100_000;

/// Resident memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Entries now in the kernel map `name` of the agent `pid` (other phasebox instances may be
/// loaded on a busy machine: the agent's own map, by the ids its descriptors hold).
fn map_entries(pid: u32, name: &str) -> usize {
    phasebox_tests::map_entries(phasebox_tests::map_of(pid, name))
}

fn send(fifo: &std::path::Path) {
    let mut f = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
    writeln!(f, "go").unwrap();
}

#[test]
fn a_hundred_thousand_short_lived_processes() {
    let dir = TempDir::new("churn");
    let (start, end) = (dir.path("start"), dir.path("end"));
    for f in [&start, &end] {
        assert!(Command::new("mkfifo").arg(f).status().unwrap().success());
    }
    // Builtins only, but for the processes it runs: every execve is one of /bin/true.
    let script = format!(
        "read -r go < {s}; i=0; while [ $i -lt {PROCESSES} ]; do /bin/true; i=$((i+1)); done; \
         read -r end < {e}",
        s = start.display(),
        e = end.display()
    );
    let shell = Guard::group(
        Command::new("/bin/bash")
            .args(["-c", &script])
            .env_remove(CARGO_LIBRARY_PATH)
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    let listen = format!("127.0.0.1:{}", free_port());
    let pid = shell.id().to_string();
    let (mut agent, _err, line) = phasebox_tests::spawn_agent(&["-p", &pid, "--listen", &listen]);
    assert!(line.contains("metrics on"), "agent did not start: {line}");
    send(&start);
    let execs = |page: &str| sum(page, "phasebox_syscalls_total", &[("syscall", "execve")]);
    // The agent's memory: its high-water mark with processes in flight (started, not yet
    // harvested), which the allocator then keeps, over the processes 20,000 to 60,000 and
    // over the last 40,000. A leak grows with the processes, so the second mark would pass
    // the first; flat memory stays at it. (The first 20,000 are left out: how many are in
    // flight at once is still rising then.)
    let mut early = 0;
    eventually(Duration::from_secs(600), "20,000 processes", || {
        (execs(&scrape(&listen)) >= 20_000.0).then_some(())
    });
    eventually(Duration::from_secs(1800), "60,000 processes", || {
        assert!(agent.try_wait().unwrap().is_none(), "the agent exited");
        early = early.max(rss_kib(agent.id()));
        (execs(&scrape(&listen)) >= 60_000.0).then_some(())
    });
    let early_procs = map_entries(agent.id(), "PB_PROCS");
    let mut late = 0;
    eventually(Duration::from_secs(3600), "100,000 processes", || {
        assert!(agent.try_wait().unwrap().is_none(), "the agent exited");
        late = late.max(rss_kib(agent.id()));
        (execs(&scrape(&listen)) >= PROCESSES as f64).then_some(())
    });
    // Settled: one more harvest after the last process.
    std::thread::sleep(Duration::from_secs(2));
    let page = scrape(&listen);
    assert_eq!(execs(&page), PROCESSES as f64, "every execve counted once");
    assert_eq!(
        value(&page, "phasebox_events_dropped_total", &[]),
        Some(0.0)
    );
    let full = sum(&page, "phasebox_map_full_total", &[]);
    assert_eq!(full, 0.0, "a kernel map filled up: {page}");
    eprintln!("agent RSS, most over processes 20,000-60,000: {early} KiB; after: {late} KiB");
    assert!(
        late < early + 2048,
        "the agent's memory grew with the processes: {early} KiB -> {late} KiB"
    );
    // The kernel keeps entries for live processes only (and GONE ones awaiting the agent).
    for map in ["PB_PROCS", "PB_SET_REQUESTS", "PB_VERDICTS", "PB_ALLOWED"] {
        let n = map_entries(agent.id(), map);
        assert!(
            n < 64,
            "{map} holds {n} entries after the churn (early: {early_procs})"
        );
    }
    // Process slots: given back once their processes have gone.
    let slots = phasebox_tests::entries_in_use(phasebox_tests::map_of(agent.id(), "PB_SLOTS"));
    assert!(slots < 64, "{slots} process slots in use after the churn");
    send(&end);
    eventually(Duration::from_secs(30), "the agent to see the end", || {
        agent.try_wait().unwrap().map(|_| ())
    });
}
