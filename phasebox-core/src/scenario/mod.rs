//! Execution scenarios: a TOML file names a program and the ways to exercise it, each in a
//! clean environment (docs/scenarios.md). This module holds the format and its checks; the
//! agent's runner runs them, coverage says what each one added.
mod check;
pub mod coverage;
pub mod oracle;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::file_error::FileError;
use crate::input::TomlError;

pub use check::{At, ScenarioProblem};

/// Why a scenario file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Toml(#[from] TomlError),
    #[error("{origin} is not a valid scenario file")]
    Invalid {
        origin: String,
        #[source]
        problem: ScenarioProblem,
    },
}

/// A scenario set: one program, several scenarios.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSet {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Phase rules for every scenario (generic, nginx, auto or a rule file).
    #[serde(default = "generic")]
    pub phases: String,
    /// The command every scenario runs unless it names its own.
    #[serde(default)]
    pub command: Vec<String>,
    /// Files every scenario's directory gets (before the scenario's own).
    #[serde(default, rename = "file")]
    pub files: Vec<FileSpec>,
    /// A shell command run in every scenario's directory before the scenario's own setup.
    pub setup: Option<String>,
    #[serde(rename = "scenario")]
    pub scenarios: Vec<Scenario>,
}

fn generic() -> String {
    "generic".into()
}

/// What the program's standard output is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stdout {
    /// Kept, for `expect.stdout*`.
    #[default]
    Capture,
    /// /dev/null.
    Null,
    /// Closed before the program starts.
    Closed,
    /// /dev/full: every write fails with ENOSPC.
    Full,
}

/// Fresh namespaces for the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Namespace {
    Mount,
    Pid,
}

/// A file written into the scenario's directory before it runs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Relative to the scenario's directory.
    pub path: String,
    #[serde(default)]
    pub content: String,
    /// Or this many bytes of 'x' (large files), at most MAX_FILE_BYTES.
    pub size: Option<u64>,
}

/// The largest file a scenario may ask for with `size` (it is written in pieces, never held
/// in memory; a larger one is a typo or would fill the disk).
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// One HTTP exchange (or `count` of them).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpStep {
    #[serde(default = "root_path")]
    pub path: String,
    /// The status every response must have.
    #[serde(default = "ok_status")]
    pub status: u16,
    /// Requests in all.
    #[serde(default = "one")]
    pub count: u32,
    /// Clients sending them at once.
    #[serde(default = "one")]
    pub concurrency: u32,
    /// Send all of one client's requests on one connection.
    #[serde(default)]
    pub keepalive: bool,
    /// Send these bytes instead of a GET (a malformed request, say); \r\n as written.
    pub raw: Option<String>,
    /// Each response body must contain this.
    pub body_contains: Option<String>,
    /// Each response body must be this long.
    pub body_bytes: Option<u64>,
}

fn root_path() -> String {
    "/".into()
}
fn ok_status() -> u16 {
    200
}
fn one() -> u32 {
    1
}

/// One step of the driver; exactly one field is set.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Wait until 127.0.0.1:{port} accepts connections.
    #[serde(default)]
    pub wait_port: bool,
    pub http: Option<HttpStep>,
    /// A signal name for the program (HUP, USR1, QUIT, TERM…).
    pub signal: Option<String>,
    /// A shell command run in the scenario's directory ($PB_PID, $PB_PORT, $PB_DIR set);
    /// it must exit 0.
    pub shell: Option<String>,
    /// A pause, like "200ms" or "1s".
    pub sleep: Option<String>,
}

/// What success means.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default)]
    pub exit: i32,
    pub stdout: Option<String>,
    pub stdout_contains: Option<String>,
    pub stderr_contains: Option<String>,
}

/// One scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    /// One line: what this scenario covers.
    pub covers: String,
    /// Replaces the set's command.
    #[serde(default)]
    pub command: Vec<String>,
    /// Appended to the command.
    #[serde(default)]
    pub args: Vec<String>,
    /// Added to a clean environment (PATH, HOME={dir}, LANG=C).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub files: Vec<FileSpec>,
    /// A shell command run in the directory before the program (not traced).
    pub setup: Option<String>,
    /// The program's working directory, relative to the scenario's directory.
    #[serde(default = "dot")]
    pub cwd: String,
    /// Then go down into the only subdirectory until there is none (for working directories
    /// longer than PATH_MAX, which cannot be named whole).
    #[serde(default)]
    pub descend: bool,
    /// Remove the working directory once the program's environment is set up: it starts in
    /// a deleted directory.
    #[serde(default)]
    pub remove_cwd: bool,
    #[serde(default)]
    pub stdout: Stdout,
    /// Fresh namespaces (pid implies mount).
    #[serde(default)]
    pub isolate: Vec<Namespace>,
    /// The driver: steps run in order while the program runs.
    #[serde(default, rename = "step")]
    pub steps: Vec<Step>,
    /// A signal sent after the last step to end the program (else it ends by itself).
    pub stop: Option<String>,
    /// Longest the scenario may take, like "20s".
    #[serde(default = "default_timeout")]
    pub timeout: String,
    #[serde(default)]
    pub expect: Expect,
}

