//! Scenario sets run for real: every pwd scenario traced and checked against strace run in the
//! same fresh environment, the nginx set with real HTTP clients, signals and stops; coverage
//! and merged profiles read back.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use phasebox_tests::profile::all_syscalls;
use phasebox_tests::{TempDir, assert_clear_failure, phasebox, phasebox_ok, read_json};

fn scenario_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../scenarios/{name}.toml"))
}

/// coverage.json says strace saw exactly the scenario's syscalls.
fn assert_agrees_with_strace(cov: &serde_json::Value, name: &str) {
    let oracle = &cov["oracle"][name];
    assert_eq!(
        oracle["only_strace"],
        serde_json::json!([]),
        "{name}: {oracle}"
    );
    assert_eq!(
        oracle["only_phasebox"],
        serde_json::json!([]),
        "{name}: {oracle}"
    );
}

/// No process's command line matches `pattern` (pgrep -f).
fn assert_none_running(pattern: &str) {
    let left = std::process::Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .unwrap();
    let left = String::from_utf8_lossy(&left.stdout);
    assert!(left.is_empty(), "left running: {left}");
}

/// `phasebox scenarios run FILE -o DIR EXTRA…`.
fn scenarios_run(file: &Path, dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "scenarios",
        "run",
        file.to_str().unwrap(),
        "-o",
        dir.to_str().unwrap(),
    ];
    args.extend(extra);
    phasebox(&args)
}

/// Runs a set into `dir`; returns coverage.json after checking the run passed.
fn run_set(name: &str, dir: &Path, extra: &[&str]) -> serde_json::Value {
    let out = scenarios_run(&scenario_file(name), dir, extra);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{name} scenarios failed:\n{stderr}\n{stdout}"
    );
    read_json(&dir.join("coverage.json"))
}

#[test]
fn pwd_scenarios_match_strace_and_each_adds_or_confirms_calls() {
    let dir = TempDir::new("pwd-scenarios");
    let cov = run_set("pwd", &dir.0, &["--oracle-strace"]);
    let scenarios = cov["scenarios"].as_array().unwrap();
    assert!(scenarios.len() >= 6, "{} scenarios", scenarios.len());
    let merged = read_json(&dir.path("merged.profile.json"));
    let mut union = BTreeSet::new();
    let mut adders = 0;
    for s in scenarios {
        let name = s["scenario"].as_str().unwrap();
        let (calls, new, confirmed) = (
            s["calls"].as_u64().unwrap(),
            s["new"].as_u64().unwrap(),
            s["confirmed"].as_u64().unwrap(),
        );
        // Each scenario adds or confirms calls, and the two add up to what it saw.
        assert!(calls > 0 && new + confirmed == calls, "{name}: {s}");
        adders += usize::from(new > 0);
        // strace, run in a fresh copy of the same environment, saw the same syscalls.
        assert_agrees_with_strace(&cov, name);
        let profile = read_json(&dir.path(&format!("{name}.profile.json")));
        assert_eq!(profile["runs"][0]["name"], format!("pwd/{name}"));
        assert_eq!(profile["complete"], true, "{name}");
        union.extend(all_syscalls(&profile));
    }
    // Beyond the plain run, the set reaches calls only other surroundings provoke.
    assert!(adders >= 4, "only {adders} scenarios added calls");
    for needed in ["getdents64", "fchdir", "getcwd", "write", "ioctl"] {
        assert!(union.contains(needed), "no scenario reached {needed}");
    }
    assert_eq!(
        all_syscalls(&merged),
        union,
        "merged profile is not the union"
    );
    assert_eq!(merged["runs"].as_array().unwrap().len(), scenarios.len());
    let page = std::fs::read_to_string(dir.path("report.html")).unwrap();
    assert!(page.contains("id=\"coverage\"") && page.contains("pwd/deep"));
    let text = std::fs::read_to_string(dir.path("coverage.txt")).unwrap();
    for s in scenarios {
        let name = s["scenario"].as_str().unwrap();
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} not in:\n{text}"
        );
    }
}

