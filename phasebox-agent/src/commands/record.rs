//! `phasebox record -p PID`: attach to running process trees.
use super::trace_session;
use crate::{
    cli::RecordArgs,
    session::{Mode, Stop, interrupted},
};

pub async fn record(args: RecordArgs) -> anyhow::Result<i32> {
    for &pid in &args.pids {
        crate::session::check_target(pid)?;
    }
    let mut session = trace_session(Mode::Record, &args.trace)?
        .stream(true)
        .start()?;
    let n = session.attach(&args.pids)?;
    let list: Vec<String> = args.pids.iter().map(u32::to_string).collect();
    let list = list.join(", ");
    if n == 0 {
        anyhow::bail!("process {list} exited before phasebox could attach to it");
    }
    crate::say!(
        "phasebox: tracing pid {list} and descendants ({n} process{}); Ctrl-C to stop",
        if n == 1 { "" } else { "es" }
    );
    let duration = args.duration;
    let stop = async move {
        match duration {
            Some(d) => tokio::select! {
                s = interrupted() => s,
                _ = tokio::time::sleep(d) => Stop::Duration,
            },
            None => interrupted().await,
        }
    };
    let why = session.run(stop, true).await?;
    if why == Stop::TreeExited && !args.trace.quiet {
        crate::say!("phasebox: process {list} and descendants have exited");
    }
    session.finish()?;
    Ok(0)
}
