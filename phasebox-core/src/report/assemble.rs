//! A report page from profiles and policy files: the coverage of several profiles of one
//! program, and the comparison of their union with each policy.
use std::path::PathBuf;

use super::{Page, html};
use crate::{
    policy::{Policy, report as compare},
    profile::{Profile, compare::merge, review::Review},
    scenario::coverage,
};

/// The page of `profiles` (several: with their coverage in this order), compared with
/// `policies` when any, with the reviews of hybrid profiles.
pub fn page(
    profiles: Vec<(String, &Profile)>,
    policies: &[PathBuf],
    title: Option<String>,
    reviews: Vec<(String, Review)>,
) -> anyhow::Result<String> {
    let Some((_, first)) = profiles.first() else {
        anyhow::bail!("a report needs at least one profile");
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
            .collect::<anyhow::Result<Vec<_>>>()?;
        Some(compare::compare(&merged, &policies, None, None)?)
    };
    let title = title.unwrap_or_else(|| {
        let prog = first.program.path.rsplit('/').next().unwrap_or_default();
        format!("phasebox report: {prog}")
    });
    html(&Page {
        title,
        profiles,
        coverage,
        comparison,
        reviews,
    })
}
