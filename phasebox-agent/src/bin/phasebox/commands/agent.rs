//! `phasebox agent -p PID`: long-running. Attaches like `record` (or finds programs by name at
//! their exec, or in a container), learns roles and phases in summary mode by default, serves
//! Prometheus metrics, checkpoints the learned profile, and in monitor mode counts (or has the
//! kernel kill) calls outside the expected phase. The work is the library's `session::Agent`.
use phasebox_core::{
    metrics::SeriesLimits,
    monitor::{Monitor, UnknownRole},
    phase::Detector,
};

use crate::cli::{AgentArgs, LogFormatArg, LogLevel, OnViolation, UnknownRoles};
use phasebox::{
    containers,
    probe::stats::Sampling,
    procfs,
    session::{Agent, AgentSettings, Mode, OutputPaths, Session, Signals, Stop},
};

pub async fn agent(args: AgentArgs) -> anyhow::Result<i32> {
    init_logging(&args);
    // Before any output exists: no signal ends the agent with a file half-written.
    let mut signals = Signals::catch()?;
    let open_files = phasebox::fdlimit::raise();
    let detector = Detector::load(&args.phases)?;
    let monitor = monitor(&args, &detector)?;
    // Before attaching: a web config that cannot be used stops the agent at once.
    let web = args
        .web_config
        .as_deref()
        .map(phasebox::serve::web_config::load)
        .transpose()?
        .unwrap_or_default();
    if !args.listen.ip().is_loopback() {
        log::warn!(
            "--listen {} is not a loopback address: /metrics can be read from the network",
            args.listen
        );
    }
    let container = args
        .container
        .as_deref()
        .map(containers::find)
        .transpose()?;
    let waits = args.exec_name.is_some() || container.is_some();
    let session = start(&args, detector, container, monitor.is_some())?;
    let mut agent = Agent::new(session, &settings(&args), monitor)?;
    let limits = phasebox::serve::Limits {
        max_connections: args.max_connections as usize,
        header_timeout: args.header_timeout,
        idle_timeout: args.idle_timeout,
    };
    limits.check_descriptors(open_files);
    let server =
        phasebox::serve::start(args.listen, limits, agent.page(), agent.http_metrics(), web)?;
    phasebox::logging::announce(&format!(
        "{}; metrics on {}",
        what(&args, agent.session()),
        server.url()
    ));
    // With --exec-name or --container, the agent waits for the next start when a program ends.
    match agent.run(&mut signals, !waits).await? {
        Stop::Signal(s) => log::info!("{s}, writing what was learned"),
        _ => log::info!("the traced processes have exited"),
    }
    drop(server);
    agent.finish()?;
    Ok(0)
}

/// The agent's log, as --log.level, --verbose and --log.format ask.
fn init_logging(args: &AgentArgs) {
    use log::LevelFilter;
    let level = match (args.verbose, args.log_level) {
        (true, _) | (_, LogLevel::Debug) => LevelFilter::Debug,
        (_, LogLevel::Info) => LevelFilter::Info,
        (_, LogLevel::Warn) => LevelFilter::Warn,
        (_, LogLevel::Error) => LevelFilter::Error,
    };
    let format = match args.log_format {
        LogFormatArg::Text => phasebox::logging::LogFormat::Text,
        LogFormatArg::Logfmt => phasebox::logging::LogFormat::Logfmt,
        LogFormatArg::Json => phasebox::logging::LogFormat::Json,
    };
    phasebox::logging::init(level, format);
}

/// What the agent does besides tracing, from its arguments.
fn settings(args: &AgentArgs) -> AgentSettings {
    AgentSettings {
        stream: args.stream,
        profile: args.profile.clone(),
        checkpoint: args.checkpoint,
        bpf_stats: (!args.bpf_stats_every.is_zero()).then(|| Sampling {
            every: args.bpf_stats_every,
            window: args.bpf_stats_window.min(args.bpf_stats_every),
        }),
        shown: args.filter.clone(),
        series: SeriesLimits {
            without: args.without.clone(),
            max: args.max_series as usize,
        },
        program: args.exec_name.clone(),
    }
}

/// What the start-up line says the agent traces.
fn what(args: &AgentArgs, session: &Session) -> String {
    match (&args.exec_name, session.container_state()) {
        (Some(name), _) => format!("waiting for {name} to start"),
        (None, Some((spec, true))) => format!("tracing container {spec}"),
        (None, Some((spec, false))) => format!("waiting for container {spec} to start"),
        (None, None) => {
            let pids: Vec<String> = args.pids.iter().map(u32::to_string).collect();
            format!("tracing pid {} and descendants", pids.join(", "))
        }
    }
}

/// Monitor mode's profile, when asked for (it needs phase rules).
fn monitor(args: &AgentArgs, detector: &Detector) -> anyhow::Result<Option<Monitor>> {
    let auto = matches!(detector, Detector::Auto(_));
    if !args.stream && auto {
        anyhow::bail!("--phases auto needs every call: use it with --stream");
    }
    let kill = args.on_violation == OnViolation::Kill;
    match &args.monitor {
        Some(_) if auto => {
            anyhow::bail!(
                "monitor mode needs phase rules (generic, nginx or a rule file), not auto"
            )
        }
        Some(p) => {
            let mut m = Monitor::load(p, kill)?;
            // A profile of another program flags every call that program makes: say so first.
            let profile = phasebox_core::profile::Profile::load(p)?;
            for &pid in &args.pids {
                let exe = procfs::exe(pid);
                if let Some(other) = (!exe.is_empty())
                    .then(|| profile.other_program(std::path::Path::new(&exe)))
                    .flatten()
                {
                    log::warn!("pid {pid}: {other}");
                }
            }
            m.unknown = match args.unknown_roles {
                UnknownRoles::Violation => UnknownRole::Violation,
                UnknownRoles::Ignore => UnknownRole::Ignore,
            };
            Ok(Some(m))
        }
        None => Ok(None),
    }
}

/// The agent's session, attached to what it was asked to trace.
fn start(
    args: &AgentArgs,
    detector: Detector,
    container: Option<containers::Found>,
    monitoring: bool,
) -> anyhow::Result<Session> {
    // Programs found by name or in a container often run under a seccomp filter (a
    // container engine's): the calls it denies are noticed.
    let filtered = args.exec_name.is_some()
        || container.is_some()
        || args.pids.iter().any(|&p| procfs::under_seccomp(p));
    let in_container = container.is_some();
    let mut builder = Session::builder(Mode::Agent)
        .ring_bytes(args.ring_bytes)
        .args(!args.no_args)
        .stream(args.stream)
        .errors(args.errors)
        .filtered(filtered)
        .keep_exited(false)
        .kill(args.on_violation == OnViolation::Kill && monitoring)
        .exec_name(args.exec_name.clone())
        .phases(detector)
        .outputs(OutputPaths {
            profile: args.profile.clone(),
            quiet: true,
            ..Default::default()
        });
    if let Some(c) = container {
        builder = builder.container(c);
    }
    let mut session = builder.start()?;
    if !args.pids.is_empty() {
        session.attach(&args.pids)?;
    }
    if in_container {
        session.attach_container()?;
    }
    if monitoring {
        session.keep_attributed();
    }
    Ok(session)
}
