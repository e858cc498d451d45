//! Seccomp profiles as data: the OCI profile format, and exporting learned profiles (OCI,
//! Kubernetes SPO, systemd, per phase), and what container runtimes call under the filter.
pub mod export;
pub mod oci;
pub mod phase_files;
pub mod runtimes;
