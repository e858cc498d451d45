//! Learned profiles as seccomp policies: OCI JSON (Docker, Podman, runc, crun), the Kubernetes
//! Security Profiles Operator's SeccompProfile, and systemd's SystemCallFilter=; for the union
//! of phases, one phase, or one file per phase with a manifest of their order.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::action::Action;
use super::arg_rules::{self, Restrictions};
use super::manifest::{MANIFEST_SCHEMA, Manifest, ManifestPhase, ManifestRole};
use super::oci::{OciArg, OciProfile, OciRule, scmp_arch};
use crate::{
    atomic_file::write_atomic,
    call_classes::{self, ENOSYS},
    file_error::FileError,
    phase::Detector,
    profile::{NoSuchRole, Profile, Role, show::errno_name},
    sysnames,
};

pub use super::Named;

/// Why a profile cannot be exported as asked.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    NoRole(#[from] NoSuchRole),
    #[error("the profile has no phase {phase} in the selected roles (they have: {})", phases.join(", "))]
    NoPhase { phase: String, phases: Vec<String> },
    /// `--per-phase` for a role the profile lacks (empty when the profile has no role).
    #[error("the profile has no role {0}")]
    NoRoleToWrite(String),
    #[error(
        "the profile has {0:?}, which is not a syscall this phasebox can name in a seccomp policy"
    )]
    Unnamed(String),
    #[error(transparent)]
    File(#[from] FileError),
}
pub use super::runtimes::{Runtime, add_runtime};

/// What every program may need to end or handle signals even when a run never showed it
/// (`--add-basics`), with the reason.
pub const BASICS: &[(&str, &str)] = &[
    ("exit", "a thread ends"),
    ("exit_group", "the process ends"),
    ("rt_sigreturn", "return from a signal handler"),
    (
        "restart_syscall",
        "the kernel restarts a call interrupted by a stopped signal",
    ),
];

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OCI runtime-spec seccomp JSON.
    Oci,
    /// Kubernetes Security Profiles Operator SeccompProfile (YAML).
    Spo,
    /// A systemd SystemCallFilter= line.
    Systemd,
}

impl Named for Format {
    const NAMES: &'static [(&'static str, Self)] = &[
        ("oci", Format::Oci),
        ("spo", Format::Spo),
        ("systemd", Format::Systemd),
    ];
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Oci => "json",
            Format::Spo => "yaml",
            Format::Systemd => "conf",
        }
    }
}

/// What a denied call gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultAction {
    /// Fail with an errno (--errno, EPERM by default).
    Errno,
    /// Kill the whole process.
    Kill,
    /// Allow, but log to the kernel audit log.
    Log,
}

impl Named for DefaultAction {
    const NAMES: &'static [(&'static str, Self)] = &[
        ("errno", DefaultAction::Errno),
        ("kill", DefaultAction::Kill),
        ("log", DefaultAction::Log),
    ];
}

impl DefaultAction {
    /// The seccomp action it stands for.
    pub fn action(self) -> Action {
        match self {
            DefaultAction::Errno => Action::Errno,
            DefaultAction::Kill => Action::KillProcess,
            DefaultAction::Log => Action::Log,
        }
    }
}

/// The roles and phase indexes `role` (every role when None) and `phase` (every phase when
/// None) select.
fn selected<'p>(
    p: &'p Profile,
    role: Option<&str>,
    phase: Option<&str>,
) -> Result<Vec<(&'p Role, Vec<usize>)>, ExportError> {
    let roles: Vec<&Role> = match role {
        // In every container the profile was learned in.
        Some(r) => p.roles_named(r),
        None => p.roles.iter().collect(),
    };
    if let (Some(r), true) = (role, roles.is_empty()) {
        return Err(NoSuchRole::new(p, r).into());
    }
    let out: Vec<(&Role, Vec<usize>)> = roles
        .into_iter()
        .map(|r| {
            let at = (0..r.phases.len())
                .filter(|&i| phase.is_none_or(|x| x == r.phases[i].name))
                .collect();
            (r, at)
        })
        .collect();
    if let Some(phase) = phase
        && out.iter().all(|(_, at)| at.is_empty())
    {
        let mut phases: Vec<String> = Vec::new();
        for (r, _) in &out {
            for p in &r.phases {
                if !phases.contains(&p.name) {
                    phases.push(p.name.clone());
                }
            }
        }
        return Err(ExportError::NoPhase {
            phase: phase.to_string(),
            phases,
        });
    }
    Ok(out)
}

