//! One file per subcommand: each parses nothing (clap did), builds what the library needs
//! from its arguments, calls it, and says what happened.
mod agent;
mod analyze;
mod compare;
mod docs;
mod export;
mod floor;
mod profile;
mod record;
mod report;
mod run;
mod scenarios;
mod static_analysis;
mod trace;
mod validate;

use phasebox_core::phase::Detector;

use crate::cli::{Cli, Command, ScenariosCommand, TraceCommand, TraceOptions};
use phasebox::session::{Mode, OutputPaths, Session, SessionBuilder};

/// Runs a parsed command line; returns the process exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => runtime()?.block_on(run::run(args)),
        Command::Record(args) => runtime()?.block_on(record::record(args)),
        Command::Agent(args) => runtime()?.block_on(agent::agent(args)),
        Command::Trace(TraceCommand::Dump { file, filter, json }) => {
            trace::dump(&file, filter.as_ref(), json)
        }
        Command::Analyze(args) => analyze::analyze(&args),
        Command::Profile(cmd) => profile::profile(&cmd),
        Command::Compare(args) => compare::compare(&args),
        Command::Export(args) => export::export(&args),
        Command::Static(args) => static_analysis::run(&args),
        Command::Validate(args) => runtime()?.block_on(validate::validate(args)),
        Command::Scenarios(ScenariosCommand::Run(args)) => scenarios::run(&args),
        Command::Scenarios(ScenariosCommand::List { file }) => scenarios::list(&file),
        Command::Report(args) => report::report(&args),
        Command::Completions { shell } => docs::completions(shell),
        Command::Manpages { dir } => docs::manpages(&dir),
        Command::Floor(args) => runtime()?.block_on(floor::floor(args)),
    }
}

/// Writes `text` to standard output.
fn write_stdout(text: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    stdout_result(out.write_all(text).and_then(|()| out.flush()))
}

/// A write to standard output's outcome as the command's: a closed pipe (`| head`) is a
/// normal end, any other error one sentence.
fn stdout_result(written: std::io::Result<()>) -> anyhow::Result<()> {
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => anyhow::bail!(
            "cannot write to standard output: {}",
            phasebox_core::sysnames::describe_io(&e)
        ),
        _ => Ok(()),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))
}

/// A session for `run` or `record` with the outputs and phase rules of `opts`.
fn trace_session(mode: Mode, opts: &TraceOptions) -> anyhow::Result<SessionBuilder> {
    let mut b = Session::builder(mode)
        .ring_bytes(opts.ring_bytes)
        .args(!opts.no_args)
        .entry_only(opts.entry_only)
        .pending_by_tid_max(opts.pending_by_tid_max)
        .outputs(OutputPaths {
            summary: opts.summary.clone(),
            trace: opts.output.clone(),
            profile: opts.profile.clone(),
            quiet: opts.quiet,
            shown: opts.filter.clone(),
        });
    if opts.profile.is_some() {
        b = b.phases(Detector::load(&opts.phases)?);
    }
    Ok(b)
}
