//! A traced call's enter and exit are paired by tid (PB_PENDING_TID). A thread other than
//! the leader that execs takes the leader's tid; the call it was in under its own tid (the
//! execve) must not stay there, where a later thread given that tid, traced from inside a
//! call, would pair its first exit with it.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use phasebox_tests::{Guard, TempDir, array_element, children, fixture, phasebox_bin, read_json};

/// Whether element `tid` of PB_PENDING_TID, in the phasebox `pid`, holds a call (its
/// `live` word, bytes 12 to 16).
fn pending(pid: u32, tid: u32) -> bool {
    let bytes = array_element(pid, "PB_PENDING_TID", tid);
    u32::from_le_bytes(bytes[12..16].try_into().expect("a 24-byte element")) != 0
}

/// The state letter of `pid` and its command line.
fn state(pid: u32) -> Option<(char, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let letter = stat.rsplit_once(") ")?.1.chars().next()?;
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).ok()?;
    Some((letter, cmdline.replace('\0', " ")))
}

#[test]
fn a_thread_that_execs_leaves_no_pending_call_under_its_old_tid() {
    let dir = TempDir::new("pending");
    let summary = dir.path("summary.json");
    let mut run = Guard::new(
        Command::new(phasebox_bin())
            .args(["run", "-q", "--summary", summary.to_str().unwrap(), "--"])
            .arg(fixture("thread_exec"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("phasebox starts"),
    );
    let mut line = String::new();
    BufReader::new(run.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let old: u32 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("the program said {line:?}"));
    // The exec is over once the program, now `thread_exec wait`, sleeps in its read.
    let started = Instant::now();
    let program = loop {
        let waiting = children(run.id())
            .into_iter()
            .find(|&p| state(p).is_some_and(|(s, cmd)| s == 'S' && cmd.contains("wait")));
        if let Some(p) = waiting {
            break p;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the thread's exec never finished"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_ne!(old, program, "the thread that execs is not the leader");
    assert!(
        pending(run.id(), program),
        "the read the program sleeps in is pending under its tid {program}"
    );
    assert!(
        !pending(run.id(), old),
        "the execve of thread {old}, now {program}, is still pending under its old tid"
    );
    drop(run.stdin.take());
    let status = run.wait().unwrap();
    assert!(status.success(), "phasebox run: {status}");
    let s = read_json(&summary);
    let execs: u64 = s["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["syscalls"]["execve"]["calls"].as_u64())
        .sum();
    assert_eq!(execs, 2, "the launch's execve and the thread's: {s}");
}
