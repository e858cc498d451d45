//! The learned profile: program → role → phase → syscall, with provenance. JSON with a schema
//! version (docs/profile-format.md).
pub mod compare;
mod error;
pub mod operations;
pub mod review;
pub mod sections;
pub mod show;
pub mod static_section;
pub mod unseen;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{atomic_file::write_atomic, call_args, file_error::FileError, sysnames};

pub use error::{NoSuchRole, ProfileError, ProfileProblem};

/// The schema this phasebox writes (version 2 added the arguments of calls).
pub const SCHEMA: &str = "phasebox.profile/v2";
/// The schemas this phasebox reads: version 1 profiles have no arguments (their calls are
/// allowed whatever their arguments).
pub const SCHEMAS: &[&str] = &["phasebox.profile/v1", SCHEMA];
/// Argument combinations kept per syscall and phase; a call seen with more is allowed with
/// any arguments.
pub const MAX_ARG_SETS: usize = 32;
/// Distinct paths kept per syscall and phase.
pub const MAX_PATHS: usize = 32;
/// Call times kept per syscall and phase for the timeline: at most this many, spread evenly
/// over the calls (every call while there are fewer).
pub const MAX_TIMES: usize = 128;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The program a profile describes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Program {
    pub path: String,
    pub comm: String,
}

/// One run a profile was learned from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// A name for the run (the scenario's, or the command line).
    pub name: String,
    /// "launched" (seen from its execve) or "attached" (startup missing).
    pub how: String,
    pub started_unix_ms: u64,
    pub phasebox_version: String,
    /// The phase rules used.
    pub rules: String,
    /// Events lost on the way to userspace in that run.
    pub dropped: u64,
    /// The container the run learned in (`record`/`agent --container`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerRef>,
}

/// A container a run was learned in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRef {
    /// The full id.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// What one syscall did in one phase.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyscallUse {
    pub calls: u64,
    /// Failed calls, when the run counted them (`agent --errors`, `run`, `record`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub errors: u64,
    /// First call, in ns since the role's start.
    pub first_seen_ns: u64,
    /// Path arguments seen (at most MAX_PATHS, sorted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Times of calls, in ns since the role's start, for the timeline: every call up to
    /// MAX_TIMES, then an even sample. Not kept in merged profiles (runs have no common clock).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub times_ns: Vec<u64>,
    /// The combinations of recorded arguments seen (`call_args`: the values of arguments 0, 1
    /// and 2 after their masks, 0 where not recorded), sorted; absent when the call may have
    /// any arguments (not recorded, or more than MAX_ARG_SETS combinations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<call_args::Values>>,
}

/// One phase of a role.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    pub name: String,
    /// First and last call of the phase, in ns since the role's start (both 0 when unknown,
    /// as in merged profiles).
    #[serde(default)]
    pub start_ns: u64,
    #[serde(default)]
    pub end_ns: u64,
    pub syscalls: BTreeMap<String, SyscallUse>,
    /// Calls an existing seccomp filter denied while phasebox learned (a container engine's
    /// profile): the program never ran them, and exports keep them denied with that errno.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub filtered: BTreeMap<String, Filtered>,
}

/// A call a seccomp filter denied in a phase while phasebox learned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filtered {
    /// How many calls were denied.
    pub calls: u64,
    /// The errno they got.
    pub errno: u32,
}

/// One role (master, worker, main…), its phases in the order they happened.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub name: String,
    /// The container its processes ran in (the full id; absent for the host): a profile keeps
    /// one set of roles per container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Processes seen in this role.
    pub processes: u64,
    pub phases: Vec<Phase>,
}

/// A learned profile.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub schema: String,
    pub program: Program,
    pub arch: String,
    pub kernel_release: String,
    /// Whether every run saw the program from its start with no events dropped.
    pub complete: bool,
    /// Why it is not complete.
    #[serde(default)]
    pub incomplete_reasons: Vec<String>,
    /// What a reader should know about how phases were found (automatic phases merged to
    /// stay within their bound).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub runs: Vec<Run>,
    pub roles: Vec<Role>,
}

/// Whether a profile may hold `name`: a syscall of this architecture, or `syscall_N` for a
/// number the table has no name for (as phasebox itself writes them).
pub fn is_syscall_name(name: &str) -> bool {
    if sysnames::number(name).is_some() {
        return true;
    }
    name.strip_prefix("syscall_")
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|nr| sysnames::name(nr) == name)
}

