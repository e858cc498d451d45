//! phasebox's agent: the edge where phasebox meets the kernel and other processes. `probe`
//! loads and reads the eBPF programs, `launch` starts commands, `procfs` reads /proc,
//! `enforce` installs seccomp filters, `session` ties a tracing run together, and `commands`
//! are the thin CLI adapters over it. Everything that is plain logic is in `phasebox_core`.
pub mod cli;
pub mod commands;
pub mod containers;
pub mod enforce;
pub mod fdlimit;
pub mod launch;
pub mod logging;
pub mod probe;
pub mod procfs;
pub mod runner;
pub mod serve;
pub mod session;
