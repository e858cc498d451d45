//! Bad input gets one clear sentence and a non-zero exit, never a panic or a raw errno.
use std::process::Command;

use phasebox_tests::{
    TempDir, assert_clear_failure, phasebox, phasebox_bin, phasebox_ok, phasebox_within, read_json,
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
    let s = read_json(&summary);
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

/// `phasebox run -q --summary DEST -- /bin/true`, which must succeed.
fn summary_of_true(dest: &std::path::Path) {
    phasebox_ok(&[
        "run",
        "-q",
        "--summary",
        dest.to_str().unwrap(),
        "--",
        "/bin/true",
    ]);
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
    summary_of_true(&dest);
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
    read_json(&dest);

    // Plain files made beforehand by that user are never opened either: the result stays
    // root's, with the usual mode.
    std::fs::remove_file(&dest).unwrap();
    let dest = dir.path("p.json");
    plant_as_nobody(&dir.0, "p.json", &victim, "file");
    summary_of_true(&dest);
    let meta = std::fs::metadata(&dest).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, 0), "the output is not root's");
    assert_eq!(meta.mode() & 0o022, 0, "others can write the output");
    read_json(&dest);
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

/// Every reader refuses devices and files past its limit; a pipe is read (`-`, `<(…)`), and a
/// FIFO with no writer reads as empty at once (no reader waits for a writer): the command says
/// what is wrong with the empty input, naming it.
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
        (s(fifo), ""),
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

