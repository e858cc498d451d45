//! The review section: calls static analysis finds reachable that no traced run used.
use std::fmt::Write as _;

use super::esc;
use crate::profile::review::Review;

/// The reviews of the hybrid profiles given.
pub fn section(h: &mut String, reviews: &[(String, Review)]) {
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
