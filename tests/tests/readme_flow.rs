//! The README's headline flow, run as written: the agent waits for nginx by name, nginx starts
//! and serves, the metrics are scraped, nginx reloads and reopens its logs, the agent stops and
//! writes the profile, which is exported for Docker, and a container of nginx runs under it.
//! Adapted only in paths and ports: nginx runs with this test's config (`-c`, a free loopback
//! port, files in a temporary directory mounted at the same path in the container), the agent
//! listens on a free loopback port, Docker is a private dockerd, and the container uses
//! the host's network. The lines below must be the README's: the test fails when they differ.
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use phasebox_tests::{
    Guard, TempDir, children, count_lines,
    docker::Dockerd,
    export_for_docker,
    http::status,
    lines::Lines,
    metrics::{eventually, scrape},
    nginx::{deploy_config, free_port, nginx_bin},
    phasebox_bin,
    rootfs::server_root,
};

/// The README's flow, line for line.
const FLOW: [&str; 9] = [
    "phasebox agent --exec-name nginx --phases nginx --profile nginx.json &",
    "nginx -g 'daemon off;' &",
    "curl -s 127.0.0.1/",
    "curl -s 127.0.0.1:9464/metrics | grep phasebox_syscalls_total",
    "nginx -s reload",
    "nginx -s reopen",
    "kill %1; wait %1",
    "phasebox export nginx.json --for-runtime docker -o nginx.oci.json",
    "docker run --security-opt seccomp=nginx.oci.json …",
];
const IMAGE: &str = "phasebox-test/nginx:readme";
const WAIT: Duration = Duration::from_secs(30);

/// `nginx -c CONF ARGS…` (the README's `nginx ARGS…`), which must succeed.
fn nginx_signal(conf: &Path, sig: &str) {
    let out = Command::new(nginx_bin())
        .arg("-c")
        .arg(conf)
        .args(["-s", sig])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nginx -s {sig}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_readme_flow_learns_nginx_and_runs_it_in_docker_under_its_profile() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    for line in FLOW {
        assert!(
            readme.lines().any(|l| l.starts_with(line)),
            "the README's flow no longer has {line:?}: update this test with it"
        );
    }
    let dir = TempDir::new("readme-flow");
    for d in ["logs", "www", "tmp"] {
        std::fs::create_dir_all(dir.path(d)).unwrap();
    }
    std::fs::write(dir.path("www/index.html"), "<h1>phasebox</h1>\n").unwrap();
    let port = free_port();
    let conf = dir.path("nginx.conf");
    std::fs::write(&conf, deploy_config(&dir.0, port)).unwrap();
    let profile = dir.path("nginx.json");

    // phasebox agent --exec-name nginx --phases nginx --profile nginx.json &
    let listen = format!("127.0.0.1:{}", free_port());
    let mut agent = Guard::new(
        Command::new(phasebox_bin())
            .args([
                "agent",
                "--exec-name",
                "nginx",
                "--phases",
                "nginx",
                "--profile",
            ])
            .arg(&profile)
            .args(["--listen", &listen])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut said = Lines::follow(agent.stderr.take().unwrap());
    said.wait_for("waiting for nginx to start", WAIT).unwrap();

    // nginx -g 'daemon off;' &
    // In a process group of its own, so a failed test kills the workers with their master.
    let mut nginx = Guard::group(
        Command::new(nginx_bin())
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    let master = nginx.id();
    eventually(WAIT, "nginx serving", || {
        status(port, "/").filter(|&s| s == 200)
    });
    // curl -s 127.0.0.1/
    for _ in 0..5 {
        assert_eq!(status(port, "/"), Some(200));
    }
    // curl -s 127.0.0.1:9464/metrics | grep phasebox_syscalls_total
    eventually(WAIT, "nginx's calls on /metrics", || {
        scrape(&listen)
            .lines()
            .any(|l| l.starts_with("phasebox_syscalls_total{") && l.contains("program=\"nginx\""))
            .then_some(())
    });
    // nginx -s reload: new workers.
    let before = eventually(WAIT, "two workers", || {
        Some(children(master)).filter(|w| w.len() == 2)
    });
    nginx_signal(&conf, "reload");
    eventually(WAIT, "new workers after the reload", || {
        let now = children(master);
        (now.len() == 2 && now.iter().all(|p| !before.contains(p))).then_some(())
    });
    assert_eq!(status(port, "/"), Some(200));
    // nginx -s reopen
    let error_log = dir.path("logs/error.log");
    let reopened = count_lines(&error_log, "reopening logs");
    nginx_signal(&conf, "reopen");
    eventually(WAIT, "the logs reopened", || {
        (count_lines(&error_log, "reopening logs") > reopened).then_some(())
    });
    assert_eq!(status(port, "/"), Some(200));
    // kill %1; wait %1
    // SAFETY: signalling our own child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    let ended = agent.wait().unwrap();
    assert!(ended.success(), "agent: {ended}\n{}", said.rest(WAIT));
    // The host's nginx leaves the port to the container.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(master as i32, libc::SIGQUIT) };
    assert!(nginx.wait().unwrap().success());

    // phasebox export nginx.json --for-runtime docker -o nginx.oci.json
    let oci = dir.path("nginx.oci.json");
    let said = export_for_docker(&profile, &oci);
    assert!(!said.contains("warning"), "{said}");

    // docker run --security-opt seccomp=nginx.oci.json …
    let d = Dockerd::start();
    let root = dir.path("rootfs");
    server_root(
        &root,
        &["/usr/sbin/nginx"],
        &["/etc/nginx/mime.types".into()],
    )
    .unwrap();
    d.import(&root, IMAGE, &[r#"ENTRYPOINT ["/usr/sbin/nginx"]"#]);
    for log in ["logs/access.log", "logs/error.log"] {
        std::fs::remove_file(dir.path(log)).unwrap();
    }
    let volume = format!("{0}:{0}", dir.0.display());
    let seccomp = format!("seccomp={}", oci.display());
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "readme",
        "--network",
        "host",
        "-v",
        &volume,
        "--security-opt",
        &seccomp,
        IMAGE,
        "-c",
        conf.to_str().unwrap(),
        "-g",
        "daemon off;",
    ]);
    let logs = || {
        let out = d.docker(&["logs", "readme"]);
        String::from_utf8_lossy(&out.stderr).into_owned()
            + &std::fs::read_to_string(&error_log).unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + WAIT;
    while status(port, "/").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the container never answered:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let statuses: Vec<Option<u16>> = (0..20).map(|_| status(port, "/")).collect();
    assert!(
        statuses.iter().all(|&s| s == Some(200)),
        "{statuses:?}\n{}",
        logs()
    );
    let access_log = dir.path("logs/access.log");
    eventually(WAIT, "every request in the access log", || {
        (count_lines(&access_log, "\"GET / HTTP/1.0\" 200") >= 21).then_some(())
    });
    let errors = logs();
    assert!(!errors.contains("Operation not permitted"), "{errors}");
    assert!(!errors.contains("Permission denied"), "{errors}");
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.Running}}", "readme"]),
        "true",
        "{errors}"
    );
}
