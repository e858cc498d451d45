//! Which profiles given to a report are scenarios and which are merges, and the merge the
//! comparison is made against. A profile of several runs without call times (`scenarios
//! run`'s `merged.profile.json`, `profile merge`'s output) is a merge: shown as the merge,
//! never as one more scenario, and merged in again only for runs no scenario given holds.
use crate::profile::{
    Profile, Run,
    compare::{MergeError, merge},
};

/// A profile of several runs that keeps no call times: what a merge makes.
pub fn is_merge(p: &Profile) -> bool {
    let mut uses = p
        .roles
        .iter()
        .flat_map(|r| &r.phases)
        .flat_map(|ph| ph.syscalls.values());
    p.runs.len() > 1 && uses.all(|u| u.times_ns.is_empty())
}

/// The merge on the page.
#[derive(Clone, Debug)]
pub struct Merge {
    /// The union of the scenarios given, and of the merges given for runs none of them holds.
    pub profile: Profile,
    /// How many scenario profiles it unites.
    pub scenarios: usize,
    /// The merges given and whether the scenarios given hold every run of each.
    pub given: Vec<(String, bool)>,
}

/// Profiles with their labels, in the order given.
pub type Labelled<'a> = Vec<(String, &'a Profile)>;

fn same_run(a: &Run, b: &Run) -> bool {
    a.name == b.name && a.started_unix_ms == b.started_unix_ms && a.how == b.how
}

/// The scenarios among `profiles` (in order) and the merge, when there is one to show: two
/// scenarios or more, or a merge given.
pub fn split(profiles: Labelled) -> Result<(Labelled, Option<Merge>), MergeError> {
    let (merges, scenarios): (Vec<_>, Vec<_>) =
        profiles.into_iter().partition(|(_, p)| is_merge(p));
    let runs: Vec<&Run> = scenarios.iter().flat_map(|(_, p)| &p.runs).collect();
    let held = |p: &Profile| p.runs.iter().all(|r| runs.iter().any(|s| same_run(r, s)));
    let given: Vec<(String, bool)> = merges.iter().map(|(l, p)| (l.clone(), held(p))).collect();
    if merges.is_empty() && scenarios.len() < 2 {
        return Ok((scenarios, None));
    }
    let parts: Vec<Profile> = scenarios
        .iter()
        .map(|(_, p)| *p)
        .chain(merges.iter().map(|(_, p)| *p).filter(|p| !held(p)))
        .cloned()
        .collect();
    let merge = Merge {
        profile: merge(&parts)?,
        scenarios: scenarios.len(),
        given,
    };
    Ok((scenarios, Some(merge)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::scenario;

    #[test]
    fn a_merge_given_is_the_merge_not_a_scenario() {
        let (a, b) = (scenario("a", &["read"]), scenario("b", &["write"]));
        let whole = merge(&[a.clone(), b.clone()]).unwrap();
        assert!(is_merge(&whole) && !is_merge(&a));
        let given = vec![
            ("a".to_string(), &a),
            ("merged.profile.json".to_string(), &whole),
            ("b".to_string(), &b),
        ];
        let (scen, m) = split(given).unwrap();
        let labels: Vec<&str> = scen.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(labels, ["a", "b"]);
        let m = m.unwrap();
        assert_eq!(m.scenarios, 2);
        assert_eq!(m.given, [("merged.profile.json".to_string(), true)]);
        // Not merged twice: counts are those of the two scenarios.
        assert_eq!(m.profile.runs.len(), 2);
        assert_eq!(m.profile.roles[0].phases[0].syscalls["read"].calls, 1);

        // A merge of other runs is merged in.
        let other = merge(&[scenario("c", &["openat"]), scenario("d", &["close"])]).unwrap();
        let (_, m) = split(vec![("a".into(), &a), ("m".into(), &other)]).unwrap();
        let m = m.unwrap();
        assert_eq!(m.given, [("m".to_string(), false)]);
        assert!(m.profile.roles[0].phases[0].syscalls.contains_key("openat"));

        // One scenario alone: nothing to merge.
        assert!(split(vec![("a".into(), &a)]).unwrap().1.is_none());
        // A merge alone is shown as the merge.
        let (scen, m) = split(vec![("m".into(), &whole)]).unwrap();
        assert!(scen.is_empty() && m.unwrap().scenarios == 0);
    }
}
