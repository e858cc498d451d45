//! Learning inside a container: `record --container ID` and `agent --container NAME` follow
//! every process of a container of a private dockerd, including ones `docker exec` starts
//! after tracing began; the agent's series carry the container's id, and the profile names the
//! container and its image.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use phasebox_tests::{
    Guard, TempDir,
    docker::Dockerd,
    metrics::{eventually, parse, scrape},
    nginx::free_port,
    phasebox_bin, read_json,
};

const IMAGE: &str = "phasebox-test/tiny:learn";

#[test]
fn record_and_agent_follow_a_container_and_its_docker_exec() {
    let d = Dockerd::start();
    d.import_tiny(IMAGE);
    let id = d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "learnme",
        "--network",
        "none",
        IMAGE,
        "wait",
    ]);
    let dir = TempDir::new("container-learning");

    // record --container ID: an exec made while recording is traced from its execve.
    let summary = dir.path("s.json");
    let profile = dir.path("p.json");
    let mut rec = Guard::new(
        Command::new(phasebox_bin())
            .args(["record", "-q", "--container", &id[..12], "--duration", "4s"])
            .args(["--summary", summary.to_str().unwrap()])
            .args(["--profile", profile.to_str().unwrap()])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut first = String::new();
    BufReader::new(rec.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("tracing container"), "{first}");
    let out = d.docker_ok(&["exec", "learnme", "/init", "cgroup"]);
    assert!(out.contains(&id), "the exec ran in the container: {out}");
    assert!(rec.wait().unwrap().success());
    let s = read_json(&summary);
    let init = d.container_pid(&id);
    let exec = s["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] != init && p["exe"] == "/init")
        .unwrap_or_else(|| panic!("the docker exec'd process was traced: {s}"));
    // Traced from its execve on: everything up to its exit, the call that printed included.
    assert_eq!(exec["syscalls"]["exit_group"]["calls"], 1, "{exec}");
    assert!(
        exec["syscalls"]["write"]["calls"].as_u64() >= Some(1),
        "{exec}"
    );
    let p = phasebox_tests::profile::load(&profile);
    assert_eq!(p["runs"][0]["container"]["id"], id.as_str(), "{p}");
    assert!(
        p["roles"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["container"] == id.as_str()),
        "every role is the container's: {p}"
    );

    // agent --container NAME through the engine's API: image known, series labelled.
    let listen = format!("127.0.0.1:{}", free_port());
    let agent_profile = dir.path("agent.json");
    let mut agent = Guard::new(
        Command::new(phasebox_bin())
            .args(["agent", "--container", "learnme", "--listen", &listen])
            .args(["--profile", agent_profile.to_str().unwrap()])
            .env("DOCKER_HOST", d.host())
            .spawn()
            .unwrap(),
    );
    eventually(Duration::from_secs(15), "the agent up", || {
        (!scrape(&listen).is_empty()).then_some(())
    });
    d.docker_ok(&["exec", "learnme", "/init", "cgroup"]);
    let short = &id[..12];
    eventually(Duration::from_secs(15), "a series of the container", || {
        let page = scrape(&listen);
        parse(&page)
            .iter()
            .any(|s| {
                s.name == "phasebox_syscalls_total"
                    && s.labels.get("container_id").map(String::as_str) == Some(short)
                    && s.labels["syscall"] == "execve"
            })
            .then_some(())
    });
    let page = scrape(&listen);
    let unlabelled: Vec<_> = parse(&page)
        .into_iter()
        .filter(|s| s.name == "phasebox_syscalls_total" && s.labels["container_id"] != short)
        .collect();
    assert!(unlabelled.is_empty(), "{unlabelled:?}");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    assert!(agent.wait().unwrap().success());
    let p = phasebox_tests::profile::load(&agent_profile);
    let c = &p["runs"][0]["container"];
    assert_eq!(c["id"], id.as_str(), "{p}");
    assert_eq!(c["name"], "learnme", "{p}");
    assert_eq!(c["image"], IMAGE, "{p}");
}