#[test]
fn nginx_scenarios_run_green_match_strace_with_a_profile_each() {
    let dir = TempDir::new("nginx-scenarios");
    let cov = run_set("nginx", &dir.0, &["--oracle-strace"]);
    let scenarios = cov["scenarios"].as_array().unwrap();
    assert!(scenarios.len() >= 6, "{} scenarios", scenarios.len());
    let merged = read_json(&dir.path("merged.profile.json"));
    let role = |p: &serde_json::Value, r: &str| {
        p["roles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == r)
            .unwrap_or_else(|| panic!("no role {r}"))
            .clone()
    };
    let serving = |p: &serde_json::Value| -> BTreeSet<String> {
        let w = role(p, "worker");
        let ph = w["phases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|ph| ph["name"] == "accepting-and-serving-requests")
            .expect("worker reached its serving phase")
            .clone();
        ph["syscalls"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    for s in scenarios {
        let name = s["scenario"].as_str().unwrap();
        // strace, run in a fresh copy of the scenario, saw the same syscalls.
        assert_agrees_with_strace(&cov, name);
        let p = read_json(&dir.path(&format!("{name}.profile.json")));
        role(&p, "master");
        if name == "config-test" {
            // `nginx -t` checks its configuration and serves nothing: no worker.
            let roles = p["roles"].as_array().unwrap();
            assert!(roles.iter().all(|r| r["name"] != "worker"), "{p}");
            continue;
        }
        let calls = serving(&p);
        assert!(
            calls.contains("accept4") && calls.contains("recvfrom"),
            "{name}: {calls:?}"
        );
    }
    let all = serving(&merged);
    // What single scenarios bring: a directory listing reads the directory, a large file is
    // sent with sendfile.
    for needed in ["getdents64", "sendfile", "writev"] {
        assert!(
            all.contains(needed),
            "merged serving phase lacks {needed}: {all:?}"
        );
    }
    let dir_index = scenarios
        .iter()
        .find(|s| s["scenario"] == "directory-index")
        .unwrap();
    let listing_added = dir_index["phases"].as_array().unwrap().iter().any(|p| {
        p["new"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "getdents64")
    });
    assert!(
        listing_added,
        "directory-index did not add getdents64: {dir_index}"
    );
    // The set covers what a deployment does: the merged profile saw both operations, and a
    // worker dropping privileges to `user nobody` (setgid, setuid) while it started.
    let seen = &merged["operations"]["seen"];
    for op in ["reload", "reopen"] {
        assert!(
            seen.as_array().unwrap().iter().any(|s| s == op),
            "{op} not seen: {}",
            merged["operations"]
        );
    }
    let worker = role(&merged, "worker");
    let init = worker["phases"][0]["syscalls"].as_object().unwrap();
    assert!(
        init.contains_key("setuid") && init.contains_key("setgid"),
        "{init:?}"
    );
}

#[test]
fn a_failing_scenario_fails_the_run_and_says_why() {
    let dir = TempDir::new("scenario-fail");
    let file = dir.path("set.toml");
    std::fs::write(
        &file,
        "name = \"t\"\ncommand = [\"/bin/pwd\"]\n\
         [[scenario]]\nname = \"good\"\ncovers = \"plain\"\n\
         [[scenario]]\nname = \"wrong\"\ncovers = \"an expectation that cannot hold\"\n\
         expect = { stdout = \"nowhere\" }\n",
    )
    .unwrap();
    let out_dir = dir.path("out");
    let out = scenarios_run(&file, &out_dir, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("FAIL wrong: stdout was"), "{stderr}");
    assert!(stderr.contains("1 of 2 scenarios passed"), "{stderr}");
    assert!(out_dir.join("good.profile.json").exists());
    assert!(!out_dir.join("wrong.profile.json").exists());

    // A program that does not end within its timeout is killed and the scenario fails.
    std::fs::write(
        &file,
        "name = \"t\"\n[[scenario]]\nname = \"hang\"\ncovers = \"a program that never ends\"\n\
         command = [\"/bin/sleep\", \"60\"]\ntimeout = \"1s\"\n",
    )
    .unwrap();
    let out = scenarios_run(&file, &out_dir, &[]);
    assert_clear_failure(&out, "no scenario of t passed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("FAIL hang: it did not end within 1s"),
        "{stderr}"
    );
    // It was killed, not left behind.
    assert_none_running("^/bin/sleep 60$");

    std::fs::write(&file, "name = \"t\"\n[[scenario]]\nname = \"x\"\n").unwrap();
    let out = phasebox(&["scenarios", "run", file.to_str().unwrap()]);
    // A TOML error says where, in one line: file:line:column: message.
    assert_clear_failure(
        &out,
        &format!("{}:2:1: missing field `covers`", file.display()),
    );
    let out = phasebox(&["scenarios", "run", "/no/such.toml"]);
    assert_clear_failure(&out, "/no/such.toml");
}

#[test]
fn the_merged_profile_passes_every_pwd_scenario_and_one_scenario_alone_does_not() {
    let dir = TempDir::new("pwd-seccomp");
    let learned = dir.path("learned");
    run_set("pwd", &learned, &[]);
    let export = |profile: &str, oci: &str| {
        phasebox_ok(&[
            "export",
            learned.join(profile).to_str().unwrap(),
            "--add-basics",
            "-o",
            dir.path(oci).to_str().unwrap(),
        ]);
    };
    export("merged.profile.json", "merged.oci.json");
    export("plain.profile.json", "plain.oci.json");
    let merged = dir.path("merged.oci.json");
    run_set(
        "pwd",
        &dir.path("under-merged"),
        &["--seccomp", merged.to_str().unwrap()],
    );

    let file = scenario_file("pwd");
    let plain = dir.path("plain.oci.json");
    let out = scenarios_run(
        &file,
        &dir.path("under-plain"),
        &["--seccomp", plain.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // The deleted and deep directories need fchdir and getdents64, which the plain run never
    // made; the plain run itself still passes.
    for broken in ["FAIL deleted:", "FAIL deep:"] {
        assert!(stderr.contains(broken), "{broken} not in:\n{stderr}");
    }
    assert!(stderr.contains("ok   plain"), "{stderr}");
}

#[test]
fn a_failing_nginx_scenario_leaves_no_nginx_behind() {
    let dir = TempDir::new("nginx-fail");
    // The 404 scenario, expecting 200: the step fails while nginx serves.
    let text = std::fs::read_to_string(scenario_file("nginx")).unwrap();
    let wrong = text.replace(
        "http = { path = \"/missing.html\", status = 404 }",
        "http = { path = \"/missing.html\", status = 200 }",
    );
    assert_ne!(text, wrong);
    let file = dir.path("nginx.toml");
    std::fs::write(&file, wrong).unwrap();
    let out = scenarios_run(
        &file,
        &dir.path("out"),
        &["--only", "not-found,static-file"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("FAIL not-found: step 2: /missing.html got status 404, expected 200"),
        "{stderr}"
    );
    assert!(stderr.contains("ok   static-file"), "{stderr}");
    // Every nginx the runner started is gone (their config paths name the scenario directory).
    assert_none_running("phasebox-scenario-nginx-");
}

#[test]
fn report_refuses_bad_input_clearly() {
    let dir = TempDir::new("report-bad");
    let bad = dir.path("bad.json");
    std::fs::write(&bad, "{ not json").unwrap();
    let page = dir.path("r.html");
    let out = phasebox(&[
        "report",
        bad.to_str().unwrap(),
        "-o",
        page.to_str().unwrap(),
    ]);
    assert_clear_failure(&out, "is not a valid phasebox profile");
    assert!(!page.exists());
    let out = phasebox(&[
        "report",
        "/no/such/profile.json",
        "-o",
        page.to_str().unwrap(),
    ]);
    assert_clear_failure(&out, "/no/such/profile.json");
}
