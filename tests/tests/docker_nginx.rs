//! Learn where you deploy, for real: a private dockerd runs nginx from an image made without a
//! registry (`docker import` of a root filesystem built from the host's nginx), `phasebox agent
//! --container` learns it while it serves, reloads (`docker kill -s HUP`, `docker exec … nginx
//! -s reload`), tests its config (`nginx -t`), reopens its logs (`docker kill -s USR1`) and
//! loses a worker (SIGKILL); the profile is exported with `--for-runtime docker`, and a fresh
//! container runs under it through the same operations: every response 200, the access log
//! written, no "Operation not permitted" in the error log. The same profile without `listen`
//! makes nginx fail to start, and without Docker's own calls the container does not start at
//! all. Prints the profile's size and req/s (wrk) under the profile and under Docker's default.
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use phasebox_tests::{
    Guard, TempDir, docker::Dockerd, image::nginx_root, metrics::eventually, nginx::free_port_in,
    phasebox, phasebox_bin,
};

const IMAGE: &str = "phasebox-test/nginx:deploy";

/// The ports these tests use (docs/seccomp.md names them).
const PORTS: std::ops::Range<u16> = 18400..18500;

/// The status of `GET path` on 127.0.0.1:`port`; None when nothing answers.
fn get(port: u16, path: &str) -> Option<u16> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    reply.split_whitespace().nth(1)?.parse().ok()
}

