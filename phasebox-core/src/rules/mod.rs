//! Phase rule sets: data files (TOML) of ordered phases per role, each entered on a marker.
//! Two are built in (`generic`, `nginx`); any other is loaded by path. Format: docs/phases.md.
mod error;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use crate::input::TomlError;
use crate::sysnames;

pub use error::{RuleProblem, RulesError};

const GENERIC: &str = include_str!("../../rules/generic.toml");
const NGINX: &str = include_str!("../../rules/nginx.toml");

/// The built-in rule sets, by name.
pub const BUILTIN: &[(&str, &str)] = &[("generic", GENERIC), ("nginx", NGINX)];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default, rename = "role")]
    roles: Vec<RoleRule>,
    #[serde(rename = "phase")]
    phases: Vec<PhaseFile>,
    #[serde(default, rename = "operation")]
    operations: Vec<Operation>,
}

/// Something a deployment does to a running program (nginx: reload, reopen), recognized in a
/// profile by calls a role makes from its steady phase on.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Operation {
    pub name: String,
    pub description: String,
    /// Any one of these seen means the operation was.
    pub when: Vec<OperationSign>,
}

/// A call of `role` in its steady phase or later; with path patterns, one of the paths the
/// profile recorded for it must match.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OperationSign {
    pub role: String,
    pub syscalls: Vec<String>,
    #[serde(default)]
    pub path_suffix: Vec<String>,
}

/// How a process gets a role: every given condition must hold; the first role that fits wins.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RoleRule {
    pub name: String,
    /// The process phasebox launched or attached to.
    #[serde(default)]
    pub root: Option<bool>,
    /// The role of its parent.
    #[serde(default)]
    pub parent: Option<String>,
    /// Whether it executed a program of its own (else it is a fork of its parent).
    #[serde(default)]
    pub exec: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PhaseFile {
    #[serde(default)]
    role: Option<String>,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    enter: Vec<MarkerFile>,
    #[serde(default)]
    steady: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MarkerFile {
    #[serde(default)]
    syscalls: Vec<String>,
    #[serde(default)]
    path_prefix: Vec<String>,
    #[serde(default)]
    path_suffix: Vec<String>,
    #[serde(default)]
    path_contains: Vec<String>,
    #[serde(default)]
    occurrence: Option<u32>,
    #[serde(default)]
    exec: bool,
    #[serde(default)]
    fork: bool,
}

/// What a marker looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Obs<'a> {
    /// A syscall with its path argument when it has one; `seen` counts this syscall's calls
    /// in the process so far, this one included.
    Syscall {
        nr: u32,
        path: Option<&'a str>,
        seen: u32,
    },
    Exec,
    Fork,
}

/// An event that starts a phase.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Marker {
    pub syscalls: HashSet<u32>,
    pub path_prefix: Vec<String>,
    pub path_suffix: Vec<String>,
    pub path_contains: Vec<String>,
    pub occurrence: Option<u32>,
    pub exec: bool,
    pub fork: bool,
}

impl Marker {
    pub fn matches(&self, obs: &Obs) -> bool {
        match *obs {
            Obs::Exec => self.exec,
            Obs::Fork => self.fork,
            Obs::Syscall { nr, path, seen } => {
                if !self.syscalls.contains(&nr) {
                    return false;
                }
                if self.occurrence.is_some_and(|n| n != seen) {
                    return false;
                }
                let wants_path = !(self.path_prefix.is_empty()
                    && self.path_suffix.is_empty()
                    && self.path_contains.is_empty());
                if !wants_path {
                    return true;
                }
                let Some(p) = path else { return false };
                self.path_prefix.iter().any(|x| p.starts_with(x.as_str()))
                    || self.path_suffix.iter().any(|x| p.ends_with(x.as_str()))
                    || self.path_contains.iter().any(|x| p.contains(x.as_str()))
            }
        }
    }
}

/// One phase of a role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phase {
    pub name: String,
    pub description: String,
    pub enter: Vec<Marker>,
    /// Where a process that was already running when phasebox attached is put.
    pub steady: bool,
}

/// A checked rule set.
#[derive(Clone, Debug)]
pub struct Rules {
    pub name: String,
    pub description: String,
    pub roles: Vec<RoleRule>,
    /// Phases of roles that have their own list.
    by_role: HashMap<String, Vec<Phase>>,
    /// Phases of every other role.
    default: Vec<Phase>,
    /// What a deployment does to the running program, as the profile can show it.
    pub operations: Vec<Operation>,
}

