//! The matrix as a table: printed after a run, and written into docs/kernels.md.
use super::Outcome;
use super::checks::CHECKS;
use crate::util;

const BEGIN: &str = "<!-- vm-matrix: begin (written by cargo xtask vm-test) -->";
const END: &str = "<!-- vm-matrix: end -->";

/// One row per kernel, one column per check: "pass" or "FAIL: why".
pub fn markdown(outcomes: &[Outcome]) -> String {
    let names: Vec<&str> = CHECKS.iter().map(|(name, _)| *name).collect();
    let mut t = format!(
        "| kernel | architecture | Debian | {} |\n|---|---|---|{}\n",
        names.join(" | "),
        "---|".repeat(names.len())
    );
    for o in outcomes {
        let cells: Vec<String> = o
            .verdicts
            .iter()
            .map(|(_, v)| match v {
                Ok(_) => "pass".to_string(),
                Err(why) => format!("FAIL: {}", why.replace('|', "\\|").replace('\n', " ")),
            })
            .collect();
        let release = if o.report.release.is_empty() {
            "?"
        } else {
            &o.report.release
        };
        t.push_str(&format!(
            "| {release} | {} | {} | {} |\n",
            o.kernel.arch.machine(),
            o.kernel.suite,
            cells.join(" | ")
        ));
    }
    t
}

/// Replaces the table in docs/kernels.md with this run's.
pub fn write_docs(outcomes: &[Outcome]) -> anyhow::Result<()> {
    let path = util::root().join("docs/kernels.md");
    let text = std::fs::read_to_string(&path)?;
    let section = format!("{BEGIN}\n{}{END}", markdown(outcomes));
    std::fs::write(&path, util::replace_section(&text, BEGIN, END, &section))?;
    Ok(())
}