/// The syscalls of `role` (every role when None) in `phase` (every phase when None): each
/// phase's effective set (its calls, and the state-dependent calls its role made before).
pub fn select(
    p: &Profile,
    role: Option<&str>,
    phase: Option<&str>,
) -> Result<BTreeSet<String>, ExportError> {
    let mut out = BTreeSet::new();
    for (r, at) in selected(p, role, phase)? {
        let sets = call_classes::role_effective_sets(r);
        for i in at {
            out.extend(sets[i].iter().map(|n| n.to_string()));
        }
    }
    named_only(&out)?;
    Ok(out)
}

/// The argument restrictions of the selected phases' calls among `allow`
/// ([`arg_rules::restrictions`]).
pub fn select_args(
    p: &Profile,
    role: Option<&str>,
    phase: Option<&str>,
    allow: &BTreeSet<String>,
) -> Result<Restrictions, ExportError> {
    Ok(arg_rules::restrictions(&selected(p, role, phase)?, allow))
}

/// The calls a seccomp filter denied while the selected phases were learned, with the errno
/// they got (the first phase's, when phases differ).
pub fn select_filtered(
    p: &Profile,
    role: Option<&str>,
    phase: Option<&str>,
) -> Result<BTreeMap<String, u32>, ExportError> {
    let mut out = BTreeMap::new();
    for (r, at) in selected(p, role, phase)? {
        for i in at {
            for (n, f) in &r.phases[i].filtered {
                out.entry(n.clone()).or_insert(f.errno);
            }
        }
    }
    Ok(out)
}

/// When a run of `p` was attached to a running program, its startup was never seen and a
/// policy from it stops a fresh start: one sentence naming what is missing and the command
/// that learns it. None when every run saw its program start.
pub fn startup_missing(p: &Profile, origin: &str) -> Option<String> {
    let attached = p.runs.iter().any(|r| r.how == "attached")
        || p.incomplete_reasons
            .iter()
            .any(|r| r.starts_with("attached to a running process"));
    if !attached || every_role_started(p) {
        return None;
    }
    let comm = if p.program.comm.is_empty() {
        "the program"
    } else {
        p.program.comm.as_str()
    };
    Some(format!(
        "{origin} was learned by attaching to a running {comm}, so its startup was never seen \
         and a policy from it stops a fresh {comm} before it serves; learn from the start with \
         `phasebox agent --exec-name {comm} --profile {origin}` started before {comm} (or \
         `--container NAME`, or `phasebox run --profile {origin} -- CMD…`)"
    ))
}

/// Whether every role of the profile has a phase before its steady one: its processes
/// executed the program while phasebox traced, although the run attached to something that
/// was running (a container whose entry point waits, then executes the program). A process
/// phasebox attached to starts in its role's steady phase.
fn every_role_started(p: &Profile) -> bool {
    let Some(det) = p.runs.iter().find_map(|r| Detector::load(&r.rules).ok()) else {
        return false;
    };
    !p.roles.is_empty()
        && p.roles.iter().all(|r| {
            r.phases
                .first()
                .is_some_and(|ph| !det.is_steady_or_later(&r.name, &ph.name))
        })
}