impl Rules {
    /// The phases of `role`.
    pub fn phases(&self, role: &str) -> &[Phase] {
        self.by_role.get(role).map_or(&self.default, Vec::as_slice)
    }

    /// Index of the phase a process attached late starts in.
    pub fn steady_phase(&self, role: &str) -> usize {
        self.steady_index(role).unwrap_or(0)
    }

    /// Index of `role`'s steady (serving) phase, if it has one.
    pub fn steady_index(&self, role: &str) -> Option<usize> {
        self.phases(role).iter().position(|p| p.steady)
    }

    /// Every phase of every role.
    pub fn all_phases(&self) -> impl Iterator<Item = &Phase> {
        self.by_role
            .values()
            .chain(std::iter::once(&self.default))
            .flatten()
    }

    /// Parses and checks a rule set; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Rules, RulesError> {
        let file: RuleFile = toml::from_str(text).map_err(|e| TomlError::new(text, origin, &e))?;
        let bad = |problem| RulesError::Invalid {
            origin: origin.to_string(),
            problem,
        };
        check_roles(&file.roles).map_err(bad)?;
        let (by_role, default) = phases_by_role(file.phases, &file.roles).map_err(bad)?;
        check_operations(&file.operations).map_err(bad)?;
        Ok(Rules {
            name: file.name,
            description: file.description,
            roles: file.roles,
            by_role,
            default,
            operations: file.operations,
        })
    }

    /// A built-in rule set by name, or a rule file by path.
    pub fn load(spec: &str) -> Result<Rules, RulesError> {
        if let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == spec) {
            return Rules::parse(text, &format!("built-in rule set {spec}"));
        }
        let path = Path::new(spec);
        if !path.exists() {
            let spec = spec.to_string();
            return Err(RulesError::Unknown { spec });
        }
        let text = crate::input::read_text(path, crate::input::TEXT)?;
        Rules::parse(&text, &crate::input::origin(path))
    }
}

/// The phase lists of roles that have their own.
type PhasesByRole = HashMap<String, Vec<Phase>>;

/// Phase names already in a role's list, to find a name listed twice without a scan.
type Listed = HashSet<(Option<String>, String)>;

/// The phases, each checked, in the lists of the roles they name and in the list of every
/// other role.
fn phases_by_role(
    phases: Vec<PhaseFile>,
    roles: &[RoleRule],
) -> Result<(PhasesByRole, Vec<Phase>), RuleProblem> {
    let role_names: HashSet<&str> = roles.iter().map(|r| r.name.as_str()).collect();
    let mut by_role = PhasesByRole::new();
    let mut default = Vec::new();
    let mut listed = Listed::new();
    for p in phases {
        let (role, phase) = phase(p)?;
        let first = listed.insert((role.clone(), phase.name.clone()));
        let list = match role {
            Some(role) => {
                if !role_names.contains(role.as_str()) {
                    let phase = phase.name;
                    return Err(RuleProblem::UnknownRole { phase, role });
                }
                by_role.entry(role).or_default()
            }
            None => &mut default,
        };
        if !first {
            return Err(RuleProblem::PhaseTwice(phase.name));
        }
        push_phase(list, phase)?;
    }
    if default.is_empty() && by_role.is_empty() {
        return Err(RuleProblem::NoPhases);
    }
    Ok((by_role, default))
}

/// A phase of the file with its markers checked, and the role it names, if any.
fn phase(p: PhaseFile) -> Result<(Option<String>, Phase), RuleProblem> {
    let enter = p
        .enter
        .into_iter()
        .map(|m| marker(&p.name, m))
        .collect::<Result<Vec<_>, _>>()?;
    let phase = Phase {
        name: p.name,
        description: p.description,
        enter,
        steady: p.steady,
    };
    Ok((p.role, phase))
}

/// A marker of phase `phase`, checked: its syscalls known, and something to match.
fn marker(phase: &str, m: MarkerFile) -> Result<Marker, RuleProblem> {
    let mut syscalls = HashSet::new();
    for name in &m.syscalls {
        // Names this architecture lacks (open on aarch64) are skipped.
        if let Some(nr) = sysnames::number(name) {
            syscalls.insert(nr);
        } else if !sysnames::is_known_anywhere(name) {
            let (phase, name) = (phase.to_string(), name.clone());
            return Err(RuleProblem::UnknownSyscall { phase, name });
        }
    }
    if syscalls.is_empty() && !m.exec && !m.fork {
        return Err(RuleProblem::MatchesNothing(phase.to_string()));
    }
    if m.occurrence == Some(0) {
        return Err(RuleProblem::ZeroOccurrence(phase.to_string()));
    }
    Ok(Marker {
        syscalls,
        path_prefix: m.path_prefix,
        path_suffix: m.path_suffix,
        path_contains: m.path_contains,
        occurrence: m.occurrence,
        exec: m.exec,
        fork: m.fork,
    })
}

