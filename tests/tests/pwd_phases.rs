//! /bin/pwd under the generic rules, and the profile commands (show, merge, diff) on real
//! profiles.
use phasebox_tests::{TempDir, assert_clear_failure, phasebox, phasebox_ok, profile};

fn learn(dir: &TempDir, name: &str, args: &[&str]) -> std::path::PathBuf {
    let path = dir.path(name);
    let mut argv = vec![
        "run",
        "-q",
        "--phases",
        "generic",
        "--profile",
        path.to_str().unwrap(),
        "--",
        "/bin/pwd",
    ];
    argv.extend_from_slice(args);
    let out = phasebox(&argv);
    assert!(
        out.status.code().is_some(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

#[test]
fn pwd_phases_under_generic_rules() {
    let dir = TempDir::new("pwd-phases");
    let p = profile::load(&learn(&dir, "pwd.json", &[]));
    assert_eq!(p["schema"], "phasebox.profile/v2");
    assert_eq!(p["program"]["comm"], "pwd");
    assert_eq!(p["complete"], true);
    assert_eq!(p["runs"][0]["how"], "launched");
    let main = profile::role(&p, "main");
    assert_eq!(
        profile::phase_names(main),
        ["exec", "loading", "initialization", "exit"]
    );
    let sys = |ph: &str| profile::syscalls(profile::phase(main, ph));
    assert!(sys("exec").contains("execve"));
    let opened = profile::paths(profile::phase(main, "loading"), "openat");
    assert!(
        opened.iter().any(|p| p.ends_with("ld.so.cache")),
        "{opened:?}"
    );
    assert!(opened.iter().any(|p| p.contains("libc.so")), "{opened:?}");
    assert!(sys("loading").contains("mmap"));
    assert!(sys("initialization").contains("getcwd"));
    assert!(sys("initialization").contains("write"));
    assert!(!sys("loading").contains("getcwd"));
    assert_eq!(sys("exit").into_iter().collect::<Vec<_>>(), ["exit_group"]);
    for ph in profile::phase_names(main) {
        eprintln!("{ph:<15} {:?}", sys(&ph));
    }
}

#[test]
fn show_merge_and_diff() {
    let dir = TempDir::new("pwd-merge");
    let plain = learn(&dir, "plain.json", &[]);
    let bad_opt = learn(&dir, "bad.json", &["--no-such-option"]);

    let show = phasebox(&["profile", "show", plain.to_str().unwrap()]);
    assert!(show.status.success());
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(text.contains("role main"), "{text}");
    let (l, i) = (
        text.find("loading").unwrap(),
        text.find("initialization").unwrap(),
    );
    assert!(l < i, "phases in order:\n{text}");

    // pwd with a bad option prints usage to stderr and never calls getcwd.
    let diff = phasebox(&[
        "profile",
        "diff",
        plain.to_str().unwrap(),
        bad_opt.to_str().unwrap(),
    ]);
    assert!(diff.status.success());
    let text = String::from_utf8_lossy(&diff.stdout);
    assert!(
        text.contains("main / initialization:") && text.contains("-getcwd"),
        "{text}"
    );

    let merged = dir.path("merged.json");
    phasebox_ok(&[
        "profile",
        "merge",
        plain.to_str().unwrap(),
        bad_opt.to_str().unwrap(),
        "-o",
        merged.to_str().unwrap(),
    ]);
    let m = profile::load(&merged);
    assert_eq!(m["runs"].as_array().unwrap().len(), 2);
    let (a, b) = (profile::load(&plain), profile::load(&bad_opt));
    let union = |p: &serde_json::Value| profile::union(profile::role(p, "main"));
    let mu = union(&m);
    assert!(union(&a).is_subset(&mu) && union(&b).is_subset(&mu));
    let calls = |p: &serde_json::Value| {
        profile::phase(profile::role(p, "main"), "exec")["syscalls"]["execve"]["calls"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(calls(&m), calls(&a) + calls(&b));
}

#[test]
fn malformed_profile_is_reported() {
    let dir = TempDir::new("bad-profile");
    let bad = dir.path("bad.json");
    std::fs::write(
        &bad,
        "{\"schema\": \"phasebox.profile/v1\",\n  \"roles\": \"nope\"\n}",
    )
    .unwrap();
    let out = phasebox(&["profile", "show", bad.to_str().unwrap()]);
    assert_clear_failure(&out, "is not a valid phasebox profile");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line "),
        "names where"
    );
    let out = phasebox(&[
        "run",
        "--phases",
        "no-such-rules",
        "--profile",
        dir.path("x.json").to_str().unwrap(),
        "--",
        "/bin/true",
    ]);
    assert_clear_failure(&out, "unknown phase rules no-such-rules");
}
