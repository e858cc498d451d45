//! Learned profiles as seccomp policies: OCI JSON (Docker, Podman, runc, crun), the Kubernetes
//! Security Profiles Operator's SeccompProfile, and systemd's SystemCallFilter=; for the union
//! of phases, one phase, or one file per phase with a manifest of their order.
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::oci::{OciProfile, scmp_arch};
use crate::{atomic_file::write_atomic, profile::Profile, sysnames};

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

/// An enum whose values have names on the command line and in files.
pub trait Named: Sized + Copy + 'static {
    /// Every value with its name.
    const NAMES: &'static [(&'static str, Self)];

    fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, v)| v)
    }
}

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
    pub fn scmp(self) -> &'static str {
        match self {
            DefaultAction::Errno => "SCMP_ACT_ERRNO",
            DefaultAction::Kill => "SCMP_ACT_KILL_PROCESS",
            DefaultAction::Log => "SCMP_ACT_LOG",
        }
    }
}

/// The syscalls of `role` (every role when None) in `phase` (every phase when None).
pub fn select(
    p: &Profile,
    role: Option<&str>,
    phase: Option<&str>,
) -> anyhow::Result<BTreeSet<String>> {
    let role_names: Vec<&str> = p.roles.iter().map(|r| r.name.as_str()).collect();
    let roles: Vec<_> = match role {
        Some(r) => vec![p.role(r).ok_or_else(|| {
            anyhow::anyhow!(
                "the profile has no role {r} (it has: {})",
                role_names.join(", ")
            )
        })?],
        None => p.roles.iter().collect(),
    };
    let mut out = BTreeSet::new();
    let mut found = phase.is_none();
    for r in roles {
        for ph in &r.phases {
            if phase.is_none_or(|x| x == ph.name) {
                found = true;
                out.extend(ph.names().map(String::from));
            }
        }
    }
    if !found {
        anyhow::bail!(
            "the profile has no phase {} in the selected roles",
            phase.unwrap_or_default()
        );
    }
    named_only(&out)?;
    Ok(out)
}

/// A seccomp policy names its calls: a call the syscall table has no name for (`syscall_N`
/// in a profile) cannot be written into one, nor can anything that is not a syscall.
fn named_only(names: &BTreeSet<String>) -> anyhow::Result<()> {
    match names.iter().find(|n| sysnames::number(n).is_none()) {
        Some(n) => anyhow::bail!(
            "the profile has {n:?}, which is not a syscall this phasebox can name in a seccomp policy"
        ),
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

/// `names` as text in `format`.
pub fn render(format: Format, names: &BTreeSet<String>, t: &Target) -> String {
    let label = one_line(&t.label);
    match format {
        Format::Oci => {
            let mut p = OciProfile::allow_list(names, t.arch, t.action.scmp(), t.errno);
            if let Some(rule) = p.syscalls.first_mut() {
                rule.comment = Some(format!("learned by phasebox: {label}"));
            }
            p.to_json()
        }
        Format::Spo => {
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
            let _ = writeln!(out, "spec:\n  defaultAction: {}", t.action.scmp());
            let _ = writeln!(out, "  architectures:\n  - {}", scmp_arch(t.arch));
            let _ = writeln!(out, "  syscalls:\n  - action: SCMP_ACT_ALLOW\n    names:");
            for n in names {
                let _ = writeln!(out, "    - {n}");
            }
            out
        }
        Format::Systemd => {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let errno = match t.action {
                DefaultAction::Errno => format!("SystemCallErrorNumber={}\n", errno_name(t.errno)),
                DefaultAction::Kill | DefaultAction::Log => String::new(),
            };
            format!(
                "# learned by phasebox: {label}\nSystemCallArchitectures=native\nSystemCallFilter={}\n{errno}",
                names.join(" ")
            )
        }
    }
}

fn errno_name(errno: u32) -> String {
    syscalls::Errno::new(errno as i32)
        .name()
        .map_or(errno.to_string(), str::to_string)
}

/// One file of a per-phase export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestPhase {
    pub name: String,
    pub file: String,
    pub syscalls: usize,
}

/// A role's phases in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestRole {
    pub role: String,
    pub phases: Vec<ManifestPhase>,
}

