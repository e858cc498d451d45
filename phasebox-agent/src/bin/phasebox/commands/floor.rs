//! `phasebox floor` (hidden, for the cost benchmark): attaches only an empty program to
//! raw_syscalls/sys_enter (and with `--step exit` one to sys_exit too) until stopped, so what
//! every tracer on those tracepoints costs the host can be measured by itself.
use phasebox_common::names;

use crate::cli::{FloorArgs, FloorStep};
use phasebox::{probe::Probe, session::interrupted};

pub async fn floor(args: FloorArgs) -> anyhow::Result<i32> {
    let (program, what) = match args.step {
        FloorStep::Empty => (names::PROG_FLOOR, "an empty program is"),
        FloorStep::Pid => (names::PROG_FLOOR_PID, "a program that reads the pid is"),
        FloorStep::Bit => (
            names::PROG_FLOOR_BIT,
            "a program that reads the pid and one bitmap word is",
        ),
        FloorStep::Exit => (names::PROG_FLOOR, "empty programs are"),
    };
    let exit = matches!(args.step, FloorStep::Exit);
    let _floor = Probe::load_floor(program, exit)?;
    let tracepoints = if exit {
        "sys_enter and sys_exit"
    } else {
        "sys_enter"
    };
    phasebox::say!("phasebox floor: {what} attached to raw_syscalls/{tracepoints}");
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
