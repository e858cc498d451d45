//! Podman for real: Debian's podman (runc, cgroupfs, its own storage, no service) runs nginx
//! from an image made without a registry (`podman import` of a root filesystem built from the
//! host's nginx). `phasebox agent --container NAME` finds the container by its monitor (no
//! engine API answers), learns nginx through its operations (requests, 404s, `podman kill -s
//! HUP`, `podman exec … nginx -s reload`, `nginx -t`, log reopening, a killed worker) with the
//! container's id in the metrics; the profile is exported with `--for-runtime podman`, and a
//! fresh container runs under it through the same operations: every response right, the log
//! written, nothing "not permitted". Without Podman's own calls the container does not start.
//! Through Podman's API service, a container that is created but not started yet is waited for.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use phasebox_tests::{
    Guard, TempDir,
    container_nginx::{export, import_nginx, learn, refused_under, serve_under, under_default},
    engine::Engine,
    metrics::{eventually, scrape, value},
    nginx::free_port_in,
    phasebox_bin,
    podman::Podman,
};

const IMAGE: &str = "phasebox-test/nginx:podman";
const TINY: &str = "phasebox-test/tiny:podman";

/// The ports these tests use (docs/seccomp.md names them).
const PORTS: std::ops::Range<u16> = 18600..18700;

/// The accept4 calls nginx's workers made in container `id`, as the agent's series count them.
fn worker_accepts(page: &str, id: &str) -> Option<f64> {
    let short = id.get(..12)?;
    value(
        page,
        "phasebox_syscalls_total",
        &[
            ("container_id", short),
            ("role", "worker"),
            ("syscall", "accept4"),
        ],
    )
}

#[test]
fn nginx_learned_in_podman_runs_under_its_profile_in_podman() {
    let p = Podman::new();
    let dir = TempDir::new("podman-nginx");
    let ports = import_nginx(&p, &dir, IMAGE, PORTS);
    let port = ports.0;

    // Learn, the container found by its monitor: no engine API is asked (none answers).
    let no_api = dir.path("no-engine.sock");
    let no_api = format!("unix://{}", no_api.display());
    let env = [
        ("DOCKER_HOST", no_api.as_str()),
        ("CONTAINER_HOST", &no_api),
    ];
    // A new series first shows 0 (for rate()), then its count once a scrape read the 0.
    let learned = learn(&p, &dir, (IMAGE, ports), &env, &|page, id| {
        worker_accepts(page, id).is_some_and(|n| n > 0.0)
    });
    assert_eq!(learned.id.len(), 64, "{}", learned.id);
    assert!(
        worker_accepts(&learned.metrics, &learned.id).is_some_and(|n| n > 0.0),
        "no worker accept4 counted for container {}:\n{}",
        learned.id,
        learned.metrics
    );

    // Export for Podman; without Podman's own calls the container cannot even start.
    let oci = dir.path("nginx.podman.json");
    export(&learned.profile, Some("podman"), &oci);
    let bare = dir.path("nginx.bare.json");
    export(&learned.profile, None, &bare);
    refused_under(&p, &dir, IMAGE, &bare);

    // Enforce: a fresh container under the learned profile, through the same operations.
    let under_profile = serve_under(&p, &dir, ("enforced", IMAGE), port, &oci);
    p.cli_ok(&["rm", "-f", "-t", "0", "enforced"]);

    // Podman's default profile, for the numbers.
    let under_default = under_default(&p, &dir, IMAGE, port);
    let allowed = phasebox_tests::read_json(&oci)["syscalls"][0]["names"]
        .as_array()
        .map_or(0, Vec::len);
    println!(
        "profile: {allowed} syscalls allowed ({} bytes); req/s under it {under_profile:.0}, \
         under Podman's default profile {under_default:.0} (ratio {:.3})",
        std::fs::metadata(&oci).unwrap().len(),
        under_profile / under_default
    );
}

#[test]
fn a_podman_container_created_but_not_started_is_found_through_its_api_and_waited_for() {
    let mut p = Podman::new();
    let api = p.start_service();
    p.import_tiny(TINY);
    let mut create = vec!["create", "--name", "later", "--network", "none"];
    let limits = p.run_args();
    create.extend_from_slice(&limits);
    create.extend([TINY, "wait"]);
    let id = p.cli_ok(&create);
    let dir = TempDir::new("podman-later");
    let profile = dir.path("later.profile.json");
    let listen = format!("127.0.0.1:{}", free_port_in(PORTS, 0));
    let mut agent = Command::new(phasebox_bin());
    agent
        .args(["agent", "--container", "later", "--listen", &listen])
        .args(["--profile", profile.to_str().unwrap()])
        .env("CONTAINER_HOST", &api)
        .env(
            "DOCKER_HOST",
            format!("unix://{}", dir.path("none.sock").display()),
        )
        .stderr(Stdio::piped());
    let mut agent = Guard::new(agent.spawn().unwrap());
    let mut first = String::new();
    BufReader::new(agent.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(
        first.contains("waiting for container later to start"),
        "{first}"
    );
    p.cli_ok(&["start", "later"]);
    eventually(
        Duration::from_secs(15),
        "the container's calls counted",
        || {
            value(
                &scrape(&listen),
                "phasebox_syscalls_total",
                &[("container_id", &id[..12]), ("syscall", "execve")],
            )
            .filter(|&n| n >= 1.0)
        },
    );
    // The container ends (its program exits on SIGTERM), then the agent.
    p.cli_ok(&["stop", "--time", "10", "later"]);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    assert!(agent.wait().unwrap().success());
    let learned = phasebox_tests::profile::load(&profile);
    let c = &learned["runs"][0]["container"];
    assert_eq!(c["id"], id.as_str(), "{learned}");
    assert_eq!(c["name"], "later", "{learned}");
    assert_eq!(c["image"], format!("localhost/{TINY}"), "{learned}");
}
