//! The comparison section: each policy given, and phasebox's own export, against the merge,
//! per role and phase. What belongs to a policy (what it allows, the share of the table it
//! removes, the critical calls it leaves open) is written once per policy; what belongs to
//! a phase (used, over-approximation, missing) once per row.
use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::{Compared, esc, own_policy};
use crate::policy::{
    critical::CRITICAL,
    report::{ALL_PHASES, Row},
};

/// The section; `against` says in HTML what the policies are compared with.
pub fn section(h: &mut String, c: &Compared, against: &str) {
    let (size, arch) = (c.given.table_size, esc(&c.given.arch));
    let _ = write!(
        h,
        "<section id=\"comparison\"><h2>Comparison with policies</h2>\n<p>Each policy against \
         {against}, per role and phase, and per role over all its phases. The {arch} syscall \
         table has {size} syscalls.</p>\n"
    );
    legend(h, size, &arch);
    let mut rows: Vec<(&Row, bool)> = c.given.rows.iter().map(|r| (r, false)).collect();
    if let Ok(own) = &c.own {
        rows.extend(own.iter().map(|r| (r, true)));
    }
    table(h, &rows, size);
    if let Err(why) = &c.own {
        let _ = writeln!(
            h,
            "<p class=\"note\">No row for phasebox's own export: {}</p>",
            esc(why)
        );
    }
    critical_list(h, &rows);
    not_syscalls(h, &rows, &arch);
    h.push_str("</section>\n");
}

fn legend(h: &mut String, size: usize, arch: &str) {
    let _ = writeln!(
        h,
        "<dl class=\"guide\">\
         <dt>allows</dt><dd>How many {arch} syscalls the policy allows, of the {size}.</dd>\
         <dt>surface removed</dt><dd>The share of the {size} syscalls the policy denies: \
         1 − allows / {size}. It belongs to the policy, not to a phase: a policy's rows share \
         it (one cell), unless the policy differs per phase.</dd>\
         <dt>critical allowed</dt><dd>The security-critical syscalls the policy allows, by \
         name (their reasons are listed under the table); none is best.</dd>\
         <dt>only with some arguments</dt><dd>Allowed calls the policy narrows by their \
         arguments.</dd>\
         <dt>used</dt><dd>How many distinct syscalls the role made in that phase (in all its \
         phases for <i>all phases</i>).</dd>\
         <dt>over-approximation</dt><dd>Allowed, never used there: how many (hover for the \
         names). The fewer, the less an attacker in that phase can reach.</dd>\
         <dt>missing</dt><dd>Used there, not allowed: the program would fail under the policy. \
         <i>none</i> when the policy allows every call used.</dd>\
         <dt>{union}</dt><dd>What <code>phasebox export</code> writes from the merge with its \
         defaults: every role, the union of its phases; compared with each phase like the \
         others.</dd>\
         <dt>{per_phase}</dt><dd>What <code>phasebox export --per-phase</code> writes for each \
         phase (its calls, and the calls that depend on what its role did before), compared with \
         that phase only: the policy a process gets while in that phase.</dd></dl>",
        union = own_policy::UNION,
        per_phase = own_policy::PER_PHASE,
    );
}

/// What the policy columns hold: rows sharing them are one policy's.
fn policy_key(r: &Row) -> (&str, usize, &[String], &[String]) {
    (
        &r.policy,
        r.allowed_count,
        &r.critical_allowed,
        &r.restricted,
    )
}

