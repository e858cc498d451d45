//! The checks of the kernel matrix, judged on the host from what a guest sent back
//! (tests/vm/checks.sh runs the steps). Each returns what it saw, or why it failed.
use phasebox_tests::{diff_counts, metrics, strace, summary_totals};

use super::guest::Report;

/// A check's verdict: what passed, or why it failed.
pub type Verdict = Result<String, String>;

/// A check of a guest's report.
pub type Check = fn(&Report) -> Verdict;

/// Every check, by the name the table and failures use.
pub const CHECKS: [(&str, Check); 8] = [
    ("preflight", preflight),
    ("run = strace", counts),
    ("nginx + reload", nginx),
    ("--errors", errors),
    ("export, run --seccomp", seccomp),
    ("validate", validate),
    ("phase-aware", phase_aware),
    ("trace file", trace),
];

fn expect(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what()) }
}

/// A step that must have exited with `code`.
fn exited(r: &Report, step: &str, code: i32) -> Result<(), String> {
    let got = r.status(step)?;
    let err = r.file(&format!("{step}.err")).unwrap_or_default();
    expect(got == code, || {
        format!("{step} exited with {got}, not {code}: {}", err.trim())
    })
}

/// phasebox's preflight accepts the kernel, and its programs load and attach.
fn preflight(r: &Report) -> Verdict {
    exited(r, "preflight", 0)?;
    let said = r.file("preflight.err").unwrap_or_default();
    expect(said.trim().is_empty(), || {
        format!("phasebox warned: {}", said.trim())
    })?;
    Ok(format!("accepted Linux {} ({})", r.release, r.machine))
}

/// `phasebox run` counts what strace sees, per syscall, calls and errors, with nothing dropped.
fn counts(r: &Report) -> Verdict {
    let mut seen = Vec::new();
    for p in ["threads", "pwd"] {
        exited(r, &format!("run-{p}"), 0)?;
        let expected = strace::parse(r.file(&format!("strace-{p}.log"))?);
        expect(expected.contains_key("execve"), || {
            format!("strace saw no execve of {p}")
        })?;
        let summary = r.json(&format!("summary-{p}.json"))?;
        expect(summary["dropped"] == 0, || format!("{p}: events dropped"))?;
        let got = summary_totals(&summary);
        let diff = diff_counts(&expected, &got);
        expect(diff.is_empty(), || {
            format!("{p}: phasebox and strace differ: {}", diff.join("; "))
        })?;
        let calls: u64 = got.values().map(|c| c.0).sum();
        seen.push(format!("{p}: {calls} calls"));
    }
    Ok(seen.join(", "))
}

