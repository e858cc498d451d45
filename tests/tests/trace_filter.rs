//! `-e trace=SET`, as strace takes it: `run` shows only the chosen calls in its table, summary
//! and trace, and the kernel sends no record for the others (a loop of 20,000 getppid calls
//! costs the trace nothing but its counter), while the profile still sees every call; `trace
//! dump` shows what the trace was recorded with, or its own `-e`, as text or JSON lines, from a
//! file or from standard input.
use std::io::Write;
use std::process::{Command, Stdio};

use phasebox_core::trace_filter::TraceFilter;
use phasebox_tests::{TempDir, fixture, phasebox, phasebox_bin, read_json};

/// getppid calls the loop makes.
const LOOP: u64 = 20_000;

/// `phasebox run [EXTRA] --summary S -o T --profile P -- syscall_loop 0` making LOOP getppid
/// calls; the summary.
fn run_loop(dir: &TempDir, tag: &str, extra: &[&str]) -> serde_json::Value {
    let summary = dir.path(&format!("{tag}.summary.json"));
    let trace = dir.path(&format!("{tag}.trace"));
    let profile = dir.path(&format!("{tag}.profile.json"));
    let mut child = Command::new(phasebox_bin())
        .arg("run")
        .args(extra)
        .args(["-q", "--summary", summary.to_str().unwrap()])
        .args(["-o", trace.to_str().unwrap()])
        .args(["--profile", profile.to_str().unwrap(), "--"])
        .arg(fixture("syscall_loop"))
        .arg("0")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{LOOP}").unwrap();
    assert!(child.wait().unwrap().success());
    read_json(&summary)
}

/// syscall_loop started untraced, waiting for a count on its standard input; it prints a line
/// when it has made that many getppid calls.
fn waiting_loop() -> (
    phasebox_tests::Guard,
    std::process::ChildStdin,
    std::io::BufReader<std::process::ChildStdout>,
) {
    let mut target = Command::new(fixture("syscall_loop"))
        .arg("0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = target.stdin.take().unwrap();
    let stdout = std::io::BufReader::new(target.stdout.take().unwrap());
    (phasebox_tests::Guard::new(target), stdin, stdout)
}

/// The calls of the loop's process in a summary: name → count.
fn calls(summary: &serde_json::Value) -> std::collections::BTreeMap<String, u64> {
    summary["processes"][0]["syscalls"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["calls"].as_u64().unwrap()))
        .collect()
}

#[test]
fn run_shows_only_the_chosen_calls_and_the_kernel_sends_no_others() {
    let dir = TempDir::new("trace-filter");
    let all = run_loop(&dir, "all", &[]);
    let some = run_loop(&dir, "some", &["-e", "trace=write,%file"]);
    let (all_calls, some_calls) = (calls(&all), calls(&some));
    assert_eq!(all_calls["getppid"], LOOP, "{all_calls:?}");
    assert!(!some_calls.contains_key("getppid"), "{some_calls:?}");
    // Exactly the chosen calls are shown, each counted as without the filter.
    let filter = TraceFilter::parse("trace=write,%file").unwrap();
    let expected: std::collections::BTreeMap<String, u64> = all_calls
        .iter()
        .filter(|(name, _)| filter.selects_name(name))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(some_calls, expected);
    assert!(some_calls.contains_key("write") && some_calls.contains_key("execve"));
    // The kernel sent a record per call without the filter, a few with it.
    let all_events = all["events"].as_u64().unwrap();
    let some_events = some["events"].as_u64().unwrap();
    assert!(all_events > LOOP, "{all_events}");
    assert!(
        some_events < 1000,
        "{some_events} events for the filtered run"
    );
    // The profile still holds every call.
    let profile = read_json(&dir.path("some.profile.json"));
    assert!(profile.to_string().contains("\"getppid\""), "{profile}");

    // The dump shows what the trace was recorded with.
    let trace = dir.path("some.trace");
    let out = phasebox(&["trace", "dump", trace.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("# shown: trace=write,%file"), "{text}");
    assert!(
        text.contains(" write(") && !text.contains("getppid"),
        "{text}"
    );
    // Its own -e narrows it; --json gives one object per line.
    let out = phasebox(&[
        "trace",
        "dump",
        "--json",
        "-e",
        "trace=write",
        trace.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: std::collections::BTreeSet<&str> = lines
        .iter()
        .filter(|v| v["event"] == "syscall")
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["write"].into(), "{lines:?}");
    assert!(lines.iter().any(|v| v["event"] == "exit"), "{lines:?}");
}

#[test]
fn trace_dump_reads_standard_input_and_a_pipe() {
    let dir = TempDir::new("trace-stdin");
    run_loop(&dir, "t", &["-e", "trace=write"]);
    let trace = std::fs::read(dir.path("t.trace")).unwrap();
    let mut child = Command::new(phasebox_bin())
        .args(["trace", "dump", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&trace));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(" write(") && text.contains("events, 0 dropped"),
        "{text}"
    );
    // A pipe given by name, as `<(cat FILE)` gives it.
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{} profile show <(cat {})",
            phasebox_bin().display(),
            dir.path("t.profile.json").display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("role main"));
    // Nothing piped in: one sentence, no wait.
    let out = phasebox(&["trace", "dump", "-e", "trace=nosuchcall", "x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"nosuchcall\" is no"));
}

