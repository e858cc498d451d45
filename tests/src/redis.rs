//! redis-server (Debian's package) for tests and benchmarks: its configuration with data in a
//! directory of the caller's, and redis-cli against it, every call bounded in time.
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Debian's redis-server.
pub const SERVER: &str = "/usr/bin/redis-server";

/// A configuration for 127.0.0.1:`port` with its data and this file in `dir`: no save points
/// and no append-only file, so only the operations a caller asks for write to disk; the log on
/// standard output (`docker logs`).
pub fn config(dir: &Path, port: u16) -> String {
    format!(
        "bind 127.0.0.1\nport {port}\ndir {}\ndaemonize no\nsupervised no\nlogfile \"\"\n\
         save \"\"\nappendonly no\n",
        dir.display()
    )
}

/// `redis-cli -p PORT ARGS…` (10 s at most): its reply, or why it failed (no answer, an error
/// reply).
pub fn cli(port: u16, args: &[&str]) -> Result<String, String> {
    let out = Command::new("timeout")
        .args([
            "10",
            "redis-cli",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .args(args)
        .env_remove(crate::CARGO_LIBRARY_PATH)
        .output()
        .map_err(|e| format!("redis-cli: {e}"))?;
    let reply = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if !out.status.success() || reply.starts_with("ERR") || reply.starts_with("(error)") {
        return Err(format!("redis-cli {args:?}: {reply} {said}"));
    }
    if reply.is_empty() && !said.is_empty() {
        return Err(format!("redis-cli {args:?}: {said}"));
    }
    Ok(reply)
}

/// The value of `field` in `INFO`'s reply, if redis answers.
pub fn info(port: u16, field: &str) -> Option<String> {
    let text = cli(port, &["INFO"]).ok()?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{field}:")))
        .map(str::to_string)
}

/// Waits until redis on `port` answers PING (for at most `limit`).
pub fn wait_up(port: u16, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        match cli(port, &["PING"]) {
            Ok(r) if r == "PONG" => return Ok(()),
            other if Instant::now() >= deadline => {
                return Err(format!(
                    "redis on {port} not up within {limit:?}: {other:?}"
                ));
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// BGSAVE, waited for: the save time (LASTSAVE) must move past the one before, the child must
/// be done and report success. Waits first for the clock to pass the last save's second, so
/// a save in the same second cannot look like no save.
pub fn bgsave(port: u16, limit: Duration) -> Result<(), String> {
    let before: u64 = cli(port, &["LASTSAVE"])?
        .parse()
        .map_err(|e| format!("LASTSAVE: {e}"))?;
    let deadline = Instant::now() + limit;
    while unix_now() <= before {
        if Instant::now() >= deadline {
            return Err("the clock never passed LASTSAVE".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = cli(port, &["BGSAVE"])?;
    if !started.contains("Background saving started") {
        return Err(format!("BGSAVE said {started:?}"));
    }
    loop {
        let now: Option<u64> = cli(port, &["LASTSAVE"]).ok().and_then(|s| s.parse().ok());
        let done = info(port, "rdb_bgsave_in_progress").as_deref() == Some("0");
        if done && now.is_some_and(|t| t > before) {
            return match info(port, "rdb_last_bgsave_status").as_deref() {
                Some("ok") => Ok(()),
                other => Err(format!("BGSAVE ended with status {other:?}")),
            };
        }
        if done && info(port, "rdb_last_bgsave_status").as_deref() == Some("err") {
            return Err("BGSAVE failed (rdb_last_bgsave_status:err)".into());
        }
        if Instant::now() >= deadline {
            return Err(format!("BGSAVE not done within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
