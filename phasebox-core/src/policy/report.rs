//! A learned profile against policies: per policy and phase, what the policy allows that the
//! program never used (over-approximation), what the program used that the policy would deny
//! (it would break the program), and which security-critical syscalls stay allowed.
use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;

use super::{Policy, all_syscalls, critical::CRITICAL};
use crate::display;
use crate::profile::{NoSuchRole, Profile, Role};

/// One policy against one role's phase (or all its phases).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    pub policy: String,
    pub format: String,
    pub role: String,
    /// A phase name, or "(all phases)" for the role's union.
    pub phase: String,
    pub allowed_count: usize,
    pub used_count: usize,
    /// Allowed, never used.
    pub over_approximation: Vec<String>,
    /// Used, not allowed.
    pub missing: Vec<String>,
    /// Security-critical syscalls the policy allows.
    pub critical_allowed: Vec<String>,
    /// Allowed calls the policy narrows by their arguments (OCI `args` conditions, a
    /// phasebox profile's learned arguments).
    pub restricted: Vec<String>,
    /// Share of the architecture's syscall table the policy denies.
    pub surface_removed: f64,
    /// Names the policy allows that are not syscalls of this architecture (left out).
    pub not_syscalls: Vec<String>,
}

/// The whole comparison (`--json`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    pub arch: String,
    pub table_size: usize,
    pub critical: Vec<Critical>,
    pub rows: Vec<Row>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Critical {
    pub name: String,
    pub reason: String,
}

pub const ALL_PHASES: &str = "(all phases)";

/// Why a comparison cannot be made as asked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CompareError {
    #[error(transparent)]
    NoRole(#[from] NoSuchRole),
    #[error("no selected role of the profile has a phase {phase} (they have: {})", phases.join(", "))]
    NoPhase { phase: String, phases: Vec<String> },
}

/// Compares; `role`/`phase` narrow the rows.
pub fn compare(
    profile: &Profile,
    policies: &[Policy],
    role: Option<&str>,
    phase: Option<&str>,
) -> Result<Comparison, CompareError> {
    let roles = selected_roles(profile, role)?;
    let targets = targets(&roles, phase);
    if let (Some(p), true) = (phase, targets.is_empty()) {
        let mut phases: Vec<String> = Vec::new();
        for ph in roles.iter().flat_map(|r| &r.phases) {
            if !phases.contains(&ph.name) {
                phases.push(ph.name.clone());
            }
        }
        return Err(CompareError::NoPhase {
            phase: p.to_string(),
            phases,
        });
    }
    let table = all_syscalls();
    let rows = policies
        .iter()
        .flat_map(|pol| policy_rows(pol, &targets, &table))
        .collect();
    Ok(Comparison {
        arch: profile.arch.clone(),
        table_size: table.len(),
        critical: CRITICAL
            .iter()
            .map(|(n, r)| Critical {
                name: n.to_string(),
                reason: r.to_string(),
            })
            .collect(),
        rows,
    })
}

/// What a policy is compared against: one role's phase (or all its phases) and the calls
/// made there.
struct Target {
    role: String,
    phase: String,
    used: BTreeSet<String>,
}

/// The role named `role`, or every role.
fn selected_roles<'a>(
    profile: &'a Profile,
    role: Option<&str>,
) -> Result<Vec<&'a Role>, CompareError> {
    Ok(match role {
        Some(r) => vec![profile.role(r).ok_or_else(|| NoSuchRole::new(profile, r))?],
        None => profile.roles.iter().collect(),
    })
}

/// Per role, the phase named `phase` where it has one; or else each phase, then all of them.
fn targets(roles: &[&Role], phase: Option<&str>) -> Vec<Target> {
    let mut targets = Vec::new();
    for r in roles {
        match phase {
            Some(p) => {
                if let Some(ph) = r.phase(p) {
                    targets.push(Target {
                        role: r.name.clone(),
                        phase: p.to_string(),
                        used: ph.names().map(String::from).collect(),
                    });
                }
            }
            None => {
                for ph in &r.phases {
                    targets.push(Target {
                        role: r.name.clone(),
                        phase: ph.name.clone(),
                        used: ph.names().map(String::from).collect(),
                    });
                }
                targets.push(Target {
                    role: r.name.clone(),
                    phase: ALL_PHASES.into(),
                    used: r.union().into_iter().map(String::from).collect(),
                });
            }
        }
    }
    targets
}

/// One policy against each target; `table` is the architecture's syscall table.
fn policy_rows(pol: &Policy, targets: &[Target], table: &BTreeSet<String>) -> Vec<Row> {
    // Names of other architectures cannot be allowed here.
    let allowed: BTreeSet<&String> = pol.allowed.iter().filter(|n| table.contains(*n)).collect();
    let critical_allowed: Vec<String> = CRITICAL
        .iter()
        .filter(|(n, _)| pol.allowed.contains(*n))
        .map(|(n, _)| n.to_string())
        .collect();
    targets
        .iter()
        .map(|t| Row {
            policy: pol.name.clone(),
            format: pol.format.to_string(),
            role: t.role.clone(),
            phase: t.phase.clone(),
            allowed_count: allowed.len(),
            used_count: t.used.len(),
            over_approximation: allowed
                .iter()
                .filter(|n| !t.used.contains(**n))
                .map(|n| n.to_string())
                .collect(),
            missing: t
                .used
                .iter()
                .filter(|n| !pol.allowed.contains(*n))
                .cloned()
                .collect(),
            critical_allowed: critical_allowed.clone(),
            restricted: allowed
                .iter()
                .filter(|n| pol.conditional.contains(**n))
                .map(|n| n.to_string())
                .collect(),
            surface_removed: 1.0 - allowed.len() as f64 / table.len() as f64,
            not_syscalls: pol.not_syscalls.iter().cloned().collect(),
        })
        .collect()
}

