//! Phase-aware enforcement: a server runs under the union of its phases; once it serves, a
//! call it needed only at startup (socket) is denied, and so are the arguments of a call it
//! makes in both that only its startup used (openat for writing, where serving only reads),
//! while requests keep succeeding.
use std::process::Child;
use std::time::Duration;

use phasebox_tests::{
    TempDir, ask, finished_ok, fixture, nginx::free_port, phasebox, phasebox_ok, profile,
    serve_under, serve_under_with,
};

/// The phased test server under `phasebox ARGS…`.
fn serve(args: &[&str], port: u16) -> Child {
    serve_under(args, &fixture("phased_server"), port)
}

#[test]
fn startup_only_call_is_denied_once_serving() {
    let dir = TempDir::new("phase-aware");
    let prof = dir.path("server.json");

    // Learn from a normal run: requests, then quit.
    let port = free_port();
    let child = serve(
        &[
            "run",
            "-q",
            "--phases",
            "generic",
            "--profile",
            prof.to_str().unwrap(),
        ],
        port,
    );
    for _ in 0..5 {
        assert_eq!(ask(port, "GET"), "hello\n");
    }
    assert_eq!(ask(port, "quit"), "bye\n");
    finished_ok(child);
    let p = profile::load(&prof);
    let main = profile::role(&p, "main");
    let serving = profile::syscalls(profile::phase(main, "serving"));
    assert!(
        !serving.contains("socket"),
        "socket is a startup call: {serving:?}"
    );
    assert!(profile::syscalls(profile::phase(main, "initialization")).contains("socket"));

    let phases = dir.path("phases");
    phasebox_ok(&[
        "export",
        prof.to_str().unwrap(),
        "--per-phase",
        phases.to_str().unwrap(),
        "--add-basics",
    ]);
    let manifest = phases.join("manifest.json");

    // Under the union alone, the startup call still works while serving.
    let union = dir.path("union.json");
    let out = phasebox(&[
        "export",
        prof.to_str().unwrap(),
        "-o",
        union.to_str().unwrap(),
        "--add-basics",
    ]);
    assert!(out.status.success());
    let port = free_port();
    let child = serve(&["run", "-q", "--seccomp", union.to_str().unwrap()], port);
    assert_eq!(ask(port, "GET"), "hello\n");
    assert_eq!(ask(port, "socket"), "socket: ok\n");
    assert_eq!(ask(port, "quit"), "bye\n");
    finished_ok(child);

    // Phase-aware: denied once serving, and the server keeps serving.
    let port = free_port();
    let child = serve(
        &["run", "-q", "--seccomp-phases", manifest.to_str().unwrap()],
        port,
    );
    assert_eq!(ask(port, "GET"), "hello\n");
    // Tightening follows the serving marker as soon as phasebox reads it: ask until it has.
    phasebox_tests::metrics::eventually(Duration::from_secs(5), "socket denied", || {
        let answer = ask(port, "socket");
        assert!(answer.starts_with("socket: "), "{answer}");
        (answer == "socket: Operation not permitted\n").then_some(())
    });
    for _ in 0..3 {
        assert_eq!(ask(port, "GET"), "hello\n");
    }
    assert_eq!(ask(port, "quit"), "bye\n");
    let stderr = finished_ok(child);
    assert!(
        // Named with its arguments: the socket the server made while starting.
        stderr
            .contains("denied 1 calls made after serving began: socket(AF_INET, SOCK_STREAM, 0)×1"),
        "{stderr}"
    );
}

#[test]
fn arguments_only_startup_used_are_denied_once_serving() {
    let dir = TempDir::new("phase-aware-args");
    let prof = dir.path("server.json");
    let pidfile = dir.path("server.pid");
    let file = pidfile.to_str().unwrap();
    let serve =
        |args: &[&str], port| serve_under_with(args, &fixture("phased_server"), port, &[file]);

    // Learn: it writes its pid file while starting, and reads it on every request.
    let port = free_port();
    let learn = [
        "run",
        "-q",
        "--phases",
        "generic",
        "--profile",
        prof.to_str().unwrap(),
    ];
    let child = serve(&learn, port);
    for _ in 0..5 {
        assert_eq!(ask(port, "GET"), "hello\n");
    }
    assert_eq!(ask(port, "quit"), "bye\n");
    finished_ok(child);
    let phases = dir.path("phases");
    phasebox_ok(&[
        "export",
        prof.to_str().unwrap(),
        "--per-phase",
        phases.to_str().unwrap(),
        "--add-basics",
    ]);
    let manifest = phases.join("manifest.json");
    let union = dir.path("union.json");
    phasebox_ok(&[
        "export",
        prof.to_str().unwrap(),
        "-o",
        union.to_str().unwrap(),
        "--add-basics",
    ]);

    // Under the union, serving may still open the file for writing: startup did.
    let port = free_port();
    let child = serve(&["run", "-q", "--seccomp", union.to_str().unwrap()], port);
    assert_eq!(ask(port, "GET"), "hello\n");
    assert_eq!(ask(port, "create"), "create: ok\n");
    assert_eq!(ask(port, "quit"), "bye\n");
    finished_ok(child);

    // Phase-aware: the start writes the file as before; once serving, reading it goes on and
    // opening it for writing is denied.
    let port = free_port();
    let child = serve(
        &["run", "-q", "--seccomp-phases", manifest.to_str().unwrap()],
        port,
    );
    assert_eq!(ask(port, "GET"), "hello\n");
    phasebox_tests::metrics::eventually(
        Duration::from_secs(5),
        "openat for writing denied",
        || {
            let answer = ask(port, "create");
            assert!(answer.starts_with("create: "), "{answer}");
            (answer == "create: Operation not permitted\n").then_some(())
        },
    );
    for _ in 0..3 {
        assert_eq!(ask(port, "GET"), "hello\n");
    }
    assert_eq!(ask(port, "quit"), "bye\n");
    let stderr = finished_ok(child);
    assert!(
        stderr.contains("openat(") && stderr.contains("O_WRONLY|O_CREAT|O_TRUNC"),
        "the denial is named with its arguments: {stderr}"
    );
}
