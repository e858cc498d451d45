//! The agent as an exporter, held to the conventions of node_exporter and Prometheus's
//! exporter toolkit: a landing page, health endpoints and 404 elsewhere; the standard process
//! metrics with CPU seconds as a float; `--web.config.file` with TLS and bcrypt basic auth,
//! scraped by a real Prometheus (the right password up, a wrong one refused with 401); bad
//! web configs refused in one sentence; logfmt and JSON logs; and counters a reload shows in:
//! `increase()` over a reload of nginx sees the new workers' startup calls.
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use phasebox_tests::{
    Guard, TempDir, assert_clear_failure,
    metrics::{eventually, value},
    nginx::Nginx,
    phasebox, phasebox_bin,
    prometheus::Prometheus,
    spawn_agent,
};

/// A process to trace that does nothing (killed on drop).
fn sleeper() -> Guard {
    Guard::new(
        Command::new("sleep")
            .arg("600")
            .spawn()
            .expect("sleep runs"),
    )
}

/// The address in the start-up line "… metrics on http(s)://ADDR/metrics".
fn address(line: &str) -> String {
    let rest = line
        .split("://")
        .nth(1)
        .unwrap_or_else(|| panic!("no metrics URL in the start-up line: {line}"));
    let addr = rest.split("/metrics").next().unwrap().to_string();
    assert!(
        !addr.ends_with(":0"),
        "the start-up line names port 0: {line}"
    );
    addr
}

