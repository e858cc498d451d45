//! phasebox's own policies for the comparison: what `phasebox export` writes from the
//! merge with its defaults (every role, the union of its phases), and what `export
//! --per-phase` writes for each phase, each read back as `compare` reads an OCI file.
use crate::{
    policy::{
        Policy, PolicyError,
        report::{CompareError, Row, compare},
    },
    profile::Profile,
    seccomp::export::{self, DefaultAction, ExportError, Target},
};

/// The policy name of the default export's rows.
pub const UNION: &str = "phasebox export";
/// The policy name of the per-phase export's rows.
pub const PER_PHASE: &str = "phasebox export --per-phase";

/// Why phasebox's own policy cannot be compared (said on the page instead of its rows).
#[derive(Debug, thiserror::Error)]
pub enum OwnError {
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Read(#[from] PolicyError),
    #[error(transparent)]
    Compare(#[from] CompareError),
}

/// The export of `role`'s `phase` (None: every role, or every phase) as `export` writes it
/// with its defaults (errno EPERM for what it does not allow, the arguments learned).
fn exported(
    p: &Profile,
    role: Option<&str>,
    phase: Option<&str>,
    name: &str,
) -> Result<Policy, OwnError> {
    let names = export::select(p, role, phase)?;
    let filtered = export::select_filtered(p, role, phase)?;
    let policy = export::Policy::new(names, &filtered, DefaultAction::Errno);
    let args = export::select_args(p, role, phase, &policy.allow)?;
    let policy = policy.with_args(args);
    let target = Target {
        arch: &p.arch,
        label: p.program.comm.clone(),
        action: DefaultAction::Errno,
        errno: 1,
    };
    let text = export::oci_profile(&policy, &target).to_json();
    let mut read = Policy::parse(&text, name, &p.kernel_release)?;
    read.name = name.to_string();
    Ok(read)
}

/// The default export compared with every role and phase of `merged`, then each phase's own
/// export compared with that phase.
pub fn rows(merged: &Profile) -> Result<Vec<Row>, OwnError> {
    let union = exported(merged, None, None, UNION)?;
    let mut rows = compare(merged, &[union], None, None)?.rows;
    for r in &merged.roles {
        for ph in &r.phases {
            let (role, phase) = (Some(r.name.as_str()), Some(ph.name.as_str()));
            let own = exported(merged, role, phase, PER_PHASE)?;
            let mine = compare(merged, &[own], role, phase)?.rows;
            // Roles of one name in several containers share the export: keep this one's row.
            rows.extend(mine.into_iter().filter(|row| row.role == r.name).take(1));
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::tests::sample;

    #[test]
    fn the_default_export_misses_nothing_and_each_phase_gets_its_own() {
        let p = sample(&[(
            "worker",
            &[
                ("init", &["setuid", "read", "openat"]),
                ("serving", &["accept4", "read"]),
            ],
        )]);
        let rows = rows(&p).unwrap();
        let union: Vec<&Row> = rows.iter().filter(|r| r.policy == UNION).collect();
        assert_eq!(union.len(), 3, "init, serving, all phases");
        assert!(union.iter().all(|r| r.missing.is_empty()));
        assert_eq!(union[0].allowed_count, 4);
        assert_eq!(union[1].over_approximation, ["openat", "setuid"]);
        assert_eq!(union[0].critical_allowed, ["setuid"]);
        let own: Vec<&Row> = rows.iter().filter(|r| r.policy == PER_PHASE).collect();
        assert_eq!(own.len(), 2);
        let serving = own.iter().find(|r| r.phase == "serving").unwrap();
        assert!(serving.missing.is_empty() && serving.critical_allowed.is_empty());
        assert!(serving.allowed_count < union[0].allowed_count);
        assert!(serving.surface_removed > union[0].surface_removed);
    }
}
