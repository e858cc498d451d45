//! phasebox's image, built from deploy/Dockerfile in a private Docker daemon, runs the agent
//! with its kernel programs as a DaemonSet would run it (host pid namespace, host network,
//! /sys/kernel mounted) and traces an nginx started on the host afterwards, by its name; a second
//! agent container without the /sys/kernel volume mounts tracefs itself.
use std::time::Duration;

use phasebox_tests::{
    TempDir,
    docker::Dockerd,
    image::{TAG, stage_context},
    nginx::Nginx,
    phasebox_bin,
    scrape::{metric_sum, scrape_until},
};

const REQUESTS: usize = 10;

/// A free loopback port in 18300-18399, the range these tests use.
fn port_in_range() -> u16 {
    (18300..18400)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port in 18300-18399")
}

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
    let with_volume = format!("127.0.0.1:{}", port_in_range());
    let a = start_agent(&d, &privileges, true, &name, &with_volume);
    wait_up(&d, &a, &with_volume);
    let own_mount = format!("127.0.0.1:{}", port_in_range());
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
    let accepts = [r#"role="worker""#, r#"syscall="accept4""#];
    for (id, listen) in [(&a, &with_volume), (&b, &own_mount)] {
        let page = scrape_until(listen, Duration::from_secs(10), |p| {
            metric_sum(p, "phasebox_syscalls_total", &accepts) >= REQUESTS as f64
        });
        let seen = metric_sum(&page, "phasebox_syscalls_total", &accepts);
        assert!(
            seen >= REQUESTS as f64,
            "agent {id}: {seen} accept4 for {REQUESTS} requests:\n{page}"
        );
        assert_eq!(
            metric_sum(&page, "phasebox_tracked_processes", &[]),
            2.0,
            "agent {id} tracks nginx's master and worker"
        );
        assert!(metric_sum(&page, "phasebox_bpf_runs_total", &[]) > 0.0);
    }
}
