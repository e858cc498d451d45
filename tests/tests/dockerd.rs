//! The private Docker daemon the container tests use: it imports a one-file image, runs
//! containers, and leaves nothing behind (no daemon, no container process, no mount), also when
//! the test holding it panics or dockerd dies.
use std::path::PathBuf;
use std::sync::mpsc;

use phasebox_tests::docker::{Dockerd, mounts_under, running};

const IMAGE: &str = "phasebox-test/tiny:1";

/// What a test saw of its daemon, to check after the daemon is gone.
struct Seen {
    dir: PathBuf,
    dockerd: u32,
    container: u32,
}

fn assert_cleaned_up(seen: &Seen) {
    assert!(
        !running(seen.dockerd),
        "dockerd {} still runs",
        seen.dockerd
    );
    assert!(
        !running(seen.container),
        "container process {} still runs",
        seen.container
    );
    let left = mounts_under(&seen.dir);
    assert!(left.is_empty(), "mounts left behind: {left:?}");
    assert!(!seen.dir.exists(), "{} not removed", seen.dir.display());
}

/// Starts a daemon, checks a container runs in a cgroup named after its id, and leaves a
/// second container running for the cleanup to deal with.
fn use_daemon(d: &Dockerd) -> Seen {
    d.import_tiny(IMAGE);
    let id = d.docker_ok(&["create", "--network", "none", IMAGE, "cgroup"]);
    let out = d.docker_ok(&["start", "-a", &id]);
    assert!(
        out.lines().any(|l| l.ends_with(&format!("/docker/{id}"))),
        "container {id} is not in a cgroup named after it:\n{out}"
    );
    let waiting = d.docker_ok(&["run", "-d", "--network", "none", IMAGE, "wait"]);
    let pid = d.container_pid(&waiting);
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cgroup.contains(&waiting), "host view of {pid}: {cgroup}");
    assert!(
        !mounts_under(d.dir()).is_empty(),
        "a running container has no overlay mount under the daemon's directory"
    );
    Seen {
        dir: d.dir().to_path_buf(),
        dockerd: d.pid(),
        container: pid,
    }
}

#[test]
fn runs_a_container_and_cleans_up() {
    let d = Dockerd::start();
    let seen = use_daemon(&d);
    drop(d);
    assert_cleaned_up(&seen);
}

#[test]
fn cleans_up_when_the_test_panics() {
    let (tx, rx) = mpsc::channel();
    let result = std::thread::spawn(move || {
        let d = Dockerd::start();
        tx.send(use_daemon(&d)).unwrap();
        panic!("a failing test (on purpose): the daemon guard must clean up while unwinding");
    })
    .join();
    assert!(result.is_err(), "the thread was meant to panic");
    let seen = rx.recv().expect("the daemon was used before the panic");
    assert_cleaned_up(&seen);
}

#[test]
fn cleans_up_after_dockerd_is_killed() {
    let d = Dockerd::start();
    let seen = use_daemon(&d);
    // A daemon killed outright leaves its shims, their containers and its mounts behind.
    // SAFETY: kill(2) of the test's own child.
    unsafe { libc::kill(d.pid() as i32, libc::SIGKILL) };
    drop(d);
    assert_cleaned_up(&seen);
}
