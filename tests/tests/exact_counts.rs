//! `phasebox run` counts exactly what strace sees, per syscall, with no events dropped.
use phasebox_tests::{TempDir, diff_counts, fixture, phasebox, read_json, strace, summary_totals};

fn assert_same_as_strace(argv: &[&str]) {
    assert_same_as_strace_with(&[], argv);
}

/// As above, with `options` for `phasebox run`.
fn assert_same_as_strace_with(options: &[&str], argv: &[&str]) {
    let expected = strace::counts(argv);
    assert!(
        expected.contains_key("execve"),
        "strace saw no execve for {argv:?}: {expected:?}"
    );
    let dir = TempDir::new("exact");
    let summary = dir.path("summary.json");
    let mut args = vec!["run", "-q", "--summary", summary.to_str().unwrap()];
    args.extend_from_slice(options);
    args.push("--");
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

/// A call's enter and exit are paired through an array indexed by tid; tids beyond it (where
/// pid_max is larger than the array) go through a hash map: with every tid there, the counts
/// and failures are still strace's.
#[test]
fn calls_paired_through_the_hash_map_are_exact_too() {
    let bin = fixture("threads");
    assert_same_as_strace_with(&["--pending-by-tid-max", "1"], &[bin.to_str().unwrap()]);
    assert_same_as_strace_with(&["--pending-by-tid-max", "1"], &["/bin/pwd", "--help"]);
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

/// `--entry-only`: every call recorded at its entry (no return value, no duration), counted
/// as strace counts it, with no syscall-exit program loaded.
#[test]
fn entry_only_records_every_call_without_the_exit_program() {
    let bin = fixture("threads");
    let argv = [bin.to_str().unwrap()];
    let expected: phasebox_tests::Counts = strace::counts(&argv)
        .into_iter()
        .map(|(name, (calls, _))| (name, (calls, 0)))
        .collect();
    let dir = TempDir::new("entry");
    let (summary, trace) = (dir.path("summary.json"), dir.path("run.trace"));
    phasebox_tests::phasebox_ok(&[
        "run",
        "-q",
        "--entry-only",
        "--summary",
        summary.to_str().unwrap(),
        "-o",
        trace.to_str().unwrap(),
        "--",
        argv[0],
    ]);
    let s = read_json(&summary);
    assert_eq!(s["errors_counted"], false);
    assert_eq!(s["dropped"], 0);
    let got = summary_totals(&s);
    let diff = diff_counts(&expected, &got);
    assert!(
        diff.is_empty(),
        "phasebox and strace differ:\n{}",
        diff.join("\n")
    );
    // One line per call, each without a return value.
    let dump = phasebox(&["trace", "dump", trace.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&dump.stdout);
    let calls: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.contains("+++"))
        .collect();
    let total: u64 = got.values().map(|c| c.0).sum();
    assert_eq!(calls.len() as u64, total, "a line per call:\n{text}");
    assert!(calls.iter().all(|l| l.ends_with("= ?")), "{text}");

    // Attached to a process: the syscall programs it loads.
    let mut sleeper = phasebox_tests::Guard::new(
        std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap(),
    );
    let pid = sleeper.id().to_string();
    for (flags, exit) in [(&["--entry-only"][..], false), (&[][..], true)] {
        let mut cmd = std::process::Command::new(phasebox_tests::phasebox_bin());
        cmd.args(["record", "-q", "-p", &pid]).args(flags);
        let (record, _err, line) = phasebox_tests::spawn_agent_command(cmd);
        assert!(line.contains("tracing pid"), "{line}");
        let names: Vec<String> = phasebox_tests::bpf_programs_of(record.id())
            .into_iter()
            .map(|id| {
                phasebox_tests::bpftool(&["prog", "show", "id", &id.to_string()])["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        assert!(
            names.iter().any(|n| n.starts_with("pb_sys_enter")),
            "{names:?}"
        );
        assert_eq!(
            names.iter().any(|n| n == "pb_sys_exit"),
            exit,
            "record {flags:?} loads {names:?}"
        );
    }
    let _ = sleeper.kill();
}
