//! Command-line definitions (clap derive): one subcommand per verb.
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use phasebox::probe::check_ring_bytes;
use phasebox_core::metrics::Label;
use phasebox_core::seccomp::export::{DefaultAction, Format, Named, Runtime};
use phasebox_core::trace_filter::{FilterError, TraceFilter};
use phasebox_core::units::{parse_duration, parse_size};

/// The version and the commit it was built from (`--version`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("PHASEBOX_COMMIT"),
    ")"
);

/// phasebox learns which system calls a program really needs, phase by phase.
#[derive(Debug, Parser)]
#[command(name = "phasebox", version = VERSION, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Launch a command traced from its execve on; exit with its exit status.
    #[command(
        after_help = "Signals: the first Ctrl-C reaches CMD through the terminal, and the \
        first SIGTERM or SIGHUP is passed on to it; phasebox waits for CMD's processes to end, \
        then writes its outputs. A second one stops tracing at once (CMD goes on, untraced). \
        SIGUSR1 writes the profile learned so far to --profile and says how far tracing is.\n\n\
        Exit status: CMD's; 130 when stopped before CMD ended; 74 when an output could not be \
        written (the others are written, and phasebox says which one failed and why)."
    )]
    Run(RunArgs),
    /// Attach to a running process, its threads and descendants.
    #[command(
        after_help = "Signals: SIGINT, SIGTERM and SIGHUP stop tracing and write every \
        output; SIGUSR1 writes the profile learned so far to --profile and says how far tracing \
        is.\n\n\
        Exit status: 0; 74 when an output could not be written (the others are written, and \
        phasebox says which one failed and why)."
    )]
    Record(RecordArgs),
    /// Long-running: attach to a process tree, learn its phases, serve Prometheus metrics,
    /// and checkpoint the learned profile.
    #[command(
        after_help = "Signals: SIGINT and SIGTERM stop the agent, which writes the \
        profile; SIGHUP and SIGUSR1 write it now (a checkpoint) and the agent goes on.\n\n\
        Exit status: 0; 74 when the profile could not be written at the end."
    )]
    Agent(AgentArgs),
    /// Read trace files.
    #[command(subcommand)]
    Trace(TraceCommand),
    /// Learn a profile from a trace file.
    Analyze(AnalyzeArgs),
    /// Show, merge and compare profiles.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Compare a learned profile with policies (sysfilter, Chestnut, OCI/Docker seccomp, name
    /// lists, other profiles).
    Compare(CompareArgs),
    /// Export a learned profile as a seccomp policy (OCI, Kubernetes SPO, systemd).
    Export(ExportArgs),
    /// The syscalls a program can reach, from its code and its libraries (static analysis),
    /// as a profile with one phase `static`.
    Static(StaticArgs),
    /// Run a command under a learned profile and report whether it passes, with the calls the
    /// profile denied.
    Validate(ValidateArgs),
    /// Execution scenarios: run a scenario set traced, one profile per scenario, the merged
    /// profile and the coverage.
    #[command(subcommand)]
    Scenarios(ScenariosCommand),
    /// One self-contained HTML page: timelines, phase tables, scenario coverage and
    /// comparisons with policies.
    Report(ReportArgs),
    /// Print a completion script for a shell (bash, zsh, fish, elvish, powershell):
    /// `phasebox completions bash > /usr/share/bash-completion/completions/phasebox`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages, phasebox(1) and one per subcommand (phasebox-run(1)…), into DIR.
    Manpages {
        /// Where to write them.
        dir: PathBuf,
    },
    /// For the cost benchmark: attach only an empty program to raw_syscalls/sys_enter.
    #[command(hide = true)]
    Floor(FloorArgs),
}

#[derive(Debug, Args)]
pub struct FloorArgs {
    /// Detach after this long (default: on Ctrl-C or SIGTERM).
    #[arg(short, long, value_name = "D", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// What the program does: nothing, read the caller's pid, or also one word of a pid bitmap;
    /// `exit`: nothing, with a second empty program on raw_syscalls/sys_exit.
    #[arg(long, value_enum, default_value = "empty")]
    pub step: FloorStep,
}

/// The agent's log levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// The agent's log formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormatArg {
    Text,
    Logfmt,
    Json,
}

