//! `phasebox record -p PID`: attach to running process trees.
use phasebox_core::display;

use super::trace_session;
use crate::cli::RecordArgs;
use phasebox::{
    containers, procfs,
    session::{Mode, Session, Signals, Stop},
};

pub async fn record(args: RecordArgs) -> anyhow::Result<i32> {
    // Before any output exists: no signal ends phasebox with a file half-written.
    let mut signals = Signals::catch()?;
    for &pid in &args.pids {
        phasebox::session::check_target(pid)?;
    }
    let container = args
        .container
        .as_deref()
        .map(containers::find)
        .transpose()?;
    let filtered = container.is_some() || args.pids.iter().any(|&p| procfs::under_seccomp(p));
    let mut builder = trace_session(Mode::Record, &args.trace)?
        .stream(true)
        .filtered(filtered);
    if let Some(c) = container.clone() {
        builder = builder.container(c);
    }
    let mut session = builder.start()?;
    let n = match &container {
        Some(_) => session.attach_container()?,
        None => session.attach(&args.pids)?,
    };
    let list = match session.container_state() {
        Some((spec, _)) => format!("container {}", display::text(&spec)),
        None => {
            let pids: Vec<String> = args.pids.iter().map(u32::to_string).collect();
            format!("pid {}", pids.join(", "))
        }
    };
    match (n, &container) {
        (0, None) => anyhow::bail!("{list} exited before phasebox could attach to it"),
        (0, Some(_)) => phasebox::say!("phasebox: waiting for {list} to start; Ctrl-C to stop"),
        _ => phasebox::say!(
            "phasebox: tracing {list} and descendants ({n} process{}); Ctrl-C to stop",
            if n == 1 { "" } else { "es" }
        ),
    }
    let deadline = args.duration.map(|d| tokio::time::Instant::now() + d);
    // A container's later processes come with `docker exec`: it ends only on a signal or
    // --duration.
    let why = trace(&mut session, &mut signals, deadline, container.is_none()).await?;
    if why == Stop::TreeExited && !args.trace.quiet {
        phasebox::say!("phasebox: {list} and descendants have exited");
    }
    session.finish()?;
    Ok(0)
}

/// Traces until a signal, the deadline or (with `end_when_gone`) the tree's end; SIGUSR1
/// writes a checkpoint on the way.
async fn trace(
    session: &mut Session,
    signals: &mut Signals,
    deadline: Option<tokio::time::Instant>,
    end_when_gone: bool,
) -> anyhow::Result<Stop> {
    loop {
        let stop = async {
            let signal = async { signals.next().await.for_tracer() };
            match deadline {
                Some(t) => tokio::select! {
                    s = signal => s,
                    _ = tokio::time::sleep_until(t) => Stop::Duration,
                },
                None => signal.await,
            }
        };
        match session.run(stop, end_when_gone).await? {
            Stop::Checkpoint(signal) => session.checkpoint(signal),
            why => return Ok(why),
        }
    }
}
