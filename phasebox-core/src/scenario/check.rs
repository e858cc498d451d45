//! What makes a scenario set valid, checked when it is read: each problem names the scenario
//! (and step) it is in.
use std::path::Path;

use super::{MAX_FILE_BYTES, Scenario, ScenarioSet, Step, signal_number};
use crate::units::{UnitError, parse_duration};

/// Where in a set a problem is: a scenario, or one of its steps (counted from 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct At {
    pub scenario: String,
    pub step: Option<usize>,
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "scenario {:?}", self.scenario)?;
        match self.step {
            Some(n) => write!(f, ": step {n}"),
            None => Ok(()),
        }
    }
}

/// What makes a scenario set invalid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScenarioProblem {
    #[error("it has no [[scenario]]")]
    NoScenarios,
    #[error("{0}: a name is letters, digits and '-'")]
    BadName(At),
    #[error("{0} appears twice")]
    Twice(At),
    #[error("{0} does not say what it covers (covers = \"…\")")]
    NoCovers(At),
    #[error("{0} has no command, and the set has none")]
    NoCommand(At),
    #[error("{0}: timeout")]
    Timeout(At, #[source] UnitError),
    #[error("{0}: unknown signal {1:?} in stop")]
    UnknownStop(At, String),
    #[error("{0}: cwd must stay inside the scenario's directory")]
    CwdOutside(At),
    #[error("{0}: remove_cwd needs a cwd of its own, named directly (not with descend)")]
    RemoveCwd(At),
    #[error("{0}: file {1:?} must stay inside the directory")]
    FileOutside(At, String),
    #[error(
        "{at}: file {path:?} has size {size}, more than the {MAX_FILE_BYTES} bytes (1 GiB) a \
         scenario file may have"
    )]
    FileTooLarge { at: At, path: String, size: u64 },
    #[error("{0} must have exactly one of wait_port, http, signal, shell, sleep")]
    StepKinds(At),
    #[error("{0}: unknown signal {1:?}")]
    UnknownSignal(At, String),
    #[error("{0}")]
    Sleep(At, #[source] UnitError),
    #[error("{0}: count and concurrency must be at least 1")]
    NoRequests(At),
}

impl ScenarioSet {
    /// Checks what serde cannot: names, commands, durations, signals, paths and sizes.
    pub(super) fn check(&self) -> Result<(), ScenarioProblem> {
        if self.scenarios.is_empty() {
            return Err(ScenarioProblem::NoScenarios);
        }
        let mut names = std::collections::HashSet::new();
        for s in &self.scenarios {
            let at = At {
                scenario: s.name.clone(),
                step: None,
            };
            if s.name.is_empty()
                || !s
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Err(ScenarioProblem::BadName(at));
            }
            if !names.insert(&s.name) {
                return Err(ScenarioProblem::Twice(at));
            }
            s.check(self, at)?;
        }
        Ok(())
    }
}

impl Scenario {
    /// Checks what the set's check leaves to each scenario; `at` names it in errors.
    fn check(&self, set: &ScenarioSet, at: At) -> Result<(), ScenarioProblem> {
        if self.covers.trim().is_empty() {
            return Err(ScenarioProblem::NoCovers(at));
        }
        if set.command.is_empty() && self.command.is_empty() {
            return Err(ScenarioProblem::NoCommand(at));
        }
        if let Err(e) = parse_duration(&self.timeout) {
            return Err(ScenarioProblem::Timeout(at, e));
        }
        if let Some(sig) = &self.stop
            && signal_number(sig).is_none()
        {
            return Err(ScenarioProblem::UnknownStop(at, sig.clone()));
        }
        self.check_directory(set, &at)?;
        for (i, step) in self.steps.iter().enumerate() {
            step.check(At {
                step: Some(i + 1),
                ..at.clone()
            })?;
        }
        Ok(())
    }

    /// The working directory and the files stay inside the scenario's directory.
    fn check_directory(&self, set: &ScenarioSet, at: &At) -> Result<(), ScenarioProblem> {
        let outside = |p: &str| Path::new(p).is_absolute() || p.split('/').any(|c| c == "..");
        if outside(&self.cwd) {
            return Err(ScenarioProblem::CwdOutside(at.clone()));
        }
        if self.remove_cwd
            && (self.descend || self.cwd.split('/').all(|c| c.is_empty() || c == "."))
        {
            return Err(ScenarioProblem::RemoveCwd(at.clone()));
        }
        for f in set.files.iter().chain(&self.files) {
            if outside(&f.path) {
                return Err(ScenarioProblem::FileOutside(at.clone(), f.path.clone()));
            }
            if let Some(size) = f.size.filter(|&n| n > MAX_FILE_BYTES) {
                return Err(ScenarioProblem::FileTooLarge {
                    at: at.clone(),
                    path: f.path.clone(),
                    size,
                });
            }
        }
        Ok(())
    }
}

impl Step {
    /// Checks one driver step; `at` names it in errors.
    fn check(&self, at: At) -> Result<(), ScenarioProblem> {
        let set = [
            self.wait_port,
            self.http.is_some(),
            self.signal.is_some(),
            self.shell.is_some(),
            self.sleep.is_some(),
        ];
        if set.iter().filter(|b| **b).count() != 1 {
            return Err(ScenarioProblem::StepKinds(at));
        }
        if let Some(sig) = &self.signal
            && signal_number(sig).is_none()
        {
            return Err(ScenarioProblem::UnknownSignal(at, sig.clone()));
        }
        if let Some(d) = &self.sleep
            && let Err(e) = parse_duration(d)
        {
            return Err(ScenarioProblem::Sleep(at, e));
        }
        if let Some(h) = &self.http
            && (h.count == 0 || h.concurrency == 0)
        {
            return Err(ScenarioProblem::NoRequests(at));
        }
        Ok(())
    }
}
