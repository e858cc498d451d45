//! `-o FILE` keeps every event; `phasebox trace dump` prints it strace-like.
use phasebox_tests::{TempDir, phasebox, phasebox_ok, read_json, summary_totals};

#[test]
fn trace_file_holds_every_syscall() {
    let dir = TempDir::new("trace");
    let trace = dir.path("pwd.pbtrace");
    let summary = dir.path("summary.json");
    phasebox_ok(&[
        "run",
        "-q",
        "-o",
        trace.to_str().unwrap(),
        "--summary",
        summary.to_str().unwrap(),
        "--",
        "/bin/pwd",
    ]);
    let total: u64 = summary_totals(&read_json(&summary))
        .values()
        .map(|c| c.0)
        .sum();

    let dump = phasebox_ok(&["trace", "dump", trace.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&dump.stdout);
    let syscall_lines = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.contains("+++"))
        .count();
    assert_eq!(
        syscall_lines as u64, total,
        "one line per counted syscall:\n{text}"
    );
    assert!(text.contains("execve(\"/bin/pwd\") = 0"), "{text}");
    assert!(
        text.contains("openat(\"/etc/ld.so.cache\", O_RDONLY) = 3"),
        "{text}"
    );
    assert!(text.contains("getcwd() = "), "{text}");
    assert!(
        text.contains("ENOENT (No such file or directory)"),
        "{text}"
    );
    assert!(text.contains("exit_group() = ?"), "{text}");
    assert!(text.contains("+++ exec /bin/pwd (comm pwd)"), "{text}");
    assert!(text.contains("+++ process exited"), "{text}");
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn damaged_trace_file_is_reported() {
    let dir = TempDir::new("badtrace");
    let bad = dir.path("bad.pbtrace");
    std::fs::write(&bad, b"not a trace").unwrap();
    let out = phasebox(&["trace", "dump", bad.to_str().unwrap()]);
    phasebox_tests::assert_clear_failure(&out, "is not a valid phasebox trace file");
}