/// Writes `v` as JSON to `path`, returning the path as text.
fn write_json(path: std::path::PathBuf, v: &serde_json::Value) -> String {
    std::fs::write(&path, serde_json::to_string_pretty(v).unwrap()).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn hostile_profiles_policies_and_traces_are_refused_or_reported() {
    let dir = TempDir::new("hostile-files");
    let s = |p: std::path::PathBuf| p.to_str().unwrap().to_string();
    let (trace, prof) = (s(dir.path("t.pbtrace")), s(dir.path("p.json")));
    phasebox_ok(&[
        "run",
        "-q",
        "-o",
        &trace,
        "--profile",
        &prof,
        "--",
        "/bin/true",
    ]);
    let good: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&prof).unwrap()).unwrap();

    // Unknown syscall names never reach an export.
    for name in ["not_a_syscall", "<script>alert(1)</script>"] {
        let mut p = good.clone();
        p["roles"][0]["phases"][0]["syscalls"][name] =
            serde_json::json!({"calls": 1, "first_seen_ns": 0});
        let bad = write_json(dir.path("unknown.json"), &p);
        let out = phasebox(&["export", &bad]);
        assert_clear_failure(
            &out,
            &format!("which is not a {} syscall", std::env::consts::ARCH),
        );
        assert!(!String::from_utf8_lossy(&out.stdout).contains(name));
    }
    // Another architecture's profile.
    let mut p = good.clone();
    p["arch"] = "sparc".into();
    let sparc = write_json(dir.path("sparc.json"), &p);
    assert_clear_failure(
        &phasebox(&["profile", "show", &sparc]),
        "is a profile of \"sparc\" programs",
    );

    // Counts that would wrap around saturate.
    let mut p = good.clone();
    p["roles"][0]["processes"] = u64::MAX.into();
    for ph in p["roles"][0]["phases"].as_array_mut().unwrap() {
        for (_, u) in ph["syscalls"].as_object_mut().unwrap() {
            u["calls"] = (u64::MAX - 1).into();
        }
    }
    let big = write_json(dir.path("big.json"), &p);
    let merged = s(dir.path("merged.json"));
    phasebox_ok(&["profile", "merge", &big, &big, "-o", &merged]);
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&merged).unwrap()).unwrap();
    assert_eq!(m["roles"][0]["processes"], u64::MAX);
    let first = m["roles"][0]["phases"][0]["syscalls"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    assert_eq!(first["calls"], u64::MAX);

    // compare: an unknown action is refused; unknown names are reported.
    let foo = write_json(
        dir.path("foo.json"),
        &serde_json::json!({"defaultAction": "SCMP_ACT_FOO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}),
    );
    assert_clear_failure(
        &phasebox(&["compare", &prof, &foo]),
        "\"SCMP_ACT_FOO\" is not a seccomp action",
    );
    let odd = write_json(
        dir.path("odd.json"),
        &serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", "not_a_syscall"], "action": "SCMP_ACT_ALLOW"}]}),
    );
    let out = phasebox_ok(&["compare", &prof, &odd]);
    let text = String::from_utf8_lossy(&out.stdout);
    let want = format!(
        "left out, not {} syscalls (1): not_a_syscall",
        std::env::consts::ARCH
    );
    assert!(text.contains(&want), "{text}");

    // A trace with bytes after its footer.
    let mut bytes = std::fs::read(&trace).unwrap();
    bytes.extend_from_slice(b"trailing");
    let long = s(dir.path("long.pbtrace"));
    std::fs::write(&long, bytes).unwrap();
    assert_clear_failure(
        &phasebox(&["trace", "dump", &long]),
        "it goes on after its footer",
    );
}

#[test]
fn hostile_manifests_rule_files_and_scenario_files_are_refused() {
    let dir = TempDir::new("hostile-config");
    let s = |p: std::path::PathBuf| p.to_str().unwrap().to_string();
    let prof = s(dir.path("p.json"));
    phasebox_tests::learn_profile(std::path::Path::new(&prof), &["/bin/true"]);
    let phases = s(dir.path("phases"));
    phasebox_ok(&["export", &prof, "--per-phase", &phases]);
    let manifest = dir.path("phases/manifest.json");
    let good: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let run_under = |m: &str| phasebox(&["run", "-q", "--seccomp-phases", m, "--", "/bin/true"]);

    // No roles: the program would die of SIGSEGV under a filter that allows nothing.
    let mut m = good.clone();
    m["roles"] = serde_json::json!([]);
    let empty = write_json(dir.path("phases/empty.json"), &m);
    assert_clear_failure(&run_under(&empty), "lists no roles");
    // A phase file outside the manifest's directory.
    let mut m = good.clone();
    m["roles"][0]["phases"][0]["file"] = "../p.json".into();
    let outside = write_json(dir.path("phases/outside.json"), &m);
    assert_clear_failure(&run_under(&outside), "names the file \"../p.json\"");

    // Rule files: a role that is its own parent, occurrence 0, two steady phases.
    let phase = "[[phase]]\nname = 'p'\nenter = [{ exec = true }]\n";
    for (rules, needle) in [
        (format!("name = 'r'\nrole = [{{ name = 'a', parent = 'a' }}]\n{phase}"), "role a is its own ancestor"),
        ("name = 'r'\n[[phase]]\nname = 'p'\nenter = [{ syscalls = ['read'], occurrence = 0 }]\n".to_string(), "occurrence 0"),
        (format!("{phase}steady = true\n[[phase]]\nname = 'q'\nsteady = true\nenter = [{{ fork = true }}]\n").replace("[[phase]]\nname = 'p'", "name = 'r'\n[[phase]]\nname = 'p'"), "both steady"),
        ("name = 'r'\n[[phase]]\nname = 'p'\n  bogus = 1\n".to_string(), "rules.toml:4:3: unknown field `bogus`"),
    ] {
        let path = dir.path("rules.toml");
        std::fs::write(&path, rules).unwrap();
        let out = phasebox(&["run", "-q", "--profile", &s(dir.path("o.json")), "--phases", &s(path), "--", "/bin/true"]);
        assert_clear_failure(&out, needle);
        assert_eq!(String::from_utf8_lossy(&out.stderr).trim().lines().count(), 1);
    }

    // A scenario file asking for a 16 EiB file: refused before anything runs, no panic.
    let set = dir.path("set.toml");
    std::fs::write(
        &set,
        "name = \"t\"\ncommand = [\"/bin/true\"]\n[[scenario]]\nname = \"a\"\ncovers = \"it\"\nfiles = [{ path = \"a\", size = 18446744073709551615 }]\n",
    )
    .unwrap();
    for cmd in ["list", "run"] {
        let out = phasebox(
            &["scenarios", cmd, &s(set.clone()), "-o", &s(dir.path("out"))]
                [..if cmd == "list" { 3 } else { 5 }],
        );
        assert_clear_failure(
            &out,
            "has size 18446744073709551615, more than the 1073741824 bytes",
        );
    }
}

#[test]
fn a_planted_destination_keeps_neither_its_owner_nor_its_mode() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = TempDir::new("planted-dest");
    // A sticky directory everyone may write, as /tmp.
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let prof = dir.path("true.json");
    phasebox_tests::learn_profile(&prof, &["/bin/true"]);
    let dest = dir.path("merged.json");
    // nobody makes the output's name first, open to everyone.
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["/bin/sh", "-c", "echo planted > \"$0\"; chmod 666 \"$0\""])
        .arg(&dest)
        .output()
        .expect("setpriv runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::metadata(&dest).unwrap().uid(), 65534);
    let p = prof.to_str().unwrap();
    phasebox_ok(&["profile", "merge", p, p, "-o", dest.to_str().unwrap()]);
    let meta = std::fs::metadata(&dest).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, 0), "nobody could rewrite it");
    assert_eq!(meta.mode() & 0o7777, 0o600, "others could read it");
    read_json(&dest);
}