/// A seccomp policy names its calls: a call the syscall table has no name for (`syscall_N`
/// in a profile) cannot be written into one, nor can anything that is not a syscall.
fn named_only(names: &BTreeSet<String>) -> Result<(), ExportError> {
    match names.iter().find(|n| sysnames::number(n).is_none()) {
        Some(n) => Err(ExportError::Unnamed(n.clone())),
        None => Ok(()),
    }
}

/// `label` on one line, control characters escaped, for comments and annotations.
fn one_line(label: &str) -> String {
    label
        .chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Adds BASICS to `names`; returns what was not there.
pub fn add_basics(names: &mut BTreeSet<String>) -> Vec<String> {
    BASICS
        .iter()
        .filter(|(n, _)| names.insert(n.to_string()))
        .map(|(n, _)| n.to_string())
        .collect()
}

/// Settings of an export.
#[derive(Clone, Debug)]
pub struct Target<'a> {
    pub arch: &'a str,
    /// A name for the policy (SPO metadata.name, comments).
    pub label: String,
    pub action: DefaultAction,
    pub errno: u32,
}

fn k8s_name(label: &str) -> String {
    let s: String = label
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s.trim_matches('-').to_string()
}

/// What a policy does with each call: the calls it allows, and the calls outside them that get
/// something else than the default action (docs/seccomp.md, "Call classes").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub allow: BTreeSet<String>,
    /// Answered with this errno: calls with a fallback (ENOSYS), calls a seccomp filter denied
    /// while learning (the errno they got).
    pub errno: BTreeMap<String, u32>,
    /// Killed: calls whose errno return is misread.
    pub kill: BTreeSet<String>,
    /// Allowed calls that may use these argument combinations only (`call_args`).
    pub args: Restrictions,
}

impl Policy {
    /// The policy that allows `allow` under `action`: calls with a fallback that it does not
    /// allow get ENOSYS, calls in `filtered` that it does not allow keep their errno, and with
    /// an errno default, calls whose errno is misread are killed. With `log` every call is
    /// allowed anyway, so nothing is added.
    pub fn new(
        allow: BTreeSet<String>,
        filtered: &BTreeMap<String, u32>,
        action: DefaultAction,
    ) -> Policy {
        let mut p = Policy {
            allow,
            ..Default::default()
        };
        if action == DefaultAction::Log {
            return p;
        }
        let outside = |n: &&str| !p.allow.contains(*n);
        let fallback: Vec<&str> = call_classes::FALLBACK
            .iter()
            .map(|e| e.name)
            .filter(outside)
            .collect();
        let kill: Vec<&str> = match action {
            DefaultAction::Errno => call_classes::NO_ERRNO
                .iter()
                .map(|e| e.name)
                .filter(outside)
                .collect(),
            DefaultAction::Kill | DefaultAction::Log => Vec::new(),
        };
        let filtered: Vec<(&String, &u32)> = filtered
            .iter()
            .filter(|(n, _)| !p.allow.contains(*n))
            .collect();
        p.errno
            .extend(fallback.into_iter().map(|n| (n.to_string(), ENOSYS)));
        p.errno
            .extend(filtered.into_iter().map(|(n, e)| (n.clone(), *e)));
        p.kill = kill
            .into_iter()
            .filter(|n| !p.errno.contains_key(*n))
            .map(String::from)
            .collect();
        p
    }

    /// The policy with argument restrictions for the calls it allows.
    pub fn with_args(mut self, args: Restrictions) -> Policy {
        self.args = args
            .into_iter()
            .filter(|(n, _)| self.allow.contains(n))
            .collect();
        self
    }

    /// The calls allowed with any arguments.
    fn open(&self) -> BTreeSet<String> {
        self.allow
            .iter()
            .filter(|n| !self.args.contains_key(*n))
            .cloned()
            .collect()
    }

    /// The errno rules, one per errno: (errno, names).
    fn by_errno(&self) -> BTreeMap<u32, Vec<&str>> {
        let mut out: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
        for (n, e) in &self.errno {
            out.entry(*e).or_default().push(n);
        }
        out
    }
}

