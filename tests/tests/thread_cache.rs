//! The thread cache (`phasebox_common::thread_cache`): an untracked thread's calls leave the
//! syscall programs after one lookup by the address of its saved registers, the top of its
//! kernel stack. A new thread may get the stack, and so the address, of an untracked one that
//! has just exited: that entry must be gone by then, or the new thread's calls would be taken
//! for an untracked one's. Here a traced program forks children while untracked processes
//! start and exit on every CPU, so that children run on stacks just freed by untracked ones:
//! every child's calls must be counted. (The other ways a thread found untracked becomes
//! tracked are tested where they happen: a launched program waits untracked before its exec,
//! in every `run` test; a process found at its exec, in found_at_exec.rs.)
use std::os::unix::process::CommandExt;
use std::process::Command;

use phasebox_tests::{Guard, TempDir, bpftool, map_of, read_json};

const CHILDREN: u64 = 400;
const CALLS: u64 = 100;

/// Whether this machine's agent uses the cache (x86-64, Linux 5.15 or later).
fn cache_expected() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut v = release
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let version = (v.next().unwrap_or(0), v.next().unwrap_or(0));
    cfg!(target_arch = "x86_64") && version >= (5, 15)
}

/// The cache's generation (the tag, first u64, of entry 0 of PB_THREADS) in the agent `pid`.
fn generation(pid: u32) -> u64 {
    let id = map_of(pid, "PB_THREADS").to_string();
    let entry = bpftool(&["map", "lookup", "id", &id, "key", "0", "0", "0", "0"]);
    let bytes: Vec<u8> = entry["value"]
        .as_array()
        .expect("PB_THREADS entry 0")
        .iter()
        .take(8)
        .map(|b| u8::from_str_radix(b.as_str().unwrap().trim_start_matches("0x"), 16).unwrap())
        .collect();
    u64::from_le_bytes(bytes.try_into().expect("a u64 tag"))
}

#[test]
fn children_on_the_stacks_of_untracked_processes_that_just_exited_are_counted() {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    // Untracked churn on every CPU: each exit frees a kernel stack that the next fork on that
    // CPU is likely to take.
    let _churn: Vec<Guard> = (0..cpus)
        .map(|_| {
            Guard::group(
                Command::new("sh")
                    .args(["-c", "while :; do /bin/true; done"])
                    .process_group(0)
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    let dir = TempDir::new("thread-cache");
    let summary = dir.path("summary.json");
    let (mut run, input) = phasebox_tests::swarm::run_until_ready(&summary, CHILDREN, CALLS);
    let generation = generation(run.id());
    eprintln!("thread cache generation {generation}");
    if cache_expected() {
        assert!(
            generation >= 1,
            "the agent did not turn the thread cache on"
        );
    }
    drop(input);
    let status = run.wait().unwrap();
    assert!(status.success(), "phasebox run: {status}");
    let s = read_json(&summary);
    assert_eq!(s["dropped"], 0);
    let counts: Vec<u64> = s["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["syscalls"]["getppid"]["calls"].as_u64())
        .collect();
    assert_eq!(
        counts.len() as u64,
        CHILDREN,
        "children whose getppid calls were counted"
    );
    assert!(
        counts.iter().all(|&n| n == CALLS),
        "a child's getppid count is not {CALLS}: {:?}",
        counts.iter().filter(|&&n| n != CALLS).collect::<Vec<_>>()
    );
}
