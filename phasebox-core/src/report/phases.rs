//! The profile sections: per scenario and role, the timeline and the phase table; the merge
//! with its phase tables (a merge keeps no times).
use std::fmt::Write as _;

use super::axis::{fmt_ns, longest_gap, span};
use super::subject::Merge;
use super::{TimelineError, esc, timeline};
use crate::profile::{Profile, Role};

fn ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

/// One scenario's section.
pub fn profile_section(
    h: &mut String,
    i: usize,
    label: &str,
    p: &Profile,
) -> Result<(), TimelineError> {
    let _ = writeln!(
        h,
        "<section class=\"profile\" id=\"p{i}\"><h2>{}</h2>",
        esc(label)
    );
    about(h, p);
    for role in &p.roles {
        role_heading(h, role);
        timeline_figure(h, role)?;
        phase_table(h, role, true);
    }
    h.push_str("</section>\n");
    Ok(())
}

/// The program, kernel, runs and completeness of `p`.
fn about(h: &mut String, p: &Profile) {
    let runs: Vec<String> = p.runs.iter().map(|r| esc(&r.name)).collect();
    let _ = writeln!(
        h,
        "<p class=\"note\">program <code>{}</code> · kernel {} · {} run(s): {} · {}</p>",
        esc(&p.program.path),
        esc(&p.kernel_release),
        p.runs.len(),
        runs.join(", "),
        if p.complete {
            "complete".to_string()
        } else {
            format!("incomplete: {}", esc(&p.incomplete_reasons.join("; ")))
        }
    );
}

/// The merge's section: what it unites, and its phase tables.
pub fn merge_section(h: &mut String, m: &Merge) {
    h.push_str("<section class=\"merge\" id=\"merge\"><h2>The merge</h2>\n<p>");
    if m.scenarios > 0 {
        let _ = write!(
            h,
            "The union of the {} scenario profiles above: per role and phase, every syscall \
             any of them made, calls summed. ",
            m.scenarios
        );
    }
    for (label, held) in &m.given {
        let _ = write!(
            h,
            "{} is {}. ",
            esc(label),
            if *held {
                "this merge: every run it holds is a scenario above, so it is not merged again"
            } else {
                "a merge of runs not above: merged in"
            }
        );
    }
    h.push_str(
        "A merge keeps no call times (its runs have no common clock): no timeline, no \
         from and to.</p>\n",
    );
    about(h, &m.profile);
    for role in &m.profile.roles {
        role_heading(h, role);
        phase_table(h, role, false);
    }
    h.push_str("</section>\n");
}

fn role_heading(h: &mut String, role: &Role) {
    let _ = writeln!(
        h,
        "<h3>role {} <span class=\"note\">({} process(es), {} syscalls)</span></h3>",
        esc(&role.name),
        role.processes,
        role.union().len()
    );
}

/// The timeline, its legend (each phase with its duration) and the longest silent stretch.
fn timeline_figure(h: &mut String, role: &Role) -> Result<(), TimelineError> {
    let Some(svg) = timeline::svg(role, 1100)? else {
        h.push_str("<p class=\"note\">No timeline: this profile keeps no call times.</p>\n");
        return Ok(());
    };
    let _ = write!(
        h,
        "<figure class=\"timeline\">{svg}<figcaption class=\"note\">"
    );
    for (pi, ph) in role.phases.iter().enumerate() {
        let (r, g, b) = timeline::COLORS[pi % timeline::COLORS.len()];
        let lasted = span(ph).map_or(String::new(), |(a, b)| format!(" {}", fmt_ns(b - a)));
        let _ = write!(
            h,
            "<span class=\"swatch\" style=\"background:rgb({r},{g},{b})\"></span>{}{lasted}",
            esc(&ph.name)
        );
    }
    h.push_str("<br>Each phase with how long it lasted, first to last recorded call.");
    if let Some(g) = longest_gap(role) {
        let _ = write!(
            h,
            " Longest stretch without a recorded call: {} in {}, from {} at {} to {} at {}.",
            fmt_ns(g.to_ns - g.from_ns),
            esc(&g.phase),
            esc(&g.before),
            fmt_ns(g.from_ns),
            esc(&g.after),
            fmt_ns(g.to_ns)
        );
    }
    h.push_str("</figcaption></figure>\n");
    Ok(())
}

/// The poster-style table; `times`: with each phase's first and last recorded call.
fn phase_table(h: &mut String, role: &Role, times: bool) {
    h.push_str("<table class=\"phase-table\"><tr><th>order</th><th>phase</th>");
    if times {
        h.push_str("<th>from (ms)</th><th>to (ms)</th>");
    }
    h.push_str("<th>syscalls</th><th>system calls</th><th>arguments</th></tr>\n");
    for (k, ph) in role.phases.iter().enumerate() {
        let names: Vec<String> = ph.names().map(esc).collect();
        let _ = write!(
            h,
            "<tr><td class=\"n\">{}</td><td>{}</td>",
            k + 1,
            esc(&ph.name)
        );
        if times {
            let (from, to) = span(ph).map_or(("-".into(), "-".into()), |(a, b)| (ms(a), ms(b)));
            let _ = write!(h, "<td class=\"n\">{from}</td><td class=\"n\">{to}</td>");
        }
        let _ = writeln!(
            h,
            "<td class=\"n\">{}</td><td class=\"calls\">{}</td><td class=\"calls\">{}</td></tr>",
            names.len(),
            names.join(", "),
            esc(&ph.argument_restrictions().join("; "))
        );
    }
    h.push_str("</table>\n");
}