/// A profile learned from /bin/true, as JSON.
fn true_profile(dir: &TempDir) -> serde_json::Value {
    let prof = dir.path("true.json");
    phasebox_tests::learn_profile(&prof, &["/bin/true"]);
    read_json(&prof)
}

#[test]
fn names_too_long_for_a_table_never_panic() {
    let dir = TempDir::new("long-names");
    let long = "p".repeat(70_000);
    let cut = "… (70000 characters)";
    // profile show: a phase name past what a format width can be.
    let mut p = true_profile(&dir);
    p["roles"][0]["phases"][0]["name"] = long.clone().into();
    let prof = write_json(dir.path("long.json"), &p);
    let out = phasebox_ok(&["profile", "show", &prof]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(cut) && !text.contains(&long),
        "{}",
        &text[..300]
    );

    // The same name from a rule file, through a trace and `analyze`.
    let rules = dir.path("long.toml");
    std::fs::write(
        &rules,
        format!("name = 'long'\n[[phase]]\nname = '{long}'\nenter = [{{ exec = true }}]\n"),
    )
    .unwrap();
    let (trace, analyzed) = (dir.path("t.pbtrace"), dir.path("analyzed.json"));
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    phasebox_ok(&["run", "-q", "-o", &s(&trace), "--", "/bin/true"]);
    phasebox_ok(&[
        "analyze",
        &s(&trace),
        "--phases",
        &s(&rules),
        "--profile",
        &s(&analyzed),
    ]);
    let out = phasebox_ok(&["profile", "show", &s(&analyzed)]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(cut));

    // scenarios list: a scenario name as long.
    let set = dir.path("set.toml");
    std::fs::write(
        &set,
        format!("name = \"t\"\ncommand = [\"/bin/true\"]\n[[scenario]]\nname = \"{long}\"\ncovers = \"it\"\n"),
    )
    .unwrap();
    let out = phasebox_ok(&["scenarios", "list", &s(&set)]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(cut));
}

/// Whether `bytes` hold a control character a terminal acts on (ESC, BEL, CSI…).
fn has_controls(bytes: &[u8]) -> bool {
    String::from_utf8_lossy(bytes)
        .chars()
        .any(|c| c.is_control() && c != '\n')
}

