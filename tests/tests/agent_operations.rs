//! The agent attached to a running nginx (2 workers) through what a deployment does to it:
//! requests, 404s, two reloads, a log reopening, a worker killed and respawned. Every call
//! is counted in the phase its process was in when it made it (no startup call in a serving
//! phase, no unknown role or phase), the profile written at the end equals the scraped
//! counters, and a monitor with that profile over the same operations sees nothing wrong.
use std::collections::BTreeMap;
use std::time::Duration;

use phasebox_tests::{
    Guard, TempDir,
    metrics::{parse, settled, value},
    nginx::{Nginx, free_port},
    prometheus::Prometheus,
    spawn_agent,
};

const WORKERS: usize = 2;
const SERVING: &str = "accepting-and-serving-requests";
/// Calls a worker makes while it starts, never while it serves.
const STARTUP_ONLY: &[&str] = &[
    "setuid",
    "setgid",
    "setgroups",
    "prctl",
    "epoll_create",
    "epoll_create1",
    "eventfd2",
    "socketpair",
];

fn agent(
    pid: u32,
    listen: &str,
    extra: &[&str],
) -> (Guard, std::io::BufReader<std::process::ChildStderr>) {
    let pid = pid.to_string();
    let mut args = vec!["-p", &pid, "--phases", "nginx", "--listen", listen];
    args.extend_from_slice(extra);
    let (child, err, line) = spawn_agent(&args);
    assert!(line.contains("metrics on"), "agent did not start: {line}");
    (child, err)
}

fn stop(mut agent: Guard, err: std::io::BufReader<std::process::ChildStderr>) -> String {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    assert!(agent.wait().unwrap().success());
    let mut log = String::new();
    std::io::Read::read_to_string(&mut { err }, &mut log).unwrap();
    log
}

/// Calls per (role, phase, syscall) in a profile.
fn profile_calls(path: &std::path::Path) -> BTreeMap<(String, String, String), u64> {
    let p = phasebox_tests::profile::load(path);
    let mut out = BTreeMap::new();
    for role in p["roles"].as_array().unwrap() {
        let r = role["name"].as_str().unwrap();
        for phase in role["phases"].as_array().unwrap() {
            let ph = phase["name"].as_str().unwrap();
            for (sc, u) in phase["syscalls"].as_object().unwrap() {
                let key = (r.to_string(), ph.to_string(), sc.clone());
                out.insert(key, u["calls"].as_u64().unwrap());
            }
        }
    }
    out
}

/// The agent's page once its call counters have stopped moving (2 s apart, 30 s at most).
fn settled_counts(listen: &str) -> String {
    settled(
        listen,
        "phasebox_syscalls_total",
        Duration::from_secs(2),
        Duration::from_secs(30),
    )
}

#[test]
fn metrics_follow_each_call_through_reloads_and_equal_the_profile() {
    let nginx = Nginx::start_with(WORKERS, &[]);
    let dir = TempDir::new("agent-operations");
    let prof = dir.path("learned.json");
    let listen = format!("127.0.0.1:{}", free_port());
    let prof_arg = prof.to_str().unwrap();
    let (agent, err) = agent(nginx.pid(), &listen, &["--profile", prof_arg]);
    let prom = Prometheus::start(&listen);
    nginx.operate(WORKERS);
    let page = settled_counts(&listen);
    let samples: Vec<_> = parse(&page)
        .into_iter()
        .filter(|s| s.name == "phasebox_syscalls_total")
        .collect();
    for s in &samples {
        assert!(
            s.labels["role"] != "unknown" && s.labels["phase"] != "unknown",
            "a series without role or phase: {s:?}"
        );
        if s.labels["role"] == "worker" && s.labels["phase"] == SERVING {
            assert!(
                !STARTUP_ONLY.contains(&s.labels["syscall"].as_str()),
                "a startup call counted while serving: {s:?}"
            );
        }
    }
    // New workers started after the reloads and the kill: their startup is where it belongs.
    let setuid = value(
        &page,
        "phasebox_syscalls_total",
        &[
            ("role", "worker"),
            ("phase", "worker-process-initialization"),
            ("syscall", "setuid"),
        ],
    );
    assert!(
        setuid.unwrap_or(0.0) >= 3.0 * WORKERS as f64 - 1.0,
        "setuid: {setuid:?}\n{page}"
    );

    // Prometheus saw the same count as the agent's own page.
    let query = format!(
        r#"sum(phasebox_syscalls_total{{role="worker",phase="{SERVING}",syscall="accept4"}})"#
    );
    let own = value(
        &page,
        "phasebox_syscalls_total",
        &[
            ("role", "worker"),
            ("phase", SERVING),
            ("syscall", "accept4"),
        ],
    )
    .expect("accept4 while serving");
    phasebox_tests::metrics::eventually(Duration::from_secs(15), "prometheus to catch up", || {
        (prom.query_one(&query) == Some(own)).then_some(())
    });

    let log = stop(agent, err);
    assert!(!log.contains("violation"), "{log}");
    // The profile written at the end holds exactly the scraped counts.
    let scraped: BTreeMap<(String, String, String), u64> = samples
        .iter()
        .map(|s| {
            let key = (
                s.labels["role"].clone(),
                s.labels["phase"].clone(),
                s.labels["syscall"].clone(),
            );
            (key, s.value as u64)
        })
        .collect();
    let learned = profile_calls(&prof);
    let diff: Vec<String> = scraped
        .keys()
        .chain(learned.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| scraped.get(k) != learned.get(k))
        .map(|k| {
            format!(
                "{k:?}: scraped {:?}, profile {:?}",
                scraped.get(k),
                learned.get(k)
            )
        })
        .collect();
    assert!(
        diff.is_empty(),
        "profile and metrics differ:\n{}",
        diff.join("\n")
    );
}

#[test]
fn a_profile_learned_over_the_operations_raises_nothing_when_they_repeat() {
    let dir = TempDir::new("agent-monitor-repeat");
    let prof = dir.path("learned.json");
    {
        let nginx = Nginx::start_with(WORKERS, &[]);
        let listen = format!("127.0.0.1:{}", free_port());
        let (agent, err) = agent(nginx.pid(), &listen, &["--profile", prof.to_str().unwrap()]);
        nginx.operate(WORKERS);
        settled_counts(&listen);
        stop(agent, err);
    }
    for mode in ["log", "kill"] {
        let nginx = Nginx::start_with(WORKERS, &[]);
        let listen = format!("127.0.0.1:{}", free_port());
        let monitor = ["--monitor", prof.to_str().unwrap(), "--on-violation", mode];
        let (agent, err) = agent(nginx.pid(), &listen, &monitor);
        nginx.operate(WORKERS);
        let page = settled_counts(&listen);
        let violations: Vec<_> = parse(&page)
            .into_iter()
            .filter(|s| s.name == "phasebox_profile_violations_total" && s.value > 0.0)
            .collect();
        assert!(violations.is_empty(), "{mode}: {violations:?}");
        assert_eq!(
            value(&page, "phasebox_processes_killed_total", &[]),
            Some(0.0),
            "{mode}"
        );
        assert_eq!(
            nginx.workers().len(),
            WORKERS,
            "{mode}: a worker is missing"
        );
        let log = stop(agent, err);
        assert!(!log.contains("violation"), "{mode}: {log}");
    }
}
