//! nginx in a container, as a deployment runs it: an image made without a registry from the
//! host's nginx (`image::nginx_root`), and what a deployment does to it (requests, 404s,
//! reloads by signal and by `nginx -s reload` through `exec`, `nginx -t`, log rotation and
//! reopening, a killed worker), the same for Docker and Podman.
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{
    Guard, TempDir, children, count_lines,
    engine::Engine,
    metrics::{eventually, scrape_until},
    phasebox, phasebox_bin,
};

/// The status of `GET path` on 127.0.0.1:`port`; None when nothing answers.
pub fn get(port: u16, path: &str) -> Option<u16> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    reply.split_whitespace().nth(1)?.parse().ok()
}

/// What a deployment does to nginx, on container `name` serving on `port` with its logs in
/// `logs`: requests, reload by signal and by `nginx -s reload`, `nginx -t`, log rotation and
/// reopening, a killed worker. Returns every response's status.
pub fn operations(e: &dyn Engine, name: &str, port: u16, logs: &Path) -> Vec<u16> {
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
    let master = e.container_pid(name);
    for (how, signal) in [("kill -s HUP", true), ("nginx -s reload", false)] {
        let before = count_lines(&error_log, "reconfiguring");
        if signal {
            e.cli_ok(&["kill", "-s", "HUP", name]);
        } else {
            e.cli_ok(&["exec", name, "/usr/sbin/nginx", "-s", "reload"]);
        }
        eventually(Duration::from_secs(10), how, || {
            (count_lines(&error_log, "reconfiguring") > before).then_some(())
        });
        serve(10, &mut statuses);
    }
    let test = e.cli(&["exec", name, "/usr/sbin/nginx", "-t"]);
    assert!(
        test.status.success(),
        "nginx -t: {}",
        String::from_utf8_lossy(&test.stderr)
    );
    // Rotation: the old file moves away, USR1 makes nginx open a new one.
    std::fs::rename(logs.join("access.log"), logs.join("access.log.1")).unwrap();
    let before = count_lines(&error_log, "reopening logs");
    e.cli_ok(&["kill", "-s", "USR1", name]);
    eventually(Duration::from_secs(10), "logs reopened", || {
        (count_lines(&error_log, "reopening logs") > before).then_some(())
    });
    serve(10, &mut statuses);
    eventually(
        Duration::from_secs(10),
        "the new access log written",
        || (count_lines(&logs.join("access.log"), "GET") > 0).then_some(()),
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

/// `run -d --network host` of a container `name`, its logs in a fresh `logs`; `extra` holds
/// the rest of the command line (options, image, arguments).
pub fn run(e: &dyn Engine, name: &str, logs: &Path, extra: &[&str]) -> std::process::Output {
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
    let engine_args = e.run_args();
    args.extend_from_slice(&engine_args);
    args.extend_from_slice(extra);
    e.cli(&args)
}

/// [`run`], failing the test unless the engine started the container.
pub fn run_ok(e: &dyn Engine, name: &str, logs: &Path, extra: &[&str]) {
    let out = run(e, name, logs, extra);
    assert!(
        out.status.success(),
        "{} run {name}: {}",
        e.name(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Requests per second of 3 s of wrk (1 thread, 16 connections kept alive) on
/// 127.0.0.1:`port`; fails on a socket error or a response other than 2xx or 3xx.
pub fn wrk(port: u16) -> f64 {
    let out = Command::new("wrk")
        .args(["-t1", "-c16", "-d3s", &format!("http://127.0.0.1:{port}/")])
        .output()
        .expect("wrk is installed");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("Socket errors") && !text.contains("Non-2xx"),
        "wrk saw failures: {text}"
    );
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("wrk said: {text}"))
}

/// An image `tag` of the host's nginx (`image::nginx_root`) serving on a free port of `range`,
/// imported into `e`: that port, and another free one of `range` for the agent's metrics.
pub fn import_nginx(
    e: &dyn Engine,
    dir: &TempDir,
    tag: &str,
    range: std::ops::Range<u16>,
) -> (u16, u16) {
    let port = crate::nginx::free_port_in(range.clone(), 0);
    let root = dir.path("rootfs");
    crate::image::nginx_root(&root, port).expect("nginx's root filesystem");
    e.import(&root, tag, &[r#"ENTRYPOINT ["/usr/sbin/nginx"]"#]);
    (port, crate::nginx::free_port_in(range, port))
}

/// The arguments that run the image's nginx in the foreground.
pub const NGINX: [&str; 5] = [
    "--entrypoint",
    "/usr/sbin/nginx",
    "IMAGE",
    "-g",
    "daemon off;",
];

/// [`NGINX`] for `image`, after `options`.
pub fn nginx_args<'a>(options: &[&'a str], image: &'a str) -> Vec<&'a str> {
    let mut args = options.to_vec();
    args.extend(NGINX.iter().map(|&a| if a == "IMAGE" { image } else { a }));
    args
}

/// What learning nginx in a container gave.
pub struct Learned {
    /// The profile the agent wrote.
    pub profile: PathBuf,
    /// The container's full id, as the engine gives it.
    pub id: String,
    /// The agent's /metrics after the operations, once `metrics_show` held for it (or after
    /// 15 s).
    pub metrics: String,
}

/// Learns nginx (`image`) in a container named `learn` on `e`: the container waits at its
/// gate until `phasebox agent --container learn` (its environment `agent_env` tells it where
/// the engine is) traces it, then nginx starts and goes through [`operations`]; the agent is
/// stopped by SIGTERM (once its /metrics shows what `metrics_show` looks for: the agent reads
/// the kernel's counters every few seconds) and its profile must have seen both of nginx's
/// operations.
pub fn learn(
    e: &dyn Engine,
    dir: &TempDir,
    (image, ports): (&str, (u16, u16)),
    agent_env: &[(&str, &str)],
    metrics_show: &dyn Fn(&str, &str) -> bool,
) -> Learned {
    let (port, metrics_port) = ports;
    let logs = dir.path("learn-logs");
    let gated = [
        "--entrypoint",
        "/gate",
        image,
        "gate",
        "/run/start",
        "/usr/sbin/nginx",
        "-g",
        "daemon off;",
    ];
    run_ok(e, "learn", &logs, &gated);
    let id = e.cli_ok(&["inspect", "-f", "{{.Id}}", "learn"]);
    let profile = dir.path("nginx.profile.json");
    let listen = format!("127.0.0.1:{metrics_port}");
    let mut agent = Command::new(phasebox_bin());
    agent
        .args(["agent", "--container", "learn", "--phases", "nginx"])
        .args(["--listen", &listen, "--profile"])
        .arg(&profile)
        .envs(agent_env.iter().copied())
        .stderr(Stdio::piped());
    let mut agent = Guard::new(agent.spawn().expect("phasebox starts"));
    let mut first = String::new();
    BufReader::new(agent.stderr.take().expect("piped"))
        .read_line(&mut first)
        .expect("the agent's first line");
    assert!(
        first.contains("tracing container learn"),
        "{first}{:?}",
        e.cli(&["logs", "learn"])
    );
    let gate = format!("/proc/{}/root/run/start", e.container_pid("learn"));
    drop(
        std::fs::OpenOptions::new()
            .write(true)
            .open(&gate)
            .expect("the container's gate"),
    );
    let statuses = operations(e, "learn", port, &logs);
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    let metrics = scrape_until(&listen, Duration::from_secs(15), |page| {
        metrics_show(page, &id)
    });
    // SAFETY: signalling our own child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    assert!(agent.wait().expect("the agent ends").success());
    e.cli_ok(&["rm", "-f", "learn"]);
    // The profile saw both operations nginx's rules know, so nothing warns about them.
    let learned = crate::profile::load(&profile);
    assert_eq!(
        learned["operations"]["seen"],
        serde_json::json!(["reload", "reopen"]),
        "{}",
        learned["operations"]
    );
    Learned {
        profile,
        id,
        metrics,
    }
}

/// `phasebox export PROFILE [--for-runtime RUNTIME] -o OUT`, which must succeed without a
/// warning.
pub fn export(profile: &Path, runtime: Option<&str>, out: &Path) {
    let mut args = vec!["export", profile.to_str().expect("UTF-8 path")];
    if let Some(r) = runtime {
        args.extend(["--for-runtime", r]);
    }
    args.extend(["-o", out.to_str().expect("UTF-8 path")]);
    let done = phasebox(&args);
    let said = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{said}");
    assert!(!said.contains("warning"), "{said}");
}

/// A fresh container `name` of `image` under the seccomp profile `policy`, through the
/// operations, then under load from clients that keep their connections alive (which the
/// operations' HTTP/1.0 requests never did): every response right, the access log written,
/// nothing denied in the error log, the container still running. Returns the requests per
/// second of the load.
pub fn serve_under(
    e: &dyn Engine,
    dir: &TempDir,
    (name, image): (&str, &str),
    port: u16,
    policy: &Path,
) -> f64 {
    let logs = dir.path(&format!("{name}-logs"));
    let opt = format!("seccomp={}", policy.display());
    run_ok(
        e,
        name,
        &logs,
        &nginx_args(&["--security-opt", &opt], image),
    );
    let statuses = operations(e, name, port, &logs);
    let load = wrk(port);
    let errors = std::fs::read_to_string(logs.join("error.log")).unwrap_or_default();
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}\n{errors}");
    assert!(!errors.contains("Operation not permitted"), "{errors}");
    assert!(!errors.contains("Permission denied"), "{errors}");
    assert!(!errors.contains("[crit]"), "{errors}");
    assert_eq!(
        e.cli_ok(&["inspect", "-f", "{{.State.Running}}", name]),
        "true"
    );
    load
}

/// Requests per second of nginx (`image`) in a container `default` under the engine's own
/// default profile: the baseline the learned profile's numbers are printed against.
pub fn under_default(e: &dyn Engine, dir: &TempDir, image: &str, port: u16) -> f64 {
    run_ok(
        e,
        "default",
        &dir.path("default-logs"),
        &nginx_args(&[], image),
    );
    eventually(Duration::from_secs(20), "nginx serving", || {
        (get(port, "/") == Some(200)).then_some(())
    });
    wrk(port)
}

/// Whether a container of `image` under `policy` fails to start with "operation not
/// permitted" (a profile that lacks the runtime's own calls).
pub fn refused_under(e: &dyn Engine, dir: &TempDir, image: &str, policy: &Path) -> String {
    let opt = format!("seccomp={}", policy.display());
    let out = run(
        e,
        "refused",
        &dir.path("refused-logs"),
        &nginx_args(&["--security-opt", &opt], image),
    );
    let _ = e.cli(&["rm", "-f", "refused"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success() && err.to_lowercase().contains("operation not permitted"),
        "a profile without {}'s own calls should not start: {err}",
        e.name()
    );
    err
}
