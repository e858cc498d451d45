//! Bad input gets one clear sentence and a non-zero exit, never a panic or a raw errno.
use std::process::Command;

use phasebox_tests::{TempDir, assert_clear_failure, phasebox, phasebox_bin, read_summary};

#[test]
fn not_root() {
    // setpriv drops to nobody with no capabilities.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--",
        ])
        .arg(phasebox_bin())
        .args(["run", "--", "/bin/true"])
        .output()
        .expect("setpriv runs");
    assert_clear_failure(&out, "needs root");
}

#[test]
fn pid_that_does_not_exist() {
    // Above the kernel's pid_max, so it never exists.
    let out = phasebox(&["record", "-p", "99999999"]);
    assert_clear_failure(&out, "no process with pid 99999999");
}

#[test]
fn command_that_does_not_exist() {
    let out = phasebox(&["run", "--", "/no/such/program"]);
    assert_clear_failure(&out, "command not found");
    let out = phasebox(&["run", "--", "no-such-program-phasebox"]);
    assert_clear_failure(&out, "command not found");
}

#[test]
fn output_path_that_cannot_be_written() {
    let out = phasebox(&["run", "-o", "/no/such/dir/trace", "--", "/bin/true"]);
    assert_clear_failure(&out, "cannot write /no/such/dir/trace");
    let out = phasebox(&["run", "--summary", "/proc/version", "--", "/bin/true"]);
    assert_clear_failure(&out, "cannot write /proc/version");
}

#[test]
fn bad_ring_buffer_sizes() {
    let out = phasebox(&["run", "--ring-buffer", "3000", "--", "/bin/true"]);
    assert_clear_failure(&out, "not a power of two");
    let out = phasebox(&["run", "--ring-buffer", "1K", "--", "/bin/true"]);
    assert_clear_failure(&out, "too small");
}

#[test]
fn traced_pid_that_exits_is_a_normal_end() {
    let dir = TempDir::new("exits");
    let summary = dir.path("summary.json");
    let mut sleeper = Command::new("/bin/sh")
        .args(["-c", "sleep 1; /bin/pwd >/dev/null"])
        .spawn()
        .unwrap();
    let out = phasebox(&[
        "record",
        "-q",
        "-p",
        &sleeper.id().to_string(),
        "--summary",
        summary.to_str().unwrap(),
    ]);
    let _ = sleeper.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = read_summary(&summary);
    let exes: Vec<&str> = s["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["exe"].as_str().unwrap())
        .collect();
    assert!(
        exes.iter().any(|e| e.ends_with("pwd")),
        "the child that ran pwd was followed: {exes:?}"
    );
}

#[test]
fn unreadable_policy_for_compare() {
    let dir = TempDir::new("bad-policy");
    let prof = dir.path("true.json");
    phasebox_tests::learn_profile(&prof, &["/bin/true"]);
    let bad = dir.path("policy.json");
    std::fs::write(&bad, "{\"what\": 1}").unwrap();
    let out = phasebox(&["compare", prof.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_clear_failure(&out, "is not a policy phasebox can read");
    let out = phasebox(&["compare", prof.to_str().unwrap(), "/no/such/policy.json"]);
    assert_clear_failure(&out, "cannot read /no/such/policy.json");
}
