//! Learn where you deploy, for real: a private dockerd runs nginx from an image made without a
//! registry (`docker import` of a root filesystem built from the host's nginx), `phasebox agent
//! --container` learns it while it serves, reloads (`docker kill -s HUP`, `docker exec … nginx
//! -s reload`), tests its config (`nginx -t`), reopens its logs (`docker kill -s USR1`) and
//! loses a worker (SIGKILL); the profile is exported with `--for-runtime docker`, and a fresh
//! container runs under it through the same operations: every response 200, the access log
//! written, no "Operation not permitted" in the error log. The same profile without `listen`
//! makes nginx fail to start, and without Docker's own calls the container does not start at
//! all. Prints the profile's size and req/s (wrk) under the profile and under Docker's default.

use phasebox_tests::{
    TempDir,
    container_nginx::{
        export, import_nginx, learn, nginx_args, refused_under, run_ok, serve_under, under_default,
    },
    docker::Dockerd,
};

const IMAGE: &str = "phasebox-test/nginx:deploy";

/// The ports these tests use (docs/seccomp.md names them).
const PORTS: std::ops::Range<u16> = 18400..18500;

#[test]
fn nginx_learned_in_a_container_runs_under_its_profile_in_docker() {
    let d = Dockerd::start();
    let dir = TempDir::new("docker-nginx");
    let ports = import_nginx(&d, &dir, IMAGE, PORTS);
    let port = ports.0;

    // Learn: the container waits at its gate until the agent traces it, then nginx starts.
    let env = [("DOCKER_HOST", d.host())];
    let learned = learn(&d, &dir, (IMAGE, ports), &env, &|_, _| true);

    // Export for Docker; without Docker's own calls the container cannot even start.
    let oci = dir.path("nginx.docker.json");
    export(&learned.profile, Some("docker"), &oci);
    let bare = dir.path("nginx.bare.json");
    export(&learned.profile, None, &bare);
    refused_under(&d, &dir, IMAGE, &bare);

    // Enforce: a fresh container under the learned profile, through the same operations.
    let under_profile = serve_under(&d, &dir, ("enforced", IMAGE), port, &oci);
    d.docker_ok(&["rm", "-f", "enforced"]);

    // Without one call nginx needs (listen), nginx fails at once, and says why.
    let mut p: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&oci).unwrap()).unwrap();
    let allowed = p["syscalls"][0]["names"].as_array().unwrap().len();
    p["syscalls"][0]["names"]
        .as_array_mut()
        .unwrap()
        .retain(|v| v != "listen");
    let strict = dir.path("nginx.no-listen.json");
    std::fs::write(&strict, p.to_string()).unwrap();
    let logs = dir.path("strict-logs");
    let strict_opt = format!("seccomp={}", strict.display());
    run_ok(
        &d,
        "strict",
        &logs,
        &nginx_args(&["--security-opt", &strict_opt], IMAGE),
    );
    let code = d.docker_ok(&["wait", "strict"]);
    assert_ne!(code, "0", "nginx ran without listen");
    let said = String::from_utf8_lossy(&d.docker(&["logs", "strict"]).stderr).into_owned()
        + &std::fs::read_to_string(logs.join("error.log")).unwrap_or_default();
    assert!(
        said.contains("listen() to 127.0.0.1") && said.contains("Operation not permitted"),
        "{said}"
    );
    d.docker_ok(&["rm", "-f", "strict"]);

    // Docker's default profile, for the numbers.
    let under_default = under_default(&d, &dir, IMAGE, port);
    println!(
        "profile: {allowed} syscalls allowed ({} bytes); req/s under it {under_profile:.0}, \
         under Docker's default profile {under_default:.0} (ratio {:.3})",
        std::fs::metadata(&oci).unwrap().len(),
        under_profile / under_default
    );
}
