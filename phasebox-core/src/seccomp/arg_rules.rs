//! Argument conditions of exported policies: which argument combinations each allowed call
//! keeps (`call_args`), turned into seccomp rules (one rule per combination, each argument
//! compared under its mask) and read back from them.
use std::collections::{BTreeMap, BTreeSet};

use super::action::{Action, Operator};
use super::oci::{OciArg, OciProfile, OciRule};
use crate::call_args::{self, Values};
use crate::profile::Role;

/// Rules a call may take before it is allowed with any arguments instead: a policy stays
/// small enough to read and to compile.
pub const MAX_RULES: usize = 32;

/// Allowed calls whose arguments are restricted, with the combinations they may use.
pub type Restrictions = BTreeMap<String, Vec<Values>>;

/// What the selected phases of `roles` allow each call of `allow` that phasebox records
/// arguments of: the combinations the phases used, and the ones a call of its class may
/// always use (memory that is not executable, a descriptor's flags, the socket options a
/// server sets per connection). A call is left out (any arguments) when a
/// phase made it without recorded arguments (a profile of an older phasebox, or more
/// combinations than a profile keeps), when more than MAX_RULES combinations would be
/// needed, or when no selected phase made it and it has no class (it was added by name: a
/// runtime's or a basic call).
pub fn restrictions(roles: &[(&Role, Vec<usize>)], allow: &BTreeSet<String>) -> Restrictions {
    let mut out = Restrictions::new();
    for name in allow {
        let Some(c) = call_args::of(name) else {
            continue;
        };
        if let Some(set) = combinations(roles, name) {
            let set: BTreeSet<Values> = set.into_iter().chain(c.always.iter().copied()).collect();
            if !set.is_empty() && set.len() <= MAX_RULES {
                out.insert(name.clone(), set.into_iter().collect());
            }
        }
    }
    out
}

/// The combinations the selected phases used for `name`; None when one made it with any.
fn combinations(roles: &[(&Role, Vec<usize>)], name: &str) -> Option<BTreeSet<Values>> {
    let mut set = BTreeSet::new();
    for (r, at) in roles {
        for &i in at {
            if let Some(u) = r.phases[i].syscalls.get(name) {
                set.extend(u.args.as_ref()?.iter().copied());
            }
        }
    }
    Some(set)
}

/// The conditions of one combination: each recorded argument equal under its mask.
pub fn conditions(name: &str, v: &Values) -> Vec<OciArg> {
    let Some(c) = call_args::of(name) else {
        return Vec::new();
    };
    c.args
        .iter()
        .map(|a| OciArg {
            index: a.index as u32,
            value: a.mask,
            value_two: v[a.index],
            op: Operator::MaskedEqual,
        })
        .collect()
}

/// One allow rule per combination of each restricted call.
pub fn allow_rules(r: &Restrictions) -> Vec<OciRule> {
    let mut rules = Vec::new();
    for (name, sets) in r {
        for v in sets {
            let mut rule = OciRule::new(vec![name.clone()], Action::Allow);
            rule.args = conditions(name, v);
            rule.comment = Some(call_args::describe(name, v));
            rules.push(rule);
        }
    }
    rules
}

/// The combination an allow rule's conditions stand for, when they are phasebox's own (every
/// recorded argument of the call, under its mask); None for any other condition.
fn values_of(name: &str, args: &[OciArg]) -> Option<Values> {
    let c = call_args::of(name)?;
    if args.len() != c.args.len() {
        return None;
    }
    let mut v = Values::default();
    for a in c.args {
        let arg = args.iter().find(|x| x.index as usize == a.index)?;
        if arg.op != Operator::MaskedEqual || arg.value != a.mask || arg.value_two & !a.mask != 0 {
            return None;
        }
        v[a.index] = arg.value_two;
    }
    Some(v)
}

/// The names an OCI profile allows, with their restrictions: a name with an unconditional
/// allow rule, or a condition phasebox did not write, may have any arguments.
pub fn read_back(p: &OciProfile) -> (BTreeSet<String>, Restrictions) {
    let mut any = BTreeSet::new();
    let mut some: BTreeMap<String, BTreeSet<Values>> = BTreeMap::new();
    for rule in p.syscalls.iter().filter(|r| r.action == Action::Allow) {
        if rule.includes.is_some() || rule.excludes.is_some() {
            continue;
        }
        for name in rule.all_names() {
            match (rule.args.is_empty(), values_of(&name, &rule.args)) {
                (false, Some(v)) => {
                    some.entry(name).or_default().insert(v);
                }
                _ => {
                    any.insert(name);
                }
            }
        }
    }
    let names = any.iter().chain(some.keys()).cloned().collect();
    let restricted = some
        .into_iter()
        .filter(|(n, _)| !any.contains(n))
        .map(|(n, s)| (n, s.into_iter().collect()))
        .collect();
    (names, restricted)
}

/// The union of policies given as (names allowed, restrictions): a call any of them allows
/// with any arguments is open, the others may use every combination one of them allows.
pub fn union<'a>(
    policies: impl IntoIterator<Item = &'a (BTreeSet<String>, Restrictions)>,
) -> Restrictions {
    let mut open: BTreeSet<&String> = BTreeSet::new();
    let mut some: BTreeMap<&String, BTreeSet<Values>> = BTreeMap::new();
    for (names, r) in policies {
        open.extend(names.iter().filter(|n| !r.contains_key(*n)));
        for (name, sets) in r {
            some.entry(name).or_default().extend(sets.iter().copied());
        }
    }
    some.into_iter()
        .filter(|(n, _)| !open.contains(n))
        .map(|(n, s)| (n.clone(), s.into_iter().collect()))
        .collect()
}

