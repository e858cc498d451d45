//! phasebox's image, built from deploy/Dockerfile in a private Docker daemon, runs the agent
//! with its kernel programs as a DaemonSet would run it (host pid namespace, host network,
//! /sys/kernel mounted) and traces an nginx started on the host afterwards, by its name; a second
//! agent container without the /sys/kernel volume mounts tracefs itself. Then an nginx started
//! in a container of its own: the agent's series carry that container's id, and the profile it
//! learned names the container.
use std::time::Duration;

use phasebox_tests::{
    TempDir,
    docker::Dockerd,
    image::{TAG, nginx_root, stage_context},
    metrics::{scrape_until, sum},
    nginx::{Nginx, free_port_in},
    phasebox_bin,
};

const REQUESTS: usize = 10;

/// The ports these tests use.
const PORTS: std::ops::Range<u16> = 18300..18400;

/// The privileges given to the agent's container: `--privileged` where this machine can start
/// a privileged container (its capability bounding set holds every capability), else the
/// capabilities the agent needs. Docker 20.10 does not know CAP_BPF and CAP_PERFMON by name;
/// CAP_SYS_ADMIN covers them and mounting tracefs; CAP_SYS_PTRACE reads other processes'
/// /proc/PID/exe.
fn privileges() -> Vec<&'static str> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .unwrap_or(0);
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    let all = (0..=last).all(|c| bounding & (1 << c) != 0);
    if all {
        vec!["--privileged"]
    } else {
        eprintln!(
            "this machine's capability bounding set lacks some capabilities (CapBnd {bounding:x}): \
             --privileged cannot start any container here, using --cap-add SYS_ADMIN --cap-add SYS_PTRACE"
        );
        vec![
            "--cap-add",
            "SYS_ADMIN",
            "--cap-add",
            "SYS_PTRACE",
            "--security-opt",
            "seccomp=unconfined",
        ]
    }
}

/// Starts the agent's container; returns its id.
fn start_agent(d: &Dockerd, privileges: &[&str], volume: bool, name: &str, listen: &str) -> String {
    let mut args = vec!["run", "-d", "--pid=host", "--network", "host"];
    args.extend(privileges);
    if volume {
        args.extend(["-v", "/sys/kernel:/sys/kernel"]);
    }
    args.extend([TAG, "agent", "--exec-name", name, "--phases", "nginx"]);
    args.extend(["--listen", listen]);
    d.docker_ok(&args)
}

/// Waits until the agent in container `id` serves its metrics page.
fn wait_up(d: &Dockerd, id: &str, listen: &str) {
    let page = scrape_until(listen, Duration::from_secs(30), |p| {
        p.contains("phasebox_tracked_processes")
    });
    assert!(
        page.contains("phasebox_tracked_processes"),
        "the agent in {id} does not serve metrics on {listen}; its log:\n{}",
        String::from_utf8_lossy(&d.docker(&["logs", id]).stderr)
    );
}

#[test]
fn image_runs_the_agent_as_a_daemonset_would() {
    let dir = TempDir::new("image");
    let ctx = dir.path("context");
    stage_context(&phasebox_bin(), &ctx).unwrap_or_else(|e| panic!("staging the image: {e}"));
    let d = Dockerd::start();
    d.docker_ok(&["build", "-q", "-t", TAG, ctx.to_str().unwrap()]);
    let version = d.docker_ok(&["run", "--rm", TAG, "--version"]);
    assert!(version.starts_with("phasebox "), "{version}");

    let privileges = privileges();
    // This nginx's own process name: other nginx processes on the machine are not traced.
    let name = format!("nginx-{}", std::process::id() % 100_000);
    let with_volume = format!("127.0.0.1:{}", free_port_in(PORTS, 0));
    let a = start_agent(&d, &privileges, true, &name, &with_volume);
    wait_up(&d, &a, &with_volume);
    let own_mount = format!("127.0.0.1:{}", free_port_in(PORTS, 0));
    let b = start_agent(&d, &privileges, false, &name, &own_mount);
    wait_up(&d, &b, &own_mount);
    // Without the volume the container's /sys has no tracefs until the agent mounts it.
    let pid = d.container_pid(&b);
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    assert!(
        mounts
            .lines()
            .any(|l| l.contains(" /sys/kernel/tracing ") && l.contains(" - tracefs ")),
        "the agent did not mount tracefs in its container:\n{mounts}"
    );

    // nginx starts after the agents: they find it by name from its execve.
    let nginx = Nginx::start_named(&name);
    let codes = nginx.curl("/index.html", REQUESTS);
    assert!(codes.iter().all(|c| c == "200"), "{codes:?}");
    let accepts = [("role", "worker"), ("syscall", "accept4")];
    for (id, listen) in [(&a, &with_volume), (&b, &own_mount)] {
        let page = scrape_until(listen, Duration::from_secs(10), |p| {
            sum(p, "phasebox_syscalls_total", &accepts) >= REQUESTS as f64
        });
        let seen = sum(&page, "phasebox_syscalls_total", &accepts);
        assert!(
            seen >= REQUESTS as f64,
            "agent {id}: {seen} accept4 for {REQUESTS} requests:\n{page}"
        );
        assert_eq!(
            sum(&page, "phasebox_tracked_processes", &[]),
            2.0,
            "agent {id} tracks nginx's master and worker"
        );
        assert!(sum(&page, "phasebox_bpf_runs_total", &[]) > 0.0);
    }
    drop(nginx);
    nginx_in_a_container(&d, &dir, &privileges);
}

