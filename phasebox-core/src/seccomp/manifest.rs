//! The manifest of a per-phase export (`export --per-phase DIR` writes it as manifest.json):
//! the order of the phase files per role, and the rule set that says which phase is steady.
//! Phase-aware enforcement reads it back.
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};

use crate::{file_error::FileError, sysnames};

/// Why a manifest cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{origin} is not a valid phase manifest")]
    Json {
        origin: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{origin} has schema {schema:?}; this phasebox reads {MANIFEST_SCHEMA:?}")]
    Schema { origin: String, schema: String },
    #[error(
        "{origin} lists {format} files; phase-aware enforcement needs OCI files (export --format oci)"
    )]
    Format { origin: String, format: String },
    #[error(
        "{origin} is for {arch:?} programs; this phasebox is built for {}",
        sysnames::ARCH
    )]
    Arch { origin: String, arch: String },
    #[error("{origin} lists no roles: it would allow no syscall at all")]
    NoRoles { origin: String },
    #[error("{origin} lists no phases for role {role}")]
    NoPhases { origin: String, role: String },
    #[error(
        "{origin} names the file {file:?} for phase {phase} of role {role}: phase files are \
         names in the manifest's own directory"
    )]
    FileOutside {
        origin: String,
        file: String,
        phase: String,
        role: String,
    },
}

/// One file of a per-phase export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestPhase {
    pub name: String,
    pub file: String,
    pub syscalls: usize,
}

/// A role's phases in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestRole {
    pub role: String,
    pub phases: Vec<ManifestPhase>,
}

/// The order of the per-phase files (`--per-phase DIR` writes it as manifest.json).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: String,
    pub program: String,
    pub arch: String,
    /// The phase rules the profile was learned with.
    pub rules: String,
    pub format: String,
    pub roles: Vec<ManifestRole>,
}

/// The schema of the manifests this phasebox writes and reads.
pub const MANIFEST_SCHEMA: &str = "phasebox.seccomp-phases/v1";

impl Manifest {
    /// Parses and checks a manifest for phase-aware enforcement; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Manifest, ManifestError> {
        let origin = origin.to_string();
        let m: Manifest = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(source) => return Err(ManifestError::Json { origin, source }),
        };
        if m.schema != MANIFEST_SCHEMA {
            let schema = m.schema;
            return Err(ManifestError::Schema { origin, schema });
        }
        if m.format != "oci" {
            let format = m.format;
            return Err(ManifestError::Format { origin, format });
        }
        if m.arch != sysnames::ARCH {
            let arch = m.arch;
            return Err(ManifestError::Arch { origin, arch });
        }
        if m.roles.is_empty() {
            return Err(ManifestError::NoRoles { origin });
        }
        for r in &m.roles {
            check_role(&origin, r)?;
        }
        Ok(m)
    }

    /// Reads and checks a manifest file.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = crate::input::read_text(path, crate::input::TEXT)?;
        Manifest::parse(&text, &crate::input::origin(path))
    }
}

/// A role of the manifest `origin` has phases, and its phase files are the ones export wrote
/// beside the manifest: plain names, no path.
fn check_role(origin: &str, r: &ManifestRole) -> Result<(), ManifestError> {
    if r.phases.is_empty() {
        return Err(ManifestError::NoPhases {
            origin: origin.to_string(),
            role: r.role.clone(),
        });
    }
    let plain = |file: &str| {
        let mut parts = Path::new(file).components();
        matches!(
            (parts.next(), parts.next()),
            (Some(Component::Normal(_)), None)
        )
    };
    match r.phases.iter().find(|ph| !plain(&ph.file)) {
        Some(ph) => Err(ManifestError::FileOutside {
            origin: origin.to_string(),
            file: ph.file.clone(),
            phase: ph.name.clone(),
            role: r.role.clone(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sentence;

    #[test]
    fn bad_manifests_are_refused() {
        let good = Manifest {
            schema: MANIFEST_SCHEMA.into(),
            program: "/bin/x".into(),
            arch: sysnames::ARCH.into(),
            rules: "generic".into(),
            format: "oci".into(),
            roles: vec![ManifestRole {
                role: "main".into(),
                phases: vec![ManifestPhase {
                    name: "init".into(),
                    file: "main-01-init.json".into(),
                    syscalls: 1,
                }],
            }],
        };
        let err = |m: &Manifest| {
            Manifest::parse(&serde_json::to_string(m).unwrap(), "m.json")
                .unwrap_err()
                .sentence()
        };
        Manifest::parse(&serde_json::to_string(&good).unwrap(), "m.json").unwrap();
        let mut m = good.clone();
        m.roles.clear();
        assert!(err(&m).contains("m.json lists no roles"), "{}", err(&m));
        let mut m = good.clone();
        m.roles[0].phases.clear();
        assert!(err(&m).contains("no phases for role main"), "{}", err(&m));
        for file in ["../x.json", "/etc/passwd", "sub/x.json", "..", ".", ""] {
            let mut m = good.clone();
            m.roles[0].phases[0].file = file.into();
            assert!(
                err(&m).contains(&format!("names the file {file:?} for phase init")),
                "{}",
                err(&m)
            );
        }
        let mut m = good.clone();
        m.arch = "sparc".into();
        assert!(err(&m).contains("is for \"sparc\" programs"), "{}", err(&m));
    }
}
