//! The deployment table and its details, as Markdown for BENCHMARKS.md.
use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::said::{self, naming};
use super::stage::Stage;
use super::{Learned, Row};

/// `text` on one table cell's line: no pipes, no newlines, at most `max` characters.
fn cell(text: &str, max: usize) -> String {
    let one: String = text.replace('|', "\\|").replace(['\n', '\r'], " ");
    if one.chars().count() > max {
        one.chars().take(max).collect::<String>() + "…"
    } else {
        one
    }
}

fn crashes(stage: &Result<Stage, String>) -> String {
    match stage {
        Ok(s) => s.crashes.len().to_string(),
        Err(why) => format!("not run: {}", cell(why, 120)),
    }
}

fn failed(stage: &Result<Stage, String>) -> String {
    match stage {
        Ok(s) if s.failed.is_empty() => "none".into(),
        Ok(s) => s
            .failed
            .iter()
            .map(|(op, _)| op.as_str())
            .collect::<Vec<_>>()
            .join("; "),
        Err(_) => "—".into(),
    }
}

/// For the operations `stage` failed: how each was named before deployment, those named
/// alike together.
fn named(
    tag: &str,
    stage: &Result<Stage, String>,
    learned: &Result<Learned, String>,
    denied: &BTreeSet<String>,
    checked: Option<&Stage>,
) -> Vec<String> {
    let (Ok(s), Ok(l)) = (stage, learned) else {
        return Vec::new();
    };
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for (op, _) in &s.failed {
        let how = naming(op, denied, &l.said, checked);
        match groups.iter_mut().find(|(h, _)| *h == how) {
            Some((_, ops)) => ops.push(op),
            None => groups.push((how, vec![op])),
        }
    }
    groups
        .into_iter()
        .map(|(how, ops)| format!("{tag} {}: {how}", ops.join(", ")))
        .collect()
}

/// The calls a stage's phasebox reported denied, or none.
fn denied_in(stage: &Result<Stage, String>) -> BTreeSet<String> {
    stage.as_ref().map(said::denied).unwrap_or_default()
}

fn load(stage: &Result<Stage, String>) -> String {
    match stage.as_ref().ok().and_then(|s| s.load.as_ref()) {
        Some(l) => format!("{:.0} {}", l.median, l.unit),
        None => "—".into(),
    }
}

fn memory(stage: &Result<Stage, String>) -> String {
    match stage.as_ref().ok().and_then(|s| s.rss) {
        Some((a, b)) => format!("{:.1} → {:.1} MiB", a as f64 / 1024.0, b as f64 / 1024.0),
        None => "—".into(),
    }
}

/// The version number in a program's version line (`nginx version: nginx/1.22.1`, `Redis
/// server v=7.0.15 sha=…`): its first word that starts with a digit and has a dot.
fn short_version(line: &str) -> String {
    line.split(|c: char| c.is_whitespace() || c == '/' || c == '=')
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()) && w.contains('.'))
        .unwrap_or(line)
        .to_string()
}

/// The table's line for `r`.
fn line(r: &Row) -> String {
    let validate_a = r.validate_a.as_ref().ok();
    let validate_b = r.validate_b.as_ref().ok();
    let mut names = named(
        "(a)",
        &r.a,
        &r.docker,
        &denied_in(&r.validate_a),
        validate_a,
    );
    let mut phased = denied_in(&r.b);
    phased.extend(denied_in(&r.validate_b));
    names.extend(named("(b)", &r.b, &r.host, &phased, validate_b));
    format!(
        "| {} {} | {} | {} | {} | {} | {} | {} / {} | {} / {} |\n",
        r.name,
        short_version(&r.version),
        crashes(&r.a),
        cell(&failed(&r.a), 300),
        crashes(&r.b),
        cell(&failed(&r.b), 300),
        if names.is_empty() {
            "—".into()
        } else {
            cell(&names.join("<br>"), 900)
        },
        load(&r.a),
        load(&r.b),
        memory(&r.a),
        memory(&r.b),
    )
}

