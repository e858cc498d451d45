//! How commands report the calls a seccomp filter denied.
use std::collections::BTreeMap;

use crate::enforce::notify::Denial;

/// The denials by name, `name×count`, most frequent first.
pub fn by_name(denials: &[Denial]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for d in denials {
        *counts.entry(d.name.as_str()).or_default() += 1;
    }
    let mut v: Vec<(&str, usize)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let all: Vec<String> = v.iter().map(|(n, c)| format!("{n}×{c}")).collect();
    all.join(" ")
}

/// What phase-aware enforcement denied.
pub fn report_phase_aware(denials: &[Denial]) {
    let Some(first) = denials.first() else {
        crate::say!("phasebox: phase-aware seccomp denied no call");
        return;
    };
    crate::say!(
        "phasebox: phase-aware seccomp denied {} calls made after serving began: {} (first: {} by pid {})",
        denials.len(),
        by_name(denials),
        first.name,
        first.pid
    );
}
