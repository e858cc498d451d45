//! Monitor mode: with a profile learned from a server's normal run, a request that makes it
//! call ptrace in its serving phase raises the violation counter; with kill on, the kernel
//! kills the server and the agent keeps running.
use std::io::{BufReader, Read};
use std::net::TcpStream;
use std::process::{Child, Command};
use std::time::Duration;

use phasebox_tests::{
    CARGO_LIBRARY_PATH, TempDir, ask, fixture, nginx::free_port, phasebox, phasebox_bin,
};

/// `sh -c 'SERVER PORT; sleep 60'`: a tree that outlives the server.
fn shell_with_server(port: u16) -> Child {
    let script = format!("{} {port}; sleep 60", fixture("phased_server").display());
    Command::new("/bin/sh")
        .args(["-c", &script])
        .env_remove(CARGO_LIBRARY_PATH)
        .spawn()
        .unwrap()
}

fn metrics(listen: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", &format!("http://{listen}/metrics")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn value(text: &str, prefix: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix) && l.contains(label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

fn start_agent(
    pid: u32,
    monitor: &str,
    listen: &str,
    on: &str,
) -> (Child, BufReader<std::process::ChildStderr>) {
    let pid = pid.to_string();
    let args = [
        "-p",
        &pid,
        "--phases",
        "generic",
        "--listen",
        listen,
        "--monitor",
        monitor,
        "--on-violation",
        on,
    ];
    let (agent, err, line) = phasebox_tests::spawn_agent(&args);
    assert!(line.contains("metrics on"), "agent did not start: {line}");
    (agent, err)
}

#[test]
fn violations_are_counted_and_killed() {
    let dir = TempDir::new("monitor");
    let prof = dir.path("normal.json");
    // Learn a normal run of the same tree.
    let port = free_port();
    let script = format!("{} {port}; true", fixture("phased_server").display());
    let mut learn = Command::new(phasebox_bin())
        .args([
            "run",
            "-q",
            "--phases",
            "generic",
            "--profile",
            prof.to_str().unwrap(),
            "--",
            "/bin/sh",
            "-c",
            &script,
        ])
        .env_remove(CARGO_LIBRARY_PATH)
        .spawn()
        .unwrap();
    for _ in 0..3 {
        assert_eq!(ask(port, "GET"), "hello\n");
    }
    assert_eq!(ask(port, "quit"), "bye\n");
    assert!(learn.wait().unwrap().success());
    let show = phasebox(&["profile", "show", prof.to_str().unwrap()]);
    eprintln!("{}", String::from_utf8_lossy(&show.stdout));

    // Log mode: counted, reported once.
    let port = free_port();
    let mut tree = shell_with_server(port);
    assert_eq!(ask(port, "GET"), "hello\n");
    let listen = format!("127.0.0.1:{}", free_port());
    let (mut agent, mut err) = start_agent(tree.id(), prof.to_str().unwrap(), &listen, "log");
    assert_eq!(ask(port, "GET"), "hello\n");
    assert!(ask(port, "ptrace").starts_with("ptrace: "));
    assert!(ask(port, "ptrace").starts_with("ptrace: "));
    std::thread::sleep(Duration::from_millis(2500));
    let text = metrics(&listen);
    let v = value(
        &text,
        "phasebox_profile_violations_total{",
        r#"syscall="ptrace""#,
    );
    assert!(v >= 2.0, "ptrace violations: {v}\n{text}");
    assert_eq!(
        value(
            &text,
            "phasebox_profile_violations_total{",
            r#"syscall="accept4""#
        ),
        0.0
    );
    assert_eq!(ask(port, "quit"), "bye\n");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    agent.wait().unwrap();
    let mut log = String::new();
    err.read_to_string(&mut log).unwrap();
    assert!(log.contains("called ptrace"), "{log}");
    assert_eq!(
        log.matches("called ptrace").count(),
        1,
        "logged once: {log}"
    );
    let _ = tree.kill();
    let _ = tree.wait();

    // Kill mode: the kernel kills the server; the agent and the rest of the tree go on.
    let port = free_port();
    let mut tree = shell_with_server(port);
    assert_eq!(ask(port, "GET"), "hello\n");
    let listen = format!("127.0.0.1:{}", free_port());
    let (mut agent, _err) = start_agent(tree.id(), prof.to_str().unwrap(), &listen, "kill");
    assert_eq!(ask(port, "GET"), "hello\n");
    std::thread::sleep(Duration::from_millis(2500)); // the allowed set reaches the kernel
    assert_eq!(
        ask(port, "ptrace"),
        "",
        "the server answered instead of being killed"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "server still listening"
    );
    assert!(agent.try_wait().unwrap().is_none(), "the agent stopped");
    let text = metrics(&listen);
    assert!(
        value(&text, "phasebox_processes_killed_total", "") >= 1.0,
        "{text}"
    );
    let _ = agent.kill();
    let _ = agent.wait();
    let _ = tree.kill();
    let _ = tree.wait();
}

#[test]
fn agent_waits_for_a_program_by_name_and_sees_its_startup() {
    let dir = TempDir::new("exec-name");
    let prof = dir.path("server.json");
    let listen = format!("127.0.0.1:{}", free_port());
    let args = [
        "--exec-name",
        "phased_server",
        "--phases",
        "generic",
        "--listen",
        &listen,
        "--profile",
        prof.to_str().unwrap(),
        "--checkpoint",
        "1s",
    ];
    let (mut agent, _err, line) = phasebox_tests::spawn_agent(&args);
    assert!(line.contains("waiting for phased_server"), "{line}");
    let port = free_port();
    let mut server = Command::new(fixture("phased_server"))
        .arg(port.to_string())
        .env_remove(CARGO_LIBRARY_PATH)
        .spawn()
        .unwrap();
    assert_eq!(ask(port, "GET"), "hello\n");
    assert_eq!(ask(port, "quit"), "bye\n");
    assert!(server.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        agent.try_wait().unwrap().is_none(),
        "the agent keeps waiting after the program ends"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    assert!(agent.wait().unwrap().success());

    let p = phasebox_tests::profile::load(&prof);
    assert_eq!(
        p["complete"], true,
        "seen from its execve: {}",
        p["incomplete_reasons"]
    );
    let main = phasebox_tests::profile::role(&p, "main");
    let names = phasebox_tests::profile::phase_names(main);
    assert_eq!(
        names,
        ["exec", "loading", "initialization", "serving", "exit"]
    );
    let sys =
        |ph: &str| phasebox_tests::profile::syscalls(phasebox_tests::profile::phase(main, ph));
    assert!(sys("exec").contains("execve"));
    assert!(sys("initialization").contains("socket") && sys("initialization").contains("listen"));
    assert!(sys("serving").contains("accept4"));
}