/// Adds `phase` to one role's list (its name is new there): one phase at most is steady.
fn push_phase(list: &mut Vec<Phase>, phase: Phase) -> Result<(), RuleProblem> {
    if let Some(other) = list.iter().find(|q| q.steady && phase.steady) {
        return Err(RuleProblem::TwoSteady(other.name.clone(), phase.name));
    }
    list.push(phase);
    Ok(())
}

/// Every syscall an operation names is a syscall of some architecture.
fn check_operations(operations: &[Operation]) -> Result<(), RuleProblem> {
    for op in operations {
        for s in op.when.iter().flat_map(|w| &w.syscalls) {
            if !sysnames::is_known_anywhere(s) {
                return Err(RuleProblem::OperationSyscall {
                    operation: op.name.clone(),
                    name: s.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Role names are unique, and every parent is a role whose own ancestors never lead back.
/// Linear in the roles: each role's chain is walked once, up to a role already checked.
fn check_roles(roles: &[RoleRule]) -> Result<(), RuleProblem> {
    let mut parent_of = HashMap::new();
    for r in roles {
        if parent_of
            .insert(r.name.as_str(), r.parent.as_deref())
            .is_some()
        {
            return Err(RuleProblem::RoleTwice(r.name.clone()));
        }
    }
    // Roles whose chain of parents is known to end well.
    let mut good: HashSet<&str> = HashSet::new();
    for r in roles {
        let mut path = vec![r.name.as_str()];
        let mut on_path: HashSet<&str> = path.iter().copied().collect();
        let mut at = r.parent.as_deref();
        while let Some(p) = at.filter(|p| !good.contains(p)) {
            let Some(&up) = parent_of.get(p) else {
                return Err(RuleProblem::UnknownParent {
                    role: path[path.len() - 1].to_string(),
                    parent: p.to_string(),
                });
            };
            path.push(p);
            if !on_path.insert(p) {
                let chain = path.iter().map(|r| r.to_string()).collect();
                return Err(RuleProblem::OwnAncestor { chain });
            }
            at = up;
        }
        good.extend(path);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sentence;

    fn nr(name: &str) -> u32 {
        sysnames::number(name).unwrap()
    }

    #[test]
    fn builtins_parse() {
        let g = Rules::load("generic").unwrap();
        assert_eq!(g.phases("main").len(), 5);
        assert_eq!(g.steady_phase("main"), 3);
        let n = Rules::load("nginx").unwrap();
        assert_eq!(n.phases("master").len() + n.phases("worker").len(), 11);
        assert_eq!(n.phases("worker")[2].name, "accepting-and-serving-requests");
    }

    #[test]
    fn markers_match_paths_and_occurrences() {
        let g = Rules::load("generic").unwrap();
        let loading = &g.phases("main")[1].enter;
        let hit = |o: Obs| loading.iter().any(|m| m.matches(&o));
        let openat = nr("openat");
        assert!(hit(Obs::Syscall {
            nr: openat,
            path: Some("/etc/ld.so.cache"),
            seen: 1
        }));
        assert!(hit(Obs::Syscall {
            nr: openat,
            path: Some("/lib/libc.so.6"),
            seen: 2
        }));
        assert!(!hit(Obs::Syscall {
            nr: openat,
            path: Some("/etc/passwd"),
            seen: 3
        }));
        assert!(!hit(Obs::Syscall {
            nr: openat,
            path: None,
            seen: 3
        }));
        let n = Rules::load("nginx").unwrap();
        let serving = &n.phases("worker")[2].enter;
        let ew = nr("epoll_wait");
        assert!(!serving.iter().any(|m| m.matches(&Obs::Syscall {
            nr: ew,
            path: None,
            seen: 1
        })));
        assert!(serving.iter().any(|m| m.matches(&Obs::Syscall {
            nr: ew,
            path: None,
            seen: 2
        })));
    }

    #[test]
    fn bad_rule_files_are_explained() {
        let err = |t: &str| Rules::parse(t, "x.toml").unwrap_err().sentence();
        assert!(err("name = 1").starts_with("x.toml:1:8: invalid type: integer `1`"));
        let e = err("name='a'\n[[phase]]\nname='p'\nenter=[{syscalls=['no_such']}]");
        assert!(e.contains("unknown syscall no_such"), "{e}");
        let e = err("name='a'\n[[phase]]\nrole='r'\nname='p'");
        assert!(e.contains("unknown role r"), "{e}");
        let e = err("name='a'\n[[phase]]\nname='p'\nbogus=1");
        assert!(e.contains("bogus"), "{e}");
        let e = Rules::load("/no/such/rules.toml").unwrap_err().sentence();
        assert!(e.contains("not a built-in"), "{e}");
    }

    #[test]
    fn parent_cycles_zero_occurrences_and_two_steady_phases_are_refused() {
        let err = |t: &str| Rules::parse(t, "x.toml").unwrap_err().sentence();
        let phase = "[[phase]]\nname='p'\nenter=[{exec=true}]\n";
        let e = err(&format!(
            "name='a'\nrole=[{{name='r', parent='r'}}]\n{phase}"
        ));
        assert!(
            e.contains("role r is its own ancestor (r -> parent r)"),
            "{e}"
        );
        let e = err(&format!(
            "name='a'\nrole=[{{name='a', parent='b'}}, {{name='b', parent='c'}}, {{name='c', parent='a'}}]\n{phase}"
        ));
        assert!(
            e.contains("role a is its own ancestor (a -> parent b -> parent c -> parent a)"),
            "{e}"
        );
        let e = err(&format!(
            "name='a'\nrole=[{{name='r'}}, {{name='r'}}]\n{phase}"
        ));
        assert!(e.contains("role r is defined twice"), "{e}");
        let e = err(&format!(
            "name='a'\nrole=[{{name='r', parent='q'}}]\n{phase}"
        ));
        assert!(e.contains("unknown parent role q"), "{e}");
        // A chain without a cycle is fine.
        Rules::parse(
            &format!("name='a'\nrole=[{{name='a'}}, {{name='b', parent='a'}}, {{name='c', parent='b'}}]\n{phase}"),
            "ok.toml",
        )
        .unwrap();
        let e = err("name='a'\n[[phase]]\nname='p'\nenter=[{syscalls=['read'], occurrence=0}]");
        assert!(e.contains("occurrence 0"), "{e}");
        let e = err(
            "name='a'\n[[phase]]\nname='p'\nsteady=true\nenter=[{exec=true}]\n[[phase]]\nname='q'\nsteady=true\nenter=[{fork=true}]",
        );
        assert!(e.contains("phases p and q are both steady"), "{e}");
    }

    #[test]
    fn thousands_of_chained_roles_and_phases_load() {
        // 3,000 roles, each the parent of the next, and a phase for each: every check is
        // linear, so this loads at once (it took seconds when each role walked its chain).
        let mut t = String::from("name='chain'\n");
        for i in 0..3000 {
            if i == 0 {
                t.push_str("[[role]]\nname='r0'\nroot=true\n");
            } else {
                t.push_str(&format!("[[role]]\nname='r{i}'\nparent='r{}'\n", i - 1));
            }
        }
        for i in 0..3000 {
            t.push_str(&format!(
                "[[phase]]\nrole='r{i}'\nname='p{i}'\nenter=[{{exec=true}}]\n"
            ));
        }
        let r = Rules::parse(&t, "chain.toml").unwrap();
        assert_eq!(r.roles.len(), 3000);
        assert_eq!(r.phases("r2999")[0].name, "p2999");
        // A cycle at the end of a long chain is still found and named from its start.
        let looped = t.replace("name='r0'\nroot=true", "name='r0'\nparent='r2999'");
        let e = Rules::parse(&looped, "loop.toml").unwrap_err().sentence();
        assert!(
            e.contains("role r0 is its own ancestor (r0 -> parent r2999"),
            "{e}"
        );
    }

    #[test]
    fn toml_errors_take_one_line_with_file_line_and_column() {
        let e = Rules::parse(
            "name = 'a'\n\n[[phase]]\nname = 'p'\n  bogus = 1\n",
            "x.toml",
        )
        .unwrap_err()
        .sentence();
        assert!(e.starts_with("x.toml:5:3: unknown field `bogus`"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        let e = Rules::parse("name = \n", "y.toml").unwrap_err().sentence();
        assert!(e.starts_with("y.toml:1:"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}
