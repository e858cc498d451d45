//! strace as the oracle: runs a command under `strace -f` and counts each syscall the way
//! phasebox does, on entry, so calls that never return (exit_group) count too. (`strace -c`
//! counts on return and so leaves those out.)
use std::process::{Command, Stdio};

use crate::{Counts, TempDir};

/// Calls and errors per syscall of `argv` and all its threads and children, from its execve on.
pub fn counts(argv: &[&str]) -> Counts {
    let dir = TempDir::new("strace");
    let log = dir.path("strace.log");
    let status = Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(&log)
        .args(argv)
        .env_remove(crate::CARGO_LIBRARY_PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("strace runs");
    let _ = status;
    parse(&std::fs::read_to_string(&log).expect("strace wrote its log"))
}

/// Parses `strace -f -o` output: "PID name(args) = ret", split into "<unfinished ...>" and
/// "<... name resumed>" halves when threads interleave.
pub fn parse(log: &str) -> Counts {
    let mut out = Counts::new();
    for line in log.lines() {
        // Drop the leading pid.
        let rest = line.split_once(' ').map_or(line, |(_, r)| r).trim_start();
        if rest.starts_with("+++") || rest.starts_with("---") {
            continue;
        }
        let (name, finished) = if let Some(r) = rest.strip_prefix("<... ") {
            (r.split(' ').next().unwrap_or_default().to_string(), true)
        } else {
            let Some(paren) = rest.find('(') else {
                continue;
            };
            let name = rest[..paren].to_string();
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || name.is_empty() {
                continue;
            }
            out.entry(name.clone()).or_default().0 += 1;
            (name, !rest.ends_with("<unfinished ...>"))
        };
        if finished && is_error(rest) {
            out.entry(name).or_default().1 += 1;
        }
    }
    out
}

/// Whether a finished strace line reports an error return ("= -1 ENOENT (...)", "= ? ERESTART…").
fn is_error(rest: &str) -> bool {
    // strace pads before " = " to align columns.
    let Some(idx) = rest.rfind(" = ") else {
        return false;
    };
    let ret = &rest[idx + 3..];
    let mut parts = ret.split_whitespace();
    let (Some(val), Some(code)) = (parts.next(), parts.next()) else {
        return false;
    };
    (val == "-1" || val == "?") && code.starts_with('E')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_interleaved_threads() {
        let log = "100 execve(\"/x\", [\"/x\"], 0x7ff /* 3 vars */) = 0\n\
                   100 openat(AT_FDCWD, \"/nope\", O_RDONLY) = -1 ENOENT (No such file or directory)\n\
                   101 read(3,  <unfinished ...>\n\
                   100 getpid() = 100\n\
                   101 <... read resumed>\"\", 10)    = -1 EAGAIN (Resource temporarily unavailable)\n\
                   101 futex(0x1, FUTEX_WAIT, 0, NULL) = ? ERESTARTSYS (To be restarted if SA_RESTART is set)\n\
                   101 +++ exited with 0 +++\n\
                   100 --- SIGCHLD {si_signo=SIGCHLD} ---\n\
                   100 exit_group(0) = ?\n";
        let c = parse(log);
        assert_eq!(c["execve"], (1, 0));
        assert_eq!(c["openat"], (1, 1));
        assert_eq!(c["read"], (1, 1));
        assert_eq!(c["getpid"], (1, 0));
        assert_eq!(c["futex"], (1, 1));
        assert_eq!(c["exit_group"], (1, 0));
        assert_eq!(c.len(), 6);
    }
}