/// The order of the per-phase files (`--per-phase DIR` writes it as manifest.json).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: String,
    pub program: String,
    pub arch: String,
    /// The phase rules the profile was learned with.
    pub rules: String,
    pub format: String,
    pub roles: Vec<ManifestRole>,
}

pub const MANIFEST_SCHEMA: &str = "phasebox.seccomp-phases/v1";

impl Manifest {
    /// Parses and checks a manifest for phase-aware enforcement; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> anyhow::Result<Manifest> {
        let m: Manifest = serde_json::from_str(text)
            .map_err(|e| anyhow::anyhow!("{origin} is not a valid phase manifest: {e}"))?;
        if m.schema != MANIFEST_SCHEMA {
            anyhow::bail!(
                "{origin} has schema {:?}; this phasebox reads {MANIFEST_SCHEMA:?}",
                m.schema
            );
        }
        if m.format != "oci" {
            anyhow::bail!(
                "{origin} lists {} files; phase-aware enforcement needs OCI files (export --format oci)",
                m.format
            );
        }
        if m.arch != sysnames::ARCH {
            anyhow::bail!(
                "{origin} is for {:?} programs; this phasebox is built for {}",
                m.arch,
                sysnames::ARCH
            );
        }
        if m.roles.is_empty() {
            anyhow::bail!("{origin} lists no roles: it would allow no syscall at all");
        }
        for r in &m.roles {
            if r.phases.is_empty() {
                anyhow::bail!("{origin} lists no phases for role {}", r.role);
            }
            // The files are the ones export wrote beside the manifest: plain names, no path.
            for ph in &r.phases {
                let plain = std::path::Path::new(&ph.file).components().count() == 1
                    && matches!(
                        std::path::Path::new(&ph.file).components().next(),
                        Some(std::path::Component::Normal(_))
                    );
                if !plain {
                    anyhow::bail!(
                        "{origin} names the file {:?} for phase {} of role {}: phase files are \
                         names in the manifest's own directory",
                        ph.file,
                        ph.name,
                        r.role
                    );
                }
            }
        }
        Ok(m)
    }

    /// Reads and checks a manifest file.
    pub fn load(path: &Path) -> anyhow::Result<Manifest> {
        let text = crate::input::read_text(path, crate::input::TEXT)?;
        Manifest::parse(&text, &path.display().to_string())
    }
}

