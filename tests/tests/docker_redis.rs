//! redis learned where it is deployed and run there under what was learned, in a private
//! dockerd: `phasebox agent --container NAME` starts before the container exists, so redis is
//! traced from its first process; SET/GET, BGSAVE (a forked child writes the dump), CONFIG
//! REWRITE and SHUTDOWN SAVE are done to it; the profile is exported with `--for-runtime
//! docker`, and a fresh container under that profile goes through the same operations. redis
//! starts its background threads with clone3, which Docker's default profile answers ENOSYS
//! (glibc falls back to clone): the profile keeps that answer, or the container would not even
//! start ("Can't initialize Background Jobs").
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use phasebox_tests::{
    Guard, TempDir, docker::Dockerd, export_for_docker, lines::Lines, phasebox_bin, redis,
    rootfs::server_root,
};

const IMAGE: &str = "phasebox-test/redis:deploy";
const WAIT: Duration = Duration::from_secs(60);

/// A free loopback port in 18500-18599 (another range than the nginx container test's).
fn free_port() -> u16 {
    (18500..18600)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port in 18500-18599")
}

/// `docker run -d --name NAME --network host` of redis with its data (and configuration) in
/// `data`, mounted at the same path; `extra` goes before the image.
fn run(d: &Dockerd, name: &str, data: &Path, port: u16, extra: &[&str]) {
    std::fs::create_dir_all(data).unwrap();
    let conf = data.join("redis.conf");
    std::fs::write(&conf, redis::config(data, port)).unwrap();
    let volume = format!("{0}:{0}", data.display());
    let mut args = vec!["run", "-d", "--name", name];
    args.extend(["--network", "host", "-v", &volume]);
    args.extend_from_slice(extra);
    args.extend([IMAGE, conf.to_str().unwrap()]);
    let out = d.docker(&args);
    assert!(
        out.status.success(),
        "docker run {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What a deployment does to redis: traffic, BGSAVE with its child finishing, CONFIG SET and
/// REWRITE, and SHUTDOWN SAVE, after which the container must have exited with status 0.
fn operations(d: &Dockerd, name: &str, data: &Path, port: u16) {
    let logs = || {
        let out = d.docker(&["logs", name]);
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    redis::wait_up(port, WAIT).unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    let ok = |args: &[&str]| redis::cli(port, args).unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    ok(&["SET", "greeting", "hello"]);
    assert_eq!(ok(&["GET", "greeting"]), "hello");
    ok(&["INCR", "visits"]);
    let dump = data.join("dump.rdb");
    assert!(!dump.exists(), "a dump before BGSAVE");
    redis::bgsave(port, WAIT).unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    assert!(dump.exists(), "BGSAVE wrote no {}", dump.display());
    ok(&["CONFIG", "SET", "maxmemory", "10mb"]);
    ok(&["CONFIG", "REWRITE"]);
    let conf = std::fs::read_to_string(data.join("redis.conf")).unwrap();
    assert!(conf.contains("maxmemory 10mb"), "not rewritten: {conf}");
    std::fs::remove_file(&dump).unwrap();
    // SHUTDOWN SAVE ends the server: redis-cli sees the connection close, not a reply.
    let _ = redis::cli(port, &["SHUTDOWN", "SAVE"]);
    let code = d.docker_ok(&["wait", name]);
    let said = logs();
    assert_eq!(code, "0", "SHUTDOWN SAVE exited with {code}:\n{said}");
    assert!(dump.exists(), "SHUTDOWN SAVE wrote no dump:\n{said}");
    for bad in [
        "not permitted",
        "Operation not permitted",
        "Can't initialize",
    ] {
        assert!(!said.contains(bad), "{bad:?} in redis's log:\n{said}");
    }
}

#[test]
fn redis_learned_in_docker_runs_its_operations_under_its_profile() {
    let d = Dockerd::start();
    let dir = TempDir::new("docker-redis");
    let root = dir.path("rootfs");
    server_root(&root, &[redis::SERVER], &[]).unwrap();
    d.import(&root, IMAGE, &[r#"ENTRYPOINT ["/usr/bin/redis-server"]"#]);
    let port = free_port();

    // Learn: the agent waits for a container that does not exist yet.
    let profile = dir.path("redis.profile.json");
    let mut agent = Guard::new(
        Command::new(phasebox_bin())
            .args(["agent", "--container", "redis-learn", "--phases", "auto"])
            .args(["--stream", "--listen", "127.0.0.1:0", "--profile"])
            .arg(&profile)
            .env("DOCKER_HOST", d.host())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut said = Lines::follow(agent.stderr.take().unwrap());
    said.wait_for("waiting for container redis-learn to start", WAIT)
        .unwrap();
    run(&d, "redis-learn", &dir.path("learn-data"), port, &[]);
    said.wait_for("container redis-learn found", WAIT).unwrap();
    operations(&d, "redis-learn", &dir.path("learn-data"), port);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    let status = agent.wait().unwrap();
    assert!(status.success(), "agent: {status}\n{}", said.rest(WAIT));
    let learned = phasebox_tests::profile::load(&profile);
    assert_eq!(learned["runs"][0]["how"], "launched", "startup not seen");
    assert_eq!(
        learned["program"]["path"],
        redis::SERVER,
        "{}",
        learned["program"]
    );
    // Docker's default profile answered redis's clone3 with ENOSYS while it learned.
    let filtered: Vec<String> = learned["roles"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["phases"].as_array().unwrap())
        .filter_map(|ph| ph["filtered"].as_object())
        .flat_map(|f| f.keys().cloned())
        .collect();
    assert!(filtered.iter().any(|c| c == "clone3"), "{filtered:?}");
    d.docker_ok(&["rm", "-f", "redis-learn"]);

    let oci = dir.path("redis.docker.json");
    let said = export_for_docker(&profile, &oci);
    assert!(said.contains("clone3 (ENOSYS)"), "{said}");

    // Enforce: a fresh container under the profile, through the same operations.
    let opt = format!("seccomp={}", oci.display());
    run(
        &d,
        "redis-enforced",
        &dir.path("enforced-data"),
        port,
        &["--security-opt", &opt],
    );
    operations(&d, "redis-enforced", &dir.path("enforced-data"), port);
}
