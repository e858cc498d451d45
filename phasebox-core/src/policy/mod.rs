//! Policies from elsewhere, imported as sets of allowed syscall names for one architecture:
//! sysfilter's and Chestnut's number arrays, Chestnut's policy files, OCI/Docker seccomp
//! profiles (current and legacy form, default-deny and default-allow), `App:name,…` lists, and
//! phasebox's own profiles. Formats and rules: docs/compare.md.
pub mod critical;
mod error;
pub mod report;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::{
    profile::Profile,
    seccomp::{action::Action, arg_rules::restrictions},
    sysnames,
};

pub use error::{ActionPlace, PolicyError, PolicyProblem};

/// An imported policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// What it is called in reports (the file name).
    pub name: String,
    /// The format it was read as.
    pub format: &'static str,
    /// Syscalls it allows.
    pub allowed: BTreeSet<String>,
    /// Allowed only when arguments match (OCI `args` conditions): counted as allowed.
    pub conditional: BTreeSet<String>,
    /// Names it allows that are not syscalls of this architecture (other architectures'
    /// calls, as in Docker's profile, or typos): left out of `allowed`, and reported.
    pub not_syscalls: BTreeSet<String>,
}

/// Capabilities a container gets from Docker by default: rules that need only these apply.
const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every syscall name of this architecture.
pub fn all_syscalls() -> BTreeSet<String> {
    syscalls::Sysno::iter()
        .map(|s| sysnames::name(s.id() as u32).into_owned())
        .collect()
}

/// The names Docker's and libseccomp's `arches` use for this architecture.
fn arch_aliases() -> &'static [&'static str] {
    match sysnames::ARCH {
        "x86_64" => &["amd64", "x86_64", "SCMP_ARCH_X86_64"],
        "aarch64" => &["arm64", "aarch64", "SCMP_ARCH_AARCH64"],
        _ => &[],
    }
}

/// Major and minor version of a kernel release: "6.18.44-x" → (6, 18); `None` without two
/// numbers.
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok());
    Some((it.next()?, it.next()?))
}

/// Whether Docker adds an OCI rule with `includes`/`excludes` for a container with its default
/// capabilities on this architecture and kernel `release` (every included capability held,
/// the architecture included, the kernel at least `includes.minKernel`; no excluded
/// capability held, the architecture not excluded, the kernel below `excludes.minKernel`).
pub fn applies_by_default(rule: &Value, release: &str) -> bool {
    let kernel = kernel_version(release).unwrap_or_default();
    Ctx { kernel }.applies(rule)
}

/// What a policy is read for: the kernel release decides OCI `minKernel` rules.
struct Ctx {
    kernel: (u32, u32),
}

/// A syscall given by number: its name on this architecture.
fn number(v: &Value) -> Result<String, PolicyProblem> {
    let n = v
        .as_u64()
        .ok_or_else(|| PolicyProblem::NotNumber(v.clone()))?;
    let name = sysnames::name(n as u32);
    if name.starts_with("syscall_") {
        return Err(PolicyProblem::UnknownNumber(n));
    }
    Ok(name.into_owned())
}

/// A syscall given by number or name.
fn syscall(v: &Value) -> Result<String, PolicyProblem> {
    match v {
        Value::String(s) => Ok(s.clone()),
        _ => number(v),
    }
}