/// The combinations `all` allows a call that `late` (the phases from serving on) does not,
/// for calls `late` restricts: what only the phases before serving used. A call `late` leaves
/// open, or never makes, has none (it is allowed with any arguments, or early-only by name).
pub fn only_in(all: &Restrictions, late: &Restrictions) -> Restrictions {
    all.iter()
        .filter_map(|(name, sets)| {
            let l = late.get(name)?;
            let early: Vec<Values> = sets.iter().filter(|v| !l.contains(v)).copied().collect();
            (!early.is_empty()).then(|| (name.clone(), early))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::tests::sample;

    fn with_args(role: &mut Role, phase: usize, name: &str, sets: &[Values]) {
        role.phases[phase]
            .syscalls
            .get_mut(name)
            .expect("in the sample")
            .args = Some(sets.to_vec());
    }

    #[test]
    fn a_phase_allows_what_it_used_and_what_its_class_always_may() {
        let mut p = sample(&[(
            "worker",
            &[
                ("init", &["socket", "mmap", "openat"]),
                ("serving", &["openat", "read"]),
            ],
        )]);
        let r = &mut p.roles[0];
        with_args(r, 0, "socket", &[[2, 1, 0]]);
        with_args(r, 0, "mmap", &[[0, 0, 4]]);
        with_args(r, 0, "openat", &[[0, 0, 0o101]]);
        with_args(r, 1, "openat", &[[0, 0, 0]]);
        let allow: BTreeSet<String> = ["socket", "mmap", "openat", "read", "exit_group"]
            .map(String::from)
            .into();
        let serving = restrictions(&[(&p.roles[0], vec![1])], &allow);
        // mmap was not made in serving: non-executable memory only; read is not recorded.
        assert_eq!(serving["openat"], [[0, 0, 0]]);
        assert_eq!(serving["mmap"], [[0, 0, 0], [0, 0, 2]]);
        assert!(!serving.contains_key("socket") && !serving.contains_key("read"));
        let both = restrictions(&[(&p.roles[0], vec![0, 1])], &allow);
        assert_eq!(both["openat"], [[0, 0, 0], [0, 0, 0o101]]);
        assert_eq!(both["mmap"], [[0, 0, 0], [0, 0, 2], [0, 0, 4]]);
        assert_eq!(both["socket"], [[2, 1, 0]]);
        // A phase that made the call with any arguments leaves it open.
        p.roles[0].phases[1]
            .syscalls
            .get_mut("openat")
            .unwrap()
            .args = None;
        let open = restrictions(&[(&p.roles[0], vec![0, 1])], &allow);
        assert!(!open.contains_key("openat"));
    }

    #[test]
    fn rules_read_back_as_the_restrictions_they_came_from() {
        let r: Restrictions = [
            ("openat".to_string(), vec![[0, 0, 0], [0, 0, 0o1101]]),
            ("socket".to_string(), vec![[10, 1, 0]]),
        ]
        .into();
        let mut p =
            OciProfile::allow_list(&["read".to_string()].into(), "x86_64", Action::Errno, 1);
        p.syscalls.extend(allow_rules(&r));
        assert_eq!(p.syscalls[1].comment.as_deref(), Some("openat(O_RDONLY)"));
        let (names, back) = read_back(&p);
        assert_eq!(back, r);
        assert!(names.contains("read") && names.contains("openat"));
        // An unconditional rule for a restricted name opens it.
        p.syscalls
            .push(OciRule::new(vec!["socket".into()], Action::Allow));
        assert!(!read_back(&p).1.contains_key("socket"));
    }

    #[test]
    fn a_union_is_open_where_either_side_is() {
        let names = |v: &[&str]| v.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
        let a = (
            names(&["openat", "socket"]),
            [("openat".to_string(), vec![[0, 0, 0]])].into(),
        );
        let b = (
            names(&["openat", "socket"]),
            [
                ("openat".to_string(), vec![[0, 0, 1]]),
                ("socket".to_string(), vec![[2, 1, 0]]),
            ]
            .into(),
        );
        let u = union([&a, &b]);
        assert_eq!(u["openat"], [[0, 0, 0], [0, 0, 1]]);
        assert!(!u.contains_key("socket"));
    }

    #[test]
    fn only_the_combinations_serving_never_used_are_early() {
        let all: Restrictions = [
            ("openat".to_string(), vec![[0, 0, 0], [0, 0, 0o101]]),
            ("mmap".to_string(), vec![[0, 0, 4], [0, 0, 0]]),
            ("socket".to_string(), vec![[2, 1, 0]]),
        ]
        .into();
        let late: Restrictions = [
            ("openat".to_string(), vec![[0, 0, 0]]),
            ("mmap".to_string(), vec![[0, 0, 4], [0, 0, 0]]),
        ]
        .into();
        let early = only_in(&all, &late);
        assert_eq!(early.len(), 1, "{early:?}");
        assert_eq!(early["openat"], [[0, 0, 0o101]]);
    }
}
