//! Bad input gets one clear sentence and a non-zero exit, never a panic or a raw errno.
use std::process::Command;

use phasebox_tests::{
    TempDir, assert_clear_failure, phasebox, phasebox_bin, phasebox_within, read_summary,
};

#[test]
fn not_root() {
    // setpriv drops to nobody with no capabilities.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--",
        ])
        .arg(phasebox_bin())
        .args(["run", "--", "/bin/true"])
        .output()
        .expect("setpriv runs");
    assert_clear_failure(&out, "needs root");
}

#[test]
fn pid_that_does_not_exist() {
    // Above the kernel's pid_max, so it never exists.
    let out = phasebox(&["record", "-p", "99999999"]);
    assert_clear_failure(&out, "no process with pid 99999999");
}

#[test]
fn command_that_does_not_exist() {
    let out = phasebox(&["run", "--", "/no/such/program"]);
    assert_clear_failure(&out, "command not found");
    let out = phasebox(&["run", "--", "no-such-program-phasebox"]);
    assert_clear_failure(&out, "command not found");
}

#[test]
fn output_path_that_cannot_be_written() {
    let out = phasebox(&["run", "-o", "/no/such/dir/trace", "--", "/bin/true"]);
    assert_clear_failure(&out, "cannot write /no/such/dir/trace");
    let out = phasebox(&["run", "--summary", "/proc/version", "--", "/bin/true"]);
    assert_clear_failure(&out, "cannot write /proc/version");
}

#[test]
fn bad_ring_buffer_sizes() {
    let out = phasebox(&["run", "--ring-buffer", "3000", "--", "/bin/true"]);
    assert_clear_failure(&out, "not a power of two");
    let out = phasebox(&["run", "--ring-buffer", "1K", "--", "/bin/true"]);
    assert_clear_failure(&out, "too small");
}

