//! The OCI runtime-spec seccomp profile (what Docker, Podman, runc and crun read): reading,
//! checking and writing it.
use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

use super::action::{Action, Operator};
use crate::file_error::FileError;
use crate::sysnames;

/// Why an OCI seccomp profile cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{origin} is not a valid OCI seccomp profile")]
    Invalid {
        origin: String,
        #[source]
        problem: OciProblem,
    },
    #[error("{origin} is for {} and this machine is {}", architectures.join(", "), native_arch())]
    OtherArch {
        origin: String,
        architectures: Vec<String>,
    },
}

/// What makes an OCI seccomp profile invalid.
#[derive(Debug, thiserror::Error)]
pub enum OciProblem {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("defaultAction {0} is not one phasebox enforces")]
    DefaultNotEnforced(Action),
    #[error("defaultErrnoRet {0} is outside 1..4095, the errno values a seccomp filter can return")]
    DefaultErrno(u32),
    #[error("rule {rule} has action {action}, which phasebox does not enforce")]
    NotEnforced { rule: usize, action: Action },
    #[error(
        "rule {rule} has errnoRet {errno}, outside 1..4095, the errno values a seccomp filter can return"
    )]
    Errno { rule: usize, errno: u32 },
    #[error("rule {0} names no syscall")]
    NoSyscall(usize),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciProfile {
    #[serde(deserialize_with = "default_action")]
    pub default_action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub syscalls: Vec<OciRule>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// The legacy one-name form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<OciArg>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub includes: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excludes: Option<serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciArg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: Operator,
}

/// A profile's default action; an unknown one is named as the default.
fn default_action<'de, D: Deserializer<'de>>(d: D) -> Result<Action, D::Error> {
    let name = String::deserialize(d)?;
    name.parse()
        .map_err(|_| serde::de::Error::custom(format_args!("unknown defaultAction {name}")))
}

/// The libseccomp architecture name of this machine.
pub fn native_arch() -> &'static str {
    match sysnames::ARCH {
        "x86_64" => "SCMP_ARCH_X86_64",
        "aarch64" => "SCMP_ARCH_AARCH64",
        "riscv64" => "SCMP_ARCH_RISCV64",
        _ => "SCMP_ARCH_NATIVE",
    }
}

/// The libseccomp architecture name for a profile's `arch`.
pub fn scmp_arch(arch: &str) -> String {
    match arch {
        "x86_64" => "SCMP_ARCH_X86_64".into(),
        "aarch64" => "SCMP_ARCH_AARCH64".into(),
        other => format!("SCMP_ARCH_{}", other.to_uppercase()),
    }
}

/// The errno values a seccomp filter can return.
pub use crate::sysnames::ERRNO_RANGE;

impl OciRule {
    /// An unconditional rule: `action` for `names`.
    pub fn new(names: Vec<String>, action: Action) -> OciRule {
        OciRule {
            names,
            name: None,
            action,
            errno_ret: None,
            args: Vec::new(),
            comment: None,
            includes: None,
            excludes: None,
        }
    }

    /// The names the rule covers, in either form.
    pub fn all_names(&self) -> Vec<String> {
        let mut v = self.names.clone();
        v.extend(self.name.clone());
        v
    }
}

impl OciProfile {
    /// A default-deny profile that allows `names`.
    pub fn allow_list(
        names: &BTreeSet<String>,
        arch: &str,
        default_action: Action,
        errno: u32,
    ) -> OciProfile {
        OciProfile {
            default_action,
            default_errno_ret: (default_action == Action::Errno).then_some(errno),
            architectures: vec![scmp_arch(arch)],
            syscalls: vec![OciRule::new(names.iter().cloned().collect(), Action::Allow)],
        }
    }

    /// The unconditional rules that are neither allow nor the default: (name, action, errno).
    pub fn explicit_denials(&self) -> Vec<(String, Action, Option<u32>)> {
        self.syscalls
            .iter()
            .filter(|r| r.action != Action::Allow && r.args.is_empty())
            .filter(|r| r.includes.is_none() && r.excludes.is_none())
            .flat_map(|r| {
                r.all_names()
                    .into_iter()
                    .map(|n| (n, r.action, r.errno_ret))
            })
            .collect()
    }

    /// Names the profile allows outright (rules with SCMP_ACT_ALLOW and no conditions).
    pub fn allowed(&self) -> BTreeSet<String> {
        self.syscalls
            .iter()
            .filter(|r| r.action == Action::Allow && r.args.is_empty())
            .flat_map(OciRule::all_names)
            .collect()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("profile serializes") + "\n"
    }

