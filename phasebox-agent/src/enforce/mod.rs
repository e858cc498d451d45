//! Seccomp enforcement: compiling OCI profiles with libseccomp, answering user notifications
//! (validation, phase-aware enforcement). Exporting profiles is pure and lives in the core.
pub mod filter;
pub mod notify;
pub mod phased;