/// The steps of the untracked path the floor program can stop at.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum FloorStep {
    Empty,
    Pid,
    Bit,
    Exit,
}

#[derive(Debug, Subcommand)]
pub enum ScenariosCommand {
    /// Run every scenario of FILE traced; write DIR/SCENARIO.profile.json, DIR/merged.profile.json
    /// and DIR/coverage.{txt,json}; print the coverage.
    Run(ScenariosRunArgs),
    /// List the scenarios of FILE with what each covers.
    List {
        /// The scenario file.
        file: PathBuf,
    },
}

#[derive(Clone, Debug, Args)]
pub struct ScenariosRunArgs {
    /// The scenario file.
    pub file: PathBuf,
    /// Where the profiles and the coverage go (default: phasebox-scenarios-NAME).
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Only these scenarios (by name; repeat or separate with commas).
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    pub only: Vec<String>,
    /// Also run each scenario under strace in a fresh environment and compare the syscalls
    /// it saw with the profile's; any difference fails the run.
    #[arg(long)]
    pub oracle_strace: bool,
    /// Run every scenario under this OCI seccomp profile (from `export`): a scenario that
    /// fails under it needs a call the profile does not allow.
    #[arg(long, value_name = "FILE")]
    pub seccomp: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Learned profiles: several of one program are taken as scenarios, in this order, for
    /// the coverage section.
    #[arg(required = true)]
    pub profiles: Vec<PathBuf>,
    /// Compare with these policies (any format `compare` reads).
    #[arg(long, value_name = "POLICY", num_args = 1..)]
    pub compare: Vec<PathBuf>,
    /// The page's title.
    #[arg(long)]
    pub title: Option<String>,
    /// Where the page goes.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The learned profile.
    pub profile: PathBuf,
    #[arg(long, value_parser = named::<Format>(), default_value = "oci")]
    pub format: Format,
    /// Only this role (default: every role).
    #[arg(long)]
    pub role: Option<String>,
    /// Only this phase (default: the union of all phases).
    #[arg(long, conflicts_with = "union")]
    pub phase: Option<String>,
    /// The union of all phases (the default).
    #[arg(long)]
    pub union: bool,
    /// Write here instead of standard output.
    #[arg(short, long, value_name = "FILE", conflicts_with = "per_phase")]
    pub output: Option<PathBuf>,
    /// One file per role and phase in DIR, and DIR/manifest.json with their order.
    #[arg(long, value_name = "DIR")]
    pub per_phase: Option<PathBuf>,
    /// What a call outside the profile gets.
    #[arg(long, value_parser = named::<DefaultAction>(), default_value = "errno")]
    pub default_action: DefaultAction,
    /// The errno of --default-action errno (1 to 4095).
    #[arg(long, default_value_t = 1, value_parser = parse_errno)]
    pub errno: u32,
    /// Add what every program may need to exit or handle signals (exit, exit_group,
    /// rt_sigreturn, restart_syscall); phasebox says which were added.
    #[arg(long)]
    pub add_basics: bool,
    /// Add what this container runtime's own init calls after installing the filter.
    #[arg(long, value_parser = named::<Runtime>(), value_name = "RUNTIME")]
    pub for_runtime: Option<Runtime>,
    /// Allow calls by name only: leave out the argument conditions learned for socket,
    /// clone, mmap, openat, ioctl… (docs/seccomp.md, "Arguments").
    #[arg(long)]
    pub no_args: bool,
    /// Export for a runtime or per phase although the profile never saw the program start
    /// (learned by attaching to it): the policy will likely stop it from starting.
    #[arg(long)]
    pub allow_incomplete: bool,
    /// A profile of the same program made by `phasebox static`: list the calls it finds
    /// reachable that no run used, with where each is reachable from (the review).
    #[arg(long, value_name = "STATIC.json")]
    pub hybrid: Option<PathBuf>,
    /// Add these reviewed calls to every phase of the exported policy.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "NAME,…",
        requires = "hybrid"
    )]
    pub allow_reachable: Vec<String>,
    /// Write the hybrid profile (the dynamic profile, allowed calls added, with the review)
    /// here; with --per-phase it goes to DIR/hybrid.profile.json unless given.
    #[arg(long, value_name = "FILE", requires = "hybrid")]
    pub hybrid_profile: Option<PathBuf>,
}

