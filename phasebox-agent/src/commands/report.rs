//! `phasebox report PROFILE… -o report.html`: the HTML page of one or more profiles.
use std::path::PathBuf;

use phasebox_core::{
    atomic_file::write_atomic,
    policy::{Policy, report as compare},
    profile::{
        Profile,
        compare::merge,
        review::{self, Review},
    },
    report::{Page, html},
    scenario::coverage,
};

use crate::cli::ReportArgs;

/// A profile's label: its run's name (a scenario's "set/name"), else its file name.
fn label(p: &Profile, path: &std::path::Path) -> String {
    match p.runs.as_slice() {
        [one] if !one.name.is_empty() => one.name.clone(),
        _ => path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
    }
}

pub fn report(args: &ReportArgs) -> anyhow::Result<i32> {
    let loaded = args
        .profiles
        .iter()
        .map(|p| review::load(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let labelled: Vec<(String, &Profile)> = loaded
        .iter()
        .zip(&args.profiles)
        .map(|((p, _), path)| (label(p, path), p))
        .collect();
    let reviews = loaded
        .iter()
        .zip(&labelled)
        .filter_map(|((_, r), (l, _))| r.clone().map(|r| (l.clone(), r)))
        .collect();
    let page = page(labelled, &args.compare, args.title.clone(), reviews)?;
    write_atomic(&args.output, page.as_bytes())?;
    eprintln!("phasebox: report written to {}", args.output.display());
    Ok(0)
}

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
