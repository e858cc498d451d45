//! What a launched command is run under: an OCI seccomp profile (`run --seccomp`), whose calls
//! outside it come to phasebox to be answered and recorded when its default is an errno; or a
//! per-phase manifest (`run --seccomp-phases`), the union of its phases with the startup-only
//! calls answered by phase.
use std::path::Path;

use phasebox_core::seccomp::{action::Action, oci::OciProfile};

use super::{filter::FilterSpec, phased, supervisor::Answer};

/// The filter a launched command gets and how its notifications are answered.
pub struct Enforcement {
    /// `--seccomp-phases`: the manifest's plan (its phase rules, its sets).
    pub plan: Option<phased::Plan>,
    /// The filter, when there is one.
    pub spec: Option<FilterSpec>,
    /// How notified calls are answered.
    pub answer: Option<Answer>,
    /// What the user should know about the profile (rules left out, what phasebox cannot
    /// report), one sentence each.
    pub notes: Vec<String>,
}

impl Enforcement {
    /// Nothing enforced.
    pub fn none() -> Enforcement {
        Enforcement {
            plan: None,
            spec: None,
            answer: None,
            notes: Vec::new(),
        }
    }

    /// The OCI seccomp profile at `path`. With an errno default action, calls outside it come
    /// to phasebox as notifications, which it answers with that errno and records; other
    /// default actions are left to the kernel.
    pub fn profile(path: &Path) -> anyhow::Result<Enforcement> {
        let oci = OciProfile::load(path)?;
        let mut spec = FilterSpec::from_oci(&oci)?;
        let mut notes = Vec::new();
        if spec.skipped_conditional > 0 {
            notes.push(format!(
                "{} rules of {} depend on capabilities or architectures (includes/excludes) and were left out",
                spec.skipped_conditional,
                path.display()
            ));
        }
        let answer = match oci.default_action {
            Action::Errno => {
                spec.notify_by_default();
                let errno = oci.default_errno_ret.unwrap_or(libc::EPERM as u32) as i32;
                Some(Answer::Deny(errno))
            }
            Action::Log => {
                notes.push(format!(
                    "{}'s default action is {}: calls outside it are allowed and logged by the kernel (audit records in the kernel log), not reported here",
                    path.display(),
                    Action::Log
                ));
                None
            }
            other => {
                notes.push(format!(
                    "{}'s default action is {other}: phasebox cannot report calls outside it (the kernel acts before any tracer sees them); `phasebox validate` reports them",
                    path.display()
                ));
                None
            }
        };
        Ok(Enforcement {
            plan: None,
            spec: Some(spec),
            answer,
            notes,
        })
    }

    /// The per-phase manifest at `path` (from `export --per-phase`).
    pub fn phases(path: &Path) -> anyhow::Result<Enforcement> {
        let plan = phased::plan(path)?;
        let spec = plan.spec()?;
        Ok(Enforcement {
            plan: Some(plan),
            spec: Some(spec),
            answer: Some(Answer::ByPhase),
            notes: Vec::new(),
        })
    }
}
