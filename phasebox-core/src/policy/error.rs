//! Why a policy cannot be read.
use serde_json::Value;

use crate::{file_error::FileError, profile::ProfileError, sysnames};

/// Why a policy file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error(transparent)]
    File(#[from] FileError),
    /// A phasebox profile given as a policy.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error("{origin} is not a policy phasebox can read")]
    Invalid {
        origin: String,
        #[source]
        problem: PolicyProblem,
    },
}

/// What makes a policy unreadable.
#[derive(Debug, thiserror::Error)]
pub enum PolicyProblem {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("{0} is not a syscall number")]
    NotNumber(Value),
    #[error("syscall number {0} is not in the {ARCH} table", ARCH = sysnames::ARCH)]
    UnknownNumber(u64),
    #[error(
        "expected a JSON list of syscall numbers, a Chestnut policy, an OCI seccomp profile, or \
         lines of App:name,name"
    )]
    UnknownFormat,
    #[error("\"syscalls\" is not a list")]
    SyscallsNotList,
    #[error("{0} is not a string")]
    ActionNotString(ActionPlace),
    #[error("{0} {1:?} is not a seccomp action")]
    NotAction(ActionPlace, String),
    #[error("rule {0} has no action")]
    NoAction(usize),
    #[error("rule {0} has neither \"names\" nor \"name\"")]
    NoNames(usize),
    #[error("line {0} is not App:name,name,…")]
    NotNameLine(usize),
    #[error("line {line} has {name:?}, which is not a syscall name")]
    NotName { line: usize, name: String },
    #[error("it lists no syscalls")]
    NoSyscalls,
    #[error("{0} is not a {ARCH} syscall", ARCH = sysnames::ARCH)]
    NotSyscall(String),
}

/// Where an OCI profile names an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionPlace {
    Default,
    Rule(usize),
}

impl std::fmt::Display for ActionPlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ActionPlace::Default => f.write_str("defaultAction"),
            ActionPlace::Rule(i) => write!(f, "the action of rule {i}"),
        }
    }
}
