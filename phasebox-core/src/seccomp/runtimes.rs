//! What container runtimes call themselves after they install a container's seccomp filter and
//! before the container's program runs (`export --for-runtime`). The lists are data, measured by
//! tracing each runtime on a real machine (phasebox-core/runtimes/*.toml, method in
//! docs/seccomp.md): a profile learned from the program alone lacks them, and the container
//! then fails to start.
use std::collections::BTreeSet;

use serde::Deserialize;

use super::Named;

/// Container runtimes `--for-runtime` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    Docker,
    Containerd,
    Podman,
    Runc,
    Crun,
}

impl Named for Runtime {
    const NAMES: &'static [(&'static str, Self)] = &[
        ("docker", Runtime::Docker),
        ("containerd", Runtime::Containerd),
        ("podman", Runtime::Podman),
        ("runc", Runtime::Runc),
        ("crun", Runtime::Crun),
    ];
}

const FILES: &[(Runtime, &str)] = &[
    (Runtime::Docker, include_str!("../../runtimes/docker.toml")),
    (
        Runtime::Containerd,
        include_str!("../../runtimes/containerd.toml"),
    ),
    (Runtime::Podman, include_str!("../../runtimes/podman.toml")),
    (Runtime::Runc, include_str!("../../runtimes/runc.toml")),
    (Runtime::Crun, include_str!("../../runtimes/crun.toml")),
];

/// One way the runtime starts a process in a container (`docker run`, `docker exec`…), with
/// the calls it makes itself under the container's filter.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StartPath {
    pub name: String,
    pub description: String,
    pub syscalls: Vec<String>,
}

/// A runtime's measured calls, as its data file holds them.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RuntimeCalls {
    pub runtime: String,
    /// The versions measured (engine, shim, OCI runtime).
    pub versions: String,
    /// Where and when.
    pub measured_on: String,
    /// How the lists were derived.
    pub method: String,
    /// Why there is no list, when the runtime could not be measured.
    #[serde(default)]
    pub not_measured: Option<String>,
    #[serde(default, rename = "path")]
    pub paths: Vec<StartPath>,
}

impl RuntimeCalls {
    /// The data of `runtime`.
    pub fn of(runtime: Runtime) -> RuntimeCalls {
        let (_, text) = FILES
            .iter()
            .find(|(r, _)| *r == runtime)
            .expect("every runtime has a data file");
        toml::from_str(text).expect("built-in runtime data parses (a unit test checks it)")
    }

    /// Every call of every start path.
    pub fn union(&self) -> BTreeSet<String> {
        self.paths
            .iter()
            .flat_map(|p| p.syscalls.iter().cloned())
            .collect()
    }
}

/// A runtime whose own calls have no measured list.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("--for-runtime {runtime}: its own calls were not measured: {why}")]
pub struct NotMeasured {
    pub runtime: String,
    /// Why not, from the runtime's data file.
    pub why: String,
}

/// Adds what `runtime` itself calls under the container's filter; returns what was not there,
/// or why the runtime has no measured list.
pub fn add_runtime(
    names: &mut BTreeSet<String>,
    runtime: Runtime,
) -> Result<Vec<String>, NotMeasured> {
    let data = RuntimeCalls::of(runtime);
    if let Some(why) = data.not_measured {
        return Err(NotMeasured {
            runtime: data.runtime,
            why,
        });
    }
    Ok(data
        .union()
        .into_iter()
        .filter(|n| names.insert(n.clone()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysnames;

    #[test]
    fn every_data_file_parses_and_names_known_calls() {
        for &(name, rt) in Runtime::NAMES {
            let d = RuntimeCalls::of(rt);
            assert_eq!(d.runtime, name);
            assert!(!d.method.is_empty() && !d.versions.is_empty(), "{name}");
            match &d.not_measured {
                Some(_) => assert!(d.paths.is_empty(), "{name}: unmeasured but has lists"),
                None => assert!(!d.paths.is_empty(), "{name}: measured but no list"),
            }
            for n in d.union() {
                assert!(sysnames::number(&n).is_some(), "{name}: unknown call {n}");
            }
            // The program's own execve is made by the runtime under the filter.
            if d.not_measured.is_none() {
                assert!(d.union().contains("execve"), "{name}");
            }
        }
    }

    #[test]
    fn docker_needs_what_runc_does_before_dropping_privileges() {
        // Without no_new_privileges, runc installs the filter before its own setup ends.
        let d = RuntimeCalls::of(Runtime::Docker).union();
        for n in ["capget", "capset", "fstat", "getcwd", "chdir"] {
            assert!(d.contains(n), "docker's list lacks {n}");
        }
    }

    #[test]
    fn adding_reports_what_was_missing() {
        let mut names: BTreeSet<String> = ["execve".to_string(), "read".into()].into();
        let added = add_runtime(&mut names, Runtime::Runc).unwrap();
        assert!(!added.contains(&"execve".to_string()));
        assert!(added.iter().all(|n| names.contains(n)));
        let err = add_runtime(&mut names, Runtime::Crun)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not measured"), "{err}");
    }
}
