//! `phasebox run` counts exactly what strace sees, per syscall, with no events dropped.
use phasebox_tests::{TempDir, diff_counts, fixture, phasebox, read_json, strace, summary_totals};

fn assert_same_as_strace(argv: &[&str]) {
    let expected = strace::counts(argv);
    assert!(
        expected.contains_key("execve"),
        "strace saw no execve for {argv:?}: {expected:?}"
    );
    let dir = TempDir::new("exact");
    let summary = dir.path("summary.json");
    let mut args = vec!["run", "-q", "--summary", summary.to_str().unwrap(), "--"];
    args.extend_from_slice(argv);
    let out = phasebox(&args);
    assert!(
        out.status.code().is_some(),
        "phasebox died: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = read_json(&summary);
    assert_eq!(s["dropped"], 0, "events dropped for {argv:?}");
    let got = summary_totals(&s);
    let diff = diff_counts(&expected, &got);
    assert!(
        diff.is_empty(),
        "{argv:?}: phasebox and strace differ:\n{}",
        diff.join("\n")
    );
    eprintln!(
        "{argv:?}: {} syscalls, {} distinct, same as strace",
        got.values().map(|c| c.0).sum::<u64>(),
        got.len()
    );
}

#[test]
fn pwd_plain() {
    assert_same_as_strace(&["/bin/pwd"]);
}

#[test]
fn pwd_physical() {
    assert_same_as_strace(&["/bin/pwd", "-P"]);
}

#[test]
fn pwd_help() {
    assert_same_as_strace(&["/bin/pwd", "--help"]);
}

#[test]
fn threads_and_a_child_process() {
    let bin = fixture("threads");
    assert_same_as_strace(&[bin.to_str().unwrap()]);
}

#[test]
fn exit_status_and_process_tree() {
    let dir = TempDir::new("tree");
    let summary = dir.path("summary.json");
    let bin = fixture("threads");
    let out = phasebox(&[
        "run",
        "-q",
        "--summary",
        summary.to_str().unwrap(),
        "--",
        bin.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = read_json(&summary);
    let procs = s["processes"].as_array().unwrap();
    assert_eq!(
        procs.len(),
        2,
        "the program and its forked child: {procs:?}"
    );
    let (parent, child) = (&procs[0], &procs[1]);
    assert_eq!(child["ppid"], parent["pid"]);
    assert_eq!(parent["exe"], bin.to_str().unwrap());
    assert_eq!(child["comm"], "threads");
    assert_eq!(child["syscalls"]["getppid"]["calls"], 7);
    // The launched command's exit status is phasebox's.
    let out = phasebox(&["run", "-q", "--", "/bin/sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
}
