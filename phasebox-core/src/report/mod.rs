//! The HTML report: one self-contained page (inline CSS and SVG, no script, nothing fetched)
//! with, per profile and role, the timeline and the poster-style phase table; the scenario
//! coverage when several profiles are given; the comparison with policies when asked.
mod assemble;
pub mod timeline;

pub use assemble::{ReportError, page};
pub use timeline::TimelineError;

use std::fmt::Write as _;

use crate::{
    policy::report::{ALL_PHASES, Comparison},
    profile::{Profile, Role, review::Review},
    scenario::coverage::ScenarioCoverage,
};

/// What goes on the page.
#[derive(Clone)]
pub struct Page<'a> {
    pub title: String,
    /// (label, profile), in the order given.
    pub profiles: Vec<(String, &'a Profile)>,
    /// Present when two or more profiles were given.
    pub coverage: Option<Vec<ScenarioCoverage>>,
    /// Against the merged profile, when policies were given.
    pub comparison: Option<Comparison>,
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

fn ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222;max-width:1200px}\
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;margin-top:2em}\
table{border-collapse:collapse;margin:0.6em 0 1.4em}th,td{border:1px solid #ccc;padding:3px 7px;\
text-align:left;vertical-align:top;font-size:0.9em}th{background:#f2f2f2}td.n{text-align:right}\
.calls{font-family:monospace;font-size:0.85em}.note{color:#666;font-size:0.9em}\
.swatch{display:inline-block;width:0.9em;height:0.9em;margin:0 0.3em 0 0.8em;vertical-align:middle}\
figure{margin:0.5em 0}code{background:#f4f4f4;padding:0 3px}";

/// The page.
pub fn html(page: &Page) -> Result<String, TimelineError> {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{t}</title><style>{STYLE}</style></head><body>\n<h1>{t}</h1>\n\
         <p class=\"note\">phasebox {} · {} profile(s)</p>\n",
        env!("CARGO_PKG_VERSION"),
        page.profiles.len(),
        t = esc(&page.title)
    );
    h.push_str("<nav><ul>");
    for (i, (label, _)) in page.profiles.iter().enumerate() {
        let _ = write!(h, "<li><a href=\"#p{i}\">{}</a></li>", esc(label));
    }
    if page.coverage.is_some() {
        h.push_str("<li><a href=\"#coverage\">Scenario coverage</a></li>");
    }
    if page.comparison.is_some() {
        h.push_str("<li><a href=\"#comparison\">Comparison with policies</a></li>");
    }
    if !page.reviews.is_empty() {
        h.push_str("<li><a href=\"#review\">Review: reachable, never used</a></li>");
    }
    h.push_str("</ul></nav>\n");
    for (i, (label, p)) in page.profiles.iter().enumerate() {
        profile_section(&mut h, i, label, p)?;
    }
    if let Some(cov) = &page.coverage {
        coverage_section(&mut h, cov);
    }
    if let Some(c) = &page.comparison {
        comparison_section(&mut h, c);
    }
    if !page.reviews.is_empty() {
        review_section(&mut h, &page.reviews);
    }
    h.push_str("</body></html>\n");
    Ok(h)
}

fn profile_section(
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
    for role in &p.roles {
        role_section(h, role)?;
    }
    h.push_str("</section>\n");
    Ok(())
}

fn role_section(h: &mut String, role: &Role) -> Result<(), TimelineError> {
    let _ = writeln!(
        h,
        "<h3>role {} <span class=\"note\">({} process(es), {} syscalls)</span></h3>",
        esc(&role.name),
        role.processes,
        role.union().len()
    );
    match timeline::svg(role, 1100)? {
        Some(svg) => {
            let _ = write!(
                h,
                "<figure class=\"timeline\">{svg}<figcaption class=\"note\">"
            );
            for (pi, ph) in role.phases.iter().enumerate() {
                let (r, g, b) = timeline::COLORS[pi % timeline::COLORS.len()];
                let _ = write!(
                    h,
                    "<span class=\"swatch\" style=\"background:rgb({r},{g},{b})\"></span>{}",
                    esc(&ph.name)
                );
            }
            h.push_str(
                "<br>A mark per recorded call (each syscall's calls in a phase beyond 128 are \
                 sampled evenly); bands span each phase's first to last call.</figcaption></figure>\n",
            );
        }
        None => h.push_str(
            "<p class=\"note\">No timeline: this profile keeps no call times (merged profiles \
             do not: their runs have no common clock).</p>\n",
        ),
    }
    h.push_str(
        "<table class=\"phase-table\"><tr><th>order</th><th>phase</th><th>from (ms)</th>\
         <th>to (ms)</th><th>syscalls</th><th>system calls</th><th>arguments</th></tr>\n",
    );
    for (k, ph) in role.phases.iter().enumerate() {
        let names: Vec<String> = ph.names().map(esc).collect();
        let _ = writeln!(
            h,
            "<tr><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"calls\">{}</td><td class=\"calls\">{}</td></tr>",
            k + 1,
            esc(&ph.name),
            ms(ph.start_ns),
            ms(ph.end_ns),
            names.len(),
            names.join(", "),
            esc(&ph.argument_restrictions().join("; "))
        );
    }
    h.push_str("</table>\n");
    Ok(())
}

fn coverage_section(h: &mut String, cov: &[ScenarioCoverage]) {
    h.push_str(
        "<section id=\"coverage\"><h2>Scenario coverage</h2>\n<p class=\"note\">A call is a \
         (role, phase, syscall). New: no earlier scenario (in the order given) had it; \
         confirmed: one did; unique: no other scenario has it.</p>\n\
         <table class=\"coverage\"><tr><th>scenario</th><th>calls</th><th>new</th>\
         <th>confirmed</th><th>unique</th><th>syscalls new to the set</th><th>added per role/phase</th></tr>\n",
    );
    for c in cov {
        let added: Vec<String> = c
            .phases
            .iter()
            .filter(|p| !p.new.is_empty())
            .map(|p| {
                format!(
                    "<b>{}/{}</b>: {}",
                    esc(&p.role),
                    esc(&p.phase),
                    esc(&p.new.join(" "))
                )
            })
            .collect();
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"calls\">{}</td><td class=\"calls\">{}</td></tr>",
            esc(&c.scenario),
            c.calls,
            c.new,
            c.confirmed,
            c.unique,
            esc(&c.new_syscalls.join(" ")),
            added.join("<br>")
        );
    }
    h.push_str("</table></section>\n");
}

fn comparison_section(h: &mut String, c: &Comparison) {
    let _ = write!(
        h,
        "<section id=\"comparison\"><h2>Comparison with policies</h2>\n<p class=\"note\">Against \
         the merged profile; {} syscalls on {}. Over-approximation: allowed, never used. Missing: \
         used, not allowed (the program would break). Critical: security-critical syscalls the \
         policy allows.</p>\n<table class=\"comparison\"><tr><th>policy</th><th>role</th>\
         <th>phase</th><th>allowed</th><th>used</th><th>over-approximation</th><th>missing</th>\
         <th>critical allowed</th><th>allowed only with some arguments</th>\
         <th>surface removed</th></tr>\n",
        c.table_size,
        esc(&c.arch)
    );
    for r in &c.rows {
        let phase = if r.phase == ALL_PHASES {
            "<i>all phases</i>".to_string()
        } else {
            esc(&r.phase)
        };
        let _ = writeln!(
            h,
            "<tr><td>{} <span class=\"note\">({})</span></td><td>{}</td><td>{phase}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"calls\">{}</td><td class=\"calls\" title=\"{}\">{}</td>\
             <td class=\"calls\">{}</td><td class=\"n\">{:.1}%</td></tr>",
            esc(&r.policy),
            esc(&r.format),
            esc(&r.role),
            r.allowed_count,
            r.used_count,
            r.over_approximation.len(),
            esc(&r.missing.join(" ")),
            esc(&r.critical_allowed.join(" ")),
            r.critical_allowed.len(),
            esc(&r.restricted.join(" ")),
            r.surface_removed * 100.0
        );
    }
    h.push_str("</table>\n");
    // Each policy once (its rows repeat it): the names it lists that are not syscalls here.
    let mut told = std::collections::BTreeSet::new();
    for r in c.rows.iter().filter(|r| !r.not_syscalls.is_empty()) {
        if told.insert(&r.policy) {
            let _ = writeln!(
                h,
                "<p class=\"note\">{} lists {} names that are not {} syscalls, left out: {}</p>",
                esc(&r.policy),
                r.not_syscalls.len(),
                esc(&c.arch),
                esc(&r.not_syscalls.join(" "))
            );
        }
    }
    h.push_str("</section>\n");
}

fn review_section(h: &mut String, reviews: &[(String, Review)]) {
    h.push_str(
        "<section id=\"review\"><h2>Review: reachable, never used</h2>\n<p class=\"note\">Calls \
         static analysis (<code>phasebox static</code>) finds reachable from the program's entry \
         points that no traced run used: what the dynamic profile may be missing before \
         production. Allowed: added to every phase with <code>export --allow-reachable</code>.</p>\n",
    );
    for (label, r) in reviews {
        let _ = writeln!(
            h,
            "<h3>{} <span class=\"note\">({} calls, from {})</span></h3>\n<table class=\"review\">\
             <tr><th>syscall</th><th>reachable from</th><th>allowed</th></tr>",
            esc(label),
            r.calls.len(),
            esc(&r.static_profile)
        );
        for c in &r.calls {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"calls\" title=\"{}\">{}</td><td>{}</td></tr>",
                esc(&c.name),
                esc(&c.chain.join(" -> ")),
                esc(&c.reachable_from),
                if c.allowed { "yes" } else { "" }
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::review::ReviewCall;
    use crate::profile::{Phase, SyscallUse};

    #[test]
    fn page_has_its_sections_and_escapes() {
        let mut p = Profile {
            program: crate::profile::Program {
                path: "/bin/<pwd>".into(),
                comm: "pwd".into(),
            },
            complete: true,
            ..Default::default()
        };
        p.roles.push(Role {
            container: None,
            name: "main".into(),
            processes: 1,
            phases: vec![Phase {
                name: "exec".into(),
                start_ns: 0,
                end_ns: 1_500_000,
                syscalls: [(
                    "execve".to_string(),
                    SyscallUse {
                        calls: 1,
                        times_ns: vec![0],
                        ..Default::default()
                    },
                )]
                .into(),
                ..Default::default()
            }],
        });
        let page = Page {
            title: "pwd & co".into(),
            profiles: vec![("a".into(), &p)],
            coverage: None,
            comparison: None,
            reviews: Vec::new(),
        };
        let h = html(&page).unwrap();
        assert!(h.contains("<title>pwd &amp; co</title>"));
        assert!(h.contains("/bin/&lt;pwd&gt;"));
        assert!(h.contains("<figure class=\"timeline\"><svg"));
        assert!(
            h.contains("<td>exec</td><td class=\"n\">0.000</td><td class=\"n\">1.500</td>"),
            "{h}"
        );
        assert!(!h.contains("id=\"coverage\""));
        assert!(!h.contains("id=\"review\""));
        assert!(!h.contains("<script"));
        let review = Review {
            static_profile: "nginx.static.json".into(),
            calls: vec![ReviewCall {
                name: "chown".into(),
                reachable_from: "nginx:ngx_reopen_files -> libc:chown".into(),
                chain: vec![
                    "nginx:main".into(),
                    "nginx:ngx_reopen_files".into(),
                    "libc:chown".into(),
                ],
                how: "syscall instruction".into(),
                allowed: true,
            }],
        };
        let h = html(&Page {
            reviews: vec![("hybrid".into(), review)],
            ..page.clone()
        })
        .unwrap();
        assert!(h.contains("<a href=\"#review\">"), "{h}");
        assert!(
            h.contains("<td>chown</td><td class=\"calls\" title=\"nginx:main -&gt; nginx:ngx_reopen_files -&gt; libc:chown\">nginx:ngx_reopen_files -&gt; libc:chown</td><td>yes</td>"),
            "{h}"
        );

        // Names a policy lists that are not syscalls here are told, escaped, once per policy.
        let pol = crate::policy::Policy::parse(
            r#"{"syscalls": ["execve", "<script>", "nope"]}"#,
            "list.txt",
            "6.1",
        )
        .unwrap();
        let comparison = crate::policy::report::compare(&p, &[pol], None, None).unwrap();
        let page = Page {
            comparison: Some(comparison),
            ..page
        };
        let h = html(&page).unwrap();
        let told = "list.txt lists 2 names that are not";
        assert_eq!(h.matches(told).count(), 1, "{h}");
        assert!(h.contains("left out: &lt;script&gt; nope</p>"), "{h}");
        assert!(!h.contains("<script"));
    }

    #[test]
    fn argument_restrictions_show_in_the_phase_table_and_the_comparison() {
        let mut p = crate::profile::tests::sample(&[("worker", &[("serving", &["openat"])])]);
        p.roles[0].phases[0]
            .syscalls
            .get_mut("openat")
            .unwrap()
            .args = Some(vec![[0, 0, 0]]);
        let pol = crate::policy::Policy::parse(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
                {"names":["openat"],"action":"SCMP_ACT_ALLOW","args":[
                    {"index":2,"value":4194371,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]}]}"#,
            "args.json",
            "6.1",
        )
        .unwrap();
        let comparison = crate::policy::report::compare(&p, &[pol], None, None).unwrap();
        let page = Page {
            title: "t".into(),
            profiles: vec![("a".into(), &p)],
            coverage: None,
            comparison: Some(comparison),
            reviews: Vec::new(),
        };
        let h = html(&page).unwrap();
        assert!(
            h.contains(
                "<td class=\"calls\">openat</td><td class=\"calls\">openat(O_RDONLY)</td></tr>"
            ),
            "{h}"
        );
        assert!(
            h.contains("<th>allowed only with some arguments</th>"),
            "{h}"
        );
        assert!(
            h.contains("<td class=\"calls\">openat</td><td class=\"n\">"),
            "{h}"
        );
    }
}
