//! `phasebox floor` (hidden, for the cost benchmark): attaches only an empty program to
//! raw_syscalls/sys_enter until stopped, so what every tracer on that tracepoint costs the
//! host can be measured by itself.
use phasebox_common::names;

use crate::cli::{FloorArgs, FloorStep};
use phasebox::{probe::Probe, session::interrupted};

pub async fn floor(args: FloorArgs) -> anyhow::Result<i32> {
    let (program, what) = match args.step {
        FloorStep::Empty => (names::PROG_FLOOR, "an empty program"),
        FloorStep::Pid => (names::PROG_FLOOR_PID, "a program that reads the pid"),
        FloorStep::Bit => (
            names::PROG_FLOOR_BIT,
            "a program that reads the pid and one bitmap word",
        ),
    };
    let _floor = Probe::load_floor(program)?;
    phasebox::say!("phasebox floor: {what} is attached to raw_syscalls/sys_enter");
    match args.duration {
        Some(d) => {
            tokio::select! {
                _ = interrupted() => {}
                _ = tokio::time::sleep(d) => {}
            }
        }
        None => {
            interrupted().await;
        }
    }
    Ok(0)
}