/// A phase names syscalls only, and its filtered calls carry an errno a kernel can return.
fn check_phase(ph: &Phase, role: &str) -> Result<(), ProfileProblem> {
    let (role, phase) = (|| role.to_string(), || ph.name.clone());
    if let Some(name) = ph.names().find(|n| !is_syscall_name(n)) {
        let (role, phase, name) = (role(), phase(), name.to_string());
        return Err(ProfileProblem::NotSyscall { role, phase, name });
    }
    for (name, u) in &ph.syscalls {
        let Some(sets) = &u.args else { continue };
        let fits = call_args::of(name).is_some_and(|c| {
            let spec = c.spec();
            sets.iter()
                .all(|v| (0..v.len()).all(|i| v[i] & !spec.masks[i] == 0))
        });
        if !fits || sets.is_empty() || sets.len() > MAX_ARG_SETS {
            let (role, phase, name) = (role(), phase(), name.clone());
            return Err(ProfileProblem::Args { role, phase, name });
        }
    }
    for (name, f) in &ph.filtered {
        if !is_syscall_name(name) {
            let (role, phase, name) = (role(), phase(), name.clone());
            return Err(ProfileProblem::FilteredNotSyscall { role, phase, name });
        }
        if !sysnames::ERRNO_RANGE.contains(&f.errno) {
            let (role, phase, name, errno) = (role(), phase(), name.clone(), f.errno);
            return Err(ProfileProblem::FilteredErrno {
                role,
                phase,
                name,
                errno,
            });
        }
    }
    Ok(())
}

/// Roles are unique per container and their phases unique per role, each phase checked.
fn check_roles(roles: &[Role]) -> Result<(), ProfileProblem> {
    // One set of roles per container: a name may come back for another container.
    let mut seen_roles = std::collections::HashSet::new();
    for role in roles {
        if !seen_roles.insert((role.name.as_str(), role.container.as_deref())) {
            return Err(ProfileProblem::RoleTwice {
                role: role.name.clone(),
                container: role.container.clone(),
            });
        }
        let mut seen = std::collections::HashSet::new();
        for ph in &role.phases {
            if !seen.insert(ph.name.as_str()) {
                return Err(ProfileProblem::PhaseTwice {
                    role: role.name.clone(),
                    phase: ph.name.clone(),
                });
            }
            check_phase(ph, &role.name)?;
        }
    }
    Ok(())
}

impl Phase {
    /// Names of its syscalls.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.syscalls.keys().map(String::as_str)
    }

    /// Its calls restricted to the arguments seen, each combination as it reads
    /// (`openat(O_RDONLY)`), a call's combinations together.
    pub fn argument_restrictions(&self) -> Vec<String> {
        self.syscalls
            .iter()
            .filter_map(|(n, u)| {
                let sets = u.args.as_ref()?;
                let calls: Vec<String> = sets.iter().map(|v| call_args::describe(n, v)).collect();
                Some(calls.join(" "))
            })
            .collect()
    }
}

impl Role {
    pub fn phase(&self, name: &str) -> Option<&Phase> {
        self.phases.iter().find(|p| p.name == name)
    }

    /// Every syscall of every phase.
    pub fn union(&self) -> std::collections::BTreeSet<&str> {
        self.phases.iter().flat_map(Phase::names).collect()
    }
}

