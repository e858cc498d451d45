//! Operations coverage: which of the operations its rule set knows (nginx: reload, reopen) a
//! profile saw, recognized from the calls each role made from its steady phase on. Written
//! into the profile as its `operations` section, and warned about by name when missing, so a
//! user knows before production that the profile never saw a reload.
use serde::{Deserialize, Serialize};

use super::Profile;
use crate::rules::{OperationSign, Rules};

/// The `operations` section of a profile.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operations {
    /// The rule set that defines them.
    pub rules: String,
    /// Every operation it knows, in its order.
    pub known: Vec<String>,
    /// Those the profile saw.
    pub seen: Vec<String>,
}

/// Whether `p` shows `sign`: the role made one of the calls in its steady phase or later, with
/// a recorded path that matches when the sign names paths.
fn shows(p: &Profile, rules: &Rules, sign: &OperationSign) -> bool {
    let steady = rules.steady_index(&sign.role).unwrap_or(0);
    let late: Vec<&str> = rules.phases(&sign.role)[steady.min(rules.phases(&sign.role).len())..]
        .iter()
        .map(|ph| ph.name.as_str())
        .collect();
    p.roles
        .iter()
        .filter(|r| r.name == sign.role)
        .flat_map(|r| &r.phases)
        .filter(|ph| late.contains(&ph.name.as_str()))
        .flat_map(|ph| &ph.syscalls)
        .filter(|(name, _)| sign.syscalls.contains(name))
        .any(|(_, u)| {
            sign.path_suffix.is_empty()
                || u.paths
                    .iter()
                    .any(|path| sign.path_suffix.iter().any(|s| path.ends_with(s.as_str())))
        })
}

/// The operations of the profile's rule set and those it saw; None when the rule set (the
/// first run's) cannot be loaded or knows no operations.
pub fn recognize(p: &Profile) -> Option<Operations> {
    let name = p
        .runs
        .iter()
        .map(|r| r.rules.as_str())
        .find(|r| !r.is_empty())?;
    let rules = Rules::load(name).ok()?;
    if rules.operations.is_empty() {
        return None;
    }
    Some(Operations {
        rules: rules.name.clone(),
        known: rules.operations.iter().map(|o| o.name.clone()).collect(),
        seen: rules
            .operations
            .iter()
            .filter(|o| o.when.iter().any(|s| shows(p, &rules, s)))
            .map(|o| o.name.clone())
            .collect(),
    })
}

/// One warning per operation the profile did not see: `no reload seen: …`.
pub fn warnings(p: &Profile) -> Vec<String> {
    let Some(ops) = recognize(p) else {
        return Vec::new();
    };
    let rules = Rules::load(&ops.rules).ok();
    ops.known
        .iter()
        .filter(|k| !ops.seen.contains(k))
        .map(|k| {
            let what = rules
                .as_ref()
                .and_then(|r| r.operations.iter().find(|o| &o.name == k))
                .map_or(String::new(), |o| format!(" ({})", o.description));
            format!(
                "no {k} seen{what}: the profile may lack calls a deployment needs for it; learn through a {k} too"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::tests::sample;

    /// Roles with their phases and syscalls, as `sample` takes them.
    type Roles<'a> = &'a [(&'a str, &'a [(&'a str, &'a [&'a str])])];

    fn nginx(roles: Roles, paths: &[(&str, &str, &str, &str)]) -> Profile {
        let mut p = sample(roles);
        p.runs[0].rules = "nginx".into();
        for &(role, phase, syscall, path) in paths {
            let r = p.roles.iter_mut().find(|r| r.name == role).unwrap();
            let ph = r.phases.iter_mut().find(|ph| ph.name == phase).unwrap();
            ph.syscalls
                .get_mut(syscall)
                .unwrap()
                .paths
                .push(path.into());
        }
        p
    }

    const STEADY: &str = "setting-up-worker-processes";
    const SERVING: &str = "accepting-and-serving-requests";

    #[test]
    fn reload_and_reopen_are_recognized_in_steady_phases_only() {
        // The configuration read at startup is no reload.
        let p = nginx(
            &[("master", &[("reading-configuration-files", &["openat"])])],
            &[(
                "master",
                "reading-configuration-files",
                "openat",
                "/etc/nginx/nginx.conf",
            )],
        );
        let ops = recognize(&p).unwrap();
        assert_eq!(ops.known, ["reload", "reopen"]);
        assert!(ops.seen.is_empty(), "{ops:?}");
        let w = warnings(&p);
        assert!(
            w[0].starts_with("no reload seen (the master re-reads"),
            "{w:?}"
        );
        assert!(w[1].starts_with("no reopen seen"), "{w:?}");

        let p = nginx(
            &[
                ("master", &[(STEADY, &["openat", "clone"])]),
                ("worker", &[(SERVING, &["openat", "accept4"])]),
            ],
            &[
                ("master", STEADY, "openat", "/etc/nginx/nginx.conf"),
                ("worker", SERVING, "openat", "/srv/html/index.html"),
            ],
        );
        assert_eq!(recognize(&p).unwrap().seen, ["reload"]);
        assert_eq!(warnings(&p).len(), 1);

        // A worker opening a log while serving, or a master handing logs to its user.
        let p = nginx(
            &[("worker", &[(SERVING, &["openat"])])],
            &[("worker", SERVING, "openat", "/var/log/nginx/access.log")],
        );
        assert_eq!(recognize(&p).unwrap().seen, ["reopen"]);
        let p = nginx(&[("master", &[(STEADY, &["chown"])])], &[]);
        assert_eq!(recognize(&p).unwrap().seen, ["reopen"]);
    }

    #[test]
    fn rule_sets_without_operations_say_nothing() {
        let mut p = sample(&[("main", &[("serving", &["read"])])]);
        p.runs[0].rules = "generic".into();
        assert!(recognize(&p).is_none());
        assert!(warnings(&p).is_empty());
    }
}