#[test]
fn traced_pid_that_exits_is_a_normal_end() {
    let dir = TempDir::new("exits");
    let summary = dir.path("summary.json");
    let mut sleeper = Command::new("/bin/sh")
        .args(["-c", "sleep 1; /bin/pwd >/dev/null"])
        .spawn()
        .unwrap();
    let out = phasebox(&[
        "record",
        "-q",
        "-p",
        &sleeper.id().to_string(),
        "--summary",
        summary.to_str().unwrap(),
    ]);
    let _ = sleeper.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = read_summary(&summary);
    let exes: Vec<&str> = s["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["exe"].as_str().unwrap())
        .collect();
    assert!(
        exes.iter().any(|e| e.ends_with("pwd")),
        "the child that ran pwd was followed: {exes:?}"
    );
}

#[test]
fn unreadable_policy_for_compare() {
    let dir = TempDir::new("bad-policy");
    let prof = dir.path("true.json");
    phasebox_tests::learn_profile(&prof, &["/bin/true"]);
    let bad = dir.path("policy.json");
    std::fs::write(&bad, "{\"what\": 1}").unwrap();
    let out = phasebox(&["compare", prof.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_clear_failure(&out, "is not a policy phasebox can read");
    let out = phasebox(&["compare", prof.to_str().unwrap(), "/no/such/policy.json"]);
    assert_clear_failure(&out, "cannot read /no/such/policy.json");
}

/// Runs `mknod ARGS` (a device node or FIFO for a test).
fn mknod(args: &[&str]) {
    let ok = Command::new("mknod")
        .args(args)
        .status()
        .expect("mknod runs");
    assert!(ok.success(), "mknod {args:?}");
}

#[test]
fn output_onto_a_device_node_is_refused() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let dir = TempDir::new("mynull");
    let null = dir.path("mynull");
    mknod(&[null.to_str().unwrap(), "c", "1", "3"]);
    let out = phasebox(&[
        "run",
        "--summary",
        null.to_str().unwrap(),
        "--",
        "/bin/true",
    ]);
    assert_clear_failure(&out, "it is a character device");
    let meta = std::fs::symlink_metadata(&null).unwrap();
    assert!(meta.file_type().is_char_device(), "mynull was replaced");
    assert_eq!(meta.rdev(), libc::makedev(1, 3));
    let fifo = dir.path("fifo");
    mknod(&[fifo.to_str().unwrap(), "p"]);
    let out = phasebox(&[
        "run",
        "-q",
        "--profile",
        fifo.to_str().unwrap(),
        "--",
        "/bin/true",
    ]);
    assert_clear_failure(&out, "it is a FIFO");
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
}

/// As nobody, plants `what` ("link" to `victim`, or "file") at every temporary name the old
/// scheme (.NAME.tmp-PID-0) would give the next 2000 processes, and a link at `dest` itself.
fn plant_as_nobody(dir: &std::path::Path, name: &str, victim: &std::path::Path, what: &str) {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let script = r#"
        my ($dir, $name, $victim, $what, $from, $to) = @ARGV;
        for my $p ($from .. $to) {
            my $at = "$dir/.$name.tmp-$p-0";
            if ($what eq "link") { symlink($victim, $at) or die "symlink: $!" }
            else { open(my $f, ">", $at) or die "open: $!"; print $f "planted"; close $f; chmod 0666, $at }
        }
        symlink($victim, "$dir/$name") or die "symlink: $!" if $what eq "link";
    "#;
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["perl", "-e", script])
        .arg(dir)
        .arg(name)
        .arg(victim)
        .args([what, &(last + 1).to_string(), &(last + 2000).to_string()])
        .output()
        .expect("setpriv runs");
    assert!(
        out.status.success(),
        "planting as nobody: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_user_who_can_write_the_directory_cannot_redirect_roots_output() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = TempDir::new("hostile-dir");
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let safe = TempDir::new("victim");
    let victim = safe.path("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let dest = dir.path("s.json");

    plant_as_nobody(&dir.0, "s.json", &victim, "link");
    let out = phasebox(&[
        "run",
        "-q",
        "--summary",
        dest.to_str().unwrap(),
        "--",
        "/bin/true",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        b"precious",
        "written through a link"
    );
    let meta = std::fs::symlink_metadata(&dest).unwrap();
    assert!(
        meta.file_type().is_file(),
        "the link at the destination was replaced"
    );
    assert_eq!(meta.uid(), 0);
    read_summary(&dest);

    // Plain files made beforehand by that user are never opened either: the result stays
    // root's, with the usual mode.
    std::fs::remove_file(&dest).unwrap();
    let dest = dir.path("p.json");
    plant_as_nobody(&dir.0, "p.json", &victim, "file");
    let out = phasebox(&[
        "run",
        "-q",
        "--summary",
        dest.to_str().unwrap(),
        "--",
        "/bin/true",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta = std::fs::metadata(&dest).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, 0), "the output is not root's");
    assert_eq!(meta.mode() & 0o022, 0, "others can write the output");
    read_summary(&dest);
}

/// Every command form that reads a file, with `F` where the file under test goes; the others
/// are good files made by the test.
fn file_reading_forms(good: &Files) -> Vec<Vec<String>> {
    let me = std::process::id().to_string();
    let forms: &[&[&str]] = &[
        &["trace", "dump", "F"],
        &["analyze", "F", "--profile", "OUT"],
        &["analyze", "TRACE", "--phases", "F", "--profile", "OUT"],
        &["profile", "show", "F"],
        &["profile", "merge", "F", "PROFILE", "-o", "OUT"],
        &["profile", "merge", "PROFILE", "F", "-o", "OUT"],
        &["profile", "diff", "F", "PROFILE"],
        &["profile", "diff", "PROFILE", "F"],
        &["compare", "F", "POLICY"],
        &["compare", "PROFILE", "F"],
        &["export", "F"],
        &["validate", "--profile", "F", "--", "/bin/true"],
        &["validate", "--seccomp", "F", "--", "/bin/true"],
        &["run", "--seccomp", "F", "--", "/bin/true"],
        &["run", "--seccomp-phases", "F", "--", "/bin/true"],
        &[
            "run",
            "-q",
            "--profile",
            "OUT",
            "--phases",
            "F",
            "--",
            "/bin/true",
        ],
        &["report", "F", "-o", "OUT"],
        &["report", "PROFILE", "--compare", "F", "-o", "OUT"],
        &["scenarios", "run", "F", "-o", "OUTDIR"],
        &["scenarios", "run", "SET", "--seccomp", "F", "-o", "OUTDIR"],
        &["scenarios", "list", "F"],
        &[
            "agent",
            "-p",
            "ME",
            "--monitor",
            "F",
            "--listen",
            "127.0.0.1:0",
        ],
        &[
            "agent",
            "-p",
            "ME",
            "--phases",
            "F",
            "--listen",
            "127.0.0.1:0",
        ],
    ];
    forms
        .iter()
        .map(|f| {
            f.iter()
                .map(|a| match *a {
                    "TRACE" => good.trace.clone(),
                    "PROFILE" => good.profile.clone(),
                    "POLICY" => good.policy.clone(),
                    "SET" => good.set.clone(),
                    "OUT" => good.out.clone(),
                    "OUTDIR" => good.out_dir.clone(),
                    "ME" => me.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect()
}

/// Good inputs for the forms' other arguments.
struct Files {
    trace: String,
    profile: String,
    policy: String,
    set: String,
    out: String,
    out_dir: String,
}

#[test]
fn fifos_devices_and_huge_files_are_refused_by_every_reader() {
    let dir = TempDir::new("inputs");
    let s = |p: std::path::PathBuf| p.to_str().unwrap().to_string();
    let good = Files {
        trace: s(dir.path("true.pbtrace")),
        profile: s(dir.path("true.json")),
        policy: s(dir.path("policy.txt")),
        set: s(dir.path("set.toml")),
        out: s(dir.path("out")),
        out_dir: s(dir.path("out-dir")),
    };
    let learned = phasebox(&[
        "run",
        "-q",
        "-o",
        &good.trace,
        "--profile",
        &good.profile,
        "--",
        "/bin/true",
    ]);
    assert!(
        learned.status.success(),
        "{}",
        String::from_utf8_lossy(&learned.stderr)
    );
    std::fs::write(&good.policy, "true:read,write,exit_group\n").unwrap();
    std::fs::write(
        &good.set,
        "name = \"t\"\ncommand = [\"/bin/true\"]\n[[scenario]]\nname = \"a\"\ncovers = \"it\"\n",
    )
    .unwrap();
    let fifo = dir.path("fifo");
    mknod(&[fifo.to_str().unwrap(), "p"]);
    // Sparse: past every limit without taking any space.
    let huge = dir.path("huge");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len((8 << 30) + 1)
        .unwrap();
    let cases = [
        (s(fifo), "it is a FIFO"),
        ("/dev/zero".to_string(), "it is a character device"),
        (s(huge), "and phasebox reads at most"),
    ];
    for (file, needle) in &cases {
        for form in file_reading_forms(&good) {
            let args: Vec<&str> = form
                .iter()
                .map(|a| if a == "F" { file.as_str() } else { a.as_str() })
                .collect();
            let out = phasebox_within(&args, std::time::Duration::from_secs(30));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains(file.as_str()),
                "{args:?} does not name the file: {stderr}"
            );
            assert_clear_failure(&out, needle);
        }
    }
    assert!(!std::path::Path::new(&good.out).exists());
}
