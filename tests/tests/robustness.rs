//! What users do that is unusual but fair: relative output paths, a closed standard error, pids
//! the kernel reuses, a metrics address open to the network, a checkpoint directory removed
//! under a running agent.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use phasebox_tests::{
    CARGO_LIBRARY_PATH, Guard, TempDir,
    metrics::{eventually, scrape, value},
    nginx::free_port,
    phasebox_bin, phasebox_ok, read_json,
};

#[test]
fn scenarios_write_relative_and_default_output_directories() {
    let dir = TempDir::new("relative-out");
    let set = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/pwd.toml");
    for out in [Some("out/pwd"), None] {
        let mut cmd = Command::new(phasebox_bin());
        cmd.args(["scenarios", "run"])
            .arg(&set)
            .args(["--only", "plain"])
            .current_dir(&dir.0)
            .env_remove(CARGO_LIBRARY_PATH);
        if let Some(o) = out {
            cmd.args(["-o", o]);
        }
        let res = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&res.stderr);
        assert!(res.status.success(), "{out:?}: {stderr}");
        let written = dir.0.join(out.unwrap_or("phasebox-scenarios-pwd"));
        assert!(
            written.join("plain.profile.json").is_file(),
            "{out:?}: {stderr}"
        );
    }
}

#[test]
fn a_closed_standard_error_loses_neither_the_summary_nor_the_exit_status() {
    let dir = TempDir::new("closed-stderr");
    let summary = dir.path("s.json");
    let mut child = Command::new(phasebox_bin())
        .args(["run", "--summary", summary.to_str().unwrap(), "--"])
        .args(["/bin/sh", "-c", "exit 3"])
        .env_remove(CARGO_LIBRARY_PATH)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take()); // the reader goes away: writes to stderr fail with EPIPE
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "the command's exit status");
    let s = read_json(&summary);
    assert!(!s["processes"].as_array().unwrap().is_empty(), "{s}");
}

/// The agent's running log on a standard error that fails, the reader gone (EPIPE) or a full
/// device (ENOSPC): its lines are lost, never its profile or its exit status.
#[test]
fn a_failing_standard_error_loses_neither_the_agents_profile_nor_its_exit_status() {
    let dir = TempDir::new("agent-stderr");
    for (name, full) in [("closed", false), ("full", true)] {
        let profile = dir.path(&format!("{name}.json"));
        let traced = Guard::new(
            Command::new("/bin/sleep")
                .arg("2")
                .env_remove(CARGO_LIBRARY_PATH)
                .spawn()
                .unwrap(),
        );
        let stderr = if full {
            Stdio::from(std::fs::File::create("/dev/full").unwrap())
        } else {
            Stdio::piped()
        };
        let mut agent = Guard::new(
            Command::new(phasebox_bin())
                .args(["agent", "-p", &traced.id().to_string(), "--profile"])
                .arg(&profile)
                .args(["--listen", &format!("127.0.0.1:{}", free_port())])
                .env_remove(CARGO_LIBRARY_PATH)
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap(),
        );
        drop(agent.stderr.take()); // the reader goes away: writes fail with EPIPE
        let status = eventually(Duration::from_secs(30), "the agent to end", || {
            agent.try_wait().unwrap()
        });
        assert_eq!(status.code(), Some(0), "stderr {name}: the exit status");
        let p = read_json(&profile);
        assert!(!p["roles"].as_array().unwrap().is_empty(), "{p}");
    }
}

/// A pid that is free now, far enough from the last one handed out that nothing else takes it
/// during the test.
fn free_pid() -> u32 {
    let max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (1..max)
        .map(|d| (last + 2000 + d) % max)
        .find(|&p| p > 300 && !std::path::Path::new(&format!("/proc/{p}")).exists())
        .unwrap()
}