/// `curl ARGS URL`: the HTTP status and the body.
fn curl(args: &[&str], url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", "-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn landing_page_health_404_and_process_metrics() {
    let target = sleeper();
    let pid = target.id().to_string();
    let (_agent, _err, line) = spawn_agent(&["-p", &pid, "--listen", "127.0.0.1:0"]);
    let addr = address(&line);
    assert!(line.contains("metrics on http://127.0.0.1:"), "{line}");
    let (code, body) = curl(&[], &format!("http://{addr}/"));
    assert_eq!(code, 200, "/: {body}");
    assert!(
        body.contains("href=\"metrics\""),
        "no link to the metrics: {body}"
    );
    for path in ["/-/healthy", "/-/ready"] {
        let (code, body) = curl(&[], &format!("http://{addr}{path}"));
        assert_eq!(code, 200, "{path}: {body}");
    }
    let (code, body) = curl(&[], &format!("http://{addr}/no-such-page"));
    assert_eq!((code, body.as_str()), (404, "404 page not found\n"));

    let (code, page) = curl(&[], &format!("http://{addr}/metrics"));
    assert_eq!(code, 200);
    let get = |name: &str| value(&page, name, &[]).unwrap_or_else(|| panic!("no {name}:\n{page}"));
    // Loading the kernel programs takes the agent well under a second of CPU: whole
    // seconds would read 0.
    assert!(get("process_cpu_seconds_total") > 0.0, "{page}");
    assert!(get("process_open_fds") > 3.0, "{page}");
    assert!(get("process_max_fds") >= get("process_open_fds"), "{page}");
    assert!(get("process_resident_memory_bytes") > 1e6, "{page}");
    assert!(get("process_virtual_memory_bytes") > get("process_resident_memory_bytes"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = get("process_start_time_seconds");
    assert!(
        started <= now + 1.0 && started > now - 3600.0,
        "start time {started}, now {now}"
    );
}

/// A CA and a certificate for 127.0.0.1 signed by it, made with openssl in `dir`:
/// ca.pem, server.pem, server.key.
fn certificates(dir: &TempDir) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&dir.0)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=phasebox test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.path("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ]);
}

/// A Prometheus job scraping `addr` over TLS with basic auth.
fn tls_job(name: &str, addr: &str, dir: &TempDir, password: &str) -> String {
    format!(
        "  - job_name: {name}\n    scheme: https\n    tls_config:\n      ca_file: {}\n    \
         basic_auth:\n      username: alice\n      password: {password}\n    \
         static_configs:\n      - targets: ['{addr}']\n",
        dir.path("ca.pem").display()
    )
}

#[test]
fn tls_and_basic_auth_with_a_real_prometheus() {
    let dir = TempDir::new("exporter-tls");
    certificates(&dir);
    let hash = bcrypt::hash("right horse", 10).unwrap();
    let config = dir.path("web.yml");
    // Relative paths are the config file's directory's, as in the exporter toolkit.
    std::fs::write(
        &config,
        format!(
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n\
             basic_auth_users:\n  alice: {hash}\n"
        ),
    )
    .unwrap();
    let target = sleeper();
    let pid = target.id().to_string();
    let (_agent, _err, line) = spawn_agent(&[
        "-p",
        &pid,
        "--listen",
        "127.0.0.1:0",
        "--web.config.file",
        config.to_str().unwrap(),
    ]);
    assert!(line.contains("metrics on https://127.0.0.1:"), "{line}");
    let addr = address(&line);
    let url = format!("https://{addr}/metrics");
    let ca = dir.path("ca.pem");
    let ca = ca.to_str().unwrap();

    let (code, page) = curl(&["--cacert", ca, "-u", "alice:right horse"], &url);
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("phasebox_build_info"), "{page}");
    for (args, why) in [
        (
            vec!["--cacert", ca, "-u", "alice:wrong"],
            "a wrong password",
        ),
        (
            vec!["--cacert", ca, "-u", "bob:right horse"],
            "an unknown user",
        ),
        (vec!["--cacert", ca], "no password"),
    ] {
        let (code, body) = curl(&args, &url);
        assert_eq!(code, 401, "{why}: {body}");
        assert!(!body.contains("phasebox_"), "{why} got the metrics");
    }
    let (code, _) = curl(&["-u", "alice:right horse"], &url);
    assert_eq!(
        code, 0,
        "a certificate no CA of the client's signed was accepted"
    );
    let (code, _) = curl(
        &["-u", "alice:right horse"],
        &format!("http://{addr}/metrics"),
    );
    assert_ne!(code, 200, "plain HTTP answered");

    let jobs = tls_job("phasebox", &addr, &dir, "right horse")
        + &tls_job("wrong-password", &addr, &dir, "wrong");
    let prom = Prometheus::start_jobs(&jobs);
    assert_eq!(prom.query_one(r#"up{job="phasebox"}"#), Some(1.0));
    assert!(
        prom.query_one(r#"phasebox_tracked_processes{job="phasebox"}"#) >= Some(1.0),
        "Prometheus has no phasebox series over TLS"
    );
    let error = eventually(
        Duration::from_secs(30),
        "the wrong password's scrape",
        || {
            let targets: serde_json::Value =
                serde_json::from_str(&prom.get("/api/v1/targets")).unwrap_or_default();
            let wrong = targets["data"]["activeTargets"]
                .as_array()?
                .iter()
                .find(|t| t["labels"]["job"] == "wrong-password")?
                .clone();
            (wrong["health"] == "down").then(|| wrong["lastError"].to_string())
        },
    );
    assert!(
        error.contains("401"),
        "the wrong password's scrape failed otherwise: {error}"
    );
    assert_eq!(prom.query_one(r#"up{job="wrong-password"}"#), Some(0.0));
}

/// Runs the agent with `--web.config.file CONFIG` (written to a file first).
fn agent_with_web_config(dir: &TempDir, config: &str) -> std::process::Output {
    let path = dir.path("web.yml");
    std::fs::write(&path, config).unwrap();
    let target = sleeper();
    let pid = target.id().to_string();
    phasebox(&[
        "agent",
        "-p",
        &pid,
        "--listen",
        "127.0.0.1:0",
        "--web.config.file",
        path.to_str().unwrap(),
    ])
}

#[test]
fn bad_web_configs_get_one_sentence() {
    let dir = TempDir::new("exporter-bad-config");
    for (config, needle) in [
        ("tls_server_config: [\n", "is not usable"),
        (
            "tls_server_config:\n  cert_file: nowhere.pem\n  key_file: nowhere.key\n",
            "nowhere.pem",
        ),
        (
            "basic_auth_users:\n  alice: plaintext\n",
            "not a bcrypt hash",
        ),
        (
            "tls_server_configs:\n  cert_file: a\n",
            "tls_server_configs",
        ),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n",
            "not supported",
        ),
    ] {
        let out = agent_with_web_config(&dir, config);
        assert_clear_failure(&out, needle);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("web.yml"),
            "{config}"
        );
    }
    let missing = dir.path("absent.yml");
    let out = phasebox(&[
        "agent",
        "-p",
        "1",
        "--web.config.file",
        missing.to_str().unwrap(),
    ]);
    assert_clear_failure(&out, "cannot read the web config file");
}

#[test]
fn json_and_logfmt_logs_with_the_port_got() {
    let target = sleeper();
    let pid = target.id().to_string();
    let (mut agent, err, line) = spawn_agent(&[
        "-p",
        &pid,
        "--listen",
        "127.0.0.1:0",
        "--log.format",
        "json",
        "-v",
    ]);
    let first: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_eq!(first["level"], "INFO", "{line}");
    let msg = first["msg"].as_str().unwrap();
    let addr = address(msg);
    // The log goes on in JSON, to the last line.
    let (code, _) = curl(&[], &format!("http://{addr}/metrics"));
    assert_eq!(code, 200);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    assert!(agent.wait().unwrap().success());
    let rest: Vec<String> = err.lines().map(Result::unwrap).collect();
    assert!(!rest.is_empty(), "nothing logged at the end");
    for l in &rest {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["time"].is_string() && v["msg"].is_string(), "{l}");
    }

    let out = Command::new(phasebox_bin())
        .args([
            "agent",
            "-p",
            &pid,
            "--listen",
            "127.0.0.1:0",
            "--log.format",
            "logfmt",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut agent = Guard::new(out);
    let mut line = String::new();
    let mut err = std::io::BufReader::new(agent.stderr.take().unwrap());
    err.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("time=") && line.contains(" level=INFO msg=\""),
        "{line}"
    );
    address(&line);
    let out = phasebox(&["agent", "-p", &pid, "--log.level", "loud"]);
    assert_clear_failure(&out, "loud");
}

/// The calls nginx's workers make while they start, in Prometheus, over the last `window`.
const NEW_WORKERS: &str = r#"sum(increase(phasebox_syscalls_total{role="worker",phase="worker-process-initialization"}[1m]))"#;

#[test]
fn a_reload_shows_in_increase() {
    let nginx = Nginx::start_with(1, &[]);
    let pid = nginx.pid().to_string();
    let (_agent, _err, line) =
        spawn_agent(&["-p", &pid, "--phases", "nginx", "--listen", "127.0.0.1:0"]);
    let addr = address(&line);
    let prom = Prometheus::start(&addr);
    nginx.curl("/", 5);
    // Attached to a running nginx: no worker started under the agent yet.
    let before = prom.query_one(
        r#"count(phasebox_syscalls_total{role="worker",phase="worker-process-initialization"})"#,
    );
    assert_eq!(before, None, "a worker's start seen before any reload");
    nginx.signal("reload");
    let grew = eventually(
        Duration::from_secs(30),
        "increase() over the reload",
        || {
            nginx.curl("/", 1);
            prom.query_one(NEW_WORKERS).filter(|v| *v > 0.0)
        },
    );
    // The new worker's startup calls, all of them: the series started at 0.
    let total = prom
        .query_one(
            r#"sum(phasebox_syscalls_total{role="worker",phase="worker-process-initialization"})"#,
        )
        .unwrap();
    assert!(grew > 0.0 && total > 0.0, "increase {grew}, total {total}");
}
