//! The call classes at work on the real kernel: a server whose heap grows only once it serves
//! keeps working under phase-aware enforcement learned from a run whose serving phase never
//! grew it; exported policies answer unlearned calls with a fallback with ENOSYS and kill on
//! unlearned calls whose errno is misread; a profile learned by attaching is refused for a
//! runtime; errno values a filter cannot return are refused.
use std::process::{Command, Stdio};
use std::time::Duration;

use phasebox_tests::{
    CARGO_LIBRARY_PATH, TempDir, ask, finished_ok, fixture, nginx::free_port, phasebox,
    phasebox_bin, phasebox_ok, profile, read_json, serve_under,
};

/// tests/fixtures/heap_server.c compiled with gcc into `dir`.
fn heap_server(dir: &TempDir) -> std::path::PathBuf {
    let bin = dir.path("heap_server");
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/heap_server.c");
    let status = Command::new("gcc")
        .args(["-O2", "-Wall", "-pthread", "-o"])
        .arg(&bin)
        .arg(src)
        .status()
        .expect("gcc runs");
    assert!(status.success(), "gcc failed on {src}");
    bin
}

#[test]
fn a_heap_that_grows_only_while_serving_keeps_working_under_phase_aware_enforcement() {
    let dir = TempDir::new("classes-heap");
    let server = heap_server(&dir);
    let prof = dir.path("heap.json");
    let port = free_port();
    let learn = [
        "run",
        "-q",
        "--phases",
        "generic",
        "--profile",
        prof.to_str().unwrap(),
    ];
    let child = serve_under(&learn, &server, port);
    assert_eq!(ask(port, "GET"), "hello\n");
    assert_eq!(ask(port, "grow 1"), "grew 1\n");
    assert_eq!(ask(port, "quit"), "bye\n");
    finished_ok(child);
    let p = profile::load(&prof);
    let main = profile::role(&p, "main");
    let serving = profile::syscalls(profile::phase(main, "serving"));
    // What makes the test able to fail: the learned run grew its heap before serving only.
    assert!(
        !serving.contains("brk") && profile::union(main).contains("brk"),
        "brk must be learned at startup only: serving has {serving:?}"
    );

    let phases = dir.path("phases");
    phasebox_ok(&[
        "export",
        prof.to_str().unwrap(),
        "--per-phase",
        phases.to_str().unwrap(),
        "--add-basics",
    ]);
    let serving_file = read_json(&phases.join("main-04-serving.json"));
    let allowed = &serving_file["syscalls"][0]["names"];
    assert!(
        allowed.as_array().unwrap().contains(&"brk".into()),
        "the serving phase's file allows brk, used by the role before: {allowed}"
    );

    let manifest = phases.join("manifest.json");
    let port = free_port();
    let child = serve_under(
        &["run", "-q", "--seccomp-phases", manifest.to_str().unwrap()],
        &server,
        port,
    );
    assert_eq!(ask(port, "GET"), "hello\n");
    // The tightening follows the serving marker; then the heap grows by megabytes, in the
    // main thread (brk) and in two new threads (their arenas: mmap, mprotect).
    std::thread::sleep(Duration::from_millis(300));
    let answers: Vec<String> = [50, 200]
        .iter()
        .map(|n| ask(port, &format!("grow {n}")))
        .collect();
    let bye = ask(port, "quit");
    let stderr = finished_ok(child);
    assert_eq!(answers, ["grew 50\n", "grew 200\n"], "{stderr}");
    assert_eq!(bye, "bye\n", "{stderr}");
    for call in ["brk", "mmap", "munmap", "mprotect", "madvise", "futex"] {
        assert!(
            !stderr.contains(&format!(" {call}×")),
            "{call} was denied: {stderr}"
        );
    }
}