impl Ctx {
    /// Whether an OCI rule's `includes`/`excludes` make it apply to a default container on
    /// this architecture and kernel.
    fn applies(&self, rule: &Value) -> bool {
        let has_arch = |list: &Value| {
            list.as_array().is_some_and(|a| {
                a.iter()
                    .any(|x| x.as_str().is_some_and(|s| arch_aliases().contains(&s)))
            })
        };
        let caps_default = |list: &Value| {
            list.as_array().is_some_and(|a| {
                a.iter()
                    .all(|c| c.as_str().is_some_and(|c| DEFAULT_CAPS.contains(&c)))
            })
        };
        let any_default_cap = |list: &Value| {
            list.as_array().is_some_and(|a| {
                a.iter()
                    .any(|c| c.as_str().is_some_and(|c| DEFAULT_CAPS.contains(&c)))
            })
        };
        let inc = &rule["includes"];
        let exc = &rule["excludes"];
        if !inc["arches"].is_null() && !has_arch(&inc["arches"]) {
            return false;
        }
        if !inc["caps"].is_null() && !caps_default(&inc["caps"]) {
            return false;
        }
        if let Some(min) = inc["minKernel"].as_str()
            && self.kernel < kernel_version(min).unwrap_or_default()
        {
            return false;
        }
        if !exc["arches"].is_null() && has_arch(&exc["arches"]) {
            return false;
        }
        if !exc["caps"].is_null() && any_default_cap(&exc["caps"]) {
            return false;
        }
        if let Some(min) = exc["minKernel"].as_str()
            && self.kernel >= kernel_version(min).unwrap_or_default()
        {
            return false;
        }
        true
    }

    /// An OCI action, checked: an unknown one would otherwise read as a deny.
    fn action(&self, v: &Value, at: ActionPlace) -> Result<Action, PolicyProblem> {
        let action = v.as_str().ok_or(PolicyProblem::ActionNotString(at))?;
        action
            .parse()
            .map_err(|_| PolicyProblem::NotAction(at, action.to_string()))
    }

    fn oci(&self, v: &Value) -> Result<Policy, PolicyProblem> {
        let default = self.action(&v["defaultAction"], ActionPlace::Default)?;
        let rules = match &v["syscalls"] {
            Value::Null => &Vec::new(),
            Value::Array(a) => a,
            _ => return Err(PolicyProblem::SyscallsNotList),
        };
        let mut allowed = BTreeSet::new();
        let mut denied = BTreeSet::new();
        let mut conditional = BTreeSet::new();
        for (i, rule) in rules.iter().enumerate() {
            if rule["action"].is_null() {
                return Err(PolicyProblem::NoAction(i));
            }
            let action = self.action(&rule["action"], ActionPlace::Rule(i))?;
            // Current form: "names": [...]; legacy form: "name": "...".
            let names: Vec<String> = match (&rule["names"], &rule["name"]) {
                (Value::Array(a), _) => a.iter().map(syscall).collect::<Result<_, _>>()?,
                (_, Value::String(n)) => vec![n.clone()],
                _ => return Err(PolicyProblem::NoNames(i)),
            };
            if !self.applies(rule) {
                continue;
            }
            let has_args = rule["args"].as_array().is_some_and(|a| !a.is_empty());
            if action.allows() {
                if has_args {
                    conditional.extend(names.iter().cloned());
                }
                allowed.extend(names);
            } else if !has_args {
                denied.extend(names);
            }
        }
        let allowed = if default.allows() {
            all_syscalls().difference(&denied).cloned().collect()
        } else {
            allowed.difference(&denied).cloned().collect()
        };
        let format = if default.allows() {
            "OCI seccomp (default allow)"
        } else {
            "OCI seccomp (default deny)"
        };
        Ok(Policy {
            conditional,
            ..Policy::allowing(format, allowed)
        })
    }

    fn parse(&self, text: &str) -> Result<Policy, PolicyProblem> {
        if !text.trim_start().starts_with(JSON_STARTS) {
            return Ok(Policy::allowing("name list", names(text)?));
        }
        let v: Value = serde_json::from_str(text)?;
        let (format, allowed) = match &v {
            Value::Array(a) => (
                "syscall number list (sysfilter, Chestnut)",
                a.iter().map(number).collect::<Result<_, _>>()?,
            ),
            Value::Object(o) if o.contains_key("defaultAction") => return self.oci(&v),
            Value::Object(o) if o.contains_key("syscalls") => {
                let list = o["syscalls"]
                    .as_array()
                    .ok_or(PolicyProblem::SyscallsNotList)?;
                (
                    "Chestnut policy",
                    list.iter().map(syscall).collect::<Result<_, _>>()?,
                )
            }
            _ => return Err(PolicyProblem::UnknownFormat),
        };
        Ok(Policy::allowing(format, allowed))
    }
}

