//! The redis scenario set (scenarios/redis.toml) closes the operations gap: its scenarios agree
//! with strace, the policy exported from their merged profile (with its argument conditions)
//! lets redis-server run every one of them (BGSAVE, BGREWRITEAOF, CONFIG REWRITE, SHUTDOWN SAVE, plain traffic) under seccomp,
//! and the policy of plain traffic alone breaks each operation, as the coverage warning of its
//! export says beforehand.
use std::path::{Path, PathBuf};

use phasebox_tests::profile::all_syscalls;
use phasebox_tests::{TempDir, phasebox, read_json};

fn redis_set() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/redis.toml")
}

/// `phasebox scenarios run scenarios/redis.toml -o DIR EXTRA…`: its stderr, after checking
/// the exit status is `code`.
fn run_set(dir: &Path, extra: &[&str], code: i32) -> String {
    let set = redis_set();
    let mut args = vec![
        "scenarios",
        "run",
        set.to_str().unwrap(),
        "-o",
        dir.to_str().unwrap(),
    ];
    args.extend(extra);
    let out = phasebox(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    stderr
}

/// `phasebox export PROFILE --add-basics -o OCI`: its stderr.
fn export(profile: &Path, oci: &Path) -> String {
    let out = phasebox(&[
        "export",
        profile.to_str().unwrap(),
        "--add-basics",
        "-o",
        oci.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

/// The block of the coverage warning for `purpose`: its call lines.
fn group<'a>(warning: &'a str, purpose: &str) -> Vec<&'a str> {
    let head = format!("  {purpose} (");
    warning
        .lines()
        .skip_while(|l| !l.starts_with(&head))
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .collect()
}

#[test]
fn the_merged_redis_profile_runs_every_operation_under_seccomp_and_traffic_alone_does_not() {
    let dir = TempDir::new("redis-scenarios");
    let learned = dir.path("learned");
    let stderr = run_set(&learned, &["--oracle-strace"], 0);
    for name in [
        "get-set",
        "bgsave",
        "bgrewriteaof",
        "config-rewrite",
        "shutdown-save",
    ] {
        assert!(
            stderr.contains(&format!("ok   {name} ("))
                && stderr.contains("same syscalls as strace"),
            "{name}: {stderr}"
        );
    }
    // What the operations bring that traffic alone never does.
    let merged = all_syscalls(&read_json(&learned.join("merged.profile.json")));
    let traffic = all_syscalls(&read_json(&learned.join("get-set.profile.json")));
    for call in ["fsync", "fdatasync", "rename", "wait4", "clone", "fchmod"] {
        assert!(merged.contains(call), "the merged profile lacks {call}");
        assert!(!traffic.contains(call), "plain traffic made {call}");
    }

    // Exporting the traffic profile warns about exactly those, by purpose.
    let traffic_oci = dir.path("traffic.oci.json");
    let warning = export(&learned.join("get-set.profile.json"), &traffic_oci);
    assert!(
        warning.contains("calls that redis-server's code can reach"),
        "{warning}"
    );
    let has = |purpose: &str, call: &str, function: &str| {
        let lines = group(&warning, purpose);
        assert!(
            lines.iter().any(|l| {
                l.trim_start().starts_with(&format!("{call} "))
                    && l.contains(&format!("redis-server:{function}"))
            }),
            "{purpose}: no {call} from {function} in {lines:#?}\n{warning}"
        );
    };
    has("persistence", "fsync", "");
    has("persistence", "rename", "");
    has("child processes", "wait4", "checkChildrenDone");
    has("child processes", "clone", "");
    has(
        "configuration rewrite",
        "rename",
        "rewriteConfigOverwriteFile",
    );
    has(
        "configuration rewrite",
        "fchmod",
        "rewriteConfigOverwriteFile",
    );

    // Under the merged profile's policy, which restricts arguments (the socket domains,
    // open modes, mmap protections… redis used), every scenario passes.
    let merged_oci = dir.path("merged.oci.json");
    export(&learned.join("merged.profile.json"), &merged_oci);
    let policy = read_json(&merged_oci);
    let restricted: Vec<&str> = policy["syscalls"]
        .as_array()
        .expect("the policy's syscalls")
        .iter()
        .filter(|r| r["args"].as_array().is_some_and(|a| !a.is_empty()))
        .flat_map(|r| r["names"].as_array().into_iter().flatten())
        .filter_map(|n| n.as_str())
        .collect();
    for call in ["socket", "openat", "mmap", "mprotect"] {
        assert!(
            restricted.contains(&call),
            "the exported policy does not restrict {call}'s arguments: {restricted:?}"
        );
    }
    run_set(
        &dir.path("under-merged"),
        &["--seccomp", merged_oci.to_str().unwrap()],
        0,
    );
    // Under the traffic profile's, traffic passes and every operation fails.
    let stderr = run_set(
        &dir.path("under-traffic"),
        &["--seccomp", traffic_oci.to_str().unwrap()],
        1,
    );
    assert!(stderr.contains("ok   get-set ("), "{stderr}");
    for broken in ["bgsave", "bgrewriteaof", "config-rewrite", "shutdown-save"] {
        assert!(
            stderr.contains(&format!("FAIL {broken}:")),
            "{broken} passed without its calls:\n{stderr}"
        );
    }
}