/// The comparison as text: per policy, a line of totals and a row per role and phase.
pub fn render(c: &Comparison) -> String {
    let mut out = String::new();
    let mut last = None;
    for r in &c.rows {
        if last != Some(&r.policy) {
            let _ = writeln!(
                out,
                "\n{} ({}): allows {} of {} {} syscalls, removes {:.1}% of the table",
                display::text(&r.policy),
                display::text(&r.format),
                r.allowed_count,
                c.table_size,
                c.arch,
                100.0 * r.surface_removed
            );
            let _ = writeln!(
                out,
                "  critical syscalls still allowed: {}",
                list(&r.critical_allowed)
            );
            let _ = writeln!(
                out,
                "  allowed only with some arguments: {}",
                list(&r.restricted)
            );
            if !r.not_syscalls.is_empty() {
                // The names come from a file and could hold terminal controls.
                let _ = writeln!(
                    out,
                    "  left out, not {} syscalls ({}): {}",
                    c.arch,
                    r.not_syscalls.len(),
                    display::join(&r.not_syscalls, " ")
                );
            }
            let _ = writeln!(
                out,
                "  {:<48} {:>5} {:>11} {:>8}  used but denied",
                "role / phase", "used", "over-approx", "missing"
            );
            last = Some(&r.policy);
        }
        let _ = writeln!(
            out,
            "  {:<48} {:>5} {:>11} {:>8}  {}",
            format!("{} / {}", display::text(&r.role), display::text(&r.phase)),
            r.used_count,
            r.over_approximation.len(),
            r.missing.len(),
            list(&r.missing)
        );
    }
    out
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        display::join(v, " ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::tests::sample;

    fn policy(names: &[&str]) -> Policy {
        Policy {
            name: "p".into(),
            format: "name list",
            allowed: names.iter().map(|s| s.to_string()).collect(),
            conditional: BTreeSet::new(),
            not_syscalls: BTreeSet::new(),
        }
    }

    #[test]
    fn over_approximation_missing_and_critical() {
        let prof = sample(&[(
            "worker",
            &[
                ("init", &["setuid", "read"]),
                ("serving", &["accept4", "read"]),
            ],
        )]);
        let pol = policy(&["read", "accept4", "execve", "ptrace", "no_such_call"]);
        let c = compare(&prof, &[pol], Some("worker"), Some("serving")).unwrap();
        assert_eq!(c.rows.len(), 1);
        let r = &c.rows[0];
        assert_eq!((r.used_count, r.allowed_count), (2, 4));
        assert_eq!(r.over_approximation, ["execve", "ptrace"]);
        assert!(r.missing.is_empty());
        assert_eq!(r.critical_allowed, ["execve", "ptrace"]);
        assert!((r.surface_removed - (1.0 - 4.0 / c.table_size as f64)).abs() < 1e-9);

        let all = compare(&prof, &[policy(&["read"])], None, None).unwrap();
        let phases: Vec<&str> = all.rows.iter().map(|r| r.phase.as_str()).collect();
        assert_eq!(phases, ["init", "serving", ALL_PHASES]);
        assert_eq!(all.rows[2].missing, ["accept4", "setuid"]);
        let text = render(&all);
        assert!(text.contains("worker / (all phases)"), "{text}");
        let header = text.lines().find(|l| l.contains("role / phase")).unwrap();
        assert_eq!(header.matches("missing").count(), 1, "{header}");
        assert!(header.ends_with("used but denied"), "{header}");
        assert!(!text.contains("left out"), "{text}");

        // Names that are not syscalls here are reported, never silently dropped.
        let mut odd = policy(&["read"]);
        odd.not_syscalls = ["<script>".to_string(), "_llseek".into()].into();
        let c = compare(&prof, &[odd], Some("worker"), Some("serving")).unwrap();
        assert_eq!(c.rows[0].not_syscalls, ["<script>", "_llseek"]);
        let text = render(&c);
        assert!(
            text.contains(&format!(
                "left out, not {} syscalls (2): <script> _llseek",
                c.arch
            )),
            "{text}"
        );

        let e = compare(&prof, &[], Some("master"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no role master (it has: worker)"), "{e}");
        let e = compare(&prof, &[], None, Some("nope"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no selected role of the profile has a phase nope"),
            "{e}"
        );
    }

    #[test]
    fn calls_allowed_only_with_some_arguments_are_named() {
        let prof = sample(&[("worker", &[("serving", &["socket", "read"])])]);
        let mut pol = policy(&["socket", "read", "ptrace"]);
        pol.conditional = ["socket".to_string(), "ptrace".into(), "no_such_call".into()].into();
        let c = compare(&prof, &[pol], Some("worker"), Some("serving")).unwrap();
        assert_eq!(c.rows[0].restricted, ["ptrace", "socket"]);
        let text = render(&c);
        assert!(
            text.contains("allowed only with some arguments: ptrace socket"),
            "{text}"
        );
        let none = compare(&prof, &[policy(&["read"])], None, None).unwrap();
        assert!(render(&none).contains("allowed only with some arguments: -"));
    }
}
