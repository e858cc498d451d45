//! Automatic phases (`--phases auto`) on real programs: nginx against its own rule set on the
//! same trace; redis-server under redis-benchmark, memcached under a small client written
//! here, Python's http.server under curl, and /bin/pwd. Each gets few phases named by what
//! they do, its busiest phase holds the request path and none of the setup calls, and it runs
//! under its own per-phase seccomp filters (`run --seccomp-phases`) and keeps serving. Every
//! test prints its phase table (the one in docs/phases.md).
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use phasebox_tests::{
    CARGO_LIBRARY_PATH, TempDir, analyze, nginx::Nginx, phasebox_bin, phasebox_ok, profile,
};
use serde_json::Value;

/// Ports of this test's servers (127.0.0.1 only).
const NGINX_PORT: u16 = 18201;
const REDIS_PORT: u16 = 18202;
const MEMCACHED_PORT: u16 = 18204;
const PYTHON_PORT: u16 = 18206;

/// Calls a server's setup needs and its steady phase must not.
const SETUP_ONLY: [&str; 6] = ["bind", "listen", "socket", "execve", "setuid", "setgid"];

/// `phasebox ARGS -- ARGV` with its standard error in a file; stopped (and the program under
/// it) on drop.
struct Traced {
    child: Child,
    stderr: PathBuf,
}

impl Traced {
    /// Starts it and waits until 127.0.0.1:`port` accepts connections.
    fn start(args: &[&str], argv: &[String], port: u16, stderr: PathBuf) -> Traced {
        let child = Command::new(phasebox_bin())
            .args(args)
            .arg("--")
            .args(argv)
            .env_remove(CARGO_LIBRARY_PATH)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("phasebox starts");
        let mut t = Traced { child, stderr };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(st)) = t.child.try_wait() {
                panic!("{argv:?} ended ({st}) before listening: {}", t.messages());
            }
            assert!(
                Instant::now() < deadline,
                "{argv:?} did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        t
    }

