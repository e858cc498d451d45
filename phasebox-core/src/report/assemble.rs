//! A report page from profiles and policy files: the scenarios, their merge and coverage,
//! and the comparison of the merge with each policy and with phasebox's own export.
use std::path::PathBuf;

use super::{Compared, Page, TimelineError, html, own_policy, subject};
use crate::{
    policy::{
        Policy, PolicyError,
        report::{self as compare, CompareError},
    },
    profile::{Profile, compare::MergeError, review::Review},
    scenario::coverage,
};

/// Why a report cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("a report needs at least one profile")]
    NoProfile,
    #[error(transparent)]
    Merge(#[from] MergeError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Compare(#[from] CompareError),
    #[error(transparent)]
    Timeline(#[from] TimelineError),
}

/// The page of `profiles` (several: with their coverage in this order; merges among them
/// shown as the merge), compared with `policies` when any, with the reviews of hybrid
/// profiles.
pub fn page(
    profiles: Vec<(String, &Profile)>,
    policies: &[PathBuf],
    title: Option<String>,
    reviews: Vec<(String, Review)>,
) -> Result<String, ReportError> {
    let Some((_, first)) = profiles.first() else {
        return Err(ReportError::NoProfile);
    };
    let title = title.unwrap_or_else(|| {
        let prog = first.program.path.rsplit('/').next().unwrap_or_default();
        format!("phasebox report: {prog}")
    });
    let (scenarios, merge) = subject::split(profiles)?;
    let coverage = (scenarios.len() > 1).then(|| coverage::coverage(&scenarios));
    let against = match (&merge, scenarios.first()) {
        (Some(m), _) => &m.profile,
        (None, Some((_, p))) => *p,
        (None, None) => return Err(ReportError::NoProfile),
    };
    let comparison = if policies.is_empty() {
        None
    } else {
        let policies = policies
            .iter()
            .map(|p| Policy::load(p, &against.kernel_release, None))
            .collect::<Result<Vec<_>, _>>()?;
        let given = compare::compare(against, &policies, None, None)?;
        let own = own_policy::rows(against).map_err(|e| e.to_string());
        Some(Compared { given, own })
    };
    Ok(html(&Page {
        title,
        profiles: scenarios,
        merge,
        coverage,
        comparison,
        reviews,
    })?)
}
