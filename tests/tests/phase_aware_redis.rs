//! Phase-aware enforcement of a profile whose role never reached a steady phase: redis learned
//! with automatic phases through a few operations has `work`, never `steady`, so the profile
//! does not say where its serving begins. Under load, redis's loop is recognized at run time;
//! none of its calls may then be denied as startup-only (every learned call was, and redis
//! had write, close and epoll_wait denied and was killed).
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use phasebox_tests::{Guard, TempDir, nginx::free_port, phasebox_bin, redis};

const WAIT: Duration = Duration::from_secs(60);

/// `phasebox ARGS -- redis-server CONF` with redis's data in `dir`, in a process group of its
/// own; its port.
fn start(dir: &std::path::Path, args: &[&str]) -> (Guard, u16) {
    std::fs::create_dir_all(dir).unwrap();
    let port = free_port();
    let conf = dir.join("redis.conf");
    std::fs::write(&conf, redis::config(dir, port)).unwrap();
    let child = Command::new(phasebox_bin())
        .args(args)
        .arg("--")
        .arg(redis::SERVER)
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("phasebox.err")).unwrap())
        .env_remove(phasebox_tests::CARGO_LIBRARY_PATH)
        .process_group(0)
        .spawn()
        .unwrap();
    let guard = Guard::group(child);
    redis::wait_up(port, WAIT).unwrap();
    (guard, port)
}

/// SHUTDOWN SAVE, then the exit status of phasebox (redis's).
fn shut_down(mut g: Guard, port: u16) -> i32 {
    let _ = redis::cli(port, &["SHUTDOWN", "SAVE"]);
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(st) = g.try_wait().unwrap() {
            return st.code().unwrap_or(-1);
        }
        assert!(Instant::now() < deadline, "redis did not shut down");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// BGSAVE into `dir`, waited for by watching its file rather than asking redis again and
/// again: a loop of requests while learning would be recognized as redis's steady loop (on a
/// busy machine, where the save takes longer, it was). Then one look at the save's status.
fn quiet_bgsave(dir: &std::path::Path, port: u16) {
    let dump = dir.join("dump.rdb");
    assert!(!dump.exists(), "no save before this one");
    let started = redis::cli(port, &["BGSAVE"]).unwrap();
    assert!(started.contains("Background saving started"), "{started}");
    let deadline = Instant::now() + WAIT;
    while !dump.exists() {
        assert!(
            Instant::now() < deadline,
            "BGSAVE wrote no {}",
            dump.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The child has renamed its file and exits; redis reaps it at its next timer tick.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        redis::info(port, "rdb_last_bgsave_status").as_deref(),
        Some("ok")
    );
}

#[test]
fn redis_without_a_learned_steady_phase_keeps_serving_under_phase_aware_enforcement() {
    let dir = TempDir::new("phase-aware-redis");
    let profile = dir.path("redis.json");
    let p = profile.to_str().unwrap();
    let (learn, port) = start(
        &dir.path("learn"),
        &["run", "-q", "--phases", "auto", "--profile", p],
    );
    redis::cli(port, &["SET", "k", "v"]).unwrap();
    quiet_bgsave(&dir.path("learn"), port);
    redis::cli(port, &["CONFIG", "SET", "hz", "12"]).unwrap();
    redis::cli(port, &["CONFIG", "REWRITE"]).unwrap();
    assert_eq!(shut_down(learn, port), 0);
    let learned = phasebox_tests::profile::load(&profile);
    let main = phasebox_tests::profile::role(&learned, "main");
    let phases = phasebox_tests::profile::phase_names(main);
    assert!(
        !phases.iter().any(|p| p == "steady"),
        "the learning run is meant to be too short for a steady phase: {phases:?}"
    );
    let out = dir.path("phases");
    phasebox_tests::phasebox_ok(&["export", p, "--per-phase", out.to_str().unwrap()]);

    let manifest = out.join("manifest.json");
    let m = manifest.to_str().unwrap();
    let enforced = dir.path("enforced");
    let (run, port) = start(&enforced, &["run", "-q", "--seccomp-phases", m]);
    let bench = Command::new("timeout")
        .args([
            "120",
            "redis-benchmark",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .args(["-q", "-n", "20000", "-c", "8", "-t", "set,get"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&bench.stdout).replace('\r', "\n")
        + &String::from_utf8_lossy(&bench.stderr);
    let err = || std::fs::read_to_string(enforced.join("phasebox.err")).unwrap_or_default();
    assert!(
        bench.status.success() && !said.contains("Error"),
        "redis-benchmark: {said}\n{}",
        err()
    );
    assert_eq!(
        redis::cli(port, &["PING"]).as_deref(),
        Ok("PONG"),
        "{}",
        err()
    );
    redis::bgsave(port, WAIT).unwrap_or_else(|e| panic!("{e}\n{}", err()));
    assert_eq!(shut_down(run, port), 0, "{}", err());
    assert!(!err().contains("phase-aware seccomp denied"), "{}", err());
}