/// The agent followed nginx from its start through a reload: both roles, the new worker's
/// requests, the old worker gone, nothing dropped.
fn nginx(r: &Report) -> Verdict {
    let page = r.file("metrics.txt")?;
    let calls = |with: &[(&str, &str)]| {
        let mut labels = vec![("program", "nginx")];
        labels.extend_from_slice(with);
        metrics::sum(page, "phasebox_syscalls_total", &labels)
    };
    let master = calls(&[("role", "master")]);
    expect(master > 0.0, || "no call of nginx's master counted".into())?;
    let serving = calls(&[
        ("role", "worker"),
        ("phase", "accepting-and-serving-requests"),
    ]);
    expect(serving > 0.0, || {
        "no worker call counted while serving".into()
    })?;
    // 21 connections or more, 10 of them after the reload: only the new worker saw those.
    let accepts = calls(&[("role", "worker"), ("syscall", "accept4")]);
    expect(accepts >= 21.0, || {
        format!("{accepts} accept4 calls of workers counted, 21 connections made")
    })?;
    let tracked = metrics::value(page, "phasebox_tracked_processes", &[]);
    expect(tracked == Some(2.0), || {
        let shown = tracked.map_or("no count of".to_string(), |t| t.to_string());
        format!("{shown} processes tracked after the reload, 2 running")
    })?;
    let dropped = metrics::sum(page, "phasebox_events_dropped_total", &[]);
    expect(dropped == 0.0, || format!("{dropped} events dropped"))?;
    exited(r, "reload", 0)?;
    exited(r, "agent", 0)?;
    let profile = r.json("nginx.json")?;
    let roles: Vec<&str> = profile["roles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|role| role["name"].as_str())
        .collect();
    expect(
        roles.contains(&"master") && roles.contains(&"worker"),
        || format!("the profile's roles are {roles:?}"),
    )?;
    Ok(format!(
        "{accepts} accepts, {master} master calls, roles {roles:?}"
    ))
}

/// `--errors`: the ten 404s are failed openat calls of the workers.
fn errors(r: &Report) -> Verdict {
    let page = r.file("metrics.txt")?;
    let with = [
        ("program", "nginx"),
        ("role", "worker"),
        ("syscall", "openat"),
    ];
    let failed = metrics::sum(page, "phasebox_syscall_errors_total", &with);
    expect(failed >= 10.0, || {
        format!("{failed} failed openat calls of workers counted, 10 requests for a missing file")
    })?;
    Ok(format!("{failed} failed openat"))
}

/// `export` writes a policy that `run --seccomp` applies: pwd runs, ls is denied calls.
fn seccomp(r: &Report) -> Verdict {
    exited(r, "export", 0)?;
    let policy = r.json("pwd.oci.json")?;
    let allowed = policy["syscalls"].to_string();
    expect(allowed.contains("\"getcwd\""), || {
        format!("the exported policy lacks getcwd: {allowed}")
    })?;
    exited(r, "seccomp-pass", 0)?;
    expect(r.file("seccomp-pass.out")? == "/\n", || {
        "pwd under its own policy did not print /".into()
    })?;
    let fail = r.status("seccomp-fail")?;
    let said = r.file("seccomp-fail.err")?;
    expect(fail != 0 && said.contains("denied"), || {
        format!("ls under pwd's policy exited with {fail}: {said}")
    })?;
    Ok(format!("ls exited with {fail}, denied calls named"))
}

/// `validate` passes pwd under its profile and fails ls, naming the calls it denied.
fn validate(r: &Report) -> Verdict {
    exited(r, "validate-pass", 0)?;
    let pass = r.file("validate-pass.out")?;
    let passed = pass.lines().any(|l| l.starts_with("pass: "));
    expect(passed, || format!("validate pwd: {pass}"))?;
    exited(r, "validate-fail", 1)?;
    let fail = r.file("validate-fail.out")?;
    let denied = fail.lines().filter(|l| l.starts_with("denied: ")).count();
    let failed = fail.lines().any(|l| l.starts_with("fail: "));
    expect(failed && denied > 0, || format!("validate ls: {fail}"))?;
    Ok(format!("pass, then fail with {denied} denied calls"))
}

/// `run --seccomp-phases`: socket, a startup-only call, is denied once the server serves, and
/// the server goes on serving.
fn phase_aware(r: &Report) -> Verdict {
    exited(r, "per-phase", 0)?;
    exited(r, "socket-denied", 0)?;
    let after = r.file("after.out")?;
    expect(after == "hello\n", || {
        format!("the server answered {after:?} after the denial")
    })?;
    exited(r, "phase-aware", 0)?;
    let said = r.file("phase-aware.err")?;
    let line = "denied 1 calls made after serving began: socket(AF_INET, SOCK_STREAM, 0)×1";
    expect(said.contains(line), || format!("phasebox said: {said}"))?;
    Ok("socket denied once serving".into())
}

/// The trace file holds a line per counted call.
fn trace(r: &Report) -> Verdict {
    exited(r, "trace-dump", 0)?;
    let total: u64 = summary_totals(&r.json("summary-trace.json")?)
        .values()
        .map(|c| c.0)
        .sum();
    let dump = r.file("trace-dump.out")?;
    let lines = dump
        .lines()
        .filter(|l| !l.starts_with('#') && !l.contains("+++"))
        .count() as u64;
    expect(lines == total, || {
        format!("{lines} calls in the trace, {total} counted")
    })?;
    expect(
        dump.contains("getcwd() = ") && dump.contains("exit_group() = ?"),
        || format!("the dump lacks getcwd or exit_group: {dump}"),
    )?;
    Ok(format!("{lines} calls"))
}
