//! A report page from profiles and policy files: the coverage of several profiles of one
//! program, and the comparison of their union with each policy.
use std::path::PathBuf;

use super::{Page, TimelineError, html};
use crate::{
    policy::{
        Policy, PolicyError,
        report::{self as compare, CompareError},
    },
    profile::{
        Profile,
        compare::{MergeError, merge},
        review::Review,
    },
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

/// The page of `profiles` (several: with their coverage in this order), compared with
/// `policies` when any, with the reviews of hybrid profiles.
pub fn page(
    profiles: Vec<(String, &Profile)>,
    policies: &[PathBuf],
    title: Option<String>,
    reviews: Vec<(String, Review)>,
) -> Result<String, ReportError> {
    let Some((_, first)) = profiles.first() else {
        return Err(ReportError::NoProfile);
    };
    let coverage = (profiles.len() > 1).then(|| coverage::coverage(&profiles));
    let comparison = if policies.is_empty() {
        None
    } else {
        let all: Vec<Profile> = profiles.iter().map(|(_, p)| (*p).clone()).collect();
        let merged = merge(&all)?;
        let policies = policies
            .iter()
            .map(|p| Policy::load(p, &merged.kernel_release, None))
            .collect::<Result<Vec<_>, _>>()?;
        Some(compare::compare(&merged, &policies, None, None)?)
    };
    let title = title.unwrap_or_else(|| {
        let prog = first.program.path.rsplit('/').next().unwrap_or_default();
        format!("phasebox report: {prog}")
    });
    Ok(html(&Page {
        title,
        profiles,
        coverage,
        comparison,
        reviews,
    })?)
}
