//! Record mode lets a thread send its calls a few at a time (PB_BATCHES). The calls a thread
//! still holds when the session ends (the last ones before it blocked) are read from the
//! kernel then: the trace has every call the kernel counted, none twice.
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use phasebox_tests::{
    Guard, TempDir, array_element, fixture, lines::Lines, phasebox_bin, phasebox_ok, read_json,
    summary_totals,
};

/// How many calls the thread `tid` holds in the phasebox `pid` (the batch's `count`, bytes 8
/// to 12 of its element).
fn held(pid: u32, tid: u32) -> u32 {
    let bytes = array_element(pid, "PB_BATCHES", tid);
    u32::from_le_bytes(bytes[8..12].try_into().expect("a batch's count"))
}

/// `phasebox record -p PID ARGS`, once it traces the process, and its standard error (read on
/// to the end, so that phasebox never writes into a closed pipe).
fn record(pid: u32, args: &[&str]) -> (Guard, Lines) {
    let mut rec = Guard::new(
        Command::new(phasebox_bin())
            .args(["record", "-p", &pid.to_string()])
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .expect("phasebox starts"),
    );
    let mut said = Lines::follow(rec.stderr.take().unwrap());
    said.wait_for("tracing pid", Duration::from_secs(60))
        .unwrap();
    (rec, said)
}

#[test]
fn calls_a_thread_holds_at_the_end_are_in_the_trace() {
    let dir = TempDir::new("held");
    let trace = dir.path("loop.pbtrace");
    let summary = dir.path("summary.json");
    // A loop that makes N getppid calls per number it reads, prints, and waits for the next.
    let mut program = Guard::new(
        Command::new(fixture("syscall_loop"))
            .arg("0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the loop starts"),
    );
    let pid = program.id();
    let mut to_loop = program.stdin.take().unwrap();
    let mut from_loop = BufReader::new(program.stdout.take().unwrap());
    let mut round = |n: u32| {
        writeln!(to_loop, "{n}").unwrap();
        let mut line = String::new();
        from_loop.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "the loop ended");
    };
    round(1); // the loop is set up, and waits in its read

    let (trace_s, summary_s) = (trace.to_str().unwrap(), summary.to_str().unwrap());
    let (mut rec, _said) = record(pid, &["-o", trace_s, "--summary", summary_s]);
    // Its calls from now on: the read that returns, N getppid, the write of the line, the
    // next read (in flight at the end).
    round(5);
    round(2);
    let holding = held(rec.id(), pid);
    assert!(
        holding > 0,
        "the loop's thread holds no call: the test shows nothing (its calls came in whole batches)"
    );

    // SAFETY: signalling our own child.
    unsafe { libc::kill(rec.id() as i32, libc::SIGINT) };
    let status = rec.wait().unwrap();
    assert!(status.success(), "phasebox record: {status}");

    let counted = summary_totals(&read_json(&summary));
    let calls = |name: &str| counted.get(name).map_or(0, |c| c.0);
    assert_eq!(
        (calls("getppid"), calls("write")),
        (7, 2),
        "the kernel's counters: {counted:?}"
    );
    let dump = phasebox_ok(&["trace", "dump", trace.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&dump.stdout);
    let lines = |call: &str| text.lines().filter(|l| l.contains(call)).count();
    assert_eq!(
        (lines(" getppid() = "), lines(" write(")),
        (7, 2),
        "{holding} calls were held at the end; the trace:\n{text}"
    );
    assert!(text.contains(" 0 dropped while recording"), "{text}");
}

/// The syscall `pid` is blocked in (the first field of /proc/PID/syscall), and how many times
/// it has slept so far (voluntary context switches): the same count twice means it did not
/// wake between.
fn blocked_in(pid: u32) -> (Option<u32>, u64) {
    let call = std::fs::read_to_string(format!("/proc/{pid}/syscall"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok());
    let switches = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (call, switches)
}

#[test]
fn a_thread_sends_what_it_holds_before_it_waits() {
    let wait4 = phasebox_core::sysnames::number("wait4").expect("wait4 on this architecture");
    // A shell that forks a sleep and waits for it, again and again.
    let shell = Guard::new(
        Command::new("/bin/bash")
            .args(["-c", "while :; do sleep 0.5; done"])
            .spawn()
            .expect("bash starts"),
    );
    let pid = shell.id();
    let (rec, _said) = record(pid, &["-q"]);
    // Its calls between two waits (the fork, signal masks, the wait's own return) are sent
    // as it enters wait4: while it waits, it holds none.
    let (mut seen, deadline) = (0, std::time::Instant::now() + Duration::from_secs(30));
    while seen < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let before = blocked_in(pid);
        if before.0 != Some(wait4) {
            continue;
        }
        let holding = held(rec.id(), pid);
        if blocked_in(pid) != before {
            continue; // it woke meanwhile
        }
        assert_eq!(holding, 0, "the shell holds calls while it waits in wait4");
        seen += 1;
    }
    assert_eq!(seen, 3, "the shell was not seen waiting in wait4");
}