/// `--errno`: what a seccomp filter can return (the kernel's errno range, 0 excluded: a
/// denied call would look like a success).
fn parse_errno(s: &str) -> Result<u32, String> {
    let range = phasebox_core::seccomp::oci::ERRNO_RANGE;
    match s.parse::<u32>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!(
            "{s} is not an errno a seccomp filter can return: give a number from 1 to 4095 (1 is EPERM, 38 ENOSYS)"
        )),
    }
}

#[derive(Debug, Args)]
pub struct StaticArgs {
    /// The program (an x86_64 ELF file).
    pub binary: PathBuf,
    /// Write the profile here instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The learned profile to validate (the union of its phases, or --role/--phase).
    #[arg(long, value_name = "FILE", required_unless_present = "seccomp")]
    pub profile: Option<PathBuf>,
    /// Or an OCI seccomp profile.
    #[arg(long, value_name = "FILE", conflicts_with = "profile")]
    pub seccomp: Option<PathBuf>,
    #[arg(long)]
    pub role: Option<String>,
    #[arg(long)]
    pub phase: Option<String>,
    /// See `export --add-basics`.
    #[arg(long)]
    pub add_basics: bool,
    /// Leave out syscall names the running kernel does not know instead of failing.
    #[arg(long)]
    pub seccomp_skip_unknown: bool,
    /// Phase rules that name the phase of each denied call (default: the profile's own, if
    /// built in, else generic).
    #[arg(long, value_name = "RULES")]
    pub phases: Option<String>,
    /// The command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The learned profile.
    pub profile: PathBuf,
    /// The policies to compare it with.
    #[arg(required_unless_present = "deny_list")]
    pub policies: Vec<PathBuf>,
    /// A list of `App:name,…` lines naming the syscalls a policy removes (Temporal
    /// Specialization's results): the policy allows the rest of the table. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub deny_list: Vec<PathBuf>,
    /// Only this role.
    #[arg(long)]
    pub role: Option<String>,
    /// Only this phase.
    #[arg(long)]
    pub phase: Option<String>,
    /// Also write the comparison as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("target").required(true).args(["pids", "exec_name", "container"])
))]
pub struct AgentArgs {
    /// The processes to attach to (with their threads and descendants): repeat, or separate
    /// with commas.
    #[arg(short, long = "pid", value_name = "PID", value_delimiter = ',')]
    pub pids: Vec<u32>,
    /// Trace a container (its id, full or 12 characters, or its name: asked of Docker's API at
    /// DOCKER_HOST or /var/run/docker.sock and Podman's at CONTAINER_HOST or
    /// /run/podman/podman.sock, else read from a running Podman container's monitor): every
    /// process in it (its cgroup), and every program executed in it later (`docker exec`,
    /// `podman exec`). A container an engine knows but does not run yet is waited for and
    /// traced from its first process.
    #[arg(long, value_name = "ID|NAME")]
    pub container: Option<String>,
    /// Wait for processes that execute this program, and trace each from its execve on (its
    /// startup phases too).
    #[arg(long, value_name = "NAME")]
    pub exec_name: Option<String>,
    /// Phase rules: generic, nginx, auto, or a rule file.
    #[arg(long, default_value = "generic", value_name = "RULES")]
    pub phases: String,
    /// Where to serve /metrics (port 0: one the kernel picks; the start-up line names it).
    #[arg(long, default_value = "127.0.0.1:9464", value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// Connections the metrics server holds at once; at the cap, the one that has waited
    /// longest for a request is closed to make room.
    #[arg(long = "web.max-connections", default_value = "64", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_connections: u32,
    /// How long a client may take to send a request's headers (and a kept-alive connection
    /// may wait for its next request).
    #[arg(long = "web.header-timeout", default_value = "10s", value_name = "D", value_parser = parse_duration)]
    pub header_timeout: Duration,
    /// How long a connection to the metrics server may move no byte either way.
    #[arg(long = "web.idle-timeout", default_value = "30s", value_name = "D", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// TLS and basic auth for the metrics server, in the web config format of Prometheus's
    /// exporter toolkit (tls_server_config: cert_file, key_file, min_version, max_version;
    /// basic_auth_users: user: bcrypt hash).
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config: Option<PathBuf>,
    /// Log records at this level and above.
    #[arg(
        long = "log.level",
        value_enum,
        default_value = "info",
        value_name = "LEVEL"
    )]
    pub log_level: LogLevel,
    /// How log lines are written: phasebox's own text, logfmt or JSON (one record a line).
    #[arg(
        long = "log.format",
        value_enum,
        default_value = "text",
        value_name = "FORMAT"
    )]
    pub log_format: LogFormatArg,
    /// Log debug records too (--log.level debug).
    #[arg(short, long, conflicts_with = "log_level")]
    pub verbose: bool,
    /// Keep the learned profile in this file (written every --checkpoint and at the end).
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Send every syscall to userspace (the timeline), as `record` does. By default the agent
    /// runs in summary mode: exact counters in the kernel, and only each process's first use
    /// of a syscall per phase and the phase markers' calls are sent.
    #[arg(long)]
    pub stream: bool,
    /// Monitor mode: this learned profile is the expected behaviour; a syscall outside the
    /// caller's current phase is a violation (counted, and logged once per role, phase and
    /// syscall).
    #[arg(long, value_name = "PROFILE")]
    pub monitor: Option<PathBuf>,
    /// What a violation does: log it, or have the kernel kill the process.
    #[arg(long, value_enum, default_value = "log", requires = "monitor")]
    pub on_violation: OnViolation,
    /// What a process of a role the profile does not have (a program it never saw) is: a
    /// violation (counted, logged, and killed with --on-violation kill), or ignored.
    #[arg(long, value_enum, default_value = "violation", requires = "monitor")]
    pub unknown_roles: UnknownRoles,
    /// Count failed calls per role, phase and syscall (phasebox_syscall_errors_total). It
    /// adds a program on every syscall's exit, which every process on the host pays for (see
    /// BENCHMARKS.md).
    #[arg(long)]
    pub errors: bool,
    /// Do not record the arguments of socket, clone, mmap, openat, ioctl… (profiles then
    /// allow those calls with any arguments).
    #[arg(long)]
    pub no_args: bool,
    /// Series only for these syscalls, as strace's `-e trace=SET` (names and classes such as
    /// %file, %network; `!SET` for all but them): fewer series to store; the profile and the
    /// monitor still see every call.
    #[arg(short = 'e', value_name = "trace=SET", value_parser = parse_trace_filter)]
    pub filter: Option<TraceFilter>,
    /// Labels to sum the per-call series over (container_id, role, phase; separate with
    /// commas), as PromQL's `sum without (…)`: one series where there were many.
    #[arg(long = "metrics.without", value_name = "LABEL", value_delimiter = ',',
          value_parser = parse_label)]
    pub without: Vec<Label>,
    /// Label sets each per-call metric keeps; calls of any further one are counted in one
    /// series whose container_id, role, phase and syscall are `_other`
    /// (phasebox_series_folded says how many were folded).
    #[arg(long = "metrics.max-series", value_name = "N",
          default_value_t = phasebox_core::metrics::DEFAULT_MAX_SERIES as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_series: u32,
    /// How often BPF run-time statistics are sampled (they tax every BPF program on the host
    /// while on); `off` never turns them on.
    #[arg(long, default_value = "60s", value_name = "D", value_parser = parse_period)]
    pub bpf_stats_every: Duration,
    /// How long each sample lasts.
    #[arg(long, default_value = "1s", value_name = "D", value_parser = parse_duration)]
    pub bpf_stats_window: Duration,
    /// How often the profile is written.
    #[arg(long, default_value = "30s", value_name = "D", value_parser = parse_duration)]
    pub checkpoint: Duration,
    /// Ring-buffer size: a power of two, with an optional K, M or G suffix.
    #[arg(long = "ring-buffer", value_name = "SIZE", default_value = "8M", value_parser = parse_ring_size)]
    pub ring_bytes: u32,
}