/// How many lines of the log at `path` contain `needle`.
fn count(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

/// The children of `pid` (nginx's workers under its master).
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// What a deployment does to nginx, on container `name` serving on `port` with its logs in
/// `logs`: requests, reload by signal and by `nginx -s reload`, `nginx -t`, log rotation and
/// reopening, a killed worker. Returns every response's status.
fn operations(d: &Dockerd, name: &str, port: u16, logs: &Path) -> Vec<u16> {
    let error_log = logs.join("error.log");
    let mut statuses = Vec::new();
    let serve = |n: usize, statuses: &mut Vec<u16>| {
        for i in 0..n {
            let path = if i % 5 == 4 { "/missing" } else { "/" };
            let st = get(port, path).unwrap_or(0);
            // A missing page is a 404 by design; everything else must be 200.
            statuses.push(if path == "/missing" && st == 404 {
                200
            } else {
                st
            });
        }
    };
    eventually(Duration::from_secs(20), "nginx serving", || {
        (get(port, "/") == Some(200)).then_some(())
    });
    serve(20, &mut statuses);
    let master = d.container_pid(name);
    for (how, signal) in [("docker kill -s HUP", true), ("nginx -s reload", false)] {
        let before = count(&error_log, "reconfiguring");
        if signal {
            d.docker_ok(&["kill", "-s", "HUP", name]);
        } else {
            d.docker_ok(&["exec", name, "/usr/sbin/nginx", "-s", "reload"]);
        }
        eventually(Duration::from_secs(10), how, || {
            (count(&error_log, "reconfiguring") > before).then_some(())
        });
        serve(10, &mut statuses);
    }
    let test = d.docker(&["exec", name, "/usr/sbin/nginx", "-t"]);
    assert!(
        test.status.success(),
        "nginx -t: {}",
        String::from_utf8_lossy(&test.stderr)
    );
    // Rotation: the old file moves away, USR1 makes nginx open a new one.
    std::fs::rename(logs.join("access.log"), logs.join("access.log.1")).unwrap();
    let before = count(&error_log, "reopening logs");
    d.docker_ok(&["kill", "-s", "USR1", name]);
    eventually(Duration::from_secs(10), "logs reopened", || {
        (count(&error_log, "reopening logs") > before).then_some(())
    });
    serve(10, &mut statuses);
    eventually(
        Duration::from_secs(10),
        "the new access log written",
        || (count(&logs.join("access.log"), "GET") > 0).then_some(()),
    );
    // A worker crashes; the master starts another.
    let workers = eventually(Duration::from_secs(10), "workers", || {
        Some(children(master)).filter(|w| w.len() == 2)
    });
    // SAFETY: kill(2) of a process of the test's own container.
    unsafe { libc::kill(workers[0] as i32, libc::SIGKILL) };
    eventually(Duration::from_secs(10), "a new worker", || {
        let now = children(master);
        (now.len() == 2 && !now.contains(&workers[0])).then_some(())
    });
    serve(10, &mut statuses);
    statuses
}

/// `docker run -d --network host` of the image as `name`, its logs in a fresh `logs`.
fn run(d: &Dockerd, name: &str, logs: &Path, extra: &[&str]) -> std::process::Output {
    std::fs::create_dir_all(logs).unwrap();
    let volume = format!("{}:/var/log/nginx", logs.display());
    let mut args = vec![
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "host",
        "-v",
        &volume,
    ];
    args.extend_from_slice(extra);
    d.docker(&args)
}

/// [`run`], failing the test unless docker started the container.
fn run_ok(d: &Dockerd, name: &str, logs: &Path, extra: &[&str]) {
    let out = run(d, name, logs, extra);
    assert!(
        out.status.success(),
        "docker run {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Requests per second of 3 s of wrk (1 thread, 16 connections) on 127.0.0.1:`port`.
fn wrk(port: u16) -> f64 {
    let out = Command::new("wrk")
        .args(["-t1", "-c16", "-d3s", &format!("http://127.0.0.1:{port}/")])
        .output()
        .expect("wrk is installed");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("wrk said: {text}"))
}

#[test]
fn nginx_learned_in_a_container_runs_under_its_profile_in_docker() {
    let d = Dockerd::start();
    let dir = TempDir::new("docker-nginx");
    let port = free_port_in(PORTS, 0);
    let root = dir.path("rootfs");
    nginx_root(&root, port).unwrap();
    d.import(&root, IMAGE, &[r#"ENTRYPOINT ["/usr/sbin/nginx"]"#]);

    // Learn: the container waits at its gate until the agent traces it, then nginx starts.
    let logs = dir.path("learn-logs");
    let gated = [
        "--entrypoint",
        "/gate",
        IMAGE,
        "gate",
        "/run/start",
        "/usr/sbin/nginx",
        "-g",
        "daemon off;",
    ];
    run_ok(&d, "learn", &logs, &gated);
    let profile = dir.path("nginx.profile.json");
    let listen = format!("127.0.0.1:{}", free_port_in(PORTS, port));
    let mut agent = Guard::new(
        Command::new(phasebox_bin())
            .args(["agent", "--container", "learn", "--phases", "nginx"])
            .args(["--listen", &listen, "--profile"])
            .arg(&profile)
            .env("DOCKER_HOST", d.host())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut first = String::new();
    BufReader::new(agent.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(
        first.contains("tracing container learn"),
        "{first}{:?}",
        d.docker(&["logs", "learn"])
    );
    let gate = format!("/proc/{}/root/run/start", d.container_pid("learn"));
    drop(std::fs::OpenOptions::new().write(true).open(&gate).unwrap());
    let statuses = operations(&d, "learn", port, &logs);
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    assert!(agent.wait().unwrap().success());
    d.docker_ok(&["rm", "-f", "learn"]);
    // The profile saw both operations nginx's rules know, so nothing warns about them.
    let learned = phasebox_tests::profile::load(&profile);
    assert_eq!(
        learned["operations"]["seen"],
        serde_json::json!(["reload", "reopen"]),
        "{}",
        learned["operations"]
    );

    // Export for Docker; without Docker's own calls the container cannot even start.
    let oci = dir.path("nginx.docker.json");
    let out = phasebox(&[
        "export",
        profile.to_str().unwrap(),
        "--for-runtime",
        "docker",
        "-o",
        oci.to_str().unwrap(),
    ]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(!said.contains("warning"), "{said}");
    let bare = dir.path("nginx.bare.json");
    let out = phasebox(&[
        "export",
        profile.to_str().unwrap(),
        "-o",
        bare.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let nginx_entry = ["--entrypoint", "/usr/sbin/nginx"];
    let with = |file: &Path| format!("seccomp={}", file.display());
    let bare_opt = with(&bare);
    let mut extra = vec!["--security-opt", &bare_opt];
    extra.extend(nginx_entry);
    extra.extend([IMAGE, "-g", "daemon off;"]);
    let out = run(&d, "bare", &dir.path("bare-logs"), &extra);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("operation not permitted"),
        "a profile without Docker's calls should not start: {err}"
    );
    d.docker_ok(&["rm", "-f", "bare"]);

    // Enforce: a fresh container under the learned profile, through the same operations.
    let logs = dir.path("enforced-logs");
    let oci_opt = with(&oci);
    let mut extra = vec!["--security-opt", &oci_opt];
    extra.extend(nginx_entry);
    extra.extend([IMAGE, "-g", "daemon off;"]);
    run_ok(&d, "enforced", &logs, &extra);
    let statuses = operations(&d, "enforced", port, &logs);
    let errors = std::fs::read_to_string(logs.join("error.log")).unwrap_or_default();
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}\n{errors}");
    assert!(!errors.contains("Operation not permitted"), "{errors}");
    assert!(!errors.contains("Permission denied"), "{errors}");
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.Running}}", "enforced"]),
        "true"
    );
    let under_profile = wrk(port);
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
    let strict_opt = with(&strict);
    let mut extra = vec!["--security-opt", &strict_opt];
    extra.extend(nginx_entry);
    extra.extend([IMAGE, "-g", "daemon off;"]);
    run_ok(&d, "strict", &logs, &extra);
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
    let logs = dir.path("default-logs");
    let mut extra = nginx_entry.to_vec();
    extra.extend([IMAGE, "-g", "daemon off;"]);
    run_ok(&d, "default", &logs, &extra);
    eventually(Duration::from_secs(20), "nginx serving", || {
        (get(port, "/") == Some(200)).then_some(())
    });
    let under_default = wrk(port);
    println!(
        "profile: {allowed} syscalls allowed ({} bytes); req/s under it {under_profile:.0}, \
         under Docker's default profile {under_default:.0} (ratio {:.3})",
        std::fs::metadata(&oci).unwrap().len(),
        under_profile / under_default
    );
}
