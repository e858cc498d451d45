//! Seccomp profiles as data: the OCI profile format, and exporting learned profiles (OCI,
//! Kubernetes SPO, systemd, per phase).
pub mod export;
pub mod oci;
