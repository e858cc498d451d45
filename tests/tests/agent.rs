//! `phasebox agent` on a running nginx: its /metrics count the worker's serving calls, and
//! after `kill -9` the last checkpoint is a valid profile and no phasebox program stays loaded.
use std::process::{Command, Stdio};
use std::time::Duration;

use phasebox_tests::{
    TempDir,
    metrics::{eventually, scrape},
    nginx::{Nginx, free_port},
    phasebox,
    prometheus::Prometheus,
    spawn_agent,
};

const REQUESTS: u64 = 15;

fn metric(text: &str, prefix: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(prefix) && labels.iter().all(|x| l.contains(x)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn agent_metrics_checkpoints_and_kill() {
    let nginx = Nginx::start();
    let dir = TempDir::new("agent");
    let prof = dir.path("checkpoint.json");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let pid = nginx.pid().to_string();
    let args = [
        "-p",
        &pid,
        "--phases",
        "nginx",
        "--listen",
        &listen,
        "--profile",
        prof.to_str().unwrap(),
        "--checkpoint",
        "1s",
    ];
    let (mut agent, _err, line) = spawn_agent(&args);
    assert!(line.contains("metrics on"), "agent did not start: {line}");

    assert!(
        nginx
            .curl("/index.html", REQUESTS as usize)
            .iter()
            .all(|c| c == "200")
    );
    // A refresh that counted the requests, and a checkpoint.
    let text = eventually(Duration::from_secs(15), "the requests counted", || {
        let text = scrape(&listen);
        let n = metric(&text, "phasebox_syscalls_total{", &[r#"syscall="accept4""#])?;
        (n >= REQUESTS as f64 && prof.exists()).then_some(text)
    });
    let accepts = metric(
        &text,
        "phasebox_syscalls_total{",
        &[
            r#"role="worker""#,
            r#"syscall="accept4""#,
            r#"phase="accepting-and-serving-requests""#,
        ],
    )
    .unwrap_or_else(|| panic!("no accept4 series:\n{text}"));
    assert!(
        accepts >= REQUESTS as f64,
        "{accepts} accept4 for {REQUESTS} requests"
    );
    assert_eq!(
        metric(
            &text,
            "phasebox_phase_info{",
            &[
                r#"role="worker""#,
                r#"phase="accepting-and-serving-requests""#
            ]
        ),
        Some(1.0)
    );
    assert_eq!(metric(&text, "phasebox_tracked_processes", &[]), Some(2.0));
    assert!(
        metric(
            &text,
            "phasebox_bpf_runs_total{",
            &[r#"program="pb_sys_enter""#]
        )
        .unwrap_or(0.0)
            > 0.0
    );
    assert!(!text.contains("pid="), "no pid labels");

    // kill -9: the last checkpoint stands, and the kernel unloads the agent's programs.
    let programs = phasebox_tests::bpf_programs_of(agent.id());
    assert!(
        programs.len() >= 4,
        "the agent holds its programs: {programs:?}"
    );
    agent.kill().unwrap();
    agent.wait().unwrap();
    let show = phasebox(&["profile", "show", prof.to_str().unwrap()]);
    assert!(
        show.status.success(),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    assert!(String::from_utf8_lossy(&show.stdout).contains("accepting-and-serving-requests"));
    eventually(
        Duration::from_secs(10),
        "the agent's programs to unload",
        || {
            let loaded = phasebox_tests::loaded_bpf_programs();
            programs.is_disjoint(&loaded).then_some(())
        },
    );
}

#[test]
fn prometheus_scrapes_the_agent() {
    let nginx = Nginx::start();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let pid = nginx.pid().to_string();
    let (agent, _err, line) = spawn_agent(&["-p", &pid, "--phases", "nginx", "--listen", &listen]);
    assert!(line.contains("metrics on"), "agent did not start: {line}");
    let prom = Prometheus::start(&listen);
    assert!(
        nginx
            .curl("/index.html", REQUESTS as usize)
            .iter()
            .all(|c| c == "200")
    );
    let labels = [r#"role="worker""#, r#"syscall="accept4""#];
    let text = eventually(Duration::from_secs(15), "the requests counted", || {
        let text = scrape(&listen);
        let n = metric(&text, "phasebox_syscalls_total{", &labels)?;
        (n >= REQUESTS as f64).then_some(text)
    });
    let own =
        metric(&text, "phasebox_syscalls_total{", &labels).expect("agent's own accept4 count");
    let query = r#"sum(phasebox_syscalls_total{role="worker",syscall="accept4"})"#;
    let scraped = eventually(Duration::from_secs(15), "prometheus to scrape it", || {
        prom.query_one(query).filter(|&v| v == own)
    });
    eprintln!("accept4: agent says {own}, prometheus says {scraped}");
    assert_eq!(own, scraped, "prometheus and the agent disagree");
    assert!(own >= REQUESTS as f64);
    let tracked = prom
        .query_one("phasebox_tracked_processes")
        .expect("tracked processes in prometheus");
    assert_eq!(tracked, 2.0);

    // promtool finds nothing to complain about in the exposition.
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed");
    std::io::Write::write_all(check.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let res = check.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(
        res.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}"
    );
    drop(agent);
}
