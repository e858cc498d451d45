//! `phasebox profile show|merge|diff`.
use crate::cli::ProfileCommand;
use phasebox_core::profile::{Profile, compare, operations, review, show};

pub fn profile(cmd: &ProfileCommand) -> anyhow::Result<i32> {
    match cmd {
        ProfileCommand::Show { file, json: true } => {
            let (p, _) = review::load(file)?;
            let warnings = operations::warnings(&p);
            phasebox::logging::write_stdout(&show::render_json(&p, &warnings));
        }
        ProfileCommand::Show { file, json: false } => {
            let (p, r) = review::load(file)?;
            phasebox::logging::write_stdout(&show::render(&p));
            for w in operations::warnings(&p) {
                phasebox::say!("phasebox: warning: {w}");
            }
            super::static_analysis::warn_coverage(&p, None);
            if let Some(r) = r {
                phasebox::logging::write_stdout(&format!("\n{}", review::render(&r)));
            }
        }
        ProfileCommand::Merge { inputs, output } => {
            let profiles = inputs
                .iter()
                .map(|p| Profile::load(p))
                .collect::<Result<Vec<_>, _>>()?;
            let merged = compare::merge(&profiles)?;
            merged.save(output)?;
            phasebox::say!(
                "phasebox: merged {} profiles into {}",
                profiles.len(),
                output.display()
            );
        }
        ProfileCommand::Diff { a, b } => {
            let (pa, pb) = (Profile::load(a)?, Profile::load(b)?);
            phasebox::logging::write_stdout(&compare::render_diff(&compare::diff(&pa, &pb)));
        }
    }
    Ok(0)
}
