//! Seccomp profiles as data: the OCI profile format, and exporting learned profiles (OCI,
//! Kubernetes SPO, systemd, per phase), and what container runtimes call under the filter.
pub mod action;
pub mod arg_rules;
pub mod export;
pub mod manifest;
pub mod oci;
pub mod phase_files;
pub mod runtimes;

/// An enum whose values have names on the command line and in files.
pub trait Named: Sized + Copy + 'static {
    /// Every value with its name.
    const NAMES: &'static [(&'static str, Self)];

    fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, v)| v)
    }
}