    /// Parses and checks a profile; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<OciProfile, OciError> {
        let invalid = |problem| OciError::Invalid {
            origin: origin.to_string(),
            problem,
        };
        let p: OciProfile = serde_json::from_str(text).map_err(|e| invalid(e.into()))?;
        p.check().map_err(invalid)?;
        if !p.architectures.is_empty() && !p.architectures.iter().any(|a| a == native_arch()) {
            return Err(OciError::OtherArch {
                origin: origin.to_string(),
                architectures: p.architectures,
            });
        }
        Ok(p)
    }

    /// Every action is one phasebox enforces, every errno one a filter can return, and every
    /// rule names a call.
    fn check(&self) -> Result<(), OciProblem> {
        if !self.default_action.enforceable() {
            return Err(OciProblem::DefaultNotEnforced(self.default_action));
        }
        if let Some(e) = self.default_errno_ret.filter(|e| !ERRNO_RANGE.contains(e)) {
            return Err(OciProblem::DefaultErrno(e));
        }
        for (rule, r) in self.syscalls.iter().enumerate() {
            if !r.action.enforceable() {
                let action = r.action;
                return Err(OciProblem::NotEnforced { rule, action });
            }
            if let Some(errno) = r.errno_ret.filter(|e| !ERRNO_RANGE.contains(e)) {
                return Err(OciProblem::Errno { rule, errno });
            }
            if r.all_names().is_empty() {
                return Err(OciProblem::NoSyscall(rule));
            }
        }
        Ok(())
    }

    /// Reads and checks the profile at `path`.
    pub fn load(path: &Path) -> Result<OciProfile, OciError> {
        let text = crate::input::read_text(path, crate::input::TEXT)?;
        OciProfile::parse(&text, &crate::input::origin(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sentence;

    #[test]
    fn allow_list_round_trips_field_by_field() {
        let names: BTreeSet<String> = ["write", "read", "exit_group"].map(String::from).into();
        let p = OciProfile::allow_list(&names, "x86_64", Action::Errno, 1);
        let json = p.to_json();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(v["defaultErrnoRet"], 1);
        assert_eq!(v["architectures"][0], "SCMP_ARCH_X86_64");
        assert_eq!(v["syscalls"][0]["action"], "SCMP_ACT_ALLOW");
        assert_eq!(
            v["syscalls"][0]["names"],
            serde_json::json!(["exit_group", "read", "write"])
        );
        assert_eq!(OciProfile::parse(&json, "p.json").unwrap(), p);
        assert_eq!(p.allowed(), names);
    }

    #[test]
    fn docker_default_parses() {
        let text = include_str!("../../../tests/fixtures/docker-default-seccomp.json");
        let p = OciProfile::parse(text, "docker.json").unwrap();
        assert!(p.allowed().contains("read"));
        assert_eq!(p.default_errno_ret, Some(1));
    }

    #[test]
    fn bad_profiles_are_explained() {
        let err = |t: &str| OciProfile::parse(t, "s.json").unwrap_err().sentence();
        assert!(err("{}").contains("s.json is not a valid OCI seccomp profile"));
        assert!(err(r#"{"defaultAction":"SCMP_ACT_NOPE"}"#).contains("unknown defaultAction"));
        assert!(
            err(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"action":"SCMP_ACT_ALLOW"}]}"#)
                .contains("rule 0 names no syscall")
        );
        assert!(
            err(r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_S390X"]}"#)
                .contains("is for SCMP_ARCH_S390X")
        );
        let e = err(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_BAR"}]}"#,
        );
        assert!(e.contains("unknown seccomp action SCMP_ACT_BAR"), "{e}");
        let e = err(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_TRACE"}]}"#,
        );
        assert!(
            e.contains("rule 0 has action SCMP_ACT_TRACE, which phasebox does not enforce"),
            "{e}"
        );
        let e = err(r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#);
        assert!(
            e.contains("defaultAction SCMP_ACT_NOTIFY is not one phasebox enforces"),
            "{e}"
        );
        let e = err(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_WHAT"}]}]}"#,
        );
        assert!(
            e.contains("unknown seccomp argument comparison SCMP_CMP_WHAT"),
            "{e}"
        );
    }

    #[test]
    fn errno_values_outside_what_a_filter_returns_are_refused() {
        let err = |t: &str| OciProfile::parse(t, "e.json").unwrap_err().sentence();
        for bad in ["0", "4096", "65536", "2147483648", "4294967295"] {
            let e = err(&format!(
                r#"{{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":{bad}}}"#
            ));
            assert!(
                e.contains(&format!("defaultErrnoRet {bad} is outside 1..4095")),
                "{e}"
            );
            let e = err(&format!(
                r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{{"names":["read"],"action":"SCMP_ACT_ERRNO","errnoRet":{bad}}}]}}"#
            ));
            assert!(
                e.contains(&format!("rule 0 has errnoRet {bad}, outside 1..4095")),
                "{e}"
            );
        }
        for good in [1, 38, 4095] {
            let t = format!(r#"{{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":{good}}}"#);
            assert_eq!(
                OciProfile::parse(&t, "g.json").unwrap().default_errno_ret,
                Some(good)
            );
        }
    }
}