/// Why an errno rule is there, for its comment.
fn errno_reason(errno: u32) -> String {
    if errno == ENOSYS {
        "not learned: ENOSYS, as a kernel without them answers, so libraries fall back to older \
         calls (or a seccomp filter answered ENOSYS while phasebox learned)"
            .into()
    } else {
        format!(
            "denied with {} by a seccomp filter while phasebox learned",
            errno_name(errno)
        )
    }
}

const KILL_REASON: &str = "not learned, and an errno answer is misread as a value: kill instead";

/// The policy as an OCI profile.
pub fn oci_profile(policy: &Policy, t: &Target) -> OciProfile {
    let label = one_line(&t.label);
    let mut p = OciProfile::allow_list(&policy.open(), t.arch, t.action.action(), t.errno);
    if let Some(rule) = p.syscalls.first_mut() {
        rule.comment = Some(format!("learned by phasebox: {label}"));
    }
    p.syscalls.extend(arg_rules::allow_rules(&policy.args));
    for (errno, names) in policy.by_errno() {
        let names = names.into_iter().map(String::from).collect();
        p.syscalls.push(OciRule {
            errno_ret: Some(errno),
            comment: Some(errno_reason(errno)),
            ..OciRule::new(names, Action::Errno)
        });
    }
    if !policy.kill.is_empty() {
        let names = policy.kill.iter().cloned().collect();
        p.syscalls.push(OciRule {
            comment: Some(KILL_REASON.into()),
            ..OciRule::new(names, Action::KillProcess)
        });
    }
    p
}

/// The policy as a Security Profiles Operator SeccompProfile.
fn spo(policy: &Policy, t: &Target) -> String {
    let label = one_line(&t.label);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "apiVersion: security-profiles-operator.x-k8s.io/v1beta1"
    );
    let _ = writeln!(out, "kind: SeccompProfile");
    let _ = writeln!(out, "metadata:\n  name: {}", k8s_name(&t.label));
    // A JSON string is a YAML double-quoted scalar: quotes in the label stay text.
    let description = serde_json::to_string(&format!("learned by phasebox: {label}"))
        .expect("a string serializes");
    let _ = writeln!(out, "  annotations:\n    description: {description}");
    // The operator's SeccompProfile (v1beta1) has no default errno: the runtime answers EPERM.
    let _ = writeln!(out, "spec:\n  defaultAction: {}", t.action.action());
    let _ = writeln!(out, "  architectures:\n  - {}", scmp_arch(t.arch));
    let _ = writeln!(out, "  syscalls:");
    let mut rule = |action: Action, errno: Option<u32>, names: Vec<&str>, args: &[OciArg]| {
        let _ = writeln!(out, "  - action: {action}");
        if let Some(e) = errno {
            // A string in the operator's API.
            let _ = writeln!(out, "    errnoRet: \"{e}\"");
        }
        let _ = writeln!(out, "    names:");
        for n in names {
            let _ = writeln!(out, "    - {n}");
        }
        if !args.is_empty() {
            let _ = writeln!(out, "    args:");
        }
        for a in args {
            let _ = writeln!(
                out,
                "    - index: {}\n      value: {}\n      valueTwo: {}\n      op: {}",
                a.index, a.value, a.value_two, a.op
            );
        }
    };
    let open = policy.open();
    rule(
        Action::Allow,
        None,
        open.iter().map(String::as_str).collect(),
        &[],
    );
    for r in arg_rules::allow_rules(&policy.args) {
        rule(
            r.action,
            None,
            r.names.iter().map(String::as_str).collect(),
            &r.args,
        );
    }
    for (errno, names) in policy.by_errno() {
        rule(Action::Errno, Some(errno), names, &[]);
    }
    if !policy.kill.is_empty() {
        rule(
            Action::KillProcess,
            None,
            policy.kill.iter().map(String::as_str).collect(),
            &[],
        );
    }
    out
}

