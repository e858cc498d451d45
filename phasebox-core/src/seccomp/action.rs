//! What a seccomp rule does with a call and how it compares an argument, by the names
//! libseccomp gives them (`SCMP_ACT_ERRNO`, `SCMP_CMP_EQ`): the names OCI profiles, the
//! Kubernetes operator's SeccompProfile and phasebox's exports carry.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A name that is no action or no comparison libseccomp has.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown seccomp {what} {name}")]
pub struct UnknownName {
    /// "action" or "argument comparison".
    pub what: &'static str,
    pub name: String,
}

/// What a rule, or a profile's default, does with a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Action {
    Allow,
    /// Fail the call with the rule's errno (the profile's default errno, else EPERM).
    Errno,
    /// Kill the calling thread (libseccomp's older name for KillThread).
    Kill,
    KillThread,
    KillProcess,
    /// Send SIGSYS.
    Trap,
    /// Allow, and log to the kernel's audit log.
    Log,
    /// Hand the call to a ptrace tracer.
    Trace,
    /// Hand the call to a user-notification listener.
    Notify,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 9] = [
        Action::Allow,
        Action::Errno,
        Action::Kill,
        Action::KillThread,
        Action::KillProcess,
        Action::Trap,
        Action::Log,
        Action::Trace,
        Action::Notify,
    ];

    /// Its name in profiles.
    pub fn name(self) -> &'static str {
        match self {
            Action::Allow => "SCMP_ACT_ALLOW",
            Action::Errno => "SCMP_ACT_ERRNO",
            Action::Kill => "SCMP_ACT_KILL",
            Action::KillThread => "SCMP_ACT_KILL_THREAD",
            Action::KillProcess => "SCMP_ACT_KILL_PROCESS",
            Action::Trap => "SCMP_ACT_TRAP",
            Action::Log => "SCMP_ACT_LOG",
            Action::Trace => "SCMP_ACT_TRACE",
            Action::Notify => "SCMP_ACT_NOTIFY",
        }
    }

    /// Whether the call goes ahead (allowed, or allowed and logged).
    pub fn allows(self) -> bool {
        matches!(self, Action::Allow | Action::Log)
    }

    /// Whether the call is killed (the thread or the whole process).
    pub fn kills(self) -> bool {
        matches!(
            self,
            Action::Kill | Action::KillThread | Action::KillProcess
        )
    }

    /// Whether phasebox can enforce it from a profile alone: tracing needs a tracer and
    /// notification a listener that the profile does not bring.
    pub fn enforceable(self) -> bool {
        !matches!(self, Action::Trace | Action::Notify)
    }
}

/// How a rule compares an argument with its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Operator {
    NotEqual,
    Less,
    LessOrEqual,
    Equal,
    GreaterOrEqual,
    Greater,
    /// The argument masked with `value` equals `value_two`.
    MaskedEqual,
}

impl Operator {
    /// Every operator.
    pub const ALL: [Operator; 7] = [
        Operator::NotEqual,
        Operator::Less,
        Operator::LessOrEqual,
        Operator::Equal,
        Operator::GreaterOrEqual,
        Operator::Greater,
        Operator::MaskedEqual,
    ];

    /// Its name in profiles.
    pub fn name(self) -> &'static str {
        match self {
            Operator::NotEqual => "SCMP_CMP_NE",
            Operator::Less => "SCMP_CMP_LT",
            Operator::LessOrEqual => "SCMP_CMP_LE",
            Operator::Equal => "SCMP_CMP_EQ",
            Operator::GreaterOrEqual => "SCMP_CMP_GE",
            Operator::Greater => "SCMP_CMP_GT",
            Operator::MaskedEqual => "SCMP_CMP_MASKED_EQ",
        }
    }
}

/// Display, parsing and the serde conversions of an enum whose values are named by `name()`.
macro_rules! named_on_the_wire {
    ($t:ty, $what:literal) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $t {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, UnknownName> {
                <$t>::ALL
                    .into_iter()
                    .find(|v| v.name() == s)
                    .ok_or_else(|| UnknownName {
                        what: $what,
                        name: s.to_string(),
                    })
            }
        }

        impl TryFrom<String> for $t {
            type Error = UnknownName;

            fn try_from(s: String) -> Result<Self, UnknownName> {
                s.parse()
            }
        }

        impl From<$t> for &'static str {
            fn from(v: $t) -> &'static str {
                v.name()
            }
        }
    };
}

named_on_the_wire!(Action, "action");
named_on_the_wire!(Operator, "argument comparison");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_on_the_wire() {
        for a in Action::ALL {
            assert_eq!(a.name().parse::<Action>(), Ok(a));
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(json, format!("\"{}\"", a.name()));
            assert_eq!(serde_json::from_str::<Action>(&json).unwrap(), a);
        }
        for o in Operator::ALL {
            assert_eq!(o.name().parse::<Operator>(), Ok(o));
            assert_eq!(serde_json::to_value(o).unwrap(), o.name());
        }
        assert_eq!(Action::KillProcess.to_string(), "SCMP_ACT_KILL_PROCESS");
    }

    #[test]
    fn unknown_names_are_refused_by_name() {
        let e = serde_json::from_str::<Action>("\"SCMP_ACT_NOPE\"")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("unknown seccomp action SCMP_ACT_NOPE"), "{e}");
        let e = "SCMP_CMP_ABOUT".parse::<Operator>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown seccomp argument comparison SCMP_CMP_ABOUT"
        );
        assert!(serde_json::from_str::<Action>("7").is_err());
    }
}
