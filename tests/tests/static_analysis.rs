//! `phasebox static` against what phasebox sees real programs do: the static set must hold
//! every syscall a traced run used (recall 100%) for pwd and nginx over their whole scenario
//! sets, redis-server and memcached driven by their own clients on loopback, and ls, cat,
//! gzip and curl. Each test prints its row of the table in docs/static.md (run with
//! `--nocapture`): static, dynamic and extra sizes, the whole-image (Confine-style) size,
//! and what Docker's default profile allows.
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use phasebox_tests::profile::all_syscalls;
use phasebox_tests::{
    CARGO_LIBRARY_PATH, TempDir, assert_clear_failure, nginx::wait_port, phasebox, phasebox_bin,
    phasebox_ok, read_json,
};

/// `phasebox static BINARY -o DIR/NAME.static.json`; returns the profile's JSON.
fn static_profile(binary: &str, dir: &TempDir) -> (PathBuf, serde_json::Value) {
    let (path, v, _) = static_run(binary, dir);
    (path, v)
}

/// `phasebox static BINARY -o DIR/NAME.static.json`; returns the profile's JSON and the
/// summary it wrote on stderr.
fn static_run(binary: &str, dir: &TempDir) -> (PathBuf, serde_json::Value, String) {
    let name = Path::new(binary).file_name().unwrap().to_string_lossy();
    let out_path = dir.path(&format!("{name}.static.json"));
    let out = phasebox(&["static", binary, "-o", out_path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "phasebox static {binary}: {stderr}");
    assert!(stderr.starts_with("phasebox static: "), "{stderr}");
    let v = read_json(&out_path);
    (out_path, v, stderr)
}

/// Checks recall and prints the program's row of the table.
fn check(program: &str, binary: &str, dynamic: &BTreeSet<String>, dir: &TempDir) {
    let (path, st) = static_profile(binary, dir);
    let stat = all_syscalls(&st);
    let missing: Vec<&String> = dynamic.difference(&stat).collect();
    assert!(
        missing.is_empty(),
        "{program}: the static set lacks calls a run made: {missing:?}"
    );
    let whole: BTreeSet<String> = st["static"]["whole_image"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(
        stat.is_subset(&whole),
        "{program}: static set outside the whole image"
    );
    assert!(
        stat.len() < whole.len(),
        "{program}: reachability removed nothing ({} of {})",
        stat.len(),
        whole.len()
    );
    // Every static call says where it is reachable from.
    for name in &stat {
        let chain = &st["static"]["reachable_from"][name]["chain"];
        assert!(
            chain.as_array().is_some_and(|c| !c.is_empty()),
            "{program}: {name} has no chain"
        );
    }
    let cmp = dir.path(&format!("{program}.docker.json"));
    let docker = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/docker-default-seccomp.json");
    phasebox_ok(&[
        "compare",
        path.to_str().unwrap(),
        docker.to_str().unwrap(),
        "--json",
        cmp.to_str().unwrap(),
    ]);
    let docker_allows = read_json(&cmp)["rows"][0]["allowed_count"]
        .as_u64()
        .unwrap();
    assert!(
        (stat.len() as u64) < docker_allows,
        "{program}: static {} is not below Docker's {docker_allows}",
        stat.len()
    );
    let unresolved = st["static"]["provenance"]["unresolved_sites"]
        .as_array()
        .unwrap()
        .len();
    let extra: Vec<&String> = stat.difference(dynamic).collect();
    println!(
        "| {program} | {} | {} | {} | {:.0}% | {} | {docker_allows} | {unresolved} |",
        stat.len(),
        dynamic.len(),
        extra.len(),
        100.0 * extra.len() as f64 / stat.len() as f64,
        whole.len(),
    );
}

fn scenario_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../scenarios/{name}.toml"))
}

/// Runs a scenario set; returns the syscalls of its merged profile.
fn scenario_set(name: &str, dir: &TempDir) -> BTreeSet<String> {
    let out_dir = dir.path(name);
    let out = phasebox(&[
        "scenarios",
        "run",
        scenario_file(name).to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{name} scenarios failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    all_syscalls(&read_json(&out_dir.join("merged.profile.json")))
}

#[test]
fn pwd_over_all_its_scenarios() {
    let dir = TempDir::new("static-pwd");
    let dynamic = scenario_set("pwd", &dir);
    assert!(dynamic.contains("getcwd"));
    check("pwd", "/bin/pwd", &dynamic, &dir);
}

#[test]
fn nginx_over_all_its_scenarios() {
    let dir = TempDir::new("static-nginx");
    let dynamic = scenario_set("nginx", &dir);
    assert!(dynamic.contains("accept4") && dynamic.contains("sendfile"));
    check("nginx", "/usr/sbin/nginx", &dynamic, &dir);
}

#[test]
fn coreutils_gzip_and_curl() {
    let dir = TempDir::new("static-tools");
    let data = dir.path("data.txt");
    std::fs::write(&data, "phasebox static analysis\n".repeat(2000)).unwrap();
    let data_s = data.to_str().unwrap();
    let gz = dir.path("data.txt.gz");
    let runs: &[(&str, &str, &[&[&str]])] = &[
        (
            "ls",
            "/bin/ls",
            &[
                &["/bin/ls", "-la", "--color=always", "/etc"],
                &["/bin/ls", "-R", "/usr/share/doc/strace"],
                &["/bin/ls", "/no/such/dir"],
            ],
        ),
        (
            "cat",
            "/bin/cat",
            &[
                &["/bin/cat", data_s],
                &["/bin/cat", "-n", "/etc/passwd"],
                &["/bin/cat", "/no/such"],
            ],
        ),
        (
            "gzip",
            "/bin/gzip",
            &[
                &["/bin/gzip", "-k", "-f", data_s],
                &["/bin/gzip", "-t", gz.to_str().unwrap()],
            ],
        ),
        (
            "curl",
            "/usr/bin/curl",
            &[
                &[
                    "/usr/bin/curl",
                    "-s",
                    "-o",
                    "/dev/null",
                    &format!("file://{data_s}"),
                ],
                &[
                    "/usr/bin/curl",
                    "-s",
                    "-o",
                    "/dev/null",
                    "http://127.0.0.1:1/",
                ],
            ],
        ),
    ];
    for (program, binary, argvs) in runs {
        let mut dynamic = BTreeSet::new();
        for (i, argv) in argvs.iter().enumerate() {
            let profile = dir.path(&format!("{program}-{i}.json"));
            // Failing runs (a missing file, a refused connection) are part of the test.
            let mut args = vec!["run", "-q", "--profile", profile.to_str().unwrap(), "--"];
            args.extend_from_slice(argv);
            let out = phasebox(&args);
            assert!(
                profile.exists(),
                "{argv:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            dynamic.extend(all_syscalls(&read_json(&profile)));
        }
        check(program, binary, &dynamic, &dir);
    }
}

/// A server launched under `phasebox run --profile`, stopped (SIGTERM, then SIGKILL after a
/// deadline) when dropped, even when the test fails.
struct Traced(Child);

impl Traced {
    fn start(profile: &Path, argv: &[&str]) -> Traced {
        let child = Command::new(phasebox_bin())
            .args(["run", "-q", "--profile", profile.to_str().unwrap(), "--"])
            .args(argv)
            .env_remove(CARGO_LIBRARY_PATH)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("phasebox runs");
        Traced(child)
    }

    /// Waits for the traced tree to end by itself.
    fn wait(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.0.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn terminate(&mut self) {
        // SIGTERM reaches the server through phasebox; it exits and phasebox writes the profile.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        if !self.wait(Duration::from_secs(15)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            self.terminate();
        }
    }
}

fn succeed(cmd: &mut Command) {
    let out = cmd.env_remove(CARGO_LIBRARY_PATH).output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn redis_server_driven_by_its_benchmark() {
    const PORT: &str = "18150";
    let dir = TempDir::new("static-redis");
    let profile = dir.path("redis.json");
    let mut server = Traced::start(
        &profile,
        &[
            "/usr/bin/redis-server",
            "--port",
            PORT,
            "--bind",
            "127.0.0.1",
            "--dir",
            dir.0.to_str().unwrap(),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--daemonize",
            "no",
        ],
    );
    wait_port(PORT.parse().unwrap(), Duration::from_secs(15));
    let cli = |args: &[&str]| {
        let mut c = Command::new("redis-cli");
        c.args(["-h", "127.0.0.1", "-p", PORT]).args(args);
        c
    };
    succeed(Command::new("redis-benchmark").args([
        "-h",
        "127.0.0.1",
        "-p",
        PORT,
        "-q",
        "-n",
        "2000",
        "-c",
        "4",
        "-t",
        "set,get,incr,lpush,lpop,sadd,hset,mset",
    ]));
    succeed(&mut cli(&["SAVE"]));
    succeed(&mut cli(&["BGREWRITEAOF"]));
    succeed(&mut cli(&["CONFIG", "SET", "save", "1 1"]));
    succeed(&mut cli(&["BGSAVE", "SCHEDULE"]));
    succeed(&mut cli(&["DEBUG", "SLEEP", "0"]));
    // Wait until the background save is done, then shut down cleanly.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = cli(&["INFO", "persistence"]).output().unwrap();
        let info = String::from_utf8_lossy(&out.stdout);
        if info.contains("rdb_bgsave_in_progress:0") && info.contains("aof_rewrite_in_progress:0") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "redis never finished saving: {info}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = cli(&["SHUTDOWN", "NOSAVE"]).output();
    assert!(server.wait(Duration::from_secs(20)), "redis did not exit");
    let dynamic = all_syscalls(&read_json(&profile));
    assert!(
        dynamic.contains("epoll_wait") && dynamic.contains("clone"),
        "{dynamic:?}"
    );
    check("redis-server", "/usr/bin/redis-server", &dynamic, &dir);
}

#[test]
fn memcached_driven_over_its_text_protocol() {
    const PORT: u16 = 18151;
    let dir = TempDir::new("static-memcached");
    let profile = dir.path("memcached.json");
    let mut server = Traced::start(
        &profile,
        &[
            "/usr/bin/memcached",
            "-l",
            "127.0.0.1",
            "-p",
            &PORT.to_string(),
            "-U",
            "0",
            "-u",
            "root",
            "-t",
            "2",
        ],
    );
    wait_port(PORT, Duration::from_secs(15));
    let mut s = TcpStream::connect(("127.0.0.1", PORT)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for i in 0..50 {
        let req = format!("set k{i} 0 0 5\r\nhello\r\nget k{i}\r\nincr n 1\r\n");
        s.write_all(req.as_bytes()).unwrap();
    }
    s.write_all(b"stats\r\nquit\r\n").unwrap();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    assert!(reply.contains("VALUE k49 0 5"), "{reply}");
    server.terminate();
    let dynamic = all_syscalls(&read_json(&profile));
    assert!(dynamic.contains("epoll_wait"), "{dynamic:?}");
    check("memcached", "/usr/bin/memcached", &dynamic, &dir);
}

/// The names an exported OCI policy allows.
fn oci_allowed(path: &Path) -> BTreeSet<String> {
    let v = read_json(path);
    let mut out = BTreeSet::new();
    for rule in v["syscalls"].as_array().unwrap() {
        if rule["action"] == "SCMP_ACT_ALLOW" {
            for n in rule["names"].as_array().unwrap() {
                out.insert(n.as_str().unwrap().to_string());
            }
        }
    }
    out
}

#[test]
fn hybrid_export_reviews_what_nginx_runs_never_used() {
    let dir = TempDir::new("static-hybrid");
    let out_dir = dir.path("nginx");
    phasebox_ok(&[
        "scenarios",
        "run",
        scenario_file("nginx").to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
        "--only",
        "static-file",
    ]);
    let learned = out_dir.join("merged.profile.json");
    let dynamic = all_syscalls(&read_json(&learned));
    assert!(!dynamic.contains("chown") && !dynamic.contains("setsid"));
    let (st, _) = static_profile("/usr/sbin/nginx", &dir);
    let per_phase = dir.path("policies");
    let out = phasebox(&[
        "export",
        learned.to_str().unwrap(),
        "--hybrid",
        st.to_str().unwrap(),
        "--allow-reachable",
        "chown",
        "--per-phase",
        per_phase.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The review names chown with nginx code it is reachable from, marked allowed, and
    // setsid (daemon mode) left to the user.
    let chown = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("chown "))
        .unwrap_or_else(|| panic!("no chown in the review: {stderr}"));
    assert!(
        chown.contains("nginx:ngx_") && chown.contains("-> libc:chown"),
        "{chown}"
    );
    assert!(chown.ends_with("[allowed]"), "{chown}");
    let setsid = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("setsid "))
        .unwrap_or_else(|| panic!("no setsid in the review: {stderr}"));
    assert!(
        setsid.contains("nginx:ngx_daemon") && !setsid.ends_with("[allowed]"),
        "{setsid}"
    );
    // Every phase's policy now allows chown, none allows setsid.
    let manifest = read_json(&per_phase.join("manifest.json"));
    let text = manifest.to_string();
    let mut phase_files = 0;
    for entry in std::fs::read_dir(&per_phase).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "manifest.json" || name == "hybrid.profile.json" {
            continue;
        }
        assert!(text.contains(&name), "{name} not in the manifest");
        let allowed = oci_allowed(&path);
        assert!(
            allowed.contains("chown") && !allowed.contains("setsid"),
            "{name}"
        );
        phase_files += 1;
    }
    assert!(phase_files >= 4, "{phase_files} phase files");
    // The hybrid profile: profile show and the report show the review.
    let hybrid = per_phase.join("hybrid.profile.json");
    let show = phasebox(&["profile", "show", hybrid.to_str().unwrap()]);
    let show = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.contains("review: ") && show.contains("[allowed]"),
        "{show}"
    );
    let html = dir.path("report.html");
    phasebox_ok(&[
        "report",
        hybrid.to_str().unwrap(),
        "--compare",
        st.to_str().unwrap(),
        "-o",
        html.to_str().unwrap(),
    ]);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("id=\"review\"") && page.contains("<td>chown</td>"));
    // A guess is refused.
    let out = phasebox(&[
        "export",
        learned.to_str().unwrap(),
        "--hybrid",
        st.to_str().unwrap(),
        "--allow-reachable",
        "reboot",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not find reboot reachable"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs phasebox with `args` and returns its exit status, stderr and peak resident memory.
// The child is reaped by wait4, which also gives its resource usage.
#[allow(clippy::zombie_processes)]
fn phasebox_rss(args: &[&str]) -> (Option<i32>, String, u64) {
    let child = Command::new(phasebox_bin())
        .args(args)
        .env_remove(CARGO_LIBRARY_PATH)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("phasebox runs");
    let pid = child.id() as i32;
    let mut stderr = String::new();
    child.stderr.unwrap().read_to_string(&mut stderr).unwrap();
    let mut status = 0;
    // SAFETY: plain out-parameters; the child is ours and not waited for elsewhere.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4");
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (code, stderr, usage.ru_maxrss as u64 * 1024)
}

#[test]
fn programs_are_mapped_not_read_and_what_is_no_program_is_refused() {
    let dir = TempDir::new("static-inputs");
    // /bin/true with a 1 GiB hole after it: the analysis reads its headers and code only.
    let sparse = dir.path("true-sparse");
    std::fs::copy("/bin/true", &sparse).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&sparse)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let out = dir.path("sparse.static.json");
    let (code, stderr, rss) = phasebox_rss(&[
        "static",
        sparse.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(rss < 200 << 20, "1 GiB file, {} MiB resident", rss >> 20);
    let (_, plain) = static_profile("/bin/true", &dir);
    assert_eq!(all_syscalls(&read_json(&out)), all_syscalls(&plain));
    // A 1 GiB hole with no ELF header: refused from its first bytes.
    let hole = dir.path("hole");
    std::fs::File::create(&hole)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let (code, stderr, rss) = phasebox_rss(&["static", hole.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("is not an ELF file"), "{stderr}");
    assert!(rss < 64 << 20, "{} MiB resident", rss >> 20);
    // Not regular files: one sentence each, as for every other input; a FIFO with no writer
    // is read as a pipe, ends at once, and is no ELF file.
    let fifo = dir.path("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let out = phasebox(&["static", fifo.to_str().unwrap()]);
    assert_clear_failure(&out, "is not an ELF file");
    let out = phasebox(&["static", "/dev/zero"]);
    assert_clear_failure(
        &out,
        "it is a character device, and phasebox reads pipes and regular files only",
    );
    let out = phasebox(&["static", dir.0.to_str().unwrap()]);
    assert_clear_failure(
        &out,
        "it is a directory, and phasebox reads pipes and regular files only",
    );
}

#[test]
fn nginx_reaches_the_nss_module_nsswitch_conf_names_as_a_traced_run_does() {
    let conf = std::fs::read_to_string("/etc/nsswitch.conf").unwrap_or_default();
    assert!(
        conf.lines()
            .any(|l| l.starts_with("group:") && l.contains("systemd")),
        "this test needs Debian's nsswitch.conf with systemd for group (libnss-systemd): {conf}"
    );
    let dir = TempDir::new("static-nss");
    // nginx's unprivileged-workers scenario with `user www-data`: the worker's initgroups
    // reaches nss-systemd, which calls readlinkat.
    let text = std::fs::read_to_string(scenario_file("nginx")).unwrap();
    let www = text
        .replace("user nobody nogroup;", "user www-data;")
        .replace("= nobody\"", "= www-data\"");
    assert_ne!(text, www);
    let set = dir.path("nginx-www.toml");
    std::fs::write(&set, www).unwrap();
    let out_dir = dir.path("learned");
    phasebox_ok(&[
        "scenarios",
        "run",
        set.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
        "--only",
        "unprivileged-workers",
    ]);
    let dynamic = all_syscalls(&read_json(&out_dir.join("merged.profile.json")));
    assert!(dynamic.contains("readlinkat"), "{dynamic:?}");
    let (_, st, stderr) = static_run("/usr/sbin/nginx", &dir);
    let stat = all_syscalls(&st);
    let missing: Vec<&String> = dynamic.difference(&stat).collect();
    assert!(missing.is_empty(), "the static set lacks {missing:?}");
    let chain: Vec<&str> = st["static"]["reachable_from"]["readlinkat"]["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(chain[0], "nginx:_start", "{chain:?}");
    assert!(
        chain
            .iter()
            .any(|f| f.starts_with("*libnss_systemd:_nss_systemd_")),
        "{chain:?}"
    );
    let loaded = &st["static"]["provenance"]["loaded_at_run_time"];
    let systemd = loaded
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "libnss_systemd.so.2")
        .unwrap_or_else(|| panic!("{loaded}"));
    assert!(
        systemd["loaded_by"].as_str().unwrap().contains("group"),
        "{systemd}"
    );
    assert!(
        stderr.contains("Loaded at run time and followed: libnss_systemd.so.2 (nsswitch.conf "),
        "{stderr}"
    );
}

#[test]
fn profile_show_warns_with_reachable_unseen_calls_or_says_why_it_cannot() {
    let dir = TempDir::new("static-coverage");
    let profile = dir.path("pwd.json");
    phasebox_ok(&[
        "run",
        "-q",
        "--profile",
        profile.to_str().unwrap(),
        "--",
        "/bin/pwd",
    ]);
    // A plain run never rebuilds a lost working directory: fchdir is reachable and unseen,
    // in its group, with the function of pwd that makes it.
    let show = phasebox_ok(&["profile", "show", profile.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&show.stderr);
    assert!(
        stderr.contains("phasebox: warning: ")
            && stderr.contains("calls that pwd's code can reach (static analysis of "),
        "{stderr}"
    );
    let fchdir = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("fchdir "))
        .unwrap_or_else(|| panic!("no fchdir: {stderr}"));
    assert!(
        fchdir.contains("pwd:") && fchdir.ends_with("fchdir"),
        "{fchdir}"
    );
    assert!(stderr.contains("  files and directories ("), "{stderr}");
    // A profile of a program this machine lacks: said, and nothing else changes.
    let mut p = read_json(&profile);
    p["program"]["path"] = "/no/such/pwd".into();
    let moved = dir.path("moved.json");
    std::fs::write(&moved, p.to_string()).unwrap();
    let show = phasebox_ok(&["profile", "show", moved.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&show.stderr);
    assert!(
        stderr.contains("phasebox: note: no operations coverage: its program /no/such/pwd is not on this machine"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&show.stdout).contains("role main"));
}
