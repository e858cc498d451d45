//! Seccomp: exporting learned profiles (OCI, Kubernetes SPO, systemd), compiling OCI profiles
//! with libseccomp, and answering user notifications (validation, phase-aware enforcement).
pub mod export;
pub mod filter;
pub mod notify;
pub mod oci;
pub mod phased;
