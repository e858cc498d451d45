//! The attack probe (fixtures/attack_probe.c): which attack primitives, the calls with the
//! arguments a compromised server worker would make, a seccomp policy lets through.
//! [`probe_rules`] turns an OCI seccomp profile into the probe's rules as a default Docker
//! container on x86_64 would load it; [`run_probe`] runs the probe on them.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use phasebox_core::policy;

use crate::{TempDir, fixture};

/// The probe's primitives, in the order it prints them.
pub const PRIMITIVES: &[&str] = &[
    "mmap-rwx",
    "mmap-rx-anon",
    "mprotect-exec",
    "mprotect-rwx",
    "pkey_mprotect-exec",
    "socket-netlink",
    "socket-packet",
    "socket-vsock",
    "socket-raw-inet",
    "socket-unix",
    "socketpair-unix-dgram",
    "unshare-user",
    "clone-newuser",
    "unshare-net",
    "setns-net",
    "ioctl-tiocsti",
    "openat-write-create",
    "openat-rdwr",
    "openat-trunc",
    "prctl-get-seccomp",
    "prctl-set-dumpable",
    "personality-read-implies-exec",
    "fcntl-setsig",
    "setsockopt-attach-filter",
    "setsockopt-ip-transparent",
];

/// Actions that let the call run: allow, and log (which allows after logging).
fn lets_through(action: &str) -> bool {
    matches!(action, "SCMP_ACT_ALLOW" | "SCMP_ACT_LOG")
}

/// The probe's rules (its RULES_FILE) for an OCI seccomp profile, as a default Docker container
/// on x86_64 loads it: the rules whose action lets the call run (SCMP_ACT_ALLOW or
/// SCMP_ACT_LOG), one line per name, with the rule's argument conditions; every other rule
/// only blocks, which the probe does to whatever its rules do not allow. (A blocking rule that
/// carves an exception out of an allow rule for the same call is not represented.) Rules
/// under `includes`/`excludes` are taken as Docker takes them for a container with Docker's
/// default capabilities on this kernel. Like runc, a rule with several conditions on one
/// argument becomes one rule per condition (either lets the call through). Err for a profile
/// the probe cannot represent (one that allows by default) or cannot read.
pub fn probe_rules(oci: &Value) -> Result<String, String> {
    let default = oci["defaultAction"]
        .as_str()
        .ok_or("the profile has no defaultAction")?;
    if lets_through(default) {
        return Err(format!(
            "defaultAction {default} lets every call through: the probe takes allow lists only"
        ));
    }
    let rules = match &oci["syscalls"] {
        Value::Null => &Vec::new(),
        Value::Array(rules) => rules,
        _ => return Err("syscalls is not a list".into()),
    };
    let release = kernel()?;
    let mut out = String::new();
    for (i, rule) in rules.iter().enumerate() {
        let action = rule["action"]
            .as_str()
            .ok_or_else(|| format!("rule {i} has no action"))?;
        if !lets_through(action) || !policy::applies_by_default(rule, &release) {
            continue;
        }
        let mut names = strings(&rule["names"]).map_err(|e| format!("rule {i}: names {e}"))?;
        if let Some(name) = rule["name"].as_str() {
            names.push(name);
        }
        let conditions = match &rule["args"] {
            Value::Null => Vec::new(),
            Value::Array(args) => args
                .iter()
                .map(condition)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("rule {i}: {e}"))?,
            _ => return Err(format!("rule {i}: args is not a list")),
        };
        let repeated = conditions
            .iter()
            .enumerate()
            .any(|(j, (index, _))| conditions[..j].iter().any(|(other, _)| other == index));
        let alternatives: Vec<Vec<&String>> = if repeated {
            conditions.iter().map(|(_, c)| vec![c]).collect()
        } else {
            vec![conditions.iter().map(|(_, c)| c).collect()]
        };
        for name in names {
            for conds in &alternatives {
                out.push_str(name);
                for c in conds {
                    write!(out, " {c}").expect("writing to a String");
                }
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// One OCI argument condition as the probe's `IDX OP MASK VALUE`, with its argument index.
fn condition(arg: &Value) -> Result<(u64, String), String> {
    let index = arg["index"]
        .as_u64()
        .filter(|i| *i <= 5)
        .ok_or_else(|| format!("argument index {} is not one of 0..5", arg["index"]))?;
    let value = arg["value"]
        .as_u64()
        .ok_or_else(|| format!("argument value {} is not a number", arg["value"]))?;
    let value_two = match &arg["valueTwo"] {
        Value::Null => 0,
        v => v
            .as_u64()
            .ok_or_else(|| format!("argument valueTwo {v} is not a number"))?,
    };
    let op = arg["op"].as_str().unwrap_or_default();
    let text = match op {
        // libseccomp's masked comparison: (arg & value) == valueTwo.
        "SCMP_CMP_MASKED_EQ" => format!("{index} MASKED_EQ {value:#x} {value_two:#x}"),
        "SCMP_CMP_EQ" | "SCMP_CMP_NE" | "SCMP_CMP_LT" | "SCMP_CMP_LE" | "SCMP_CMP_GE"
        | "SCMP_CMP_GT" => format!("{index} {} 0 {value}", &op["SCMP_CMP_".len()..]),
        _ => return Err(format!("unknown argument comparison {}", arg["op"])),
    };
    Ok((index, text))
}

/// A list of strings (none when absent).
fn strings(v: &Value) -> Result<Vec<&str>, String> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(a) => a
            .iter()
            .map(|s| s.as_str().ok_or_else(|| format!("has {s}, not a string")))
            .collect(),
        _ => Err(format!("is {v}, not a list")),
    }
}

/// The running kernel's release.
fn kernel() -> Result<String, String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| r.trim().to_string())
        .map_err(|e| format!("the kernel's release: {e}"))
}