#[test]
fn terminal_controls_in_names_are_escaped_wherever_they_are_printed() {
    let dir = TempDir::new("controls");
    // A program whose name sets the terminal's title and clears the screen.
    let hostile = dir.path("t\x1b]0;owned\x07\x1b[2Jx");
    std::fs::copy("/bin/true", &hostile).unwrap();
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let (trace, prof) = (dir.path("t.pbtrace"), dir.path("p.json"));
    let out = phasebox_ok(&[
        "run",
        "-o",
        &s(&trace),
        "--profile",
        &s(&prof),
        "--",
        &s(&hostile),
    ]);
    assert!(
        !has_controls(&out.stderr),
        "summary table: {:?}",
        out.stderr
    );
    let table = String::from_utf8_lossy(&out.stderr);
    assert!(
        table.contains("t\\u{1b}]0;owned\\u{7}\\u{1b}[2Jx"),
        "{table}"
    );
    let dump = phasebox_ok(&["trace", "dump", &s(&trace)]);
    assert!(!has_controls(&dump.stdout), "trace dump");
    let show = phasebox_ok(&["profile", "show", &s(&prof)]);
    assert!(!has_controls(&show.stdout), "profile show");

    // compare's table and profile diff: role and phase names from a file.
    let mut p = read_json(&prof);
    p["roles"][0]["name"] = "r\x1b[31m".into();
    p["roles"][0]["phases"][0]["name"] = "ph\x1b[1m".into();
    let odd = write_json(dir.path("odd.json"), &p);
    let policy = dir.path("policy.txt");
    std::fs::write(&policy, "true:read,write,exit_group\n").unwrap();
    for args in [
        vec!["compare", odd.as_str(), policy.to_str().unwrap()],
        vec!["profile", "diff", &s(&prof), odd.as_str()],
        vec!["profile", "show", odd.as_str()],
    ] {
        let out = phasebox_ok(&args);
        assert!(!has_controls(&out.stdout), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("\\u{1b}["),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    // scenarios list: what a scenario covers, from its file.
    let set = dir.path("set.toml");
    std::fs::write(
        &set,
        "name = \"t\"\ncommand = [\"/bin/true\"]\n[[scenario]]\nname = \"a\"\ncovers = \"it\\u001b[2J\"\n",
    )
    .unwrap();
    let out = phasebox_ok(&["scenarios", "list", &s(&set)]);
    assert!(!has_controls(&out.stdout), "scenarios list");
}

/// Runs `cmd` to its end; returns whether it succeeded and its peak resident memory in KiB.
#[expect(
    clippy::zombie_processes,
    reason = "reaped by wait4, which also says its peak memory"
)]
fn peak_memory_kib(cmd: &mut Command) -> (bool, i64) {
    let child = cmd.spawn().expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child with valid out-pointers.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    (
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        usage.ru_maxrss,
    )
}

#[test]
fn a_large_trace_is_read_in_bounded_memory() {
    let dir = TempDir::new("large-trace");
    let trace = dir.path("big.pbtrace");
    let t = trace.to_str().unwrap();
    // About 800,000 calls of 48-byte records: some 40 MB of trace.
    phasebox_ok(&[
        "run",
        "-q",
        "-o",
        t,
        "--",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=1",
        "count=400000",
        "status=none",
    ]);
    let size = std::fs::metadata(&trace).unwrap().len();
    assert!(size > 35 << 20, "a trace of {size} bytes");
    let profile = dir.path("a.json");
    for args in [
        vec!["trace", "dump", t],
        vec!["analyze", t, "--profile", profile.to_str().unwrap()],
    ] {
        let (ok, kib) = peak_memory_kib(
            Command::new(phasebox_bin())
                .args(&args)
                .env_remove(phasebox_tests::CARGO_LIBRARY_PATH)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null()),
        );
        assert!(ok, "{args:?} failed");
        // Reading the trace whole took about one and a half times its size.
        assert!(
            kib < 32 << 10,
            "{args:?}: {kib} KiB for a trace of {size} bytes"
        );
    }
}
