//! The messages a new user meets first, each one sentence that says what to do: a seccomp policy
//! or a summary given where a profile is read, a profile that does not exist yet, a phase name
//! with a typo, a command with no target, `--on-violation` without `--monitor`, a profile of
//! another program under validate and monitor, and `--version`.
use std::process::{Command, Stdio};
use std::time::Duration;

use phasebox_tests::{
    Guard, TempDir, assert_clear_failure, metrics::eventually, nginx::free_port, phasebox,
    phasebox_bin, phasebox_ok,
};

/// A profile, its OCI export and a summary of /bin/pwd, in `dir`.
fn pwd_files(dir: &TempDir) -> (String, String, String) {
    let s = |n: &str| dir.path(n).to_str().unwrap().to_string();
    let (profile, oci, summary) = (s("pwd.json"), s("pwd.oci.json"), s("pwd.summary.json"));
    phasebox_ok(&[
        "run",
        "-q",
        "--profile",
        &profile,
        "--summary",
        &summary,
        "--",
        "/bin/pwd",
    ]);
    phasebox_ok(&["export", &profile, "-o", &oci]);
    (profile, oci, summary)
}

#[test]
fn other_files_and_missing_profiles_say_what_they_are() {
    let dir = TempDir::new("messages");
    let (profile, oci, summary) = pwd_files(&dir);
    let out = phasebox(&["export", &oci]);
    assert_clear_failure(&out, "it is a seccomp policy (OCI JSON), not a profile");
    let out = phasebox(&["profile", "show", &summary]);
    assert_clear_failure(&out, "it is a summary (record --summary), not a profile");
    let missing = dir.path("agent.json");
    let out = phasebox(&["export", missing.to_str().unwrap()]);
    assert_clear_failure(&out, "the agent writes it at every --checkpoint");
    let out = phasebox(&["export", &profile, "--phase", "initialisation"]);
    assert_clear_failure(
        &out,
        "no phase initialisation in the selected roles (they have: exec, loading, initialization",
    );
    let out = phasebox(&["compare", &profile, &oci, "--phase", "initialisation"]);
    assert_clear_failure(&out, "(they have: exec, loading, initialization");
}

#[test]
fn commands_without_a_target_name_every_way_to_give_one() {
    let out = phasebox(&["record"]);
    assert_clear_failure(&out, "<--pid <PID>|--container <ID|NAME>>");
    let out = phasebox(&["agent", "--on-violation", "kill"]);
    assert_clear_failure(&out, "--monitor <PROFILE>");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("<--pid <PID>|--exec-name <NAME>|--container <ID|NAME>>"),
        "{said}"
    );
    let out = phasebox_ok(&["--version"]);
    let version = String::from_utf8_lossy(&out.stdout);
    let commit = version
        .trim()
        .strip_prefix(&format!("phasebox {} (commit ", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{version}"));
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{version}"
    );
}

#[test]
fn a_profile_of_another_program_is_named_before_its_denials() {
    let dir = TempDir::new("messages-other");
    let (profile, _, _) = pwd_files(&dir);
    let out = phasebox(&["validate", "--profile", &profile, "--", "/bin/ls", "/"]);
    let said = String::from_utf8_lossy(&out.stderr);
    let first = said.lines().next().unwrap_or_default();
    assert!(
        first.contains("this profile is for /bin/pwd, not /usr/bin/ls")
            || first.contains("this profile is for /bin/pwd, not /bin/ls"),
        "{said}"
    );
    // The same program under its own profile: no such line.
    let out = phasebox(&["validate", "--profile", &profile, "--", "/bin/pwd"]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("this profile is for"));

    // Monitor mode on a process of another program.
    let mut sleeper = Guard::new(
        Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let listen = format!("127.0.0.1:{}", free_port());
    let mut agent = Command::new(phasebox_bin())
        .args([
            "agent",
            "-p",
            &sleeper.id().to_string(),
            "--listen",
            &listen,
        ])
        .args(["--monitor", &profile])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = agent.stderr.take().unwrap();
    // Up to the start-up line (which names the metrics' address).
    let lines = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut seen = Vec::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let last = line.contains("metrics on");
            seen.push(line);
            if last {
                break;
            }
        }
        seen
    });
    eventually(Duration::from_secs(20), "the agent's first lines", || {
        lines.is_finished().then_some(())
    });
    let _ = agent.kill();
    let _ = agent.wait();
    let _ = sleeper.kill();
    let lines = lines.join().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("this profile is for /bin/pwd, not /usr/bin/sleep")),
        "{lines:?}"
    );
}
