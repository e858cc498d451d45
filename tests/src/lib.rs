//! Helpers for the integration tests: the phasebox binary, the C test programs, strace as the
//! oracle, an nginx started with the test's own config, a private Docker daemon, phasebox's
//! image and server images, redis, an HTTP client, and a child's output followed line by line.
pub mod attack;
pub mod browser;
pub mod container_nginx;
pub mod docker;
pub mod engine;
pub mod http;
pub mod image;
pub mod lines;
pub mod metrics;
pub mod nginx;
pub mod podman;
pub mod profile;
pub mod prometheus;
pub mod promql;
pub mod redis;
pub mod rootfs;
pub mod strace;
pub mod swarm;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The phasebox binary under test: $PHASEBOX_BIN, else the workspace's release or debug build.
pub fn phasebox_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PHASEBOX_BIN") {
        return PathBuf::from(p);
    }
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    for profile in ["release", "debug"] {
        let p = target.join(profile).join("phasebox");
        if p.exists() {
            return p;
        }
    }
    panic!("the phasebox binary is not built: run `cargo xtask test`, or set PHASEBOX_BIN");
}

/// A C test program built by build.rs.
pub fn fixture(name: &str) -> PathBuf {
    let path = Path::new(env!("PHASEBOX_FIXTURE_BIN")).join(name);
    assert!(
        path.exists(),
        "the test program {name} was not built (tests/build.rs: its library is missing; `cargo xtask setup` installs it)"
    );
    path
}

/// A fresh directory for one test (an unpredictable name, made exclusively), removed on drop;
/// `.0` is its path. Readable by all, as a directory made with the usual umask is: programs
/// that drop privileges still reach their files.
pub struct TempDir(pub PathBuf, tempfile::TempDir);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix(&format!("phasebox-test-{tag}-"))
            .permissions(std::fs::Permissions::from_mode(0o755))
            .tempdir()
            .expect("a temporary directory");
        TempDir(dir.path().to_path_buf(), dir)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Keeps the directory after the test, for a person to read what it holds; its path.
    pub fn keep(self) -> PathBuf {
        self.1.keep()
    }
}

/// cargo sets LD_LIBRARY_PATH for tests; the programs traced here run without it, as they would
/// for a user (the loader would search every directory in it first).
pub const CARGO_LIBRARY_PATH: &str = "LD_LIBRARY_PATH";

/// Runs phasebox with `args`, stdout and stderr captured.
pub fn phasebox(args: &[&str]) -> Output {
    Command::new(phasebox_bin())
        .args(args)
        .env_remove(CARGO_LIBRARY_PATH)
        .stdin(Stdio::null())
        .output()
        .expect("phasebox runs")
}

/// Runs phasebox with `args` like [`phasebox`] and fails the test, showing phasebox's stderr,
/// unless it exits with status 0.
pub fn phasebox_ok(args: &[&str]) -> Output {
    let out = phasebox(args);
    assert!(
        out.status.success(),
        "phasebox {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs phasebox with `args` like [`phasebox`], but fails the test if phasebox has not ended
/// within `limit` (it is killed then): for input that could make it hang.
pub fn phasebox_within(args: &[&str], limit: std::time::Duration) -> Output {
    use std::io::Read;
    let mut child = Command::new(phasebox_bin())
        .args(args)
        .env_remove(CARGO_LIBRARY_PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("phasebox runs");
    // Readers on their own threads, so a full pipe never stops phasebox.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for phasebox") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("phasebox {args:?} did not end within {limit:?}: it hangs");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Calls and errors per syscall name.
pub type Counts = BTreeMap<String, (u64, u64)>;

/// Reads a JSON file phasebox wrote (a `--summary`, a profile, coverage, a comparison).
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} not written: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}\n{text}", path.display()))
}

/// Calls and errors per syscall of one process of a summary.
pub fn process_counts(process: &serde_json::Value) -> Counts {
    let mut out = Counts::new();
    for (name, s) in process["syscalls"].as_object().expect("syscalls object") {
        out.insert(
            name.clone(),
            (s["calls"].as_u64().unwrap(), s["errors"].as_u64().unwrap()),
        );
    }
    out
}

/// Calls and errors per syscall summed over every process of a summary.
pub fn summary_totals(summary: &serde_json::Value) -> Counts {
    let mut out = Counts::new();
    for p in summary["processes"].as_array().expect("processes array") {
        for (name, (c, e)) in process_counts(p) {
            let t = out.entry(name).or_default();
            t.0 += c;
            t.1 += e;
        }
    }
    out
}

/// The differences between two count tables, one line each (empty when equal).
pub fn diff_counts(expected: &Counts, got: &Counts) -> Vec<String> {
    let mut out = Vec::new();
    for name in expected
        .keys()
        .chain(got.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (e, g) = (expected.get(name), got.get(name));
        if e != g {
            out.push(format!("{name}: strace {e:?}, phasebox {g:?}"));
        }
    }
    out
}

/// Asserts a failed run printed one clear line (no panic, no raw errno) containing `needle`.
pub fn assert_clear_failure(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "phasebox panicked: {stderr}");
    assert!(!stderr.contains("os error"), "raw errno in: {stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.len() < 300,
        "message is not one short sentence: {first}"
    );
}

