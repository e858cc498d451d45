//! Why a profile cannot be read.
use crate::file_error::FileError;
use crate::sysnames::ARCH;

use super::{Profile, SCHEMA};

/// A role a command asked for that the profile does not have.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the profile has no role {role} (it has: {})", roles.join(", "))]
pub struct NoSuchRole {
    pub role: String,
    /// The roles it has.
    pub roles: Vec<String>,
}

impl NoSuchRole {
    /// `role`, which `profile` lacks.
    pub fn new(profile: &Profile, role: &str) -> NoSuchRole {
        NoSuchRole {
            role: role.to_string(),
            roles: profile.roles.iter().map(|r| r.name.clone()).collect(),
        }
    }
}

/// A profile file that cannot be read or is not one this phasebox reads.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error(transparent)]
    File(#[from] FileError),
    /// No file there yet: say who writes one, and when.
    #[error(
        "{0} (run and record write their --profile when they end; the agent writes it at every --checkpoint, SIGHUP or SIGUSR1, and when it stops)"
    )]
    Missing(FileError),
    #[error("{origin} is not a valid phasebox profile")]
    Invalid {
        origin: String,
        #[source]
        problem: ProfileProblem,
    },
    #[error(
        "{origin} has profile schema {schema:?}; this phasebox reads {SCHEMA:?} and the versions before it"
    )]
    Schema { origin: String, schema: String },
    #[error(
        "{origin} is a profile of {arch:?} programs; this phasebox is built for {ARCH} and reads {ARCH} profiles only"
    )]
    Arch { origin: String, arch: String },
    /// A section another command added (`static`, `review`) does not read.
    #[error("{origin} has a malformed \"{key}\" section")]
    Section {
        origin: String,
        key: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// What makes a profile invalid.
#[derive(Debug, thiserror::Error)]
pub enum ProfileProblem {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("it has no \"schema\" key")]
    NoSchema,
    #[error(
        "it is a seccomp policy (OCI JSON), not a profile: export, validate and profile read profiles; compare, monitor --policy and run --seccomp read policies"
    )]
    IsPolicy,
    #[error(
        "it is a summary (record --summary), not a profile: record with --profile FILE writes a profile"
    )]
    IsSummary,
    #[error("it lists role {role}{} twice", in_container(container.as_deref()))]
    RoleTwice {
        role: String,
        container: Option<String>,
    },
    #[error("role {role} lists phase {phase} twice")]
    PhaseTwice { role: String, phase: String },
    #[error("phase {phase} of role {role} has {name:?}, which is not a {ARCH} syscall")]
    NotSyscall {
        role: String,
        phase: String,
        name: String,
    },
    #[error(
        "phase {phase} of role {role} gives arguments for {name} that phasebox does not record (1 to 32 combinations of the arguments docs/seccomp.md lists, within their masks)"
    )]
    Args {
        role: String,
        phase: String,
        name: String,
    },
    #[error(
        "phase {phase} of role {role} lists {name:?} as filtered, which is not a {ARCH} syscall"
    )]
    FilteredNotSyscall {
        role: String,
        phase: String,
        name: String,
    },
    #[error(
        "phase {phase} of role {role} says {name} was filtered with errno {errno}, outside 1..4095"
    )]
    FilteredErrno {
        role: String,
        phase: String,
        name: String,
        errno: u32,
    },
}

fn in_container(container: Option<&str>) -> String {
    container.map_or(String::new(), |c| format!(" in container {c}"))
}