/// The rules of an exported OCI file, by action: (action, errnoRet) → names.
fn rules(oci: &serde_json::Value) -> Vec<(String, Option<u64>, Vec<String>)> {
    oci["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let names = r["names"].as_array().unwrap();
            (
                r["action"].as_str().unwrap().to_string(),
                r["errnoRet"].as_u64(),
                names
                    .iter()
                    .map(|n| n.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn exports_answer_unlearned_fallback_calls_with_enosys_and_kill_for_misread_ones() {
    let dir = TempDir::new("classes-export");
    let prof = dir.path("pwd.json");
    phasebox_ok(&[
        "run",
        "-q",
        "--profile",
        prof.to_str().unwrap(),
        "--",
        "/bin/pwd",
    ]);
    let mut p = profile::load(&prof);
    assert!(profile::all_syscalls(&p).contains("brk"));
    assert!(
        !profile::all_syscalls(&p).contains("clone3"),
        "pwd never clones"
    );
    // The same profile without brk (as if the heap had never grown while learning).
    for role in p["roles"].as_array_mut().unwrap() {
        for phase in role["phases"].as_array_mut().unwrap() {
            phase["syscalls"].as_object_mut().unwrap().remove("brk");
        }
    }
    let no_brk = dir.path("no-brk.json");
    std::fs::write(&no_brk, serde_json::to_string(&p).unwrap()).unwrap();
    for (input, runtime) in [(&prof, None), (&no_brk, Some("docker"))] {
        let out_file = dir.path("out.json");
        let mut args = vec![
            "export",
            input.to_str().unwrap(),
            "-o",
            out_file.to_str().unwrap(),
        ];
        if let Some(rt) = runtime {
            args.extend(["--for-runtime", rt]);
        }
        phasebox_ok(&args);
        let rules = rules(&read_json(&out_file));
        assert_eq!(rules[0].0, "SCMP_ACT_ALLOW");
        let enosys = rules
            .iter()
            .find(|(a, e, _)| a == "SCMP_ACT_ERRNO" && *e == Some(38))
            .unwrap_or_else(|| panic!("no ENOSYS rule: {rules:?}"));
        assert!(enosys.2.contains(&"clone3".to_string()), "{rules:?}");
        let kill = rules.iter().find(|(a, _, _)| a == "SCMP_ACT_KILL_PROCESS");
        let killed = kill.map(|k| k.2.clone()).unwrap_or_default();
        assert_eq!(
            killed.contains(&"brk".to_string()),
            input == &no_brk,
            "brk is killed exactly when not learned: {rules:?}"
        );
    }
    // pwd still runs under the export that kills brk (it never needed it: learned without).
    let out_file = dir.path("pwd.oci.json");
    phasebox_ok(&[
        "export",
        prof.to_str().unwrap(),
        "-o",
        out_file.to_str().unwrap(),
    ]);
    let out = phasebox_ok(&[
        "run",
        "-q",
        "--seccomp",
        out_file.to_str().unwrap(),
        "--",
        "/bin/pwd",
    ]);
    assert!(!out.stdout.is_empty());
}

#[test]
fn a_profile_learned_by_attaching_is_refused_for_a_runtime_and_per_phase() {
    let dir = TempDir::new("classes-gate");
    let port = free_port();
    let mut server = Command::new(fixture("phased_server"))
        .arg(port.to_string())
        .env_remove(CARGO_LIBRARY_PATH)
        .spawn()
        .unwrap();
    assert_eq!(ask(port, "GET"), "hello\n");
    let prof = dir.path("attached.json");
    let pid = server.id().to_string();
    let mut rec = Command::new(phasebox_bin())
        .args(["record", "-q", "-p", &pid, "--duration", "2s", "--profile"])
        .arg(&prof)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    // Requests while it records, until it stops by itself.
    let status = loop {
        assert_eq!(ask(port, "GET"), "hello\n");
        if let Some(status) = rec.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(ask(port, "quit"), "bye\n");
    let _ = server.wait();
    assert!(status.success());
    assert!(!profile::role_names(&profile::load(&prof)).is_empty());
    let p = prof.to_str().unwrap();
    let per_phase = dir.path("phases");
    for extra in [
        vec!["--for-runtime", "docker"],
        vec!["--per-phase", per_phase.to_str().unwrap()],
    ] {
        let mut args = vec!["export", p];
        args.extend(extra.iter().copied());
        let out = phasebox(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} exported: {stderr}");
        assert!(
            stderr.contains("was learned by attaching to a running phased_server")
                && stderr.contains("phasebox agent --exec-name phased_server --profile")
                && stderr.contains("--allow-incomplete"),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "one sentence: {stderr}");
        args.push("--allow-incomplete");
        let out = phasebox(&args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A plain export warns and exports.
    let out = phasebox(&["export", p]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: ") && stderr.contains("was learned by attaching"),
        "{stderr}"
    );
}

#[test]
fn errno_values_a_filter_cannot_return_are_refused() {
    let dir = TempDir::new("classes-errno");
    let prof = dir.path("pwd.json");
    phasebox_ok(&[
        "run",
        "-q",
        "--profile",
        prof.to_str().unwrap(),
        "--",
        "/bin/pwd",
    ]);
    let p = prof.to_str().unwrap();
    for bad in ["0", "4096", "65536", "2147483648", "4294967295", "-1"] {
        let flag = format!("--errno={bad}");
        let out = phasebox(&["export", p, &flag]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--errno {bad} accepted");
        assert!(
            stderr.contains(&format!(
                "{bad} is not an errno a seccomp filter can return"
            )),
            "{stderr}"
        );
    }
    for good in ["1", "38", "4095"] {
        let out = phasebox_ok(&["export", p, "--errno", good]);
        let oci: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(oci["defaultErrnoRet"].to_string(), good);
    }
    // An OCI file with such a value is refused before anything runs (it used to spin).
    let oci = dir.path("big.json");
    std::fs::write(
        &oci,
        r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":2147483648,"syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}"#,
    )
    .unwrap();
    let out = phasebox(&[
        "run",
        "-q",
        "--seccomp",
        oci.to_str().unwrap(),
        "--",
        "/bin/true",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("defaultErrnoRet 2147483648 is outside 1..4095"),
        "{stderr}"
    );
}