fn table(h: &mut String, rows: &[(&Row, bool)], size: usize) {
    h.push_str(
        "<table class=\"comparison\"><tr><th>policy</th><th>allows</th>\
         <th>surface removed</th><th>critical allowed</th><th>only with some arguments</th>\
         <th>role</th><th>phase</th><th>used</th><th>over-approximation</th><th>missing</th></tr>\n",
    );
    let mut i = 0;
    while i < rows.len() {
        let key = policy_key(rows[i].0);
        let n = rows[i..]
            .iter()
            .take_while(|r| policy_key(r.0) == key)
            .count();
        for (k, (r, own)) in rows[i..i + n].iter().enumerate() {
            let _ = write!(h, "<tr{}>", if *own { " class=\"own\"" } else { "" });
            if k == 0 {
                policy_cells(h, r, n, size);
            }
            phase_cells(h, r);
            h.push_str("</tr>\n");
        }
        i += n;
    }
    h.push_str("</table>\n");
}

/// The policy's own cells, spanning its `n` rows.
fn policy_cells(h: &mut String, r: &Row, n: usize, size: usize) {
    let critical: Vec<String> = r
        .critical_allowed
        .iter()
        .map(|c| {
            let why = CRITICAL.iter().find(|(n, _)| n == c).map_or("", |(_, w)| w);
            format!("<span title=\"{}\">{}</span>", esc(why), esc(c))
        })
        .collect();
    let _ = write!(
        h,
        "<td rowspan=\"{n}\">{} <span class=\"note\">({})</span></td>\
         <td rowspan=\"{n}\" class=\"n\">{} of {size}</td>\
         <td rowspan=\"{n}\" class=\"n\">{:.1}%</td>\
         <td rowspan=\"{n}\" class=\"calls\">{}{}</td><td rowspan=\"{n}\" class=\"calls\">{}</td>",
        esc(&r.policy),
        esc(&r.format),
        r.allowed_count,
        r.surface_removed * 100.0,
        critical.len(),
        if critical.is_empty() {
            " (none)".into()
        } else {
            format!(": {}", critical.join(" "))
        },
        names_or_none(&r.restricted),
    );
}

fn phase_cells(h: &mut String, r: &Row) {
    let phase = if r.phase == ALL_PHASES {
        "<i>all phases</i>".to_string()
    } else {
        esc(&r.phase)
    };
    let _ = write!(
        h,
        "<td>{}</td><td>{phase}</td><td class=\"n\">{}</td><td class=\"n\" title=\"{}\">{}</td>\
         <td class=\"calls missing\">{}</td>",
        esc(&r.role),
        r.used_count,
        esc(&r.over_approximation.join(" ")),
        r.over_approximation.len(),
        names_or_none(&r.missing),
    );
}

fn names_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "<i>none</i>".into()
    } else {
        esc(&v.join(" "))
    }
}

/// The reasons of the critical calls some policy allows.
fn critical_list(h: &mut String, rows: &[(&Row, bool)]) {
    let open: BTreeSet<&str> = rows
        .iter()
        .flat_map(|(r, _)| r.critical_allowed.iter().map(String::as_str))
        .collect();
    if open.is_empty() {
        return;
    }
    h.push_str(
        "<h3>Security-critical syscalls a policy above allows</h3>\n\
         <table class=\"critical\"><tr><th>syscall</th><th>why it matters</th></tr>\n",
    );
    for (name, why) in CRITICAL.iter().filter(|(n, _)| open.contains(n)) {
        let _ = writeln!(
            h,
            "<tr><td class=\"calls\">{}</td><td>{}</td></tr>",
            esc(name),
            esc(why)
        );
    }
    h.push_str("</table>\n");
}

/// Each policy once (its rows repeat it): the names it lists that are not syscalls here.
fn not_syscalls(h: &mut String, rows: &[(&Row, bool)], arch: &str) {
    let mut told = BTreeSet::new();
    for (r, _) in rows.iter().filter(|(r, _)| !r.not_syscalls.is_empty()) {
        if told.insert(&r.policy) {
            let _ = writeln!(
                h,
                "<p class=\"note\">{} lists {} names that are not {arch} syscalls, left out: {}</p>",
                esc(&r.policy),
                r.not_syscalls.len(),
                esc(&r.not_syscalls.join(" "))
            );
        }
    }
}