#[test]
fn the_agent_exports_series_for_the_chosen_calls_only() {
    use phasebox_tests::metrics::{parse, scrape_until, value};
    let (_target, mut stdin, mut stdout) = waiting_loop();
    let listen = format!("127.0.0.1:{}", phasebox_tests::nginx::free_port());
    let pid = _target.id().to_string();
    let _agent = phasebox_tests::Guard::new(
        Command::new(phasebox_bin())
            .args([
                "agent",
                "-p",
                &pid,
                "--listen",
                &listen,
                "-e",
                "trace=getppid",
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let up = scrape_until(&listen, std::time::Duration::from_secs(20), |p| {
        !p.is_empty()
    });
    assert!(!up.is_empty(), "the agent did not serve");
    writeln!(stdin, "{LOOP}").unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let getppid = |page: &str| value(page, "phasebox_syscalls_total", &[("syscall", "getppid")]);
    let page = scrape_until(&listen, std::time::Duration::from_secs(20), |p| {
        getppid(p) == Some(LOOP as f64)
    });
    assert_eq!(getppid(&page), Some(LOOP as f64), "{page}");
    // The loop also read its stdin and wrote its stdout: no series of those.
    let others: Vec<String> = parse(&page)
        .into_iter()
        .filter(|s| s.name == "phasebox_syscalls_total" && s.labels["syscall"] != "getppid")
        .map(|s| s.labels["syscall"].clone())
        .collect();
    assert!(others.is_empty(), "{others:?}");
}

#[test]
fn record_shows_only_the_chosen_calls_of_a_running_process() {
    let dir = TempDir::new("trace-filter-record");
    let (target, mut stdin, mut stdout) = waiting_loop();
    let summary = dir.path("r.summary.json");
    let mut record = Command::new(phasebox_bin())
        .args(["record", "-q", "-p", &target.id().to_string()])
        .args([
            "-e",
            "trace=getppid",
            "-o",
            dir.path("r.trace").to_str().unwrap(),
        ])
        .args(["--summary", summary.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Attached once it says so.
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(record.stderr.take().unwrap()),
        &mut first,
    )
    .unwrap();
    writeln!(stdin, "{LOOP}").unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(record.id() as i32, libc::SIGTERM) };
    assert!(record.wait().unwrap().success());
    let s = read_json(&summary);
    let shown = calls(&s);
    assert_eq!(shown.keys().collect::<Vec<_>>(), ["getppid"], "{shown:?}");
    assert_eq!(shown["getppid"], LOOP);
    // Every chosen call was sent one record each.
    assert!(s["events"].as_u64().unwrap() > LOOP, "{s}");
}