/// What a JSON policy starts with; anything else is read as lines of names.
const JSON_STARTS: [char; 2] = ['{', '['];

/// The names of `App:name,name,…` lines (several apps: their union).
fn names(text: &str) -> Result<BTreeSet<String>, PolicyProblem> {
    let mut allowed = BTreeSet::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let Some((_, names)) = line.split_once(':') else {
            return Err(PolicyProblem::NotNameLine(i + 1));
        };
        for n in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                let (line, name) = (i + 1, n.to_string());
                return Err(PolicyProblem::NotName { line, name });
            }
            allowed.insert(n.to_string());
        }
    }
    if allowed.is_empty() {
        return Err(PolicyProblem::NoSyscalls);
    }
    Ok(allowed)
}

impl Policy {
    /// A policy of `format` that allows `allowed`, with no conditions.
    fn allowing(format: &'static str, allowed: BTreeSet<String>) -> Policy {
        Policy {
            name: String::new(),
            format,
            allowed,
            conditional: BTreeSet::new(),
            not_syscalls: BTreeSet::new(),
        }
    }

    /// Reads a policy text; `origin` names it in errors, `kernel` decides OCI `minKernel` rules.
    pub fn parse(text: &str, origin: &str, kernel: &str) -> Result<Policy, PolicyError> {
        let ctx = Ctx {
            kernel: kernel_version(kernel).unwrap_or_default(),
        };
        let mut p = ctx.parse(text).map_err(invalid(origin))?;
        p.name = file_name(origin);
        (p.allowed, p.not_syscalls) = std::mem::take(&mut p.allowed)
            .into_iter()
            .partition(|n| sysnames::number(n).is_some());
        p.conditional.retain(|n| p.allowed.contains(n));
        Ok(p)
    }

    /// Reads `App:name,name,…` lines as the syscalls a policy removes (Temporal
    /// Specialization publishes its results so): it allows the rest of the table. Names this
    /// architecture does not have are an error, since a misspelled name would deny nothing.
    pub fn parse_deny_list(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        let denied = names(text).map_err(invalid(origin))?;
        let table = all_syscalls();
        if let Some(unknown) = denied.iter().find(|n| !table.contains(*n)) {
            return Err(invalid(origin)(PolicyProblem::NotSyscall(unknown.clone())));
        }
        let allowed = table.difference(&denied).cloned().collect();
        Ok(Policy {
            name: file_name(origin),
            ..Policy::allowing("deny list (allows the rest of the table)", allowed)
        })
    }

    /// Reads a deny list file ([`Policy::parse_deny_list`]).
    pub fn load_deny_list(path: &Path) -> Result<Policy, PolicyError> {
        let text = crate::input::read_text(path, crate::input::TEXT)?;
        Policy::parse_deny_list(&text, &crate::input::origin(path))
    }

    /// Reads a policy file, or a phasebox profile (the union of `role`'s phases, or of every
    /// role when it has no such role).
    pub fn load(path: &Path, kernel: &str, role: Option<&str>) -> Result<Policy, PolicyError> {
        let text = crate::input::read_text(path, crate::input::TEXT)?;
        let origin = crate::input::origin(path);
        if text.contains("\"schema\"") && crate::profile::SCHEMAS.iter().any(|s| text.contains(s)) {
            let prof = Profile::parse(&text, &origin)?;
            let roles: Vec<_> = match role.and_then(|r| prof.role(r)) {
                Some(r) => vec![r],
                None => prof.roles.iter().collect(),
            };
            let allowed = roles
                .iter()
                .flat_map(|r| r.union())
                .map(String::from)
                .collect();
            let name = path
                .file_name()
                .map_or(origin.clone(), |n| n.to_string_lossy().into_owned());
            // What an export of these phases restricts by arguments.
            let every_phase: Vec<_> = roles
                .iter()
                .map(|r| (*r, (0..r.phases.len()).collect()))
                .collect();
            let conditional = restrictions(&every_phase, &allowed).into_keys().collect();
            return Ok(Policy {
                name,
                conditional,
                ..Policy::allowing("phasebox profile (union of phases)", allowed)
            });
        }
        Policy::parse(&text, &origin, kernel)
    }
}