/// A namespace `run --isolate` gives the command afresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Namespace {
    Mount,
    Pid,
}

/// What monitor mode makes of a process of a role the profile lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum UnknownRoles {
    Violation,
    Ignore,
}

/// What monitor mode does with a violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnViolation {
    Log,
    Kill,
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// The trace file (from `run -o` or `record -o`).
    pub trace: PathBuf,
    /// Phase rules: generic, nginx, auto, or a rule file.
    #[arg(long, default_value = "generic", value_name = "RULES")]
    pub phases: String,
    /// Write the profile to this file.
    #[arg(long, value_name = "FILE")]
    pub profile: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Print the phase table per role, like the poster's.
    Show {
        /// The profile (`-` for standard input).
        file: PathBuf,
        /// The same view as JSON (program, runs, operations, per role and phase the calls
        /// with their counts, argument restrictions, warnings), for jq and scripts.
        #[arg(long)]
        json: bool,
    },
    /// Union of profiles: calls summed, provenance kept.
    Merge {
        /// The profiles to merge.
        #[arg(required = true, num_args = 2..)]
        inputs: Vec<PathBuf>,
        /// Where to write the merged profile.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Per role and phase, the syscalls B gained or lost against A.
    Diff { a: PathBuf, b: PathBuf },
}

