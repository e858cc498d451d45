//! Messages on standard error that never panic: when stderr is closed or full the message is
//! lost, never the run's outputs or the command's exit status. `say!` is for what a command
//! tells its user; the `log` macros are for the agent's running log (violations, checkpoints),
//! one line each with the time since the agent started.
use std::fmt;
use std::io::Write as _;
use std::sync::OnceLock;
use std::time::Instant;

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

struct Logger {
    started: Instant,
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Error => "error: ",
            log::Level::Warn => "warning: ",
            _ => "",
        };
        write_line(format_args!(
            "phasebox agent: {:.1} s: {level}{}",
            self.started.elapsed().as_secs_f64(),
            record.args()
        ));
    }

    fn flush(&self) {}
}

/// Sends the `log` macros to standard error (once; later calls do nothing).
pub fn init() {
    static LOGGER: OnceLock<Logger> = OnceLock::new();
    let logger = LOGGER.get_or_init(|| Logger {
        started: Instant::now(),
    });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}
