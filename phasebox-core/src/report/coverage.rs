//! The scenario coverage section: which (role, phase, syscall) each scenario added.
use std::fmt::Write as _;

use super::esc;
use crate::scenario::coverage::ScenarioCoverage;

/// The coverage of the scenarios, in the order given.
pub fn section(h: &mut String, cov: &[ScenarioCoverage]) {
    h.push_str(
        "<section id=\"coverage\"><h2>Scenario coverage</h2>\n<p class=\"note\">A call is a \
         (role, phase, syscall). Calls: the distinct calls the scenario made, new plus \
         confirmed. New: no earlier scenario (in the order given) had it; confirmed: one did; \
         unique: no other scenario has it. Syscalls new to the set: names no earlier scenario \
         used in any role or phase.</p>\n\
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
