//! A syscall storm through a tiny ring buffer: records are dropped, and said to be, while the
//! kernel counters stay exact.
use phasebox_tests::{TempDir, fixture, phasebox, read_json};

#[test]
fn tiny_ring_buffer_drops_but_counts_stay_exact() {
    const CALLS: u64 = 2_000_000;
    let dir = TempDir::new("storm");
    let summary = dir.path("summary.json");
    let bin = fixture("storm");
    let out = phasebox(&[
        "run",
        "--ring-buffer",
        "4K",
        "--summary",
        summary.to_str().unwrap(),
        "--",
        bin.to_str().unwrap(),
        &CALLS.to_string(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let s = read_json(&summary);
    let dropped = s["dropped"].as_u64().unwrap();
    assert!(
        dropped > 0,
        "a 4 KiB ring buffer under {CALLS} calls dropped nothing"
    );
    let procs = s["processes"].as_array().unwrap();
    assert_eq!(
        procs[0]["syscalls"]["getppid"]["calls"].as_u64(),
        Some(CALLS)
    );
    assert!(
        stderr.contains("dropped because the ring buffer was full"),
        "{stderr}"
    );
    let events = s["events"].as_u64().unwrap();
    eprintln!(
        "storm: {CALLS} calls counted exactly, {events} records delivered, {dropped} dropped"
    );
}
