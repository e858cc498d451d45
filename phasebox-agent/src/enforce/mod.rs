//! Seccomp enforcement: compiling OCI profiles with libseccomp (`filter`), answering user
//! notifications (`notify`, `supervisor`: validation, `run --seccomp`, phase-aware
//! enforcement), the phase board the answers read (`board`), and the denied calls placed in
//! their role and phase (`denials`). Exporting profiles is pure and lives in the core.
pub mod board;
pub mod denials;
pub mod filter;
pub mod notify;
pub mod phased;
pub mod setup;
pub mod supervisor;
