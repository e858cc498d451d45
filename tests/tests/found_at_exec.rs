//! Programs the agent finds at their exec: `--exec-name` matches a program's whole file name
//! (the kernel compares only the first 15 bytes of its comm), and a program that starts under
//! a seccomp filter (as in a container) has the calls that filter denies noticed, kept apart
//! in the profile, and answered the same way by the export.
use std::process::Command;
use std::time::Duration;

use phasebox_tests::{
    CARGO_LIBRARY_PATH, Guard, TempDir, fixture,
    metrics::{eventually, scrape, sum, value},
    nginx::free_port,
    phasebox_ok,
};

fn agent(args: &[&str]) -> (Guard, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut all = vec!["--listen", &listen];
    all.extend_from_slice(args);
    let (agent, _err, line) = phasebox_tests::spawn_agent(&all);
    assert!(line.contains("waiting for"), "agent did not start: {line}");
    (agent, listen)
}

fn stop(agent: &mut Guard) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    assert!(agent.wait().unwrap().success());
}

fn run_ok(program: &std::path::Path, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .env_remove(CARGO_LIBRARY_PATH)
        .status()
        .unwrap();
    assert!(status.success(), "{} failed: {status:?}", program.display());
}

#[test]
fn a_long_program_name_is_matched_whole() {
    let dir = TempDir::new("exec-name");
    // The same first 15 bytes, the comm the kernel keeps.
    let (want, other) = (
        dir.path("a-program-with-a-long-name"),
        dir.path("a-program-with-a-long-nap"),
    );
    for p in [&want, &other] {
        std::fs::copy("/bin/true", p).unwrap();
    }
    let profile = dir.path("p.json");
    let (mut a, listen) = agent(&[
        "--exec-name",
        "a-program-with-a-long-name",
        "--profile",
        profile.to_str().unwrap(),
    ]);
    for _ in 0..3 {
        run_ok(&want, &[]);
        run_ok(&other, &[]);
    }
    let execs = |page: &str| sum(page, "phasebox_syscalls_total", &[("syscall", "execve")]);
    eventually(Duration::from_secs(15), "three programs counted", || {
        (execs(&scrape(&listen)) >= 3.0).then_some(())
    });
    eventually(Duration::from_secs(15), "three others rejected", || {
        (value(&scrape(&listen), "phasebox_processes_rejected_total", &[]) >= Some(3.0))
            .then_some(())
    });
    assert_eq!(
        execs(&scrape(&listen)),
        3.0,
        "the other program was counted"
    );
    stop(&mut a);
    let p = phasebox_tests::profile::load(&profile);
    assert!(
        p["program"]["path"]
            .as_str()
            .unwrap()
            .ends_with("/a-program-with-a-long-name"),
        "{p}"
    );
    assert_eq!(p["roles"][0]["processes"], 3, "{p}");
}

#[test]
fn calls_an_existing_filter_denies_are_learned_and_answered_alike() {
    let dir = TempDir::new("filtered");
    let profile = dir.path("p.json");
    let (mut a, listen) = agent(&[
        "--exec-name",
        "threads",
        "--profile",
        profile.to_str().unwrap(),
    ]);
    // As a container runtime does: the filter first, then the program (which waits 300 ms
    // before its threads, past the moment the agent reads its exec).
    let threads = fixture("threads");
    run_ok(
        &fixture("seccomp_wrap"),
        &[threads.to_str().unwrap(), "300"],
    );
    eventually(Duration::from_secs(15), "the program counted", || {
        value(
            &scrape(&listen),
            "phasebox_syscalls_total",
            &[("syscall", "exit_group")],
        )
        .map(|_| ())
    });
    stop(&mut a);
    let p = phasebox_tests::profile::load(&profile);
    let phases = p["roles"][0]["phases"].as_array().unwrap();
    let clone3 = phases
        .iter()
        .find_map(|ph| ph["filtered"].get("clone3"))
        .unwrap_or_else(|| panic!("clone3, denied by the filter, is not in the profile: {p}"));
    assert_eq!(clone3["errno"], libc::ENOSYS, "{p}");
    assert!(clone3["calls"].as_u64() >= Some(4), "one per thread: {p}");
    let fell_back = phases
        .iter()
        .any(|ph| ph["syscalls"].get("clone").is_some());
    assert!(fell_back, "glibc fell back to clone: {p}");
    assert!(
        phases
            .iter()
            .all(|ph| ph["syscalls"].get("clone3").is_none()),
        "clone3 never ran: {p}"
    );
    // The export answers clone3 as the filter did, never allows it.
    let out = phasebox_ok(&["export", profile.to_str().unwrap()]);
    let oci: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rules = oci["syscalls"].as_array().unwrap();
    let of = |name: &str| {
        rules
            .iter()
            .find(|r| r["names"].as_array().unwrap().iter().any(|n| n == name))
            .unwrap_or_else(|| panic!("{name} has no rule: {oci}"))
    };
    assert_eq!(of("clone3")["action"], "SCMP_ACT_ERRNO", "{oci}");
    assert_eq!(of("clone3")["errnoRet"], libc::ENOSYS, "{oci}");
    assert_eq!(of("clone")["action"], "SCMP_ACT_ALLOW", "{oci}");
}

#[test]
fn a_found_process_that_executes_another_program_does_not_rename_the_others_series() {
    let dir = TempDir::new("exec-name-program");
    let init = dir.path("pb_found_init");
    std::fs::copy(fixture("tiny_init"), &init).unwrap();
    let fifo = dir.path("gate");
    run_ok(std::path::Path::new("mkfifo"), &[fifo.to_str().unwrap()]);
    let start = |args: &[&str]| {
        let child = Command::new(&init)
            .args(args)
            .env_remove(CARGO_LIBRARY_PATH)
            .spawn();
        Guard::new(child.unwrap())
    };
    let (mut a, listen) = agent(&["--exec-name", "pb_found_init"]);
    // The first one found executes sleep once let through its gate.
    let gated = start(&["gate", fifo.to_str().unwrap(), "/bin/sleep", "30"]);
    std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    eventually(Duration::from_secs(15), "the sleep's nanosleep", || {
        (sum(
            &scrape(&listen),
            "phasebox_syscalls_total",
            &[("syscall", "clock_nanosleep")],
        ) >= 1.0)
            .then_some(())
    });
    // A second one makes 10 getppid calls: its series are the found program's.
    let counted = start(&["calls", "10"]);
    let page = eventually(Duration::from_secs(15), "the 10 getppid calls", || {
        let page = scrape(&listen);
        (sum(&page, "phasebox_syscalls_total", &[("syscall", "getppid")]) >= 10.0).then_some(page)
    });
    assert_eq!(
        sum(
            &page,
            "phasebox_syscalls_total",
            &[("syscall", "getppid"), ("program", "pb_found_init")]
        ),
        10.0,
        "{page}"
    );
    drop((gated, counted));
    stop(&mut a);
}
