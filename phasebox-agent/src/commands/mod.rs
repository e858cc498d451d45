//! One file per subcommand, wiring the pieces together.
mod agent;
mod analyze;
mod compare;
mod export;
mod output;
mod profile;
mod record;
mod report;
mod run;
mod scenarios;
mod static_analysis;
mod trace;
mod validate;

use crate::cli::{Cli, Command, ScenariosCommand, TraceCommand};

/// Runs a parsed command line; returns the process exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => runtime()?.block_on(run::run(args)),
        Command::Record(args) => runtime()?.block_on(record::record(args)),
        Command::Agent(args) => runtime()?.block_on(agent::agent(args)),
        Command::Trace(TraceCommand::Dump { file }) => trace::dump(&file),
        Command::Analyze(args) => analyze::analyze(&args),
        Command::Profile(cmd) => profile::profile(&cmd),
        Command::Compare(args) => compare::compare(&args),
        Command::Export(args) => export::export(&args),
        Command::Static(args) => static_analysis::run(&args),
        Command::Validate(args) => validate::validate(&args),
        Command::Scenarios(ScenariosCommand::Run(args)) => scenarios::run(&args),
        Command::Scenarios(ScenariosCommand::List { file }) => scenarios::list(&file),
        Command::Report(args) => report::report(&args),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))
}
