//! Messages on standard error that never panic: when stderr is closed or full the message is
//! lost, never the run's outputs or the command's exit status. `say!` is for what a command
//! tells its user; the `log` macros are for the agent's running log (violations, checkpoints),
//! one line each, written by env_logger: in phasebox's own form (the time since the agent
//! started), or as logfmt or JSON records (`--log.format`, with `--log.level`). `say!` and
//! `out!` stay phasebox's own: a user's line is no log record (no level, no time, and it must
//! be written even where no logger was set up, in every command), so they are plain writes
//! that ignore failures.
use std::fmt;
use std::io::Write as _;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime};

/// How the agent's log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `phasebox agent: 3.3 s: warning: …`
    #[default]
    Text,
    /// `time=… level=WARN msg="…"`
    Logfmt,
    /// `{"time":"…","level":"WARN","msg":"…"}`
    Json,
}

/// The format and start of the agent's log, once set up.
static SETUP: OnceLock<(LogFormat, Instant)> = OnceLock::new();

/// Writes `text` to standard error, ignoring failures.
pub fn write_stderr(text: &str) {
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// Writes one line to standard error, ignoring failures.
pub fn write_line(args: fmt::Arguments) {
    let mut line = args.to_string();
    line.push('\n');
    write_stderr(&line);
}

/// Writes `text` to standard output, ignoring failures (a reader that went away, as `| head`
/// does, is not an error of phasebox's).
pub fn write_stdout(text: &str) {
    let _ = std::io::stdout().write_all(text.as_bytes());
}

/// Like `println!`, but a closed standard output is not a panic.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        let mut line = format!($($arg)*);
        line.push('\n');
        $crate::logging::write_stdout(&line)
    }};
}

/// Like `eprintln!`, but a closed standard error is not a panic.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::logging::write_line(format_args!($($arg)*))
    };
}

/// Sends the `log` macros to standard error through env_logger (once; later calls do
/// nothing), records up to `level` in `format`, the time counted from this first call.
pub fn init(level: log::LevelFilter, format: LogFormat) {
    let started = Instant::now();
    let _ = SETUP.set((format, started));
    let _ = builder(started, level, format)
        .target(env_logger::Target::Stderr)
        .try_init();
}

/// Says `text` in the log's format, whatever its level (the agent's start-up line: its
/// address is always told).
pub fn announce(text: &str) {
    let (format, started) = SETUP
        .get()
        .copied()
        .unwrap_or((LogFormat::Text, Instant::now()));
    let line = match format {
        LogFormat::Text => format!("phasebox agent: {text}\n"),
        _ => line(format, started, log::Level::Info, text),
    };
    write_stderr(&line);
}

/// The agent's logger: one line a record, records up to `level`. env_logger writes each line
/// with one `write_all` and drops a failed write, so a closed or full stderr never panics;
/// `Builder::new` reads no environment variable, so the agent logs the same whatever
/// RUST_LOG says.
fn builder(started: Instant, level: log::LevelFilter, format: LogFormat) -> env_logger::Builder {
    let mut b = env_logger::Builder::new();
    // Debug records are phasebox's own: its libraries' (aya's feature probes) stay out.
    b.filter_level(level.min(log::LevelFilter::Info))
        .filter_module("phasebox", level)
        .format(move |out, record| {
            let msg = record.args().to_string();
            out.write_all(line(format, started, record.level(), &msg).as_bytes())
        });
    b
}

/// One record as a line of `format`.
fn line(format: LogFormat, started: Instant, level: log::Level, msg: &str) -> String {
    let time = || humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let name = match level {
        log::Level::Error => "ERROR",
        log::Level::Warn => "WARN",
        log::Level::Info => "INFO",
        log::Level::Debug | log::Level::Trace => "DEBUG",
    };
    match format {
        LogFormat::Text => {
            let level = match level {
                log::Level::Error => "error: ",
                log::Level::Warn => "warning: ",
                log::Level::Debug | log::Level::Trace => "debug: ",
                log::Level::Info => "",
            };
            let elapsed = started.elapsed().as_secs_f64();
            format!("phasebox agent: {elapsed:.1} s: {level}{msg}\n")
        }
        LogFormat::Logfmt => format!("time={} level={name} msg={msg:?}\n", time()),
        LogFormat::Json => {
            let record = serde_json::json!({"time": time(), "level": name, "msg": msg});
            format!("{record}\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer tests read back; when `full`, every write fails (a closed or full stderr)
    /// and leaves one `!` to count the attempt.
    #[derive(Clone)]
    struct Sink {
        buf: Arc<Mutex<Vec<u8>>>,
        full: bool,
    }

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut kept = self.buf.lock().unwrap();
            if self.full {
                kept.push(b'!');
                return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
            }
            kept.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Logs `text` at `level` to a fresh logger writing to `full` or working stderr; returns
    /// what reached it.
    fn log_to(buf: &Arc<Mutex<Vec<u8>>>, full: bool, level: log::Level, text: &str) {
        let sink = Sink {
            buf: buf.clone(),
            full,
        };
        let logger = builder(Instant::now(), log::LevelFilter::Info, LogFormat::Text)
            .target(env_logger::Target::Pipe(Box::new(sink)))
            .build();
        log::Log::log(
            &logger,
            &log::Record::builder()
                .level(level)
                .args(format_args!("{text}"))
                .build(),
        );
    }

    #[test]
    fn one_line_per_record_with_the_time_and_the_level() {
        let buf = Arc::new(Mutex::new(Vec::new()));
        log_to(&buf, false, log::Level::Warn, "fd limit low");
        log_to(&buf, false, log::Level::Error, "checkpoint not written");
        log_to(&buf, false, log::Level::Info, "exited");
        log_to(&buf, false, log::Level::Debug, "not shown");
        assert_eq!(
            String::from_utf8(buf.lock().unwrap().clone()).unwrap(),
            "phasebox agent: 0.0 s: warning: fd limit low\n\
             phasebox agent: 0.0 s: error: checkpoint not written\n\
             phasebox agent: 0.0 s: exited\n"
        );
    }

    #[test]
    fn a_failing_stderr_loses_each_line_once_and_never_panics() {
        let buf = Arc::new(Mutex::new(Vec::new()));
        log_to(&buf, true, log::Level::Error, "lost");
        log_to(&buf, true, log::Level::Info, "lost too");
        // One write tried per line (a line is one write_all), its failure dropped.
        assert_eq!(buf.lock().unwrap().as_slice(), b"!!");
    }

    #[test]
    fn logfmt_and_json_records() {
        let t0 = Instant::now();
        let l = line(
            LogFormat::Logfmt,
            t0,
            log::Level::Warn,
            "a \"quoted\" word\nand more",
        );
        assert!(l.starts_with("time=20"), "{l}");
        assert!(
            l.ends_with(" level=WARN msg=\"a \\\"quoted\\\" word\\nand more\"\n"),
            "{l}"
        );
        let j = line(LogFormat::Json, t0, log::Level::Debug, "tls: \"x\"");
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["level"], "DEBUG");
        assert_eq!(v["msg"], "tls: \"x\"");
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(j.matches('\n').count(), 1, "one line: {j}");
    }
}
