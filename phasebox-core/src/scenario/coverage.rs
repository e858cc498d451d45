//! Scenario coverage: what each scenario's profile adds to the ones before it, per role and
//! phase. A call is a (role, phase, syscall) triple; "new" means no earlier scenario had it,
//! "confirmed" that one did, "unique" that no other scenario (earlier or later) has it.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::{display, profile::Profile};

/// One role's phase in one scenario.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PhaseCoverage {
    pub role: String,
    pub phase: String,
    pub calls: usize,
    pub new: Vec<String>,
    pub confirmed: usize,
    pub unique: Vec<String>,
}

/// One scenario.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScenarioCoverage {
    pub scenario: String,
    /// Distinct (role, phase, syscall) triples.
    pub calls: usize,
    pub new: usize,
    pub confirmed: usize,
    pub unique: usize,
    /// Distinct syscall names no earlier scenario used in any role or phase.
    pub new_syscalls: Vec<String>,
    pub phases: Vec<PhaseCoverage>,
}

type Triple = (String, String, String);

fn triples(p: &Profile) -> BTreeSet<Triple> {
    let mut out = BTreeSet::new();
    for r in &p.roles {
        for ph in &r.phases {
            for name in ph.names() {
                out.insert((r.name.clone(), ph.name.clone(), name.to_string()));
            }
        }
    }
    out
}

/// Coverage of `runs` (scenario name, its profile) in the order given.
pub fn coverage(runs: &[(String, &Profile)]) -> Vec<ScenarioCoverage> {
    let sets: Vec<BTreeSet<Triple>> = runs.iter().map(|(_, p)| triples(p)).collect();
    let mut count: BTreeMap<&Triple, usize> = BTreeMap::new();
    for t in sets.iter().flatten() {
        *count.entry(t).or_default() += 1;
    }
    let mut seen: BTreeSet<Triple> = BTreeSet::new();
    let mut seen_names: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    for ((name, profile), set) in runs.iter().zip(&sets) {
        let mut phases = Vec::new();
        for r in &profile.roles {
            for ph in &r.phases {
                let mut pc = PhaseCoverage {
                    role: r.name.clone(),
                    phase: ph.name.clone(),
                    calls: ph.syscalls.len(),
                    new: Vec::new(),
                    confirmed: 0,
                    unique: Vec::new(),
                };
                for sys in ph.names() {
                    let t = (r.name.clone(), ph.name.clone(), sys.to_string());
                    if seen.contains(&t) {
                        pc.confirmed += 1;
                    } else {
                        pc.new.push(sys.to_string());
                    }
                    if count.get(&t) == Some(&1) && runs.len() > 1 {
                        pc.unique.push(sys.to_string());
                    }
                }
                phases.push(pc);
            }
        }
        let names: BTreeSet<String> = set.iter().map(|t| t.2.clone()).collect();
        let new_syscalls = names.difference(&seen_names).cloned().collect();
        seen_names.extend(names);
        out.push(ScenarioCoverage {
            scenario: name.clone(),
            calls: set.len(),
            new: phases.iter().map(|p| p.new.len()).sum(),
            confirmed: phases.iter().map(|p| p.confirmed).sum(),
            unique: phases.iter().map(|p| p.unique.len()).sum(),
            new_syscalls,
            phases,
        });
        seen.extend(set.iter().cloned());
    }
    out
}

/// The coverage as text: a line per scenario, then what each added per role and phase.
pub fn render(cov: &[ScenarioCoverage]) -> String {
    let mut out = String::new();
    let names: Vec<_> = cov.iter().map(|c| display::text(&c.scenario)).collect();
    let w = display::column(names.iter().map(AsRef::as_ref), 8);
    let _ = writeln!(
        out,
        "{:<w$}  {:>5}  {:>4}  {:>9}  {:>6}  new syscalls",
        "scenario", "calls", "new", "confirmed", "unique"
    );
    for (c, name) in cov.iter().zip(&names) {
        let _ = writeln!(
            out,
            "{name:<w$}  {:>5}  {:>4}  {:>9}  {:>6}  {}",
            c.calls,
            c.new,
            c.confirmed,
            c.unique,
            if c.new_syscalls.is_empty() {
                "-".to_string()
            } else {
                display::join(&c.new_syscalls, " ")
            }
        );
    }
    let _ = writeln!(
        out,
        "\ncalls = distinct (role, phase, syscall); new = not in an earlier scenario; \
         unique = in no other scenario"
    );
    for (c, name) in cov.iter().zip(&names) {
        let added: Vec<&PhaseCoverage> = c.phases.iter().filter(|p| !p.new.is_empty()).collect();
        if added.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{name} added:");
        for p in added {
            let _ = writeln!(
                out,
                "  {}/{}: {}",
                display::text(&p.role),
                display::text(&p.phase),
                display::join(&p.new, " ")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Phase, Role};

    fn profile(phases: &[(&str, &[&str])]) -> Profile {
        Profile {
            roles: vec![Role {
                container: None,
                name: "main".into(),
                processes: 1,
                phases: phases
                    .iter()
                    .map(|(n, calls)| Phase {
                        name: n.to_string(),
                        syscalls: calls
                            .iter()
                            .map(|c| (c.to_string(), Default::default()))
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn new_confirmed_and_unique() {
        let a = profile(&[("init", &["brk", "mmap"]), ("exit", &["exit_group"])]);
        let b = profile(&[("init", &["brk", "getcwd"]), ("exit", &["exit_group"])]);
        let c = profile(&[("init", &["brk"]), ("exit", &["write"])]);
        let cov = coverage(&[("a".into(), &a), ("b".into(), &b), ("c".into(), &c)]);
        assert_eq!(
            (cov[0].calls, cov[0].new, cov[0].confirmed, cov[0].unique),
            (3, 3, 0, 1)
        );
        assert_eq!(cov[0].phases[0].unique, ["mmap"]);
        assert_eq!((cov[1].new, cov[1].confirmed, cov[1].unique), (1, 2, 1));
        assert_eq!(cov[1].new_syscalls, ["getcwd"]);
        // write is new both as a triple and as a name; brk only confirms
        assert_eq!((cov[2].new, cov[2].confirmed), (1, 1));
        assert_eq!(cov[2].new_syscalls, ["write"]);
        let text = render(&cov);
        assert!(text.contains("b added:\n  main/init: getcwd"), "{text}");
        assert!(text.lines().nth(2).unwrap().starts_with("b "), "{text}");
    }
}