/// The last part of `origin`, which names a policy in reports.
fn file_name(origin: &str) -> String {
    origin.rsplit('/').next().unwrap_or(origin).to_string()
}

/// The error for a problem of the policy `origin`, for `map_err`.
fn invalid(origin: &str) -> impl FnOnce(PolicyProblem) -> PolicyError + '_ {
    move |problem| PolicyError::Invalid {
        origin: origin.to_string(),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sentence;

    #[test]
    fn kernel_releases() {
        assert_eq!(kernel_version("6.18.44-fc-v595"), Some((6, 18)));
        assert_eq!(kernel_version("5.4.0-150-generic\n"), Some((5, 4)));
        assert_eq!(kernel_version("4.18.0-513.5.1.el8_9.x86_64"), Some((4, 18)));
        assert_eq!(kernel_version("5.10+"), Some((5, 10)));
        assert_eq!(kernel_version("6"), None);
        assert_eq!(kernel_version("linux"), None);
        assert_eq!(kernel_version(""), None);
    }

    const DOCKER: &str = include_str!("../../../tests/fixtures/docker-default-seccomp.json");

    fn parse(text: &str) -> Policy {
        Policy::parse(text, "t.json", "6.18.0").unwrap()
    }

    #[test]
    fn deny_list_allows_the_rest_of_the_table() {
        let text = "nginx:execve,ptrace, chown\n\nnginx:mount\n";
        let allow = parse(text);
        assert_eq!(allow.allowed.len(), 4);
        let deny = Policy::parse_deny_list(text, "dir/ts-nginx.txt").unwrap();
        assert_eq!(deny.name, "ts-nginx.txt");
        assert_eq!(deny.allowed.len(), all_syscalls().len() - 4);
        for n in ["execve", "ptrace", "chown", "mount"] {
            assert!(!deny.allowed.contains(n), "{n}");
        }
        assert!(deny.allowed.contains("read") && deny.allowed.contains("accept4"));
        let e = Policy::parse_deny_list("nginx:execve,exceve", "d.txt")
            .unwrap_err()
            .sentence();
        assert!(e.contains("exceve is not a"), "{e}");
        let e = Policy::parse_deny_list("\n", "d.txt")
            .unwrap_err()
            .sentence();
        assert!(e.contains("it lists no syscalls"), "{e}");
    }

    fn nr(name: &str) -> u32 {
        sysnames::number(name).unwrap()
    }

    #[test]
    fn number_lists_and_chestnut_policies() {
        let p = parse(&format!("[{}, {}]", nr("read"), nr("write")));
        assert_eq!(p.allowed, BTreeSet::from(["read".into(), "write".into()]));
        assert_eq!(p.format, "syscall number list (sysfilter, Chestnut)");
        let p = parse(&format!(
            "{{\"version\":1,\"syscalls\":[{}],\"parameters\":{{}}}}",
            nr("openat")
        ));
        assert_eq!(p.allowed, BTreeSet::from(["openat".into()]));
        assert_eq!(p.format, "Chestnut policy");
    }

    #[test]
    fn name_lists() {
        let p = parse("nginx:accept4,read, write\nhelper:close\n");
        assert_eq!(p.allowed.len(), 4);
        let e = Policy::parse("nginx read", "l.txt", "6.1")
            .unwrap_err()
            .sentence();
        assert!(e.contains("l.txt") && e.contains("line 1"), "{e}");
    }

    #[test]
    fn oci_current_and_legacy_default_deny() {
        let p = parse(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
                {"names":["read","write"],"action":"SCMP_ACT_ALLOW"},
                {"name":"close","action":"SCMP_ACT_ALLOW"},
                {"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":2,"op":"SCMP_CMP_EQ"}]},
                {"names":["reboot"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_BOOT"]}},
                {"names":["chroot"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_CHROOT"]}},
                {"names":["modify_ldt"],"action":"SCMP_ACT_ALLOW","includes":{"arches":["s390x"]}},
                {"names":["ptrace"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"9.0"}}]}"#,
        );
        let want: BTreeSet<String> = ["read", "write", "close", "socket", "chroot"]
            .map(String::from)
            .into();
        assert_eq!(p.allowed, want);
        assert_eq!(p.conditional, BTreeSet::from(["socket".into()]));
    }

    #[test]
    fn oci_default_allow_is_everything_but_the_denied() {
        let p = parse(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["ptrace","mount"],"action":"SCMP_ACT_ERRNO"},
                {"names":["clone"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_MASKED_EQ"}]}]}"#,
        );
        assert!(!p.allowed.contains("ptrace") && !p.allowed.contains("mount"));
        assert!(
            p.allowed.contains("clone"),
            "a conditional deny leaves the call allowed"
        );
        assert_eq!(p.allowed.len(), all_syscalls().len() - 2);
    }

    #[test]
    fn docker_default_profile() {
        let p = parse(DOCKER);
        assert_eq!(p.format, "OCI seccomp (default deny)");
        for s in [
            "read",
            "openat",
            "execve",
            "clone",
            "ptrace",
            "arch_prctl",
            "chroot",
        ] {
            assert!(p.allowed.contains(s), "docker allows {s}");
        }
        for s in [
            "mount",
            "bpf",
            "init_module",
            "reboot",
            "kexec_load",
            "clone3",
        ] {
            assert!(!p.allowed.contains(s), "docker denies {s}");
        }
        assert!(p.conditional.contains("clone") && p.conditional.contains("personality"));
        // On an old kernel the minKernel rule drops ptrace.
        let old = Policy::parse(DOCKER, "d.json", "4.4.0").unwrap();
        assert!(!old.allowed.contains("ptrace"));
    }

    #[test]
    fn malformed_policies_are_explained() {
        let err = |t: &str| Policy::parse(t, "p.json", "6.1").unwrap_err().sentence();
        assert!(err("[1, \"x\"]").contains("\"x\" is not a syscall number"));
        assert!(err("[99999]").contains("99999 is not in the"));
        assert!(err("{\"foo\": 1}").contains("expected a JSON list"));
        assert!(err("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"action\":\"SCMP_ACT_ALLOW\"}]}")
            .contains("rule 0 has neither"));
        assert!(err("{not json").starts_with("p.json is not a policy phasebox can read"));
    }

    #[test]
    fn unknown_actions_are_refused_and_unknown_names_kept_apart() {
        let err = |t: &str| Policy::parse(t, "p.json", "6.1").unwrap_err().sentence();
        let e = err(r#"{"defaultAction":"SCMP_ACT_FOO","syscalls":[]}"#);
        assert!(
            e.contains("defaultAction \"SCMP_ACT_FOO\" is not a seccomp action"),
            "{e}"
        );
        let e = err(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_BAR"}]}"#,
        );
        assert!(
            e.contains("the action of rule 0 \"SCMP_ACT_BAR\" is not"),
            "{e}"
        );
        let e = err(r#"{"defaultAction":7}"#);
        assert!(e.contains("defaultAction is not a string"), "{e}");
        let p = parse(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
                {"names":["read","not_a_syscall","<script>"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        assert_eq!(p.allowed, BTreeSet::from(["read".into()]));
        assert_eq!(
            p.not_syscalls,
            BTreeSet::from(["<script>".into(), "not_a_syscall".into()])
        );
        let p = parse("app:read,nope\n");
        assert_eq!(p.not_syscalls, BTreeSet::from(["nope".into()]));
        let p = parse(r#"{"syscalls":["write","bogus"]}"#);
        assert_eq!(p.allowed, BTreeSet::from(["write".into()]));
        assert_eq!(p.not_syscalls, BTreeSet::from(["bogus".into()]));
        // Docker's profile names calls of other architectures: reported, not allowed here.
        let d = parse(DOCKER);
        assert!(d.not_syscalls.contains("_llseek"), "{:?}", d.not_syscalls);
        assert!(d.allowed.iter().all(|n| sysnames::number(n).is_some()));
    }
}