/// The policy as systemd unit lines. systemd gives a call its own errno only in a deny list
/// (`SystemCallFilter=~NAME:ERRNO`); in an allow list such an entry only removes the name, so
/// the calls that deserve ENOSYS or a kill get SystemCallErrorNumber= like any other: comment
/// lines say which.
fn systemd(policy: &Policy, t: &Target) -> String {
    let label = one_line(&t.label);
    let names: Vec<&str> = policy.allow.iter().map(String::as_str).collect();
    let mut out = format!("# learned by phasebox: {label}\n");
    let errno = match t.action {
        DefaultAction::Errno => errno_name(t.errno),
        DefaultAction::Kill | DefaultAction::Log => "kill".into(),
    };
    for (e, calls) in policy.by_errno() {
        let _ = writeln!(
            out,
            "# systemd cannot answer these with {} in an allow list; they get {errno}: {}",
            errno_name(e),
            calls.join(" ")
        );
    }
    if !policy.args.is_empty() {
        let calls: Vec<&str> = policy.args.keys().map(String::as_str).collect();
        let _ = writeln!(
            out,
            "# systemd cannot restrict arguments: these are allowed with any (an OCI or SPO export keeps their learned arguments): {}",
            calls.join(" ")
        );
    }
    if !policy.kill.is_empty() {
        let calls: Vec<&str> = policy.kill.iter().map(String::as_str).collect();
        let _ = writeln!(
            out,
            "# an errno answer to these is misread ({KILL_REASON}); systemd cannot kill for them alone in an allow list: {}",
            calls.join(" ")
        );
    }
    let _ = writeln!(
        out,
        "SystemCallArchitectures=native\nSystemCallFilter={}",
        names.join(" ")
    );
    if t.action == DefaultAction::Errno {
        let _ = writeln!(out, "SystemCallErrorNumber={errno}");
    }
    out
}

/// The policy as text in `format`.
pub fn render(format: Format, policy: &Policy, t: &Target) -> String {
    match format {
        Format::Oci => oci_profile(policy, t).to_json(),
        Format::Spo => spo(policy, t),
        Format::Systemd => systemd(policy, t),
    }
}

/// One line for the calls a seccomp filter denied while learning, or None when there were none.
pub fn filtered_note(filtered: &BTreeMap<String, u32>, policy: &Policy) -> Option<String> {
    if filtered.is_empty() {
        return None;
    }
    let calls: Vec<String> = filtered
        .iter()
        .map(|(n, e)| {
            if policy.allow.contains(n) {
                format!("{n} (allowed: the program made it too)")
            } else {
                format!("{n} ({})", errno_name(*e))
            }
        })
        .collect();
    Some(format!(
        "a seccomp filter denied {} while phasebox learned; the policy answers them as that filter did: {}",
        if calls.len() == 1 {
            "one call"
        } else {
            "calls"
        },
        calls.join(", ")
    ))
}

/// Renders one file per phase of `r` into `files`; returns its part of the manifest.
fn role_files(
    r: &Role,
    files: &mut Vec<(String, Vec<u8>)>,
    format: Format,
    base: &Target,
    opts: PerPhase,
) -> Result<ManifestRole, ExportError> {
    let sets = call_classes::role_effective_sets(r);
    let mut phases = Vec::with_capacity(r.phases.len());
    for (i, (ph, set)) in r.phases.iter().zip(sets).enumerate() {
        let mut names: BTreeSet<String> = set.into_iter().map(String::from).collect();
        named_only(&names)?;
        if opts.basics {
            add_basics(&mut names);
        }
        let filtered = ph
            .filtered
            .iter()
            .map(|(n, f)| (n.clone(), f.errno))
            .collect();
        let mut policy = Policy::new(names, &filtered, base.action);
        if opts.args {
            let args = arg_rules::restrictions(&[(r, vec![i])], &policy.allow);
            policy = policy.with_args(args);
        }
        let file = format!(
            "{}-{:02}-{}.{}",
            k8s_name(&r.name),
            i + 1,
            k8s_name(&ph.name),
            format.extension()
        );
        let t = Target {
            label: format!("{} {} {}", base.label, r.name, ph.name),
            ..base.clone()
        };
        files.push((file.clone(), render(format, &policy, &t).into_bytes()));
        phases.push(ManifestPhase {
            name: ph.name.clone(),
            file,
            syscalls: policy.allow.len(),
        });
    }
    Ok(ManifestRole {
        role: r.name.clone(),
        phases,
    })
}

