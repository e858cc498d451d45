//! What phasebox's output files live through: the signals that end a run or ask for a
//! checkpoint, a full disk, a temporary file removed under a running phasebox, and who may read
//! and rewrite what root wrote.
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::time::Duration;

use phasebox_tests::{
    CARGO_LIBRARY_PATH, Guard, TempDir, metrics::eventually, nginx::free_port, phasebox_bin,
    phasebox_ok, read_json, spawn_agent,
};

const WAIT: Duration = Duration::from_secs(15);

/// The names of the phasebox temporary files in `dir`.
fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".phasebox-"))
        .collect()
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, sig) };
}

/// Waits (with a deadline) for `child` to end and returns its status and standard error (what
/// came of it within the deadline: a process phasebox left behind may hold it open).
fn ended(child: &mut Child, mut err: impl Read + Send + 'static) -> (ExitStatus, String) {
    let status = eventually(WAIT, "phasebox to end", || child.try_wait().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    let text = rx
        .recv_timeout(WAIT)
        .unwrap_or_else(|_| "(its standard error is still open)".into());
    (status, text)
}

/// A `sleep 60`, and `phasebox record ARGS -p` it, once phasebox says it is tracing.
fn record_a_sleeper(args: &[&str]) -> (Guard, Guard, BufReader<ChildStderr>) {
    let sleeper = Guard::new(Command::new("sleep").arg("60").spawn().unwrap());
    let mut child = Command::new(phasebox_bin())
        .arg("record")
        .args(args)
        .args(["-p", &sleeper.id().to_string()])
        .env_remove(CARGO_LIBRARY_PATH)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("tracing pid"), "record did not start: {line}");
    (sleeper, Guard::new(child), err)
}

/// Sends `sig` to `child` and waits for the profile checkpoint it asks for: a whole profile,
/// its owner's alone; `child` goes on. The checkpoint is removed, for the next one.
fn checkpoint_on(child: &mut Child, sig: i32, prof: &Path) {
    assert!(!prof.exists(), "written before it was asked for");
    signal(child, sig);
    eventually(WAIT, "a checkpoint on the signal", || {
        prof.exists().then_some(())
    });
    assert!(child.try_wait().unwrap().is_none(), "signal {sig} ended it");
    assert_eq!(mode(prof), 0o600);
    read_json(prof);
    std::fs::remove_file(prof).unwrap();
}

