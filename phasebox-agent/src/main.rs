use std::process::ExitCode;

use clap::Parser;
use phasebox::{cli::Cli, commands};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::dispatch(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(err) => {
            // One sentence: the message and its causes, joined.
            let msg: Vec<String> = err.chain().map(|c| c.to_string()).collect();
            phasebox::say!("phasebox: {}", msg.join(": "));
            ExitCode::FAILURE
        }
    }
}