    fn messages(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGTERM (phasebox passes it on to the program) and waits for the end.
    fn stop(&mut self) -> ExitStatus {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "did not stop: {}",
                self.messages()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let program = children(self.child.id());
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for pid in program {
            // SAFETY: the program this test started, under our own child.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The children of `pid`, from /proc.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

/// Debian's packages start system services; the tests run their own.
fn stop_service(name: &str) {
    let _ = Command::new("service")
        .args([name, "stop"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.env_remove(CARGO_LIBRARY_PATH).output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `phasebox run -q --phases auto --profile PROFILE EXTRA… -- ARGV`, which listens on `port`.
fn learn(dir: &TempDir, prof: &Path, extra: &[&str], argv: &[String], port: u16) -> Traced {
    let mut args = vec![
        "run",
        "-q",
        "--phases",
        "auto",
        "--profile",
        prof.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Traced::start(&args, argv, port, dir.path("learn.err"))
}

/// `export --per-phase DIR --add-basics`; returns the manifest.
fn export_phases(prof: &Path, dir: &Path) -> PathBuf {
    phasebox_ok(&[
        "export",
        prof.to_str().unwrap(),
        "--per-phase",
        dir.to_str().unwrap(),
        "--add-basics",
    ]);
    dir.join("manifest.json")
}

/// ARGV, which listens on `port`, under the per-phase filters of `prof`.
fn enforce(dir: &TempDir, prof: &Path, argv: &[String], port: u16) -> Traced {
    let manifest = export_phases(prof, &dir.path("phases"));
    let args = ["run", "--seccomp-phases", manifest.to_str().unwrap()];
    Traced::start(&args, argv, port, dir.path("enforce.err"))
}

fn phases(role: &Value) -> &Vec<Value> {
    role["phases"].as_array().unwrap()
}

fn calls(phase: &Value) -> u64 {
    phase["syscalls"]
        .as_object()
        .unwrap()
        .values()
        .map(|u| u["calls"].as_u64().unwrap())
        .sum()
}

fn role_calls(role: &Value) -> u64 {
    phases(role).iter().map(calls).sum()
}

/// Prints a profile's phases as the table of docs/phases.md.
fn print_table(program: &str, p: &Value) {
    for role in p["roles"].as_array().unwrap() {
        eprintln!("\n{program}, role {}:\n", role["name"].as_str().unwrap());
        eprintln!("| phase | calls | syscalls |\n|---|---:|---|");
        for ph in phases(role) {
            let names: Vec<String> = profile::syscalls(ph).into_iter().collect();
            eprintln!(
                "| {} | {} | {} |",
                ph["name"].as_str().unwrap(),
                calls(ph),
                names.join(" ")
            );
        }
    }
    for note in p["notes"].as_array().into_iter().flatten() {
        eprintln!("\nnote: {}", note.as_str().unwrap());
    }
}

/// At most 8 phases in every role, each name once; returns the busiest role.
fn check_bounded(p: &Value) -> &Value {
    for role in p["roles"].as_array().unwrap() {
        let names = profile::phase_names(role);
        assert!(names.len() <= 8, "{}: {names:?}", role["name"]);
        let unique: BTreeSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "{names:?}");
    }
    p["roles"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|r| role_calls(r))
        .unwrap()
}

/// A server's busiest role: its busiest phase is `steady`, holds the request path (an
/// accept, a read, a write of some kind) and none of the setup calls.
fn check_server(p: &Value) -> BTreeSet<String> {
    let role = check_bounded(p);
    let busiest = phases(role).iter().max_by_key(|ph| calls(ph)).unwrap();
    assert_eq!(busiest["name"], "steady", "{}", role["name"]);
    let set = profile::syscalls(busiest);
    let any = |names: &[&str]| names.iter().any(|n| set.contains(*n));
    assert!(any(&["accept", "accept4"]), "no accept in {set:?}");
    assert!(
        any(&["read", "recvfrom", "recvmsg", "readv"]),
        "no read in {set:?}"
    );
    assert!(
        any(&["write", "writev", "sendto", "sendmsg", "sendfile"]),
        "no write in {set:?}"
    );
    for s in SETUP_ONLY {
        assert!(!set.contains(s), "{s} in the steady phase {set:?}");
    }
    set
}

/// The profile a server learned, printed and checked (`check_server`); with its steady set.
fn learned_server(program: &str, prof: &Path) -> (Value, BTreeSet<String>) {
    let p = profile::load(prof);
    print_table(program, &p);
    let steady = check_server(&p);
    (p, steady)
}

/// Every role with its phases: (role, [(phase, syscalls)]).
type Shape = Vec<(String, Vec<(String, BTreeSet<String>)>)>;

/// The phases (names and syscall sets) of every role.
fn shape(p: &Value) -> Shape {
    p["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let phases = phases(r)
                .iter()
                .map(|ph| {
                    (
                        ph["name"].as_str().unwrap().to_string(),
                        profile::syscalls(ph),
                    )
                })
                .collect();
            (r["name"].as_str().unwrap().to_string(), phases)
        })
        .collect()
}

fn has_phase_with(role: &Value, phase: &str, syscall: &str) -> bool {
    phases(role)
        .iter()
        .any(|ph| ph["name"] == phase && profile::syscalls(ph).contains(syscall))
}

#[test]
fn nginx_auto_phases_match_its_rule_set() {
    let dir = TempDir::new("auto-nginx");
    let trace = dir.path("nginx.pbtrace");
    let bin = phasebox_bin();
    let wrapper = [
        bin.to_str().unwrap(),
        "run",
        "-q",
        "-o",
        trace.to_str().unwrap(),
        "--",
    ];
    let mut nginx = Nginx::start_under_on(&wrapper, NGINX_PORT);
    assert!(nginx.curl("/index.html", 20).iter().all(|c| c == "200"));
    assert!(nginx.curl("/big.bin", 20).iter().all(|c| c == "200"));
    let st = nginx.quit();
    assert!(st.success(), "phasebox run ended with {st}");

    let rules = analyze(&dir, &trace, "nginx");
    let auto = analyze(&dir, &trace, "auto");
    print_table("nginx (auto)", &auto);
    check_bounded(&auto);
    let worker = profile::role(&rules, "worker");
    let serving_name = "accepting-and-serving-requests";
    let serving = profile::phase(worker, serving_name);
    // Without rules, a forked worker's role is named after its parent's.
    let auto_worker = profile::role(&auto, "main-child");
    let steady = profile::phase(auto_worker, "steady");

    let (s, t) = (profile::syscalls(serving), profile::syscalls(steady));
    let jaccard = s.intersection(&t).count() as f64 / s.union(&t).count() as f64;
    eprintln!(
        "\nworker: steady vs {serving_name}: Jaccard {jaccard:.3}; only in serving {:?}, \
         only in steady {:?}",
        s.difference(&t).collect::<Vec<_>>(),
        t.difference(&s).collect::<Vec<_>>()
    );
    assert!(jaccard >= 0.8, "Jaccard {jaccard:.3}");

    // The worker's calls before serving, by the rules and automatically: the boundary.
    let before_serving: u64 = phases(worker)
        .iter()
        .take_while(|ph| ph["name"] != serving_name)
        .map(calls)
        .sum();
    let before_steady: u64 = phases(auto_worker)
        .iter()
        .filter(|ph| ph["name"] != "steady" && ph["name"] != "exit")
        .map(calls)
        .sum();
    eprintln!("worker calls before serving: {before_serving} (rules), {before_steady} (auto)");
    assert!(
        before_serving.abs_diff(before_steady) <= 5,
        "boundary {before_steady} vs {before_serving}"
    );
    assert_eq!(
        role_calls(auto_worker),
        role_calls(worker),
        "the same calls, cut differently"
    );

    // Named by what they do: the master binds its socket in `sockets`, the worker drops
    // privileges before it serves.
    let master = profile::role(&auto, "main");
    assert!(has_phase_with(master, "sockets", "listen"));
    assert!(has_phase_with(master, "loading", "openat"));
    assert!(has_phase_with(auto_worker, "privileges", "setuid"));
    assert!(!t.contains("setuid") && !t.contains("epoll_create"));
}

fn redis_argv(dir: &TempDir, port: u16) -> Vec<String> {
    [
        "/usr/bin/redis-server",
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--dir",
        dir.0.to_str().unwrap(),
        "--daemonize",
        "no",
    ]
    .map(String::from)
    .to_vec()
}

fn redis(port: u16, args: &[&str]) -> String {
    run_ok(
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args),
    )
}

#[test]
fn redis_under_benchmark() {
    stop_service("redis-server");
    let dir = TempDir::new("auto-redis");
    let (live, trace) = (dir.path("redis.json"), dir.path("redis.pbtrace"));
    let mut server = learn(
        &dir,
        &live,
        &["-o", trace.to_str().unwrap()],
        &redis_argv(&dir, REDIS_PORT),
        REDIS_PORT,
    );
    let bench = run_ok(Command::new("redis-benchmark").args([
        "-h",
        "127.0.0.1",
        "-p",
        &REDIS_PORT.to_string(),
        "-q",
        "-n",
        "20000",
    ]));
    assert!(bench.contains("requests per second"), "{bench}");
    let st = server.stop();
    assert!(st.success(), "{st}: {}", server.messages());

    let (p, steady) = learned_server("redis-server", &live);
    assert!(steady.contains("epoll_wait"), "{steady:?}");
    let main = profile::role(&p, "main");
    assert!(has_phase_with(main, "sockets", "listen"));
    assert!(has_phase_with(main, "workers", "clone3"));
    assert!(has_phase_with(main, "exit", "exit_group"));
    assert_eq!(
        shape(&p),
        shape(&analyze(&dir, &trace, "auto")),
        "live and offline phases differ"
    );

    // Under its phases' filters: it serves, and once it does, a call it needed only at
    // startup (prlimit64, which CONFIG SET maxclients makes) is denied.
    let port = REDIS_PORT + 1;
    let mut server = enforce(&dir, &live, &redis_argv(&dir, port), port);
    let bench = run_ok(Command::new("redis-benchmark").args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-q",
        "-n",
        "5000",
        "-t",
        "set,get,lpush,lpop",
    ]));
    assert_eq!(bench.matches("requests per second").count(), 4, "{bench}");
    let refused = redis(port, &["config", "set", "maxclients", "50000"]);
    assert!(refused.contains("ERR"), "{refused}");
    assert_eq!(redis(port, &["set", "k", "v"]).trim(), "OK");
    assert_eq!(redis(port, &["get", "k"]).trim(), "v");
    let st = server.stop();
    let messages = server.messages();
    assert!(st.success(), "{st}: {messages}");
    let denied = messages
        .lines()
        .find(|l| l.contains("calls made after serving began"))
        .unwrap_or_else(|| panic!("no denial reported: {messages}"));
    assert!(denied.contains(" prlimit64×"), "{denied}");
}

/// A memcached client: `connections` connections, each setting and getting `keys` keys.
fn memcached_client(port: u16, connections: usize, keys: usize) {
    for c in 0..connections {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("memcached accepts");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        let mut reply = |r: &mut BufReader<TcpStream>| {
            line.clear();
            r.read_line(&mut line).expect("a reply");
            line.trim_end().to_string()
        };
        for k in 0..keys {
            let (key, value) = (format!("k{c}-{k}"), format!("value {c} {k}"));
            write!(w, "set {key} 0 0 {}\r\n{value}\r\n", value.len()).unwrap();
            assert_eq!(reply(&mut r), "STORED");
            write!(w, "get {key}\r\n").unwrap();
            assert_eq!(reply(&mut r), format!("VALUE {key} 0 {}", value.len()));
            assert_eq!(reply(&mut r), value);
            assert_eq!(reply(&mut r), "END");
        }
    }
}

fn memcached_argv(port: u16) -> Vec<String> {
    [
        "/usr/bin/memcached",
        "-l",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-U",
        "0",
        "-u",
        "memcache",
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn memcached_under_a_small_client() {
    stop_service("memcached");
    let dir = TempDir::new("auto-memcached");
    let prof = dir.path("memcached.json");
    let mut server = learn(
        &dir,
        &prof,
        &[],
        &memcached_argv(MEMCACHED_PORT),
        MEMCACHED_PORT,
    );
    memcached_client(MEMCACHED_PORT, 4, 100);
    let st = server.stop();
    assert!(st.success(), "{st}: {}", server.messages());

    let (p, _) = learned_server("memcached", &prof);
    let main = profile::role(&p, "main");
    assert!(has_phase_with(main, "privileges", "setuid"));
    // bind opens the sockets phase; where the windows put memcached's socket calls in two
    // phases (its threads' calls interleave differently from run to run), the role has more
    // phases than a profile keeps, and the smallest, bind's, is folded into the workers before
    // it, which the profile notes.
    let folded = p["notes"].as_array().into_iter().flatten().any(|n| {
        n.as_str()
            .is_some_and(|n| n.contains("role main") && n.contains("merged"))
    });
    assert!(
        has_phase_with(main, "sockets", "bind")
            || (folded && has_phase_with(main, "workers", "bind")),
        "bind is in neither the sockets phase nor, folded, the workers'"
    );
    assert!(has_phase_with(main, "workers", "clone3"));

    let port = MEMCACHED_PORT + 1;
    let mut server = enforce(&dir, &prof, &memcached_argv(port), port);
    memcached_client(port, 4, 100);
    let st = server.stop();
    assert!(st.success(), "{st}: {}", server.messages());
}

#[test]
fn python_http_server_under_curl() {
    let dir = TempDir::new("auto-python");
    std::fs::write(dir.path("index.html"), "hello\n").unwrap();
    let argv = |port: u16| -> Vec<String> {
        [
            "/usr/bin/python3",
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
            dir.0.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    };
    let get = |port: u16, n: usize| {
        for _ in 0..n {
            let body = run_ok(Command::new("curl").args([
                "-s",
                "--max-time",
                "5",
                &format!("http://127.0.0.1:{port}/index.html"),
            ]));
            assert_eq!(body, "hello\n");
        }
    };
    let prof = dir.path("python.json");
    let mut server = learn(&dir, &prof, &[], &argv(PYTHON_PORT), PYTHON_PORT);
    get(PYTHON_PORT, 50);
    server.stop(); // SIGTERM ends Python without a handler: no exit phase

    let (p, steady) = learned_server("python3 -m http.server", &prof);
    // A thread per request: starting threads is part of its steady state.
    assert!(steady.contains("clone3"), "{steady:?}");
    let main = profile::role(&p, "main");
    assert!(has_phase_with(main, "loading", "openat"));
    assert!(has_phase_with(main, "sockets", "listen"));

    let port = PYTHON_PORT + 1;
    let mut server = enforce(&dir, &prof, &argv(port), port);
    get(port, 20);
    server.stop();
    let messages = server.messages();
    assert!(messages.contains("denied no call"), "{messages}");
}

#[test]
fn pwd_has_no_steady_state() {
    let dir = TempDir::new("auto-pwd");
    let prof = dir.path("pwd.json");
    let pwd = |args: &[&str]| {
        run_ok(
            Command::new(phasebox_bin())
                .args(args)
                .arg("--")
                .arg("/bin/pwd")
                .current_dir(&dir.0),
        )
    };
    pwd(&[
        "run",
        "-q",
        "--phases",
        "auto",
        "--profile",
        prof.to_str().unwrap(),
    ]);
    let p = profile::load(&prof);
    print_table("/bin/pwd", &p);
    let main = check_bounded(&p);
    let names = profile::phase_names(main);
    assert!(!names.contains(&"steady".to_string()), "{names:?}");
    assert_eq!(names.first().map(String::as_str), Some("exec"));
    assert_eq!(names.last().map(String::as_str), Some("exit"));
    let opened = profile::paths(profile::phase(main, "loading"), "openat");
    assert!(opened.iter().any(|p| p.contains("libc.so")), "{opened:?}");
    assert!(profile::syscalls(profile::phase(main, "exit")).contains("exit_group"));
    let busiest = phases(main).iter().max_by_key(|ph| calls(ph)).unwrap();
    let set = profile::syscalls(busiest);
    assert!(set.contains("read"), "{set:?}");
    for s in SETUP_ONLY {
        assert!(!set.contains(s), "{s} in {set:?}");
    }

    let manifest = export_phases(&prof, &dir.path("phases"));
    let out = pwd(&["run", "-q", "--seccomp-phases", manifest.to_str().unwrap()]);
    assert_eq!(out.trim(), dir.0.to_str().unwrap());
}