/// Runs the probe on `rules` (its RULES_FILE text): each primitive with whether the rules let
/// it through, in [`PRIMITIVES`]' order. Fails the test, showing the probe's stderr, if the
/// probe fails or prints anything else.
pub fn run_probe(rules: &str) -> Vec<(String, bool)> {
    let dir = TempDir::new("attack-probe");
    let path = dir.path("rules");
    std::fs::write(&path, rules).expect("write the probe's rules");
    let out = Command::new(fixture("attack_probe"))
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .expect("the attack probe runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "attack_probe failed ({}): {stderr}",
        out.status
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results: Vec<(String, bool)> = stdout
        .lines()
        .map(|line| match line.split_once('\t') {
            Some((name, "through")) => (name.to_string(), true),
            Some((name, "blocked")) => (name.to_string(), false),
            _ => panic!("attack_probe printed {line:?}; stderr: {stderr}"),
        })
        .collect();
    let names: Vec<&str> = results.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names, PRIMITIVES,
        "attack_probe's primitives are not PRIMITIVES; stderr: {stderr}"
    );
    results
}

/// Each primitive's syscall and its arguments as phasebox records them (`call_args`: the
/// first three, masked), to tell whether a learned phase used it.
pub const PRIMITIVE_CALLS: &[(&str, &str, [u64; 3])] = &[
    ("mmap-rwx", "mmap", [0, 0, 6]),
    ("mmap-rx-anon", "mmap", [0, 0, 4]),
    ("mprotect-exec", "mprotect", [0, 0, 4]),
    ("mprotect-rwx", "mprotect", [0, 0, 6]),
    ("pkey_mprotect-exec", "pkey_mprotect", [0, 0, 4]),
    ("socket-netlink", "socket", [16, 3, 0]),
    ("socket-packet", "socket", [17, 3, 0x0300]),
    ("socket-vsock", "socket", [40, 1, 0]),
    ("socket-raw-inet", "socket", [2, 3, 1]),
    ("socket-unix", "socket", [1, 1, 0]),
    ("socketpair-unix-dgram", "socketpair", [1, 2, 0]),
    ("unshare-user", "unshare", [0x1000_0000, 0, 0]),
    ("clone-newuser", "clone", [0x1000_0000, 0, 0]),
    ("unshare-net", "unshare", [0x4000_0000, 0, 0]),
    ("setns-net", "setns", [0, 0x4000_0000, 0]),
    ("ioctl-tiocsti", "ioctl", [0, 0x5412, 0]),
    ("openat-write-create", "openat", [0, 0, 0o101]),
    ("openat-rdwr", "openat", [0, 0, 2]),
    ("openat-trunc", "openat", [0, 0, 0o1001]),
    ("prctl-get-seccomp", "prctl", [21, 0, 0]),
    ("prctl-set-dumpable", "prctl", [4, 0, 0]),
    (
        "personality-read-implies-exec",
        "personality",
        [0x0040_0000, 0, 0],
    ),
    ("fcntl-setsig", "fcntl", [0, 10, 0]),
    ("setsockopt-attach-filter", "setsockopt", [0, 1, 26]),
    ("setsockopt-ip-transparent", "setsockopt", [0, 0, 19]),
];