/// Runs three children that should all get `pid` (ns_last_pid set before each fork) under
/// `phasebox run`; returns the summary and the pids the children really got (another process
/// of the machine may fork in between and take the pid).
fn three_children_at(pid: u32, dir: &TempDir) -> (serde_json::Value, Vec<u32>) {
    let summary = dir.path("s.json");
    let got = dir.path("pids");
    let _ = std::fs::remove_file(&got);
    let script = format!(
        "for i in 1 2 3; do echo {} > /proc/sys/kernel/ns_last_pid; /bin/true & echo $! >> {}; wait; done",
        pid - 1,
        got.display()
    );
    phasebox_ok(&[
        "run",
        "-q",
        "--summary",
        summary.to_str().unwrap(),
        "--",
        "/bin/sh",
        "-c",
        &script,
    ]);
    let pids = std::fs::read_to_string(&got)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    (read_json(&summary), pids)
}

#[test]
fn a_reused_pid_is_two_processes() {
    let dir = TempDir::new("reused-pid");
    // On a busy machine another process may take the pid between the write and a fork: try
    // again with another pid, and check only a run whose children all got it.
    let (s, pid) = (0..5)
        .find_map(|_| {
            let pid = free_pid();
            let (s, got) = three_children_at(pid, &dir);
            (got == [pid; 3]).then_some((s, pid))
        })
        .expect("five times, another process took a pid the test set up: the machine is too busy");
    let same: Vec<&serde_json::Value> = s["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["pid"] == pid)
        .collect();
    assert_eq!(same.len(), 3, "three processes with pid {pid}: {s}");
    let instances: std::collections::BTreeSet<u64> = same
        .iter()
        .map(|p| p["instance"].as_u64().unwrap())
        .collect();
    assert_eq!(instances.len(), 3, "told apart: {s}");
    for p in same {
        assert_eq!(p["syscalls"]["execve"]["calls"], 1, "{p}");
        assert_eq!(p["syscalls"]["exit_group"]["calls"], 1, "{p}");
    }
}

/// Starts `phasebox agent ARGS` and reads its standard error until it says it is up; returns
/// the lines before.
fn agent_until_up(args: &[&str]) -> (Guard, BufReader<std::process::ChildStderr>, String) {
    let mut child = Command::new(phasebox_bin())
        .arg("agent")
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    loop {
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0, "agent ended: {said}");
        said.push_str(&line);
        if line.contains("metrics on") {
            break;
        }
    }
    (Guard::new(child), err, said)
}

#[test]
fn metrics_on_a_network_address_are_said_to_be_reachable() {
    let sleeper = Guard::new(Command::new("sleep").arg("60").spawn().unwrap());
    let pid = sleeper.id().to_string();
    let listen = format!("0.0.0.0:{}", free_port());
    let (_agent, _err, said) = agent_until_up(&["-p", &pid, "--listen", &listen]);
    assert!(said.contains("not a loopback address"), "{said}");
    let loopback = format!("127.0.0.1:{}", free_port());
    let (_agent, _err, said) = agent_until_up(&["-p", &pid, "--listen", &loopback]);
    assert!(!said.contains("loopback"), "{said}");
}

#[test]
fn a_checkpoint_that_cannot_be_written_is_counted_and_the_agent_goes_on() {
    let dir = TempDir::new("checkpoint-gone");
    let sub = dir.path("profiles");
    std::fs::create_dir(&sub).unwrap();
    let prof = sub.join("p.json");
    let sleeper = Guard::new(Command::new("sleep").arg("60").spawn().unwrap());
    let pid = sleeper.id().to_string();
    let listen = format!("127.0.0.1:{}", free_port());
    let (mut agent, err, _) = agent_until_up(&[
        "-p",
        &pid,
        "--listen",
        &listen,
        "--profile",
        prof.to_str().unwrap(),
        "--checkpoint",
        "1s",
    ]);
    std::fs::remove_dir_all(&sub).unwrap();
    eventually(
        Duration::from_secs(15),
        "a failed checkpoint counted",
        || {
            let n = value(&scrape(&listen), "phasebox_checkpoint_failures_total", &[])?;
            (n >= 1.0).then_some(())
        },
    );
    // Still serving, still running.
    assert!(value(&scrape(&listen), "phasebox_tracked_processes", &[]).is_some());
    assert!(agent.try_wait().unwrap().is_none(), "the agent stopped");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    let _ = agent.wait();
    let log: String = err
        .lines()
        .map_while(Result::ok)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(log.contains("checkpoint not written"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}