fn dot() -> String {
    ".".into()
}
fn default_timeout() -> String {
    "30s".into()
}

/// Signal numbers by name, with or without SIG.
pub fn signal_number(name: &str) -> Option<i32> {
    let n = name.trim().trim_start_matches("SIG");
    Some(match n {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "WINCH" => libc::SIGWINCH,
        _ => return None,
    })
}

impl ScenarioSet {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<ScenarioSet, ScenarioError> {
        let text = crate::input::read_text(path, crate::input::TEXT)?;
        ScenarioSet::parse(&text, &crate::input::origin(path))
    }

    /// Parses and checks; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<ScenarioSet, ScenarioError> {
        let set: ScenarioSet =
            toml::from_str(text).map_err(|e| TomlError::new(text, origin, &e))?;
        set.check().map_err(|problem| ScenarioError::Invalid {
            origin: origin.to_string(),
            problem,
        })?;
        Ok(set)
    }
}

impl Scenario {
    /// The command line, before placeholders are filled in.
    pub fn argv(&self, set: &ScenarioSet) -> Vec<String> {
        let base = if self.command.is_empty() {
            &set.command
        } else {
            &self.command
        };
        base.iter().chain(&self.args).cloned().collect()
    }
}

/// Fills in {dir} and {port}.
pub fn expand(s: &str, dir: &str, port: u16) -> String {
    s.replace("{dir}", dir).replace("{port}", &port.to_string())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Sentence;
    use crate::units::parse_duration;

    const GOOD: &str = r#"
name = "demo"
command = ["/bin/pwd"]
[[scenario]]
name = "plain"
covers = "the usual run"
[[scenario]]
name = "srv"
covers = "a server"
command = ["/usr/sbin/nginx", "-p", "{dir}"]
stop = "QUIT"
[[scenario.step]]
wait_port = true
[[scenario.step]]
http = { path = "/x", status = 404, count = 3 }
"#;

    #[test]
    fn parses_a_set() {
        let set = ScenarioSet::parse(GOOD, "t").unwrap();
        assert_eq!(set.phases, "generic");
        assert_eq!(set.scenarios[0].argv(&set), ["/bin/pwd"]);
        assert_eq!(set.scenarios[1].steps[1].http.as_ref().unwrap().count, 3);
        assert_eq!(expand("{dir}/a:{port}", "/t", 80), "/t/a:80");
    }

    #[test]
    fn rejects_bad_sets_with_a_reason() {
        let cases = [
            (
                GOOD.replace("covers = \"the usual run\"", ""),
                "missing field `covers`",
            ),
            (GOOD.replace("\"srv\"", "\"plain\""), "appears twice"),
            (GOOD.replace("\"QUIT\"", "\"NOPE\""), "unknown signal"),
            (
                GOOD.replace("wait_port = true", "wait_port = true\nsleep = \"1s\""),
                "exactly one",
            ),
            (GOOD.replace("count = 3", "count = 0"), "at least 1"),
            (
                GOOD.replace("name = \"plain\"", "name = \"plain\"\ncwd = \"../x\""),
                "inside",
            ),
            (
                GOOD.replace("name = \"plain\"", "name = \"plain\"\ntimeout = \"soon\""),
                "duration",
            ),
            (GOOD.replace("command = [\"/bin/pwd\"]", ""), "no command"),
            (
                GOOD.replace("name = \"plain\"", "name = \"plain\"\nremove_cwd = true"),
                "remove_cwd",
            ),
            (
                GOOD.replace("covers = \"a server\"", "covers = \"a server\"\nbogus = 1"),
                "t.toml:10:1: unknown field `bogus`",
            ),
            (
                GOOD.replace(
                    "name = \"plain\"",
                    "name = \"plain\"\nfiles = [{ path = \"a\", size = 18446744073709551615 }]",
                ),
                "file \"a\" has size 18446744073709551615, more than the 1073741824 bytes",
            ),
        ];
        for (text, want) in cases {
            let err = ScenarioSet::parse(&text, "t.toml").unwrap_err().sentence();
            assert!(err.starts_with("t.toml"), "{err}");
            assert!(!err.contains('\n'), "more than one line: {err}");
            assert!(err.contains(want), "{want:?} not in {err}");
        }
        // TOML errors say where: file:line:column.
        let e = ScenarioSet::parse(&GOOD.replace("covers = \"the usual run\"", ""), "t.toml")
            .unwrap_err()
            .sentence();
        assert_eq!(e, "t.toml:4:1: missing field `covers`");
        let e = ScenarioSet::parse("name = \"x\"\n[[scenario]\n", "t.toml")
            .unwrap_err()
            .sentence();
        assert!(e.starts_with("t.toml:2:"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("x").is_err());
    }
}