/// Which primitives the OCI profile at `path` lets through.
pub fn through(path: &Path) -> BTreeMap<String, bool> {
    let oci = crate::read_json(path);
    let rules = probe_rules(&oci).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    run_probe(&rules).into_iter().collect()
}

/// Whether a learned profile phase (its JSON) made primitive `name`'s call with its
/// arguments (a call recorded without arguments counts as made with any).
pub fn used_by(phase: &Value, name: &str) -> bool {
    let Some((_, call, want)) = PRIMITIVE_CALLS.iter().find(|(p, _, _)| *p == name) else {
        panic!("{name} is not a primitive");
    };
    let Some(u) = phase["syscalls"].get(*call) else {
        return false;
    };
    match u["args"].as_array() {
        None => true,
        Some(sets) => sets.iter().any(|s| {
            let v: Vec<u64> = s
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            v == want
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phasebox_core::policy::kernel_version as version;
    use std::collections::BTreeMap;

    fn through(results: &[(String, bool)]) -> Vec<&str> {
        results
            .iter()
            .filter(|(_, t)| *t)
            .map(|(n, _)| n.as_str())
            .collect()
    }

    #[test]
    fn probe_rules_reads_names_arguments_and_conditions() {
        let profile = serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"name": "close", "action": "SCMP_ACT_ALLOW"},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["getpid"], "action": "SCMP_ACT_LOG"},
                {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [
                    {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
                    {"index": 1, "value": 3, "valueTwo": 0, "op": "SCMP_CMP_NE"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [
                    {"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}],
                 "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390x"]}},
                {"names": ["mmap"], "action": "SCMP_ACT_ALLOW", "args": [
                    {"index": 2, "value": 4, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["fcntl"], "action": "SCMP_ACT_ALLOW", "args": [
                    {"index": 1, "value": 1, "op": "SCMP_CMP_GE"},
                    {"index": 1, "value": 4, "op": "SCMP_CMP_LE"}]},
                {"names": ["mount"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["chroot"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"caps": ["CAP_SYS_CHROOT"]}},
                {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"arches": ["amd64", "x32"]}},
                {"names": ["cacheflush"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"arches": ["arm", "arm64"]}},
                {"names": ["kill"], "action": "SCMP_ACT_ALLOW",
                 "excludes": {"arches": ["amd64"]}},
                {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"minKernel": "4.8"}},
                {"names": ["kcmp"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"minKernel": "999.0"}},
                {"names": ["tkill"], "action": "SCMP_ACT_ALLOW",
                 "excludes": {"caps": ["CAP_KILL"]}}
            ]
        });
        assert_eq!(
            probe_rules(&profile).unwrap(),
            "read\nwrite\nclose\ngetpid\n\
             socket 0 EQ 0 2 1 NE 0 3\n\
             clone 0 MASKED_EQ 0x7e020000 0x0\n\
             mmap 2 MASKED_EQ 0x4 0x0\n\
             fcntl 1 GE 0 1\nfcntl 1 LE 0 4\n\
             chroot\narch_prctl\nptrace\n"
        );
    }

    #[test]
    fn probe_rules_refuses_what_it_cannot_represent() {
        let err = |p: Value| probe_rules(&p).unwrap_err();
        assert!(err(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW"})).contains("allow"));
        assert!(err(serde_json::json!({})).contains("defaultAction"));
        let rule = |arg: Value| {
            serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [arg]}]})
        };
        let e = err(rule(
            serde_json::json!({"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}),
        ));
        assert!(e.contains("rule 0") && e.contains("index 6"), "{e}");
        let e = err(rule(
            serde_json::json!({"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}),
        ));
        assert!(e.contains("SCMP_CMP_ABOUT"), "{e}");
        assert_eq!(
            probe_rules(&serde_json::json!({"defaultAction": "SCMP_ACT_KILL"})).unwrap(),
            ""
        );
    }

    #[test]
    fn version_reads_kernel_releases() {
        assert_eq!(version("6.18.44-fc-v1272"), Some((6, 18)));
        assert_eq!(version("4.8"), Some((4, 8)));
        assert_eq!(version("5.15-rc1"), Some((5, 15)));
        assert_eq!(version("six"), None);
        assert!(
            version(&kernel().unwrap()).unwrap() >= (3, 17),
            "seccomp needs a newer kernel"
        );
    }

    /// Each primitive's syscall by name: every primitive gets through.
    #[test]
    fn probe_lets_everything_through_when_the_calls_are_allowed() {
        let rules = "# every primitive's call\nmmap\nmprotect\npkey_mprotect\nsocket\nsocketpair\n\
                     unshare\nclone\nsetns\nioctl\nopenat\n\nprctl\npersonality\nfcntl\n\
                     setsockopt\n";
        let results = run_probe(rules);
        assert_eq!(through(&results), PRIMITIVES, "{results:?}");
    }

    #[test]
    fn probe_blocks_everything_under_an_empty_allow_list() {
        let results = run_probe("");
        assert_eq!(through(&results), Vec::<&str>::new(), "{results:?}");
    }

    #[test]
    fn probe_applies_argument_conditions() {
        // socket(AF_INET, ...) only; unknown names are skipped.
        let results = run_probe("socket 0 EQ 0 2\nno_such_call\n");
        assert_eq!(through(&results), ["socket-raw-inet"], "{results:?}");
        // Writable, executable mappings refused: (prot & PROT_EXEC) == 0.
        let results = run_probe("mmap 2 MASKED_EQ 0x4 0\nmprotect 2 MASKED_EQ 4 0x0\n");
        assert_eq!(through(&results), Vec::<&str>::new(), "{results:?}");
        let results = run_probe("prctl 0 EQ 0 4\n"); // PR_SET_DUMPABLE
        assert_eq!(through(&results), ["prctl-set-dumpable"], "{results:?}");
    }

    #[test]
    fn probe_refuses_a_malformed_line_naming_it() {
        let dir = TempDir::new("attack-probe-bad");
        for (rules, needle) in [
            ("read\n# fine\nsocket 0 EQ 2\n", "line 3"),
            ("socket 0 SOMETIMES 0 2\n", "SOMETIMES"),
            (
                "socket 0 EQ 0 2 0 EQ 0 1\n",
                "two conditions on one argument",
            ),
            ("socket 9 EQ 0 2\n", "0..5"),
            ("socket 0 EQ 0 two\n", "two"),
        ] {
            let path = dir.path("rules");
            std::fs::write(&path, rules).unwrap();
            let out = Command::new(fixture("attack_probe"))
                .arg(&path)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{rules:?}: {stderr}");
            assert!(stderr.contains(needle), "{rules:?}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{rules:?}: {stderr}");
            assert!(out.stdout.is_empty(), "{rules:?}");
        }
    }

    /// Docker's default profile, as a default container on x86_64 gets it.
    #[test]
    fn probe_under_dockers_default_profile() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/docker-default-seccomp.json");
        let profile = crate::read_json(&path);
        let results: BTreeMap<String, bool> = run_probe(&probe_rules(&profile).unwrap())
            .into_iter()
            .collect();
        // What the JSON says: socket for some address families, unshare, setns and clone with
        // namespace flags only with CAP_SYS_ADMIN, five personality values; the rest of these
        // calls by name.
        let blocked = [
            // socket: domain < 38, == 39 or > 40: AF_ALG (38) and AF_VSOCK (40) are left out.
            "socket-vsock",
            // unshare, setns: only with CAP_SYS_ADMIN.
            "unshare-user",
            "unshare-net",
            "setns-net",
            // clone: (flags & 0x7e020000) == 0 without CAP_SYS_ADMIN; CLONE_NEWUSER is in it.
            "clone-newuser",
            // personality: 0, 8, 0x20000, 0x20008, 0xffffffff only.
            "personality-read-implies-exec",
        ];
        for (name, through) in &results {
            assert_eq!(
                *through,
                !blocked.contains(&name.as_str()),
                "{name} under Docker's default: {results:?}"
            );
        }
    }
}
