//! Phase-aware enforcement: a server runs under the union of its phases; once it serves, a
//! call it needed only at startup (socket) is denied, and so are the arguments of a call it
//! makes in both that only its startup used (openat for writing, where serving only reads),
//! while requests keep succeeding.
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use phasebox_tests::{
    TempDir, ask, finished_ok, fixture, nginx::free_port, phasebox_ok, profile, serve_under_with,
};

/// The phased test server (with `more` arguments after its port) under `phasebox ARGS…`.
fn serve(args: &[&str], port: u16, more: &[&str]) -> Child {
    serve_under_with(args, &fixture("phased_server"), port, more)
}

/// What a learned run of the server gives: its profile, the union policy and the per-phase
/// manifest.
struct Learned {
    profile: PathBuf,
    union: PathBuf,
    manifest: PathBuf,
}

/// Learns the server (`more` its arguments) from 5 requests and a quit, and exports the union
/// and the phases.
fn learn(dir: &TempDir, more: &[&str]) -> Learned {
    let profile = dir.path("server.json");
    let port = free_port();
    let prof = profile.to_str().unwrap();
    let child = serve(
        &["run", "-q", "--phases", "generic", "--profile", prof],
        port,
        more,
    );
    for _ in 0..5 {
        assert_eq!(ask(port, "GET"), "hello\n");
    }
    assert_eq!(ask(port, "quit"), "bye\n");
    finished_ok(child);
    let (phases, union) = (dir.path("phases"), dir.path("union.json"));
    let (ph, un) = (phases.to_str().unwrap(), union.to_str().unwrap());
    phasebox_ok(&["export", prof, "--per-phase", ph, "--add-basics"]);
    phasebox_ok(&["export", prof, "-o", un, "--add-basics"]);
    Learned {
        manifest: phases.join("manifest.json"),
        profile,
        union,
    }
}

/// Under `policy` (`--seccomp` or `--seccomp-phases`), the server answers `request` with
/// `want` (once serving: tightening follows the serving marker as soon as phasebox reads it,
/// so it is asked until then), serves on, and quits; phasebox's standard error.
fn serve_under_policy(
    flag: &str,
    policy: &Path,
    more: &[&str],
    request: &str,
    want: &str,
) -> String {
    let port = free_port();
    let child = serve(&["run", "-q", flag, policy.to_str().unwrap()], port, more);
    assert_eq!(ask(port, "GET"), "hello\n");
    phasebox_tests::metrics::eventually(Duration::from_secs(5), want, || {
        let answer = ask(port, request);
        assert!(answer.starts_with(&format!("{request}: ")), "{answer}");
        (answer == want).then_some(())
    });
    for _ in 0..3 {
        assert_eq!(ask(port, "GET"), "hello\n");
    }
    assert_eq!(ask(port, "quit"), "bye\n");
    finished_ok(child)
}

#[test]
fn startup_only_call_is_denied_once_serving() {
    let dir = TempDir::new("phase-aware");
    let learned = learn(&dir, &[]);
    let p = profile::load(&learned.profile);
    let main = profile::role(&p, "main");
    let serving = profile::syscalls(profile::phase(main, "serving"));
    assert!(
        !serving.contains("socket"),
        "socket is a startup call: {serving:?}"
    );
    assert!(profile::syscalls(profile::phase(main, "initialization")).contains("socket"));

    // Under the union alone, the startup call still works while serving.
    serve_under_policy("--seccomp", &learned.union, &[], "socket", "socket: ok\n");
    // Phase-aware: denied once serving, and the server keeps serving.
    let stderr = serve_under_policy(
        "--seccomp-phases",
        &learned.manifest,
        &[],
        "socket",
        "socket: Operation not permitted\n",
    );
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
    let pidfile = dir.path("server.pid");
    let more = [pidfile.to_str().unwrap()];
    // It writes its pid file while starting, and reads it on every request.
    let learned = learn(&dir, &more);
    // Under the union, serving may still open the file for writing: startup did.
    serve_under_policy("--seccomp", &learned.union, &more, "create", "create: ok\n");
    // Phase-aware: the start writes the file as before; once serving, reading it goes on and
    // opening it for writing is denied.
    let stderr = serve_under_policy(
        "--seccomp-phases",
        &learned.manifest,
        &more,
        "create",
        "create: Operation not permitted\n",
    );
    assert!(
        stderr.contains("openat(") && stderr.contains("O_WRONLY|O_CREAT|O_TRUNC"),
        "the denial is named with its arguments: {stderr}"
    );
}