/// The agent's container (as a DaemonSet runs it) traces an nginx started afterwards in
/// another container, found by its name at its exec.
fn nginx_in_a_container(d: &Dockerd, dir: &TempDir, privileges: &[&str]) {
    let listen = format!("127.0.0.1:{}", free_port_in(PORTS, 0));
    // Held while the second port is chosen, so the two differ.
    let held = std::net::TcpListener::bind(&listen).unwrap();
    let port = free_port_in(PORTS, 0);
    drop(held);
    let root = dir.path("nginx-root");
    nginx_root(&root, port).unwrap();
    // A program name of its own, so no other nginx on the machine is traced.
    let name = format!("ngx-{}", std::process::id() % 100_000);
    std::fs::rename(
        root.join("usr/sbin/nginx"),
        root.join("usr/sbin").join(&name),
    )
    .unwrap();
    d.import(&root, "phasebox-test/nginx:fleet", &[]);
    let profiles = dir.path("profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    let volume = format!("{}:/profiles", profiles.display());
    let mut args = vec!["run", "-d", "--pid=host", "--network", "host"];
    args.extend(privileges);
    args.extend(["-v", "/sys/kernel:/sys/kernel", "-v", &volume, TAG, "agent"]);
    args.extend([
        "--exec-name",
        &name,
        "--phases",
        "nginx",
        "--listen",
        &listen,
    ]);
    args.extend(["--profile", "/profiles/nginx.json", "--checkpoint", "1s"]);
    let agent = d.docker_ok(&args);
    wait_up(d, &agent, &listen);
    let program = format!("/usr/sbin/{name}");
    let web = d.docker_ok(&[
        "run",
        "-d",
        "--network",
        "host",
        "phasebox-test/nginx:fleet",
        &program,
        "-g",
        "daemon off;",
    ]);
    let short = &web[..12];
    let url = format!("http://127.0.0.1:{port}/");
    let served = (0..REQUESTS)
        .filter(|_| {
            std::process::Command::new("curl")
                .args([
                    "-sf",
                    "--retry",
                    "20",
                    "--retry-connrefused",
                    "--retry-delay",
                    "1",
                ])
                .args(["-o", "/dev/null", &url])
                .status()
                .is_ok_and(|s| s.success())
        })
        .count();
    assert_eq!(
        served,
        REQUESTS,
        "nginx in its container did not answer: {}",
        String::from_utf8_lossy(&d.docker(&["logs", &web]).stderr)
    );
    let labels = [("container_id", short), ("syscall", "accept4")];
    let page = scrape_until(&listen, Duration::from_secs(15), |p| {
        sum(p, "phasebox_syscalls_total", &labels) >= REQUESTS as f64
    });
    assert!(
        sum(&page, "phasebox_syscalls_total", &labels) >= REQUESTS as f64,
        "no accept4 series of container {short}:\n{page}"
    );
    // Every series of nginx's roles is that container's.
    for line in page
        .lines()
        .filter(|l| l.starts_with("phasebox_syscalls_total{"))
    {
        assert!(
            line.contains(&format!(r#"container_id="{short}""#)),
            "{line}"
        );
    }
    let profile = dir.path("profiles/nginx.json");
    let text = scrape_until_file(&profile, &web);
    let p: serde_json::Value = serde_json::from_str(&text).unwrap();
    for role in p["roles"].as_array().unwrap() {
        assert_eq!(role["container"], web.as_str(), "{role}");
    }
}

/// The checkpoint once it names the container `id` (the agent writes it every second).
fn scrape_until_file(path: &std::path::Path, id: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(id) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint names container {id}: {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
