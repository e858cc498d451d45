//! `phasebox record -p MASTER` on a real nginx: sees the worker serve curl requests, and
//! follows the new worker after `nginx -s reload` without restarting.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use phasebox_tests::{TempDir, nginx::Nginx, phasebox_bin, process_counts, read_json};

const REQUESTS: usize = 20;

#[test]
fn record_follows_workers_across_reload() {
    let nginx = Nginx::start();
    let old_workers = nginx.workers();
    assert_eq!(old_workers.len(), 1, "one worker expected");
    let dir = TempDir::new("record");
    let summary = dir.path("summary.json");
    let prof = dir.path("profile.json");
    let mut pb = Command::new(phasebox_bin())
        .args([
            "record",
            "-p",
            &nginx.pid().to_string(),
            "--summary",
            summary.to_str().unwrap(),
            "--phases",
            "nginx",
            "--profile",
            prof.to_str().unwrap(),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until phasebox says it is tracing.
    let mut stderr = BufReader::new(pb.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(
        line.contains("tracing pid"),
        "phasebox did not start: {line}"
    );

    let codes = nginx.curl("/index.html", REQUESTS);
    assert!(codes.iter().all(|c| c == "200"), "{codes:?}");

    nginx.signal("reload");
    let deadline = Instant::now() + Duration::from_secs(10);
    let new_worker = loop {
        let w = nginx.workers();
        if let [only] = w.as_slice()
            && !old_workers.contains(only)
        {
            break *only;
        }
        assert!(
            Instant::now() < deadline,
            "no new worker after reload: {w:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let codes = nginx.curl("/big.bin", REQUESTS);
    assert!(codes.iter().all(|c| c == "200"), "{codes:?}");

    // SAFETY: signalling our own child.
    unsafe { libc::kill(pb.id() as i32, libc::SIGINT) };
    let status = pb.wait().unwrap();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    assert!(status.success(), "phasebox failed: {rest}");

    let s = read_json(&summary);
    let procs = s["processes"].as_array().unwrap();
    let find = |pid: u32| {
        procs
            .iter()
            .find(|p| p["pid"] == pid)
            .unwrap_or_else(|| panic!("pid {pid} not in summary: {procs:?}"))
    };
    for (worker, label) in [
        (old_workers[0], "first worker"),
        (new_worker, "worker after reload"),
    ] {
        let p = find(worker);
        assert_eq!(p["ppid"], nginx.pid(), "{label}");
        let c = process_counts(p);
        for name in ["accept4", "recvfrom", "close", "epoll_wait"] {
            assert!(
                c.get(name).is_some_and(|v| v.0 > 0),
                "{label} made no {name}: {c:?}"
            );
        }
        assert!(
            c.contains_key("writev") || c.contains_key("sendfile"),
            "{label} sent nothing: {c:?}"
        );
        assert!(
            c["accept4"].0 >= REQUESTS as u64,
            "{label}: {} accept4 for {REQUESTS} requests",
            c["accept4"].0
        );
        eprintln!(
            "{label} (pid {worker}): {} accept4, {} distinct syscalls",
            c["accept4"].0,
            c.len()
        );
    }
    // The new worker was forked while tracing, so its exe and comm were inherited.
    let w = find(new_worker);
    assert!(w["exe"].as_str().unwrap().ends_with("nginx"), "{w:?}");
    assert!(
        c_has(find(nginx.pid()), "clone"),
        "master forked the new worker"
    );
    check_attached_profile(&prof);
}

/// A profile learned by attaching late: incomplete, and the running processes start in their
/// steady phases.
fn check_attached_profile(path: &std::path::Path) {
    let p = phasebox_tests::profile::load(path);
    assert_eq!(p["complete"], false);
    assert_eq!(p["runs"][0]["how"], "attached");
    let worker = phasebox_tests::profile::role(&p, "worker");
    let serving = phasebox_tests::profile::phase(worker, "accepting-and-serving-requests");
    assert!(phasebox_tests::profile::syscalls(serving).contains("accept4"));
    let master = phasebox_tests::profile::role(&p, "master");
    assert!(
        phasebox_tests::profile::phase_names(master)
            .contains(&"setting-up-worker-processes".to_string())
    );
}

fn c_has(p: &serde_json::Value, name: &str) -> bool {
    process_counts(p).contains_key(name)
}