impl Profile {
    /// The first role named `name` (a profile learned in several containers has one per
    /// container: see [`Profile::roles_named`]).
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.name == name)
    }

    /// Every role named `name`, one per container it was learned in.
    pub fn roles_named(&self, name: &str) -> Vec<&Role> {
        self.roles.iter().filter(|r| r.name == name).collect()
    }

    /// The profile's JSON, with the operations its rule set knows and the ones it saw (the
    /// `operations` section) when the rule set has any.
    pub fn to_json(&self) -> String {
        match operations::recognize(self) {
            Some(ops) => {
                let mut value = serde_json::to_value(self).expect("profile serializes");
                value["operations"] = serde_json::to_value(ops).expect("serializes");
                serde_json::to_string_pretty(&value).expect("serializes")
            }
            None => serde_json::to_string_pretty(self).expect("profile serializes"),
        }
    }

    /// Writes the profile atomically.
    pub fn save(&self, path: &Path) -> Result<(), FileError> {
        write_atomic(path, self.to_json().as_bytes())
    }

    /// Parses and checks a profile; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        let origin = origin.to_string();
        let invalid = |origin, problem| ProfileError::Invalid { origin, problem };
        let value: serde_json::Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => return Err(invalid(origin, e.into())),
        };
        match value.get("schema").and_then(|s| s.as_str()) {
            Some(s) if SCHEMAS.contains(&s) => {}
            Some(other) => {
                let schema = other.to_string();
                return Err(ProfileError::Schema { origin, schema });
            }
            None => return Err(invalid(origin, not_a_profile(&value))),
        }
        // Parse again from the text so errors carry line and column.
        let p: Profile = match serde_json::from_str(text) {
            Ok(p) => p,
            Err(e) => return Err(invalid(origin, e.into())),
        };
        if p.arch != sysnames::ARCH {
            let arch = p.arch;
            return Err(ProfileError::Arch { origin, arch });
        }
        match check_roles(&p.roles) {
            Ok(()) => Ok(p),
            Err(problem) => Err(invalid(origin, problem)),
        }
    }

    /// When `exe` (a program about to run, or running, under this profile) is not the program
    /// the profile was learned from: a sentence that says so, for the denials that follow.
    /// Paths are compared as the file system resolves them (/bin is /usr/bin on Debian).
    pub fn other_program(&self, exe: &Path) -> Option<String> {
        let learned = Path::new(&self.program.path);
        if self.program.path.is_empty() {
            return None;
        }
        let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        (real(learned) != real(exe)).then(|| {
            format!(
                "this profile is for {}, not {}: expect denials for what {} does and {} never did",
                learned.display(),
                exe.display(),
                exe.display(),
                learned.display()
            )
        })
    }

    /// Reads and checks the profile at `path`.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = crate::input::read_text(path, crate::input::TEXT).map_err(missing)?;
        Profile::parse(&text, &crate::input::origin(path))
    }
}

/// A file that is not there is one nothing wrote yet.
pub fn missing(e: crate::file_error::FileError) -> ProfileError {
    use crate::file_error::FileCause;
    match &e.cause {
        FileCause::Io(io) if io.kind() == std::io::ErrorKind::NotFound => ProfileError::Missing(e),
        _ => ProfileError::File(e),
    }
}

