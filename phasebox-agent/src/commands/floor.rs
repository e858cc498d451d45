//! `phasebox floor` (hidden, for the cost benchmark): attaches only an empty program to
//! raw_syscalls/sys_enter until stopped, so what every tracer on that tracepoint costs the
//! host can be measured by itself.
use crate::{cli::FloorArgs, probe::Probe, session::interrupted};

pub async fn floor(args: FloorArgs) -> anyhow::Result<i32> {
    let _floor = Probe::load_floor()?;
    crate::say!("phasebox floor: an empty program is attached to raw_syscalls/sys_enter");
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