/// Sends one line to a test server on 127.0.0.1:`port` (waiting up to 10 s for it to listen)
/// and returns all it answers; "" when it closes without answering.
pub fn ask(port: u16, line: &str) -> String {
    use std::io::{Read, Write};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut s = loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "server not up: {e}");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    };
    let _ = s.write_all(line.as_bytes());
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Starts `phasebox agent ARGS` and waits for its first line (it is up); returns it, with its
/// standard error to read the rest from.
pub fn spawn_agent(
    args: &[&str],
) -> (Guard, std::io::BufReader<std::process::ChildStderr>, String) {
    let mut agent = Command::new(phasebox_bin());
    agent.arg("agent").args(args);
    spawn_agent_command(agent)
}

/// Like [`spawn_agent`], for an agent command line the caller built (under `prlimit`, say).
pub fn spawn_agent_command(
    mut command: Command,
) -> (Guard, std::io::BufReader<std::process::ChildStderr>, String) {
    use std::io::BufRead;
    let mut agent = command
        .stderr(Stdio::piped())
        .spawn()
        .expect("phasebox agent starts");
    let mut err = std::io::BufReader::new(agent.stderr.take().expect("stderr"));
    let mut line = String::new();
    err.read_line(&mut line).expect("agent's first line");
    (Guard::new(agent), err, line)
}

