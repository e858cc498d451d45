//! A container is its cgroup: an agent on a container that shares the host's pid namespace
//! traces the container's processes only, and its kill mode never touches a host process; a
//! container that does not exist yet is waited for and traced from its first process, and
//! again when it restarts.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use phasebox_tests::{
    CARGO_LIBRARY_PATH, Guard, TempDir,
    docker::Dockerd,
    metrics::{eventually, parse, scrape, sum, value},
    nginx::free_port,
    phasebox_bin,
};

const IMAGE: &str = "phasebox-test/tiny:scope";

/// Starts `phasebox agent ARGS` against `d`'s engine; returns it and its first line.
fn agent(d: &Dockerd, args: &[&str]) -> (Guard, String) {
    let mut child = Command::new(phasebox_bin())
        .arg("agent")
        .args(args)
        .env("DOCKER_HOST", d.host())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (Guard::new(child), line)
}

fn stop(agent: &mut Guard) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    assert!(agent.wait().unwrap().success());
}

/// Host work beside the container: a shell running programs, which must all succeed.
fn host_work(rounds: u32) -> bool {
    let script = format!("for i in $(seq {rounds}); do ls / > /dev/null; /bin/true; done");
    Command::new("/bin/sh")
        .args(["-c", &script])
        .env_remove(CARGO_LIBRARY_PATH)
        .status()
        .unwrap()
        .success()
}

/// Roles of the profile at `path`, with their containers.
fn roles(path: &std::path::Path) -> Vec<(String, String)> {
    let p = phasebox_tests::profile::load(path);
    p["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let c = r["container"].as_str().unwrap_or("").to_string();
            (r["name"].as_str().unwrap().to_string(), c)
        })
        .collect()
}

#[test]
fn a_container_in_the_host_pid_namespace_is_its_cgroup() {
    let d = Dockerd::start();
    d.import_tiny(IMAGE);
    let id = d.docker_ok(&[
        "run",
        "-d",
        "--pid",
        "host",
        "--name",
        "hostpid",
        "--network",
        "none",
        IMAGE,
        "wait",
    ]);
    let dir = TempDir::new("container-scope");
    let profile = dir.path("p.json");
    let listen = format!("127.0.0.1:{}", free_port());
    let args = ["--container", "hostpid", "--listen", &listen, "--profile"];
    let (mut a, line) = agent(&d, &[&args[..], &[profile.to_str().unwrap()]].concat());
    assert!(line.contains("tracing container hostpid"), "{line}");
    assert!(host_work(20));
    let out = d.docker_ok(&["exec", "hostpid", "/init", "cgroup"]);
    assert!(out.contains(&id), "{out}");
    // A program that exits within a millisecond of its exec may be gone before the agent reads
    // its cgroup: in the host's pid namespace nothing else tells it from a host program (the
    // README says so). One that runs on is always found.
    d.docker_ok(&["exec", "-d", "hostpid", "/init", "wait"]);
    let short = &id[..12];
    eventually(Duration::from_secs(15), "the docker exec counted", || {
        let page = scrape(&listen);
        (sum(
            &page,
            "phasebox_syscalls_total",
            &[("container_id", short), ("syscall", "execve")],
        ) >= 1.0)
            .then_some(())
    });
    let page = scrape(&listen);
    let host_series: Vec<_> = parse(&page)
        .into_iter()
        .filter(|s| s.name == "phasebox_syscalls_total" && s.labels["container_id"] != short)
        .collect();
    assert!(
        host_series.is_empty(),
        "host processes traced: {host_series:?}"
    );
    let rejected = value(&page, "phasebox_processes_rejected_total", &[]).unwrap();
    assert!(
        rejected >= 20.0,
        "the host's programs were not rejected: {rejected}"
    );
    stop(&mut a);
    let roles = roles(&profile);
    assert!(!roles.is_empty());
    for (name, container) in &roles {
        assert_eq!(
            container, &id,
            "role {name} is not the container's: {roles:?}"
        );
        assert!(
            !["ls", "true", "sh", "seq"].contains(&name.as_str()),
            "{roles:?}"
        );
    }

    // Kill mode with the profile just learned: host programs run beside it untouched, and
    // the container's own run is what the profile allows.
    let listen = format!("127.0.0.1:{}", free_port());
    let args = [
        "--container",
        "hostpid",
        "--listen",
        &listen,
        "--monitor",
        profile.to_str().unwrap(),
        "--on-violation",
        "kill",
    ];
    let (mut a, line) = agent(&d, &args);
    assert!(line.contains("tracing container"), "{line}");
    assert!(host_work(20), "a host program was killed");
    eventually(Duration::from_secs(15), "host programs rejected", || {
        (value(&scrape(&listen), "phasebox_processes_rejected_total", &[]) >= Some(20.0))
            .then_some(())
    });
    assert_eq!(
        value(&scrape(&listen), "phasebox_processes_killed_total", &[]),
        Some(0.0)
    );
    stop(&mut a);
}

#[test]
fn an_awaited_container_is_traced_from_its_first_process() {
    let d = Dockerd::start();
    d.import_tiny(IMAGE);
    let dir = TempDir::new("container-await");
    let profile = dir.path("p.json");
    let listen = format!("127.0.0.1:{}", free_port());
    let (mut a, line) = agent(
        &d,
        &[
            "--container",
            "late",
            "--listen",
            &listen,
            "--profile",
            profile.to_str().unwrap(),
        ],
    );
    assert!(
        line.contains("waiting for container late to start"),
        "{line}"
    );
    assert!(host_work(5));
    let id = d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "late",
        "--network",
        "none",
        IMAGE,
        "wait",
    ]);
    let short = id[..12].to_string();
    let execs = |listen: &str| {
        sum(
            &scrape(listen),
            "phasebox_syscalls_total",
            &[("container_id", &short), ("syscall", "execve")],
        )
    };
    // The container's init, seen from its execve.
    eventually(Duration::from_secs(15), "the container's start", || {
        (execs(&listen) >= 1.0).then_some(())
    });
    // Stopped and started again: a new pid namespace, waited for and traced again.
    d.docker_ok(&["restart", "-t", "1", "late"]);
    eventually(
        Duration::from_secs(30),
        "the container's second start",
        || (execs(&listen) >= 2.0).then_some(()),
    );
    let page = scrape(&listen);
    let others: Vec<_> = parse(&page)
        .into_iter()
        .filter(|s| s.name == "phasebox_syscalls_total" && s.labels["container_id"] != short)
        .collect();
    assert!(others.is_empty(), "{others:?}");
    stop(&mut a);
    let p = phasebox_tests::profile::load(&profile);
    assert_eq!(p["runs"][0]["container"]["name"], "late", "{p}");
    assert_eq!(p["runs"][0]["how"], "launched", "the start was seen: {p}");
    let main = &p["roles"][0];
    assert_eq!(main["container"], id.as_str(), "{p}");
    let first = &main["phases"][0];
    assert!(
        first["syscalls"]["execve"]["calls"].as_u64() >= Some(1),
        "{p}"
    );
}
