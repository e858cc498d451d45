//! The `phasebox` command: clap's definitions (`cli`) and one thin adapter per subcommand
//! (`commands`) over the library.
use std::process::ExitCode;

use clap::Parser;
use phasebox::session::{EXIT_OUTPUT_LOST, OutputsLost};

mod cli;
mod commands;

use cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::dispatch(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(err) => {
            // One sentence: the message and its causes, joined.
            let msg: Vec<String> = err.chain().map(|c| c.to_string()).collect();
            phasebox::say!("phasebox: {}", msg.join(": "));
            if err.downcast_ref::<OutputsLost>().is_some() {
                ExitCode::from(EXIT_OUTPUT_LOST)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