/// What goes into every phase's file besides its calls.
#[derive(Clone, Copy, Debug, Default)]
pub struct PerPhase {
    /// The calls every program may need to end (`--add-basics`).
    pub basics: bool,
    /// The phase's argument restrictions (not `--no-args`).
    pub args: bool,
}

/// Writes one file per role and phase into `dir`, and the manifest; returns the manifest path.
pub fn per_phase(
    p: &Profile,
    role: Option<&str>,
    dir: &Path,
    format: Format,
    base: &Target,
    opts: PerPhase,
) -> Result<PathBuf, ExportError> {
    std::fs::create_dir_all(dir).map_err(|e| FileError::io("create", dir, e))?;
    let (mut roles, mut files) = (Vec::new(), Vec::new());
    for r in p.roles.iter().filter(|r| role.is_none_or(|x| x == r.name)) {
        roles.push(role_files(r, &mut files, format, base, opts)?);
    }
    if roles.is_empty() {
        return Err(ExportError::NoRoleToWrite(
            role.unwrap_or_default().to_string(),
        ));
    }
    super::phase_files::write_all(dir, &files)?;
    let manifest = Manifest {
        schema: MANIFEST_SCHEMA.into(),
        program: p.program.path.clone(),
        arch: p.arch.clone(),
        rules: p.runs.first().map(|r| r.rules.clone()).unwrap_or_default(),
        format: format!("{format:?}").to_lowercase(),
        roles,
    };
    let path = dir.join("manifest.json");
    write_atomic(
        &path,
        (serde_json::to_string_pretty(&manifest).expect("serializes") + "\n").as_bytes(),
    )?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::super::manifest::Manifest;
    use super::*;
    use crate::profile::tests::sample;

    fn target() -> Target<'static> {
        Target {
            arch: "x86_64",
            label: "nginx worker".into(),
            action: DefaultAction::Errno,
            errno: 1,
        }
    }

    #[test]
    fn selection_and_basics() {
        let p = sample(&[
            ("master", &[("start", &["execve", "read"])]),
            (
                "worker",
                &[("init", &["setuid"]), ("serving", &["accept4", "read"])],
            ),
        ]);
        assert_eq!(select(&p, None, None).unwrap().len(), 4);
        assert_eq!(
            select(&p, Some("worker"), Some("serving")).unwrap().len(),
            2
        );
        assert!(
            select(&p, Some("nope"), None)
                .unwrap_err()
                .to_string()
                .contains("no role nope")
        );
        assert!(
            select(&p, Some("worker"), Some("x"))
                .unwrap_err()
                .to_string()
                .contains("no phase x in the selected roles (they have: init, serving)")
        );
        let mut s: BTreeSet<String> = ["exit_group".to_string()].into();
        let added = add_basics(&mut s);
        assert_eq!(added, ["exit", "rt_sigreturn", "restart_syscall"]);
    }

    fn plain(names: &[&str]) -> Policy {
        Policy {
            allow: names.iter().map(|n| n.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn formats() {
        let names: BTreeSet<String> = ["read", "accept4"].map(String::from).into();
        let policy = plain(&["read", "accept4"]);
        let oci = render(Format::Oci, &policy, &target());
        let back = OciProfile::parse(&oci, "x").unwrap();
        assert_eq!(back.allowed(), names);
        let spo = render(Format::Spo, &policy, &target());
        assert!(
            spo.contains("kind: SeccompProfile") && spo.contains("name: nginx-worker"),
            "{spo}"
        );
        assert!(spo.contains("    - accept4\n    - read\n"), "{spo}");
        let sd = render(Format::Systemd, &policy, &target());
        assert!(
            sd.contains("SystemCallFilter=accept4 read\n")
                && sd.contains("SystemCallErrorNumber=EPERM"),
            "{sd}"
        );
    }

    #[test]
    fn unlearned_fallback_calls_get_enosys_and_misread_ones_a_kill() {
        let allow: BTreeSet<String> = ["read", "getpid", "rseq"].map(String::from).into();
        let filtered: BTreeMap<String, u32> =
            [("openat2".to_string(), 1), ("read".to_string(), 1)].into();
        let p = Policy::new(allow.clone(), &filtered, DefaultAction::Errno);
        assert_eq!(
            p.allow, allow,
            "a filtered call the program also made stays allowed"
        );
        assert_eq!(p.errno["clone3"], ENOSYS);
        assert_eq!(
            p.errno["openat2"], 1,
            "filtered: the errno it got while learning"
        );
        assert!(!p.errno.contains_key("rseq"), "learned: allowed");
        assert!(p.kill.contains("brk") && !p.kill.contains("getpid"));
        let oci: serde_json::Value =
            serde_json::from_str(&render(Format::Oci, &p, &target())).unwrap();
        let rules = oci["syscalls"].as_array().unwrap();
        assert_eq!(rules[0]["action"], "SCMP_ACT_ALLOW");
        let enosys = rules.iter().find(|r| r["errnoRet"] == 38).unwrap();
        assert_eq!(enosys["action"], "SCMP_ACT_ERRNO");
        assert!(
            enosys["names"]
                .as_array()
                .unwrap()
                .contains(&"clone3".into())
        );
        let kill = rules
            .iter()
            .find(|r| r["action"] == "SCMP_ACT_KILL_PROCESS")
            .unwrap();
        assert!(kill["names"].as_array().unwrap().contains(&"brk".into()));
        OciProfile::parse(&oci.to_string(), "x").unwrap();
        // Under a kill default only the fallback calls need a rule; under log nothing does.
        let k = Policy::new(allow.clone(), &BTreeMap::new(), DefaultAction::Kill);
        assert!(k.kill.is_empty() && k.errno["clone3"] == ENOSYS);
        let l = Policy::new(allow, &BTreeMap::new(), DefaultAction::Log);
        assert!(l.kill.is_empty() && l.errno.is_empty());
        let spo = render(Format::Spo, &p, &target());
        assert!(
            spo.contains("  - action: SCMP_ACT_ERRNO\n    errnoRet: \"38\"\n    names:\n"),
            "{spo}"
        );
        assert!(
            !spo.contains("defaultErrnoRet"),
            "not in the operator's API: {spo}"
        );
        let sd = render(Format::Systemd, &p, &target());
        assert!(sd.contains("cannot answer these with ENOSYS"), "{sd}");
        assert_eq!(
            sd.lines()
                .filter(|l| l.starts_with("SystemCallFilter="))
                .count(),
            1,
            "{sd}"
        );
    }

    #[test]
    fn a_phase_allows_what_its_role_used_earlier_of_the_state_dependent_calls() {
        let p = sample(&[(
            "main",
            &[("init", &["brk", "socket"]), ("serving", &["accept4"])],
        )]);
        let serving = select(&p, None, Some("serving")).unwrap();
        assert!(
            serving.contains("brk") && !serving.contains("socket"),
            "{serving:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let m = per_phase(
            &p,
            None,
            dir.path(),
            Format::Oci,
            &target(),
            PerPhase::default(),
        )
        .unwrap();
        let man = Manifest::load(&m).unwrap();
        let file = OciProfile::load(&dir.path().join(&man.roles[0].phases[1].file)).unwrap();
        assert_eq!(file.allowed(), ["accept4", "brk"].map(String::from).into());
    }

    #[test]
    fn startup_gate_names_what_is_missing_and_how_to_learn_it() {
        let mut p = sample(&[
            ("master", &[("setting-up-worker-processes", &["clone"])]),
            ("worker", &[("worker-process-initialization", &["setuid"])]),
        ]);
        p.runs[0].rules = "nginx".into();
        assert_eq!(startup_missing(&p, "nginx.json"), None);
        p.runs[0].how = "attached".into();
        // Attached, but every role went through its startup (a container whose entry point
        // waited for phasebox): nothing is missing.
        let mut started = p.clone();
        started.roles[0].phases.insert(
            0,
            crate::profile::Phase {
                name: "execution-initiation".into(),
                ..Default::default()
            },
        );
        assert_eq!(startup_missing(&started, "nginx.json"), None);
        let s = startup_missing(&p, "nginx.json").unwrap();
        assert!(
            s.starts_with("nginx.json was learned by attaching to a running nginx"),
            "{s}"
        );
        assert!(
            s.contains("phasebox agent --exec-name nginx --profile nginx.json"),
            "{s}"
        );
        assert!(!s.contains(". "), "one sentence: {s}");
    }

    #[test]
    fn per_phase_export_of_many_phases_writes_each_once() {
        let names: Vec<String> = (0..5000).map(|i| format!("p{i}")).collect();
        let mut p = sample(&[("main", &[])]);
        p.roles[0].phases = names
            .iter()
            .map(|n| crate::profile::Phase {
                name: n.clone(),
                syscalls: [("read".to_string(), Default::default())].into(),
                ..Default::default()
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let m = per_phase(
            &p,
            None,
            dir.path(),
            Format::Oci,
            &target(),
            PerPhase::default(),
        )
        .unwrap();
        let man = Manifest::load(&m).unwrap();
        assert_eq!(man.roles[0].phases.len(), 5000);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 5001);
    }

    #[test]
    fn per_phase_files_and_manifest() {
        let p = sample(&[(
            "worker",
            &[("init", &["setuid"]), ("serving", &["accept4", "read"])],
        )]);
        let dir = std::env::temp_dir().join(format!("pb-export-{}", std::process::id()));
        let m = per_phase(&p, None, &dir, Format::Oci, &target(), PerPhase::default()).unwrap();
        let man = Manifest::load(&m).unwrap();
        assert_eq!(man.roles[0].phases[1].file, "worker-02-serving.json");
        let serving = OciProfile::load(&dir.join(&man.roles[0].phases[1].file)).unwrap();
        assert_eq!(serving.allowed().len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn exports_hold_syscall_names_only_and_labels_stay_text() {
        let p = sample(&[("main", &[("a", &["read", "syscall_100000"])])]);
        let e = select(&p, None, None).unwrap_err().to_string();
        assert!(
            e.contains("\"syscall_100000\", which is not a syscall"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let e = per_phase(
            &p,
            None,
            dir.path(),
            Format::Oci,
            &target(),
            PerPhase::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("syscall_100000"), "{e}");
        let t = Target {
            label: "x\"\nSystemCallFilter=~@all\n# \"".into(),
            ..target()
        };
        let sd = render(Format::Systemd, &plain(&["read"]), &t);
        assert_eq!(
            sd.lines()
                .filter(|l| l.starts_with("SystemCallFilter="))
                .count(),
            1,
            "{sd}"
        );
        let spo = render(Format::Spo, &plain(&["read"]), &t);
        assert!(
            spo.contains("description: \"learned by phasebox: x\\\"\\\\nSystemCallFilter=~@all\\\\n# \\\"\"\n"),
            "{spo}"
        );
    }
}