/// What JSON without a profile schema is, when it is another of phasebox's files.
fn not_a_profile(value: &serde_json::Value) -> ProfileProblem {
    if value.get("defaultAction").is_some() || value.get("syscalls").is_some() {
        ProfileProblem::IsPolicy
    } else if value.get("processes").is_some() && value.get("roles").is_none() {
        ProfileProblem::IsSummary
    } else {
        ProfileProblem::NoSchema
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Sentence;

    /// Phases of a sample role: (phase, syscalls).
    pub type SamplePhases<'a> = &'a [(&'a str, &'a [&'a str])];

    /// A small profile: role → [(phase, [syscalls])].
    pub fn sample(roles: &[(&str, SamplePhases)]) -> Profile {
        Profile {
            schema: SCHEMA.into(),
            program: Program {
                path: "/usr/sbin/nginx".into(),
                comm: "nginx".into(),
            },
            arch: sysnames::ARCH.into(),
            kernel_release: "6.18".into(),
            complete: true,
            incomplete_reasons: vec![],
            notes: vec![],
            runs: vec![Run {
                name: "t".into(),
                how: "launched".into(),
                ..Default::default()
            }],
            roles: roles
                .iter()
                .map(|(name, phases)| Role {
                    container: None,
                    name: name.to_string(),
                    processes: 1,
                    phases: phases
                        .iter()
                        .map(|(ph, calls)| Phase {
                            name: ph.to_string(),
                            start_ns: 0,
                            end_ns: 0,
                            syscalls: calls
                                .iter()
                                .map(|c| {
                                    (
                                        c.to_string(),
                                        SyscallUse {
                                            calls: 1,
                                            ..Default::default()
                                        },
                                    )
                                })
                                .collect(),
                            filtered: Default::default(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn json_round_trip() {
        let mut p = sample(&[(
            "worker",
            &[("init", &["setuid"]), ("serving", &["accept4", "close"])],
        )]);
        p.roles[0].phases[1]
            .syscalls
            .get_mut("close")
            .unwrap()
            .paths = vec!["/x".into()];
        let back = Profile::parse(&p.to_json(), "p.json").unwrap();
        assert_eq!(back, p);
        assert_eq!(back.role("worker").unwrap().union().len(), 3);
    }

    #[test]
    fn filtered_calls_round_trip_and_are_checked() {
        let mut p = sample(&[("main", &[("a", &["read"])])]);
        let text = p.to_json();
        assert!(!text.contains("filtered"), "empty: left out");
        p.roles[0].phases[0].filtered.insert(
            "clone3".into(),
            Filtered {
                calls: 3,
                errno: 38,
            },
        );
        assert_eq!(Profile::parse(&p.to_json(), "f.json").unwrap(), p);
        let mut bad = p.clone();
        bad.roles[0].phases[0]
            .filtered
            .get_mut("clone3")
            .unwrap()
            .errno = 4096;
        let e = Profile::parse(&bad.to_json(), "f.json")
            .unwrap_err()
            .sentence();
        assert!(e.contains("clone3 was filtered with errno 4096"), "{e}");
        let mut bad = p.clone();
        bad.roles[0].phases[0]
            .filtered
            .insert("nope".into(), Filtered::default());
        let e = Profile::parse(&bad.to_json(), "f.json")
            .unwrap_err()
            .sentence();
        assert!(e.contains("lists \"nope\" as filtered"), "{e}");
    }

    #[test]
    fn malformed_profiles_name_file_and_place() {
        let e = Profile::parse(
            "{\"schema\": \"phasebox.profile/v1\",\n \"roles\": 3}",
            "bad.json",
        )
        .unwrap_err()
        .sentence();
        assert!(
            e.starts_with("bad.json is not a valid phasebox profile"),
            "{e}"
        );
        assert!(e.contains("line 2"), "{e}");
        let e = Profile::parse("{\"schema\": \"other/v9\"}", "o.json")
            .unwrap_err()
            .sentence();
        assert!(e.contains("schema \"other/v9\""), "{e}");
        let e = Profile::parse("not json", "n.json").unwrap_err().sentence();
        assert!(e.contains("n.json is not a valid phasebox profile"), "{e}");
        let mut p = sample(&[("main", &[("a", &["read"])])]);
        let again = p.roles[0].phases[0].clone();
        p.roles[0].phases.push(again);
        let e = Profile::parse(&p.to_json(), "d.json")
            .unwrap_err()
            .sentence();
        assert!(e.contains("lists phase a twice"), "{e}");
        let mut p = sample(&[("main", &[("a", &["read"])])]);
        p.roles.push(p.roles[0].clone());
        let e = Profile::parse(&p.to_json(), "r.json")
            .unwrap_err()
            .sentence();
        assert!(e.contains("lists role main twice"), "{e}");
        // The same role in two containers (or in one and on the host) is two roles.
        let mut other = p.roles[0].clone();
        other.container = Some("c".repeat(64));
        p.roles[1] = other;
        let back = Profile::parse(&p.to_json(), "r.json").unwrap();
        assert_eq!(back.roles_named("main").len(), 2);
    }

    #[test]
    fn unknown_syscalls_and_other_architectures_are_refused() {
        for bad in [
            "not_a_syscall",
            "<script>alert(1)</script>",
            "syscall_0",
            "syscall_x",
            "",
        ] {
            let p = sample(&[("main", &[("a", &["read", bad])])]);
            let e = Profile::parse(&p.to_json(), "u.json")
                .unwrap_err()
                .sentence();
            assert!(
                e.contains(&format!("phase a of role main has {bad:?}, which is not a")),
                "{e}"
            );
        }
        // A number the table has no name for, as the learner writes it, is kept.
        let p = sample(&[("main", &[("a", &["read", "syscall_100000"])])]);
        assert_eq!(Profile::parse(&p.to_json(), "n.json").unwrap(), p);
        for arch in ["sparc", "aarch64", "x86_64"]
            .iter()
            .filter(|a| **a != sysnames::ARCH)
        {
            let mut p = sample(&[("main", &[("a", &["read"])])]);
            p.arch = arch.to_string();
            let e = Profile::parse(&p.to_json(), "a.json")
                .unwrap_err()
                .sentence();
            assert!(
                e.starts_with(&format!(
                    "a.json is a profile of {arch:?} programs; this phasebox is built for"
                )),
                "{e}"
            );
        }
    }
}
