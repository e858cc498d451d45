//! phasebox: learns which system calls a program really needs, phase by phase.
//!
//! Kernel I/O stays at the edge (`probe`, `launch`, `procfs`); `event`, `process`, `summary`
//! and `tracefile` are plain logic, unit-tested without root.
pub mod atomic_file;
pub mod cli;
pub mod commands;
pub mod event;
pub mod launch;
pub mod learn;
pub mod metrics;
pub mod monitor;
pub mod phase;
pub mod policy;
pub mod probe;
pub mod process;
pub mod procfs;
pub mod profile;
pub mod report;
pub mod scenario;
pub mod seccomp;
pub mod session;
pub mod summary;
pub mod sysnames;
pub mod tracefile;
