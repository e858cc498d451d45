//! The swarm fixture (`fixtures/swarm.c`: N children, each making exactly K getppid calls)
//! under `phasebox run`.
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};

use crate::{Guard, fixture, phasebox_bin};

/// Starts `phasebox run --summary SUMMARY -- swarm CHILDREN CALLS 0` and waits until every
/// child has made its calls and waits. Closing the returned stdin ends the swarm; then wait
/// for the guard.
pub fn run_until_ready(summary: &Path, children: u64, calls: u64) -> (Guard, ChildStdin) {
    let mut run = Guard::group(
        Command::new(phasebox_bin())
            .args(["run", "-q", "--summary", summary.to_str().unwrap(), "--"])
            .arg(fixture("swarm"))
            .args([children.to_string(), calls.to_string(), "0".into()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    let mut input = run.stdin.take().unwrap();
    let mut out = BufReader::new(run.stdout.take().unwrap());
    writeln!(input, "go").unwrap();
    let mut line = String::new();
    while !line.starts_with("ready") {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the swarm ended before its children were ready"
        );
    }
    (run, input)
}