/// What a run must leave in `dir`: its trace (if any) and JSON outputs whole, and no temporary
/// file.
fn all_written(dir: &TempDir, trace: Option<&Path>, json: &[&Path]) {
    for j in json {
        read_json(j);
    }
    if let Some(t) = trace {
        phasebox_ok(&["trace", "dump", t.to_str().unwrap()]);
    }
    assert_eq!(temp_files(&dir.0), Vec::<String>::new());
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

#[test]
fn record_checkpoints_on_sigusr1_and_ends_on_sighup() {
    let dir = TempDir::new("record-signals");
    let (trace, summary, prof) = (
        dir.path("t.pbtrace"),
        dir.path("s.json"),
        dir.path("p.json"),
    );
    let (sleeper, mut pb, err) = record_a_sleeper(&[
        "-o",
        trace.to_str().unwrap(),
        "--summary",
        summary.to_str().unwrap(),
        "--profile",
        prof.to_str().unwrap(),
    ]);
    checkpoint_on(&mut pb, libc::SIGUSR1, &prof);

    // A closed terminal: tracing ends and everything learned is written.
    signal(&pb, libc::SIGHUP);
    let (status, text) = ended(&mut pb, err);
    assert!(status.success(), "{status:?}: {text}");
    assert!(text.contains("SIGUSR1: "), "{text}");
    let s = read_json(&summary);
    let pids: Vec<&serde_json::Value> = s["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["pid"])
        .collect();
    assert!(pids.contains(&&serde_json::json!(sleeper.id())), "{s}");
    all_written(&dir, Some(&trace), &[&prof]);
}

#[test]
fn run_passes_sighup_on_and_waits_for_its_command() {
    let dir = TempDir::new("run-sighup");
    let (trace, summary, prof) = (
        dir.path("t.pbtrace"),
        dir.path("s.json"),
        dir.path("p.json"),
    );
    let (started, got) = (dir.path("started"), dir.path("got"));
    let script = format!(
        "trap 'echo hup > {}; exit 7' HUP; touch {}; while :; do sleep 0.05; done",
        got.display(),
        started.display()
    );
    let mut pb = Command::new(phasebox_bin())
        .args(["run", "-q", "-o", trace.to_str().unwrap()])
        .args(["--summary", summary.to_str().unwrap()])
        .args(["--profile", prof.to_str().unwrap(), "--"])
        .args(["/bin/sh", "-c", &script])
        .env_remove(CARGO_LIBRARY_PATH)
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let err = pb.stderr.take().unwrap();
    // The group: a command phasebox failed to wait for is killed with it.
    let mut pb = Guard::group(pb);
    eventually(WAIT, "the command to start", || {
        started.exists().then_some(())
    });
    checkpoint_on(&mut pb, libc::SIGUSR1, &prof);
    signal(&pb, libc::SIGHUP);
    let (status, text) = ended(&mut pb, err);
    // The command got the SIGHUP, ended as it chose, and phasebox exited with its status.
    assert_eq!(status.code(), Some(7), "{text}");
    assert_eq!(std::fs::read_to_string(&got).unwrap().trim(), "hup");
    all_written(&dir, Some(&trace), &[&summary, &prof]);
}

#[test]
fn the_agent_checkpoints_on_sighup_and_sigusr1_and_goes_on() {
    let dir = TempDir::new("agent-signals");
    let prof = dir.path("p.json");
    let sleeper = Guard::new(Command::new("sleep").arg("60").spawn().unwrap());
    let listen = format!("127.0.0.1:{}", free_port());
    let (mut agent, err, line) = spawn_agent(&[
        "-p",
        &sleeper.id().to_string(),
        "--listen",
        &listen,
        "--profile",
        prof.to_str().unwrap(),
        "--checkpoint",
        "1h",
    ]);
    assert!(line.contains("metrics on"), "agent did not start: {line}");
    for sig in [libc::SIGHUP, libc::SIGUSR1] {
        checkpoint_on(&mut agent, sig, &prof);
    }
    signal(&agent, libc::SIGTERM);
    let (status, text) = ended(&mut agent, err);
    assert!(status.success(), "{text}");
    assert!(text.contains("SIGHUP: checkpoint written to"), "{text}");
    all_written(&dir, None, &[&prof]);
}

#[test]
fn a_temporary_file_removed_under_a_run_loses_nothing() {
    let dir = TempDir::new("tmp-cleaner");
    let (trace, prof) = (dir.path("t.pbtrace"), dir.path("p.json"));
    let (_sleeper, mut pb, err) = record_a_sleeper(&[
        "-o",
        trace.to_str().unwrap(),
        "--profile",
        prof.to_str().unwrap(),
    ]);
    // What a cleaner of temporary directories does to files it finds there.
    let temps = temp_files(&dir.0);
    assert!(!temps.is_empty(), "the trace is written as it comes");
    for t in temps {
        std::fs::remove_file(dir.path(&t)).unwrap();
    }
    signal(&pb, libc::SIGTERM);
    let (status, text) = ended(&mut pb, err);
    assert!(status.success(), "{text}");
    let dump = phasebox_ok(&["trace", "dump", trace.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&dump.stdout).contains("# phasebox trace: record"),
        "{}",
        String::from_utf8_lossy(&dump.stdout)
    );
    all_written(&dir, None, &[&prof]);
}

/// A small tmpfs mounted for a test, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: std::path::PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir(&at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .status()
            .unwrap();
        assert!(ok.success(), "mount a tmpfs at {}", at.display());
        Tmpfs(at)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_loses_the_trace_alone_and_never_the_command() {
    let dir = TempDir::new("full-disk");
    let full = Tmpfs::mount(dir.path("full"), "64k");
    let trace = full.0.join("t.pbtrace");
    let (summary, prof, done) = (dir.path("s.json"), dir.path("p.json"), dir.path("done"));
    // About 2 MB of records, far past the 64 KiB the trace's file system has.
    let script = format!(
        "i=0; while [ $i -lt 1000 ]; do /bin/true; i=$((i+1)); done; touch {}; exit 3",
        done.display()
    );
    let log = dir.path("stderr");
    let mut pb = Command::new(phasebox_bin())
        .args(["run", "-q", "-o", trace.to_str().unwrap()])
        .args(["--summary", summary.to_str().unwrap()])
        .args(["--profile", prof.to_str().unwrap(), "--"])
        .args(["/bin/sh", "-c", &script])
        .env_remove(CARGO_LIBRARY_PATH)
        .stderr(std::fs::File::create(&log).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let status = pb.wait().unwrap();
    // The command ran to its end, traced: phasebox waited for it.
    let finished = done.exists();
    let _group = Guard::group(pb);
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(finished, "phasebox ended before its command: {stderr}");
    assert_eq!(status.code(), Some(74), "{stderr}");
    assert_eq!(
        stderr.trim(),
        format!(
            "phasebox: cannot write {}: No space left on device (the other outputs were written)",
            trace.display()
        )
    );
    let s = read_json(&summary);
    let trues = s["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["exe"].as_str().is_some_and(|e| e.ends_with("/true")))
        .count();
    assert_eq!(trues, 1000, "traced to the end");
    read_json(&prof);
    // The partial trace is gone, its space freed.
    assert_eq!(std::fs::read_dir(&full.0).unwrap().count(), 0);
}

#[test]
fn outputs_are_the_owners_alone_whatever_the_umask() {
    let dir = TempDir::new("umask");
    let p = |n: &str| dir.path(n).to_str().unwrap().to_string();
    // umask 0 would leave the usual 0666 open to every user.
    let under_umask_0 = |args: &[String]| {
        let out = Command::new("/bin/sh")
            .args(["-c", "umask 0; exec \"$@\"", "sh"])
            .arg(phasebox_bin())
            .args(args)
            .env_remove(CARGO_LIBRARY_PATH)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let run: Vec<String> = [
        "run",
        "-q",
        "-o",
        &p("t.pbtrace"),
        "--summary",
        &p("s.json"),
        "--profile",
        &p("p.json"),
        "--",
        "/bin/true",
        "--password=hunter2",
    ]
    .map(String::from)
    .to_vec();
    under_umask_0(&run);
    under_umask_0(&["report", &p("p.json"), "-o", &p("r.html")].map(String::from));
    under_umask_0(&["export", &p("p.json"), "-o", &p("e.json")].map(String::from));
    let analyze = ["analyze", &p("t.pbtrace"), "--profile", &p("a.json")];
    under_umask_0(&analyze.map(String::from));
    for name in [
        "t.pbtrace",
        "s.json",
        "p.json",
        "r.html",
        "e.json",
        "a.json",
    ] {
        assert_eq!(mode(&dir.path(name)), 0o600, "{name}");
    }
}
