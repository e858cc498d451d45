//! phasebox's core: everything that is plain logic over data, unit-tested without root and
//! without the kernel. Kernel and process I/O (loading programs, launching, /proc, seccomp
//! filters) live in the agent crate, which depends on this one and never the other way.
pub mod atomic_file;
pub mod call_classes;
pub mod container;
pub mod display;
pub mod event;
pub mod harvest;
pub mod input;
pub mod learn;
pub mod metrics;
pub mod monitor;
pub mod phase;
pub mod policy;
pub mod process;
pub mod profile;
pub mod report;
pub mod scenario;
pub mod seccomp;
pub mod summary;
pub mod sysnames;
pub mod tracefile;
pub mod units;