/// Writes one file per role and phase into `dir`, and the manifest; returns the manifest path.
pub fn per_phase(
    p: &Profile,
    role: Option<&str>,
    dir: &Path,
    format: Format,
    base: &Target,
    basics: bool,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| crate::atomic_file::file_error("create", dir, &e))?;
    let mut roles = Vec::new();
    for r in p.roles.iter().filter(|r| role.is_none_or(|x| x == r.name)) {
        let mut phases = Vec::new();
        for (i, ph) in r.phases.iter().enumerate() {
            let mut names: BTreeSet<String> = ph.names().map(String::from).collect();
            named_only(&names)?;
            if basics {
                add_basics(&mut names);
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
            write_atomic(&dir.join(&file), render(format, &names, &t).as_bytes())?;
            phases.push(ManifestPhase {
                name: ph.name.clone(),
                file,
                syscalls: names.len(),
            });
        }
        roles.push(ManifestRole {
            role: r.name.clone(),
            phases,
        });
    }
    if roles.is_empty() {
        anyhow::bail!("the profile has no role {}", role.unwrap_or_default());
    }
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
                .contains("no phase x")
        );
        let mut s: BTreeSet<String> = ["exit_group".to_string()].into();
        let added = add_basics(&mut s);
        assert_eq!(added, ["exit", "rt_sigreturn", "restart_syscall"]);
    }

    #[test]
    fn formats() {
        let names: BTreeSet<String> = ["read", "accept4"].map(String::from).into();
        let oci = render(Format::Oci, &names, &target());
        let back = OciProfile::parse(&oci, "x").unwrap();
        assert_eq!(back.allowed(), names);
        let spo = render(Format::Spo, &names, &target());
        assert!(
            spo.contains("kind: SeccompProfile") && spo.contains("name: nginx-worker"),
            "{spo}"
        );
        assert!(spo.contains("    - accept4\n    - read\n"), "{spo}");
        let sd = render(Format::Systemd, &names, &target());
        assert!(
            sd.contains("SystemCallFilter=accept4 read\n")
                && sd.contains("SystemCallErrorNumber=EPERM"),
            "{sd}"
        );
    }

    #[test]
    fn per_phase_files_and_manifest() {
        let p = sample(&[(
            "worker",
            &[("init", &["setuid"]), ("serving", &["accept4", "read"])],
        )]);
        let dir = std::env::temp_dir().join(format!("pb-export-{}", std::process::id()));
        let m = per_phase(&p, None, &dir, Format::Oci, &target(), false).unwrap();
        let man = Manifest::load(&m).unwrap();
        assert_eq!(man.roles[0].phases[1].file, "worker-02-serving.json");
        let serving = OciProfile::load(&dir.join(&man.roles[0].phases[1].file)).unwrap();
        assert_eq!(serving.allowed().len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_manifests_are_refused() {
        let good = Manifest {
            schema: MANIFEST_SCHEMA.into(),
            program: "/bin/x".into(),
            arch: sysnames::ARCH.into(),
            rules: "generic".into(),
            format: "oci".into(),
            roles: vec![ManifestRole {
                role: "main".into(),
                phases: vec![ManifestPhase {
                    name: "init".into(),
                    file: "main-01-init.json".into(),
                    syscalls: 1,
                }],
            }],
        };
        let err = |m: &Manifest| {
            Manifest::parse(&serde_json::to_string(m).unwrap(), "m.json")
                .unwrap_err()
                .to_string()
        };
        Manifest::parse(&serde_json::to_string(&good).unwrap(), "m.json").unwrap();
        let mut m = good.clone();
        m.roles.clear();
        assert!(err(&m).contains("m.json lists no roles"), "{}", err(&m));
        let mut m = good.clone();
        m.roles[0].phases.clear();
        assert!(err(&m).contains("no phases for role main"), "{}", err(&m));
        for file in ["../x.json", "/etc/passwd", "sub/x.json", "..", ".", ""] {
            let mut m = good.clone();
            m.roles[0].phases[0].file = file.into();
            assert!(
                err(&m).contains(&format!("names the file {file:?} for phase init")),
                "{}",
                err(&m)
            );
        }
        let mut m = good.clone();
        m.arch = "sparc".into();
        assert!(err(&m).contains("is for \"sparc\" programs"), "{}", err(&m));
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
        let e = per_phase(&p, None, dir.path(), Format::Oci, &target(), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("syscall_100000"), "{e}");
        let names: BTreeSet<String> = ["read".to_string()].into();
        let t = Target {
            label: "x\"\nSystemCallFilter=~@all\n# \"".into(),
            ..target()
        };
        let sd = render(Format::Systemd, &names, &t);
        assert_eq!(
            sd.lines()
                .filter(|l| l.starts_with("SystemCallFilter="))
                .count(),
            1,
            "{sd}"
        );
        let spo = render(Format::Spo, &names, &t);
        assert!(
            spo.contains("description: \"learned by phasebox: x\\\"\\\\nSystemCallFilter=~@all\\\\n# \\\"\"\n"),
            "{spo}"
        );
    }
}
