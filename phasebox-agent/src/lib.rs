//! phasebox's agent: the edge where phasebox meets the kernel and other processes. `probe`
//! loads and reads the eBPF programs, `launch` starts commands, `procfs` reads /proc,
//! `enforce` compiles seccomp filters and answers their notifications, `containers` finds
//! containers, `session` ties a tracing run together (the agent's loop among it), `runner`
//! drives scenario sets and `serve` serves the metrics. Everything that is plain logic is in
//! `phasebox_core`. The command line (clap's definitions and one thin adapter per
//! subcommand) is the binary's, in src/bin/phasebox: the library never sees it.
pub mod containers;
pub mod enforce;
pub mod fdlimit;
pub mod launch;
pub mod logging;
pub mod own_process;
pub mod probe;
pub mod procfs;
pub mod runner;
pub mod serve;
pub mod session;
