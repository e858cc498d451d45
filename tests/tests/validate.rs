//! `phasebox validate`: pass or fail under a learned profile, with the calls it denied.
use phasebox_tests::{TempDir, assert_clear_failure, phasebox};

#[test]
fn validate_reports_pass_fail_and_denials() {
    let dir = TempDir::new("validate");
    let prof = dir.path("pwd.json");
    phasebox_tests::learn_profile(&prof, &["/bin/pwd"]);

    let out = phasebox(&[
        "validate",
        "--profile",
        prof.to_str().unwrap(),
        "--",
        "/bin/pwd",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("pass: `/bin/pwd` exited with 0") && text.contains("no call was denied"),
        "{text}"
    );

    // ls needs calls pwd never made: it fails, and phasebox names them.
    let out = phasebox(&[
        "validate",
        "--profile",
        prof.to_str().unwrap(),
        "--",
        "/bin/ls",
        "/",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("fail: `/bin/ls /` exited with 2"), "{text}");
    assert!(text.contains("first denied call: "), "{text}");
    let denied = text
        .lines()
        .find(|l| l.starts_with("denied: "))
        .expect("a denied line");
    assert!(
        denied.contains("statx") || denied.contains("statfs") || denied.contains("ioctl"),
        "{denied}"
    );
}

#[test]
fn seccomp_profiles_with_unknown_names_are_explained() {
    let dir = TempDir::new("unknown-names");
    let bad = dir.path("bad.json");
    std::fs::write(
        &bad,
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","no_such_call_x"],"action":"SCMP_ACT_ALLOW"}]}"#,
    )
    .unwrap();
    let out = phasebox(&["run", "--seccomp", bad.to_str().unwrap(), "--", "/bin/true"]);
    assert_clear_failure(&out, "does not know: no_such_call_x");
    std::fs::write(&bad, "{\"syscalls\": 5}").unwrap();
    let out = phasebox(&["run", "--seccomp", bad.to_str().unwrap(), "--", "/bin/true"]);
    assert_clear_failure(&out, "is not a valid OCI seccomp profile");
}