/// Options of every tracing command.
#[derive(Debug, Args)]
pub struct TraceOptions {
    /// Write every event to this trace file (read it with `phasebox trace dump`).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    /// Ring-buffer size: a power of two, with an optional K, M or G suffix.
    #[arg(long = "ring-buffer", value_name = "SIZE", default_value = "8M", value_parser = parse_ring_size)]
    pub ring_bytes: u32,
    /// Do not print the summary table.
    #[arg(short, long)]
    pub quiet: bool,
    /// Learn a profile (roles, phases, syscalls) and write it to this file.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Phase rules for the profile: generic, nginx, auto, or a rule file.
    #[arg(long, default_value = "generic", value_name = "RULES")]
    pub phases: String,
    /// Do not record the arguments of socket, clone, mmap, openat, ioctl… (profiles then
    /// allow those calls with any arguments).
    #[arg(long)]
    pub no_args: bool,
    /// Show only these syscalls, as strace's `-e trace=SET`: names and classes (%file,
    /// %desc, %memory, %network, %process, %signal, %ipc, %creds, %clock, %stat…), `!SET` for
    /// all but them. The table, the summary and the trace hold only these (the kernel sends
    /// no record for the others); the profile and phases still see every call.
    #[arg(short = 'e', value_name = "trace=SET", value_parser = parse_trace_filter)]
    pub filter: Option<TraceFilter>,
    /// Record each call at its entry, without its return value, duration or failure. No
    /// syscall-exit program is attached, so every other process on the host pays about half
    /// as much for the tracing (BENCHMARKS.md); counts stay exact.
    #[arg(long)]
    pub entry_only: bool,
    /// For tests: keep the pending calls of tids from N on in the kernel's hash map, not its
    /// array indexed by tid.
    #[arg(long, value_name = "N", hide = true)]
    pub pending_by_tid_max: Option<u32>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub trace: TraceOptions,
    /// Run the command under this OCI seccomp profile (installed just before its execve).
    #[arg(long, value_name = "FILE")]
    pub seccomp: Option<PathBuf>,
    /// Leave out syscall names the running kernel does not know instead of failing.
    #[arg(long)]
    pub seccomp_skip_unknown: bool,
    /// Phase-aware enforcement: the union of the phases in this manifest (from `export
    /// --per-phase`), tightened to the serving phase's calls once a process starts serving.
    #[arg(long, value_name = "MANIFEST", conflicts_with = "seccomp")]
    pub seccomp_phases: Option<PathBuf>,
    /// Run the command in fresh namespaces, comma-separated: mount (its mounts stay its
    /// own), pid (it is pid 1 of a new pid namespace with its own /proc; implies mount).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "NS")]
    pub isolate: Vec<Namespace>,
    /// Start the command with its standard output closed (to see how it copes).
    #[arg(long)]
    pub close_stdout: bool,
    /// The command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["pids", "container"])))]
pub struct RecordArgs {
    #[command(flatten)]
    pub trace: TraceOptions,
    /// The processes to attach to (with their threads and descendants): repeat, or separate
    /// with commas.
    #[arg(short, long = "pid", value_name = "PID", value_delimiter = ',')]
    pub pids: Vec<u32>,
    /// Trace a container (id or name, see `agent --container`), and the programs executed in
    /// it later.
    #[arg(long, value_name = "ID|NAME")]
    pub container: Option<String>,
    /// Stop after this long (for example 30s, 5m, 500ms); default: until Ctrl-C, SIGTERM, or the
    /// process tree is gone.
    #[arg(short, long, value_name = "D", value_parser = parse_duration)]
    pub duration: Option<Duration>,
}

#[derive(Debug, Subcommand)]
pub enum TraceCommand {
    /// Print a trace file, one line per event, strace-like.
    Dump {
        /// The trace file (`-` for standard input).
        file: PathBuf,
        /// Show only these syscalls (`trace=SET`, as for run and record); without it, what
        /// the trace was recorded with.
        #[arg(short = 'e', value_name = "trace=SET", value_parser = parse_trace_filter)]
        filter: Option<TraceFilter>,
        /// One JSON object per line (t, tid, pid, event, name, args, ret, error, duration),
        /// for jq and scripts.
        #[arg(long)]
        json: bool,
    },
}

fn parse_label(s: &str) -> Result<Label, String> {
    Label::parse(s).ok_or_else(|| {
        format!("{s} is not a label phasebox can sum over: container_id, role or phase")
    })
}

fn parse_trace_filter(s: &str) -> Result<TraceFilter, FilterError> {
    TraceFilter::parse(s)
}

fn parse_ring_size(s: &str) -> anyhow::Result<u32> {
    Ok(check_ring_bytes(parse_size(s)?)?)
}

/// A duration, or `off` (zero).
fn parse_period(s: &str) -> Result<Duration, phasebox_core::units::UnitError> {
    if s.trim() == "off" {
        return Ok(Duration::ZERO);
    }
    parse_duration(s)
}

/// A clap parser for a core enum with names.
fn named<T: Named + Send + Sync>() -> impl clap::builder::TypedValueParser<Value = T> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(T::NAMES.iter().map(|(n, _)| *n))
        .map(|s| T::from_name(&s).expect("clap checked the name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_sizes() {
        let err = |s| parse_ring_size(s).unwrap_err().to_string();
        assert!(err("3000").contains("not a power of two"));
        assert!(err("1K").contains("too small"));
        assert!(err("8X").contains("suffix"));
        assert_eq!(parse_ring_size("4K").unwrap(), 4096);
    }

    #[test]
    fn several_pids() {
        let cli = Cli::try_parse_from(["phasebox", "record", "-p", "3", "-p", "4,5"]).unwrap();
        match cli.command {
            Command::Record(r) => assert_eq!(r.pids, vec![3, 4, 5]),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn the_metrics_server_is_bounded_by_default() {
        let cli = Cli::try_parse_from(["phasebox", "agent", "-p", "1"]).unwrap();
        let Command::Agent(a) = cli.command else {
            panic!("not the agent");
        };
        assert_eq!(a.max_connections, 64);
        assert_eq!(a.header_timeout, Duration::from_secs(10));
        assert_eq!(a.idle_timeout, Duration::from_secs(30));
        assert_eq!(
            (a.log_level, a.log_format),
            (LogLevel::Info, LogFormatArg::Text)
        );
        assert!(a.web_config.is_none());
        let cli = Cli::try_parse_from(["phasebox", "agent", "-p", "1", "-v"]).unwrap();
        assert!(matches!(cli.command, Command::Agent(a) if a.verbose));
        for bad in [
            ["--web.max-connections", "0"],
            ["--web.header-timeout", "0s"],
        ] {
            let args = ["phasebox", "agent", "-p", "1"].into_iter().chain(bad);
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn run_takes_the_command_verbatim() {
        let cli = Cli::try_parse_from(["phasebox", "run", "--", "/bin/pwd", "-P"]).unwrap();
        match cli.command {
            Command::Run(r) => assert_eq!(r.command, vec!["/bin/pwd", "-P"]),
            other => panic!("parsed as {other:?}"),
        }
    }
}
