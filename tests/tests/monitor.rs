//! Monitor mode: with a profile learned from a server's normal run, a request that makes it
//! call ptrace in its serving phase raises the violation counter; with kill on, the kernel
//! kills the server and the agent keeps running.
use std::io::{BufReader, Read};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use phasebox_tests::{
    CARGO_LIBRARY_PATH, Guard, TempDir, ask, fixture,
    metrics::{eventually, parse, scrape, value},
    nginx::free_port,
    phasebox, phasebox_bin,
};

/// `sh -c 'SERVER PORT & SERVER OTHER; sleep 60'`: two servers in one tree that outlives them.
fn shell_with_two_servers(port: u16, other: u16) -> Guard {
    let server = fixture("phased_server");
    shell(&format!(
        "{s} {port} & {s} {other} & sleep 60",
        s = server.display()
    ))
}

/// `sh -c 'SERVER PORT; sleep 60'`: a tree that outlives the server.
fn shell_with_server(port: u16) -> Guard {
    shell(&format!(
        "{} {port}; sleep 60",
        fixture("phased_server").display()
    ))
}

/// `sh -c SCRIPT` in a process group of its own, killed with the test.
fn shell(script: &str) -> Guard {
    Guard::group(
        Command::new("/bin/sh")
            .args(["-c", script])
            .env_remove(CARGO_LIBRARY_PATH)
            .process_group(0)
            .spawn()
            .unwrap(),
    )
}

fn start_agent(
    pid: u32,
    monitor: &str,
    listen: &str,
    on: &str,
) -> (Guard, BufReader<std::process::ChildStderr>) {
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
    let mut learn = Guard::new(
        Command::new(phasebox_bin())
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
            .unwrap(),
    );
    for _ in 0..3 {
        assert_eq!(ask(port, "GET"), "hello\n");
    }
    assert_eq!(ask(port, "quit"), "bye\n");
    assert!(learn.wait().unwrap().success());
    let show = phasebox(&["profile", "show", prof.to_str().unwrap()]);
    eprintln!("{}", String::from_utf8_lossy(&show.stdout));

    // Log mode: each call counted, the (role, phase, syscall) reported once.
    let port = free_port();
    let tree = shell_with_server(port);
    assert_eq!(ask(port, "GET"), "hello\n");
    let listen = format!("127.0.0.1:{}", free_port());
    let (mut agent, mut err) = start_agent(tree.id(), prof.to_str().unwrap(), &listen, "log");
    assert_eq!(ask(port, "GET"), "hello\n");
    let ptrace = |listen: &str| {
        value(
            &scrape(listen),
            "phasebox_profile_violations_total",
            &[("syscall", "ptrace")],
        )
    };
    assert!(ask(port, "ptrace").starts_with("ptrace: "));
    eventually(Duration::from_secs(10), "one ptrace violation", || {
        (ptrace(&listen) == Some(1.0)).then_some(())
    });
    assert!(ask(port, "ptrace").starts_with("ptrace: "));
    eventually(Duration::from_secs(10), "two ptrace violations", || {
        (ptrace(&listen) == Some(2.0)).then_some(())
    });
    let text = scrape(&listen);
    // The ptrace request calls getpid too; nothing the normal requests do violates.
    let others: Vec<_> = parse(&text)
        .into_iter()
        .filter(|s| {
            s.name == "phasebox_profile_violations_total"
                && !["ptrace", "getpid"].contains(&s.labels["syscall"].as_str())
        })
        .collect();
    assert!(
        others.is_empty(),
        "only the ptrace request violates: {others:?}"
    );
    assert_eq!(ask(port, "quit"), "bye\n");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    agent.wait().unwrap();
    let mut log = String::new();
    err.read_to_string(&mut log).unwrap();
    assert_eq!(
        log.matches("called ptrace").count(),
        1,
        "logged once: {log}"
    );
    // (After the server quits, the shell runs `sleep`, a program the profile never saw.)
    let server_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("(phased_server,"))
        .collect();
    assert_eq!(server_lines.len(), 2, "ptrace and getpid, once each: {log}");
    drop(tree);

    // Kill mode: the kernel kills the server at its ptrace; the agent, the shell around the
    // server and a second server in the same tree go on.
    let (port, other_port) = (free_port(), free_port());
    let mut tree = shell_with_two_servers(port, other_port);
    assert_eq!(ask(port, "GET"), "hello\n");
    assert_eq!(ask(other_port, "GET"), "hello\n");
    let listen = format!("127.0.0.1:{}", free_port());
    let (mut agent, _err) = start_agent(tree.id(), prof.to_str().unwrap(), &listen, "kill");
    assert_eq!(ask(port, "GET"), "hello\n");
    // The kernel has the server's allowed set from the refresh that first counts its calls.
    eventually(
        Duration::from_secs(10),
        "the server's calls counted",
        || {
            value(
                &scrape(&listen),
                "phasebox_syscalls_total",
                &[("role", "phased_server"), ("syscall", "accept4")],
            )
            .map(|_| ())
        },
    );
    assert_eq!(
        ask(port, "ptrace"),
        "",
        "the server answered instead of being killed"
    );
    eventually(Duration::from_secs(10), "the server to be gone", || {
        TcpStream::connect(("127.0.0.1", port))
            .is_err()
            .then_some(())
    });
    eventually(Duration::from_secs(10), "the kill to be counted", || {
        (value(&scrape(&listen), "phasebox_processes_killed_total", &[]) == Some(1.0)).then_some(())
    });
    assert_eq!(
        ask(other_port, "GET"),
        "hello\n",
        "the other server was hurt"
    );
    assert!(agent.try_wait().unwrap().is_none(), "the agent stopped");
    assert!(tree.try_wait().unwrap().is_none(), "the shell was killed");
    drop((agent, tree));
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
    // The agent keeps waiting after the program ends: its metrics still answer.
    eventually(Duration::from_secs(10), "the agent to see the exit", || {
        (value(&scrape(&listen), "phasebox_tracked_processes", &[]) == Some(0.0)).then_some(())
    });
    assert!(agent.try_wait().unwrap().is_none(), "the agent stopped");
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