/// `phasebox analyze TRACE --phases RULES --profile DIR/analyzed-RULES.json`, which must
/// succeed; returns the profile.
pub fn analyze(dir: &TempDir, trace: &Path, rules: &str) -> serde_json::Value {
    let out_path = dir.path(&format!("analyzed-{rules}.json"));
    let out = phasebox(&[
        "analyze",
        trace.to_str().expect("UTF-8 path"),
        "--phases",
        rules,
        "--profile",
        out_path.to_str().expect("UTF-8 path"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    profile::load(&out_path)
}

/// `phasebox run -q --profile PROFILE -- ARGV…`, which must succeed: learns `argv`'s profile.
pub fn learn_profile(profile: &Path, argv: &[&str]) {
    let mut args = vec![
        "run",
        "-q",
        "--profile",
        profile.to_str().expect("UTF-8 path"),
        "--",
    ];
    args.extend_from_slice(argv);
    let out = phasebox(&args);
    assert!(
        out.status.success(),
        "learning {argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A child process killed and reaped when the guard drops, so a failing test leaves nothing
/// running; with `group`, the child leads a process group, and the whole group is killed.
pub struct Guard {
    child: std::process::Child,
    group: bool,
}

impl Guard {
    pub fn new(child: std::process::Child) -> Guard {
        Guard {
            child,
            group: false,
        }
    }

    /// For a child spawned with `process_group(0)`: kills its whole group on drop.
    pub fn group(child: std::process::Child) -> Guard {
        Guard { child, group: true }
    }
}

impl std::ops::Deref for Guard {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.child
    }
}

impl std::ops::DerefMut for Guard {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.child
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.group {
            // SAFETY: signalling the process group our own child leads.
            unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The ids of the BPF programs `pid` holds open (from its fdinfo).
pub fn bpf_programs_of(pid: u32) -> std::collections::BTreeSet<u32> {
    fdinfo_ids(pid, "prog_id:")
}

/// The ids of the BPF maps `pid` holds open (from its fdinfo): a process's own maps, told
/// apart from another phasebox's on a busy machine.
pub fn bpf_maps_of(pid: u32) -> std::collections::BTreeSet<u32> {
    fdinfo_ids(pid, "map_id:")
}

/// The ids after `key` in the fdinfo of `pid`'s descriptors.
fn fdinfo_ids(pid: u32, key: &str) -> std::collections::BTreeSet<u32> {
    let mut ids = std::collections::BTreeSet::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return ids;
    };
    for e in dir.flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        ids.extend(
            text.lines()
                .filter_map(|l| l.strip_prefix(key))
                .filter_map(|v| v.trim().parse::<u32>().ok()),
        );
    }
    ids
}

/// `bpftool -j ARGS` as JSON (null when bpftool says nothing it can parse).
pub fn bpftool(args: &[&str]) -> serde_json::Value {
    let out = Command::new("bpftool")
        .arg("-j")
        .args(args)
        .output()
        .expect("bpftool is installed");
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// The id of the BPF map `name` that process `pid` holds open.
pub fn map_of(pid: u32, name: &str) -> u32 {
    bpf_maps_of(pid)
        .into_iter()
        .find(|id| bpftool(&["map", "show", "id", &id.to_string()])["name"] == name)
        .unwrap_or_else(|| panic!("process {pid} holds no map {name}"))
}

/// The value of element `index` of the BPF array `name` that process `pid` holds open.
pub fn array_element(pid: u32, name: &str, index: u32) -> Vec<u8> {
    let id = map_of(pid, name).to_string();
    let key: Vec<String> = index.to_le_bytes().iter().map(u8::to_string).collect();
    let mut args = vec!["map", "lookup", "id", id.as_str(), "key"];
    args.extend(key.iter().map(String::as_str));
    let entry = bpftool(&args);
    entry["value"]
        .as_array()
        .unwrap_or_else(|| panic!("{name} has no element {index}: {entry}"))
        .iter()
        .map(|b| u8::from_str_radix(b.as_str().unwrap().trim_start_matches("0x"), 16).unwrap())
        .collect()
}

/// Entries of the BPF map `id` whose value's first four bytes are not all zero (for an array
/// of process slots, those in use).
pub fn entries_in_use(id: u32) -> usize {
    let dump = bpftool(&["map", "dump", "id", &id.to_string()]);
    let entries = dump.as_array().cloned().unwrap_or_default();
    assert!(!entries.is_empty(), "map {id} has no entries");
    entries
        .iter()
        .filter(|e| {
            e["value"].as_array().is_some_and(|v| {
                v.iter()
                    .take(4)
                    .any(|b| b.as_str().is_some_and(|b| b != "0x00"))
            })
        })
        .count()
}

/// Entries in the BPF map `id` now (`bpftool map dump`).
pub fn map_entries(id: u32) -> usize {
    bpftool(&["map", "dump", "id", &id.to_string()])
        .as_array()
        .map_or(0, Vec::len)
}

/// The ids of every BPF program loaded on the host.
pub fn loaded_bpf_programs() -> std::collections::BTreeSet<u32> {
    bpftool(&["prog", "show"])
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["id"].as_u64().map(|id| id as u32))
                .collect()
        })
        .unwrap_or_default()
}

/// The children of `pid` (an nginx master's workers, say), from /proc.
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// How many lines of the file at `path` contain `needle` (0 when it cannot be read).
pub fn count_lines(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

/// `phasebox export PROFILE --for-runtime docker -o OUT`, which must succeed; its stderr.
pub fn export_for_docker(profile: &Path, out: &Path) -> String {
    let out = phasebox_ok(&[
        "export",
        profile.to_str().expect("UTF-8 path"),
        "--for-runtime",
        "docker",
        "-o",
        out.to_str().expect("UTF-8 path"),
    ]);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `phasebox ARGS… -- SERVER PORT`, its standard error piped (read it with
/// [`finished_ok`]).
pub fn serve_under(args: &[&str], server: &Path, port: u16) -> std::process::Child {
    serve_under_with(args, server, port, &[])
}

/// [`serve_under`] with `more` arguments for the server after its port.
pub fn serve_under_with(
    args: &[&str],
    server: &Path,
    port: u16,
    more: &[&str],
) -> std::process::Child {
    std::process::Command::new(phasebox_bin())
        .args(args)
        .arg("--")
        .arg(server)
        .arg(port.to_string())
        .args(more)
        .env_remove(CARGO_LIBRARY_PATH)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("phasebox starts")
}

/// Waits for a server started by [`serve_under`]; its standard error. Fails unless it
/// ended well.
pub fn finished_ok(child: std::process::Child) -> String {
    let out = child.wait_with_output().expect("phasebox is waited for");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "server under phasebox failed: {stderr}"
    );
    stderr
}
