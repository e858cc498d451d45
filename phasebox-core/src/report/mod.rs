//! The HTML report: one self-contained page (inline CSS and SVG, no script, nothing fetched)
//! with, per scenario profile and role, the timeline and the poster-style phase table; the
//! merge of the scenarios and their coverage; the comparison of the merge with policies and
//! with phasebox's own export, when asked. Every number on it is explained on it.
mod assemble;
pub mod axis;
mod comparison;
mod coverage;
pub mod lanes;
pub mod own_policy;
mod phases;
mod review;
pub mod subject;
pub mod timeline;

pub use assemble::{ReportError, page};
pub use timeline::TimelineError;

use std::fmt::Write as _;

use crate::{
    policy::report::{Comparison, Row},
    profile::{Profile, review::Review},
    scenario::coverage::ScenarioCoverage,
};
use subject::Merge;

/// The comparison: the policies given, and phasebox's own export (or why it has none).
#[derive(Clone)]
pub struct Compared {
    pub given: Comparison,
    pub own: Result<Vec<Row>, String>,
}

/// What goes on the page.
#[derive(Clone)]
pub struct Page<'a> {
    pub title: String,
    /// (label, profile) of the scenarios (profiles of one run), in the order given.
    pub profiles: Vec<(String, &'a Profile)>,
    /// Their merge, when two or more were given or a merge was.
    pub merge: Option<Merge>,
    /// Present when two or more scenarios were given.
    pub coverage: Option<Vec<ScenarioCoverage>>,
    /// Against the merge (or the one profile), when policies were given.
    pub comparison: Option<Compared>,
    /// (label, review) of the hybrid profiles among them.
    pub reviews: Vec<(String, Review)>,
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222;max-width:1200px}\
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;margin-top:2em}\
table{border-collapse:collapse;margin:0.6em 0 1.4em}th,td{border:1px solid #ccc;padding:3px 7px;\
text-align:left;vertical-align:top;font-size:0.9em}th{background:#f2f2f2}td.n{text-align:right}\
.calls{font-family:monospace;font-size:0.85em}.note{color:#666;font-size:0.9em}\
.swatch{display:inline-block;width:0.9em;height:0.9em;margin:0 0.3em 0 0.8em;vertical-align:middle}\
figure{margin:0.5em 0}code{background:#f4f4f4;padding:0 3px}dt{font-weight:bold;margin-top:0.4em}\
dd{margin-left:1.5em}.guide{font-size:0.9em}tr.own td{background:#f6fbf6}";

/// What the page holds, in words.
fn what(page: &Page) -> String {
    let n = page.profiles.len();
    let scen = if n == 1 {
        "1 scenario profile".into()
    } else {
        format!("{n} scenario profiles")
    };
    match &page.merge {
        Some(_) if n == 0 => "a merged profile".into(),
        Some(_) => format!("{scen} and their merge"),
        None => scen,
    }
}

/// The page.
pub fn html(page: &Page) -> Result<String, TimelineError> {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{t}</title><style>{STYLE}</style></head><body>\n<h1>{t}</h1>\n\
         <p class=\"note\">phasebox {} · {}</p>\n",
        env!("CARGO_PKG_VERSION"),
        what(page),
        t = esc(&page.title)
    );
    nav(&mut h, page);
    guide(&mut h);
    for (i, (label, p)) in page.profiles.iter().enumerate() {
        phases::profile_section(&mut h, i, label, p)?;
    }
    if let Some(m) = &page.merge {
        phases::merge_section(&mut h, m);
    }
    if let Some(cov) = &page.coverage {
        coverage::section(&mut h, cov);
    }
    if let Some(c) = &page.comparison {
        comparison::section(&mut h, c, &against(page));
    }
    if !page.reviews.is_empty() {
        review::section(&mut h, &page.reviews);
    }
    h.push_str("</body></html>\n");
    Ok(h)
}

/// What the comparison is made against, in words.
fn against(page: &Page) -> String {
    match (&page.merge, page.profiles.first()) {
        (Some(m), _) if m.scenarios > 0 => format!(
            "the <a href=\"#merge\">merge</a> of the {} scenario profiles (what the program did \
             in any of them)",
            m.scenarios
        ),
        (Some(_), _) => "the <a href=\"#merge\">merged profile</a>".into(),
        (None, Some((label, _))) => format!("the profile {}", esc(label)),
        (None, None) => "nothing".into(),
    }
}

fn nav(h: &mut String, page: &Page) {
    h.push_str("<nav><ul><li><a href=\"#guide\">Reading this page</a></li>");
    for (i, (label, _)) in page.profiles.iter().enumerate() {
        let _ = write!(h, "<li><a href=\"#p{i}\">{}</a></li>", esc(label));
    }
    let links = [
        (page.merge.is_some(), "merge", "The merge"),
        (page.coverage.is_some(), "coverage", "Scenario coverage"),
        (
            page.comparison.is_some(),
            "comparison",
            "Comparison with policies",
        ),
        (
            !page.reviews.is_empty(),
            "review",
            "Review: reachable, never used",
        ),
    ];
    for (_, id, text) in links.iter().filter(|l| l.0) {
        let _ = write!(h, "<li><a href=\"#{id}\">{text}</a></li>");
    }
    h.push_str("</ul></nav>\n");
}

/// How to read the profile sections: every number and the timeline's axis.
fn guide(h: &mut String) {
    h.push_str(
        "<section id=\"guide\" class=\"guide\"><h2>Reading this page</h2><dl>\
         <dt>Profiles</dt><dd>One per scenario: a run of the program in one setting, in the \
         order given. The merge is their union (calls summed per role and phase); the \
         comparison is made against it.</dd>\
         <dt>role (N process(es), N syscalls)</dt><dd>How many processes took the role, and how \
         many distinct syscalls they made over all its phases.</dd>\
         <dt>Timeline</dt><dd>A row per syscall, in the order of first use; a mark per recorded \
         call, at its entry (each syscall's calls in a phase beyond 128 are sampled evenly); \
         each phase shaded from its first to its last recorded call and named above.</dd>\
         <dt>Time axis</dt><dd>Time since the role's first process started. It is not at one \
         scale: ticks stand at 0, at each phase's first call and at the last call, labelled \
         with their real times, and each stretch between two ticks gets half of its width in \
         proportion to its duration and half in equal share with the others, so a phase of \
         50 µs stays visible beside one of 100 ms. A wide band is a long phase (its duration \
         is in the legend under the timeline) or one with few others beside it. A call's own \
         time (execve while the kernel loads the program, epoll_wait while nginx waits) and \
         time waiting for a CPU show as stretches without marks; the longest is named under \
         each timeline.</dd>\
         <dt>Phase table</dt><dd>order: the phase's place among its role's phases; from and to: \
         its first and last recorded call, in ms since the role's first process started; \
         syscalls: how many distinct syscalls the phase made; arguments: the argument values \
         learned for the calls phasebox records arguments of, which an export allows alone.</dd>\
         </dl></section>\n",
    );
}

#[cfg(test)]
mod tests;
