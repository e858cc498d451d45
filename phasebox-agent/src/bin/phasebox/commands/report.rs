//! `phasebox report PROFILE… -o report.html`: the HTML page of one or more profiles.
use phasebox_core::{
    atomic_file::write_atomic,
    profile::{Profile, review},
    report::page,
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
        .collect::<Result<Vec<_>, _>>()?;
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
    phasebox::say!("phasebox: report written to {}", args.output.display());
    Ok(0)
}