/// One stage's details, or why it did not run.
fn stage_details(out: &mut String, what: &str, stage: &Result<Stage, String>) {
    match stage {
        Err(why) => {
            let _ = writeln!(out, "  - {what}: not run: {}", cell(why, 400));
        }
        Ok(s) => stage_lines(out, "  ", what, s),
    }
}

/// What failed and why, what crashed, validate's verdict and what phasebox said it denied,
/// as a list item indented by `indent`.
fn stage_lines(out: &mut String, indent: &str, what: &str, s: &Stage) {
    let _ = writeln!(
        out,
        "{indent}- {what}: {} operations failed, {} crashes",
        s.failed.len(),
        s.crashes.len()
    );
    for (op, why) in &s.failed {
        let _ = writeln!(out, "{indent}  - failed: {op}: {}", cell(why, 400));
    }
    for c in &s.crashes {
        let _ = writeln!(out, "{indent}  - crash: {}", cell(c, 400));
    }
    let verdict = s
        .output
        .lines()
        .find(|l| l.starts_with("pass: ") || l.starts_with("fail: "));
    if let Some(v) = verdict {
        let _ = writeln!(out, "{indent}  - validate: {}", cell(v, 300));
    }
    let denied = said::denied(s);
    if !denied.is_empty() {
        let list: Vec<&str> = denied.iter().map(String::as_str).collect();
        let _ = writeln!(
            out,
            "{indent}  - phasebox reported denied: {}",
            list.join(", ")
        );
    }
}

/// What was learned and said before deployment.
fn learned_details(out: &mut String, what: &str, l: &Result<Learned, String>) {
    match l {
        Err(why) => {
            let _ = writeln!(out, "  - {what}: failed: {}", cell(why, 400));
        }
        Ok(l) => {
            let mut first: Vec<&str> = l
                .said
                .warnings
                .lines()
                .filter(|w| w.starts_with("phasebox: warning:"))
                .map(|w| w.trim_start_matches("phasebox: warning: "))
                .collect();
            // export and profile show say the same warnings.
            first.sort_unstable();
            first.dedup();
            let _ = writeln!(
                out,
                "  - {what}: {} syscalls allowed; export {}; warnings: {}; the hybrid review lists {} reachable calls no run made",
                l.allowed,
                match &l.said.export {
                    Ok(()) => "written".to_string(),
                    Err(why) => format!("refused ({})", cell(why, 200)),
                },
                if first.is_empty() {
                    "none".to_string()
                } else {
                    cell(&first.join(" / "), 400)
                },
                l.said.review.len()
            );
            stage_lines(out, "    ", "the learning run", &l.run);
        }
    }
}

/// The section's text.
pub fn render(rows: &[Row], rounds: usize) -> String {
    let mut out = String::new();
    for r in rows {
        out.push_str(&line(r));
    }
    let mut details = String::new();
    for r in rows {
        let _ = writeln!(details, "- **{}** ({})", r.name, cell(&r.version, 80));
        let _ = writeln!(details, "  - operations: {}", r.ops.join("; "));
        learned_details(&mut details, "learned in Docker", &r.docker);
        stage_details(
            &mut details,
            "(a) fresh container under the Docker export",
            &r.a,
        );
        stage_details(
            &mut details,
            "validate with the Docker-learned profile",
            &r.validate_a,
        );
        learned_details(
            &mut details,
            "learned on the host (`run --profile`)",
            &r.host,
        );
        stage_details(&mut details, "(b) phase-aware enforcement", &r.b);
        stage_details(
            &mut details,
            "validate with the host-learned profile",
            &r.validate_b,
        );
    }
    format!(
        "## Servers under the policies phasebox exports\n\n{}\n\n\
         | server | (a) Docker: crashes | (a) operations failed | (b) phase-aware: crashes | (b) operations failed | each failed operation named before deployment? | load, median of {rounds}: (a) / (b) | memory before → after load: (a) / (b) |\n\
         |---|---|---|---|---|---|---|---|\n{out}\n{}\n{details}",
        super::method(rounds),
        super::versions(),
    )
}
