//! `phasebox validate`: pass or fail under a learned profile, with the calls it denied.
use phasebox_tests::{TempDir, assert_clear_failure, phasebox};

/// `phasebox validate --profile PROF -- CMD…`: its exit status and standard output.
fn validate(prof: &std::path::Path, cmd: &[&str]) -> (Option<i32>, String) {
    let mut args = vec!["validate", "--profile", prof.to_str().unwrap(), "--"];
    args.extend_from_slice(cmd);
    let out = phasebox(&args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code(), text)
}

#[test]
fn validate_reports_pass_fail_and_denials() {
    let dir = TempDir::new("validate");
    let prof = dir.path("pwd.json");
    phasebox_tests::learn_profile(&prof, &["/bin/pwd"]);

    let (code, text) = validate(&prof, &["/bin/pwd"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("pass: `/bin/pwd` exited with 0") && text.contains("; 0 calls denied"),
        "{text}"
    );

    // ls needs calls pwd never made: it fails, and phasebox names them.
    let (code, text) = validate(&prof, &["/bin/ls", "/"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("fail: `/bin/ls /` exited with 2"), "{text}");
    // Each denied call with its count, role, phase and pid.
    let denied: Vec<&str> = text.lines().filter(|l| l.starts_with("denied: ")).collect();
    assert!(
        denied.iter().any(|l| ["statx", "statfs", "ioctl"]
            .iter()
            .any(|c| l.starts_with(&format!("denied: {c}×")))),
        "{text}"
    );
    assert!(
        denied
            .iter()
            .all(|l| l.contains(" in role main, phase ") && l.contains("(pid ")),
        "{text}"
    );
}

#[test]
fn a_denied_call_fails_validation_even_when_the_command_succeeds() {
    let dir = TempDir::new("validate-quiet-denial");
    let prof = dir.path("sh.json");
    phasebox_tests::learn_profile(&prof, &["/bin/sh", "-c", "exit 0"]);
    // chdir is not in the profile; the shell reports that cd failed, goes on and exits 0.
    let (code, text) = validate(&prof, &["/bin/sh", "-c", "cd /tmp; exit 0"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.starts_with("fail: ") && text.contains("exited with 0"),
        "{text}"
    );
    assert!(text.contains("denied: chdir×"), "{text}");
    // umask's errno return would be kept as the next mask: a call the profile lacks is
    // killed, as the exported policy does, and reported.
    let (code, text) = validate(&prof, &["/bin/sh", "-c", "umask 022; exit 0"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("exited with 137"), "{text}");
    assert!(
        text.contains("denied: umask×1 in role main, phase ")
            && text.contains("killed: an errno answer to it is misread"),
        "{text}"
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
