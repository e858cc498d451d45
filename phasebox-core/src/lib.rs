//! phasebox's core: everything that is plain logic over data, unit-tested without root and
//! without the kernel. Kernel and process I/O (loading programs, launching, /proc, seccomp
//! filters) live in the agent crate, which depends on this one and never the other way.
//!
//! A module imports only from the modules before it in this list (within a module, its files
//! may use their parent's items), so there is no cycle:
//!
//! 1. names and text: `sysnames`, `call_args` (the arguments recorded), `display`, `units`,
//!    `event`, `ahead` (values sent ahead of a call's record);
//! 2. files: `file_error` (errors that name the file), `atomic_file` (writing), `input`
//!    (reading);
//! 3. formats that stand alone: `rules` (phase rule sets), `process`, `summary`, `tracefile`,
//!    `container`;
//! 4. `profile`: the learned profile and what is shown of it (it reads rule sets for the
//!    operations they define);
//! 5. what works on profiles: `phase` (detection: rule markers, automatic segmentation),
//!    `call_classes`, `seccomp` (which reads phases to know a steady phase), `policy` (which
//!    reads seccomp actions);
//! 6. the learner and what uses it: `learn`, `harvest`, `monitor`, `metrics`, `scenario`,
//!    `report`.
pub mod ahead;
pub mod atomic_file;
pub mod call_args;
pub mod call_classes;
pub mod conmon;
pub mod container;
pub mod display;
pub mod event;
pub mod file_error;
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
pub mod rules;
pub mod scenario;
pub mod seccomp;
pub mod summary;
pub mod sysnames;
pub mod trace_filter;
pub mod tracefile;
pub mod units;

/// An error and its causes joined by ": ", the one sentence the binary prints.
#[cfg(test)]
pub(crate) trait Sentence {
    fn sentence(&self) -> String;
}

#[cfg(test)]
impl<E: std::error::Error> Sentence for E {
    fn sentence(&self) -> String {
        let mut out = self.to_string();
        let mut cause = self.source();
        while let Some(c) = cause {
            out.push_str(": ");
            out.push_str(&c.to_string());
            cause = c.source();
        }
        out
    }
}
