//! Why a rule set cannot be loaded.
use super::BUILTIN;
use crate::{file_error::FileError, input::TomlError};

/// Why a rule set cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Toml(#[from] TomlError),
    #[error("{origin} is not a valid phase rule set")]
    Invalid {
        origin: String,
        #[source]
        problem: RuleProblem,
    },
    #[error(
        "unknown phase rules {spec}: not a built-in ({}, auto) and no such file",
        builtin_names()
    )]
    Unknown { spec: String },
}

/// What makes a rule set invalid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RuleProblem {
    #[error("phase {phase} is for unknown role {role}")]
    UnknownRole { phase: String, role: String },
    #[error("phase {0} is listed twice for one role")]
    PhaseTwice(String),
    #[error("it has no phases")]
    NoPhases,
    #[error("phase {phase} names an unknown syscall {name}")]
    UnknownSyscall { phase: String, name: String },
    #[error("a marker of phase {0} matches nothing")]
    MatchesNothing(String),
    #[error("a marker of phase {0} has occurrence 0; the first call is occurrence 1")]
    ZeroOccurrence(String),
    #[error("phases {0} and {1} are both steady; a role has one steady phase")]
    TwoSteady(String, String),
    #[error("operation {operation} names an unknown syscall {name}")]
    OperationSyscall { operation: String, name: String },
    #[error("role {0} is defined twice")]
    RoleTwice(String),
    #[error("role {role} names an unknown parent role {parent}")]
    UnknownParent { role: String, parent: String },
    /// `chain` is the role, its parent, and so on back to the role.
    #[error("role {} is its own ancestor ({})", chain[0], chain.join(" -> parent "))]
    OwnAncestor { chain: Vec<String> },
}

/// The names of the built-in rule sets, for messages.
fn builtin_names() -> String {
    let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
    names.join(", ")
}
