//! `phasebox scenarios run FILE`: every scenario traced in a fresh environment, a profile
//! each, the merged profile and the coverage; `scenarios list FILE`.
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};

use phasebox_core::{
    atomic_file::write_atomic,
    display,
    file_error::FileError,
    profile::{Profile, compare::merge},
    rules::BUILTIN,
    scenario::{
        Scenario, ScenarioSet,
        coverage::{self, ScenarioCoverage},
        oracle::{OracleDiff, strace_names},
    },
    seccomp::export::select,
};

use crate::cli::ScenariosRunArgs;
use phasebox::runner::{self, Tracer};

pub fn list(file: &Path) -> anyhow::Result<i32> {
    let set = ScenarioSet::load(file)?;
    phasebox::out!(
        "{} ({} scenarios, phase rules {}): {}",
        display::text(&set.name),
        set.scenarios.len(),
        display::text(&set.phases),
        display::text(&set.description)
    );
    let names: Vec<_> = set
        .scenarios
        .iter()
        .map(|s| display::text(&s.name))
        .collect();
    let w = display::column(names.iter().map(AsRef::as_ref), 0);
    for (s, name) in set.scenarios.iter().zip(&names) {
        phasebox::out!("  {name:<w$}  {}", display::text(&s.covers));
    }
    Ok(0)
}

/// A one-line progress bar on a terminal; plain lines elsewhere.
struct Progress {
    total: usize,
    tty: bool,
}

impl Progress {
    fn start(&self, done: usize, name: &str) {
        if self.tty {
            let width = 24;
            let filled = done * width / self.total.max(1);
            phasebox::logging::write_stderr(&format!(
                "\r\x1b[2K[{}{}] {done}/{} {name}…",
                "█".repeat(filled),
                "░".repeat(width - filled),
                self.total
            ));
            let _ = std::io::stderr().flush();
        }
    }

    fn line(&self, done: usize, text: &str) {
        if self.tty {
            phasebox::logging::write_stderr("\r\x1b[2K");
        }
        phasebox::say!("[{done}/{}] {text}", self.total);
    }
}

/// What one scenario gave.
struct Done {
    name: String,
    /// The learned profile, unless the scenario failed before one could be trusted.
    profile: Option<Profile>,
    oracle: Option<OracleDiff>,
    /// Why it failed.
    failure: Option<String>,
    /// How it went, for the `ok` line.
    detail: String,
}

impl Done {
    fn line(&self) -> String {
        match &self.failure {
            Some(why) => format!("FAIL {}: {why}", self.name),
            None => format!("ok   {} {}", self.name, self.detail),
        }
    }
}

fn selected<'a>(set: &'a ScenarioSet, only: &[String]) -> anyhow::Result<Vec<&'a Scenario>> {
    for name in only {
        if !set.scenarios.iter().any(|s| &s.name == name) {
            let all: Vec<&str> = set.scenarios.iter().map(|s| s.name.as_str()).collect();
            anyhow::bail!(
                "{} has no scenario {name} (it has: {})",
                set.name,
                all.join(", ")
            );
        }
    }
    Ok(set
        .scenarios
        .iter()
        .filter(|s| only.is_empty() || only.contains(&s.name))
        .collect())
}

/// Runs one scenario under phasebox (and under strace with the oracle).
fn one(
    set: &ScenarioSet,
    s: &Scenario,
    dir: &Path,
    args: &ScenariosRunArgs,
) -> anyhow::Result<Done> {
    let path = dir.join(format!("{}.profile.json", s.name));
    let tracer = Tracer::Phasebox {
        exe: std::env::current_exe()?,
        profile: path.clone(),
        seccomp: args.seccomp.clone(),
    };
    let out = runner::run(set, s, &tracer)?;
    let log = dir.join(format!("{}.log", s.name));
    write_atomic(
        &log,
        format!("--- stdout\n{}--- stderr\n{}", out.stdout, out.stderr).as_bytes(),
    )?;
    let mut done = Done {
        name: s.name.clone(),
        profile: None,
        oracle: None,
        failure: None,
        detail: String::new(),
    };
    if let Some(why) = out.failure {
        let _ = std::fs::remove_file(&path);
        done.failure = Some(format!("{why} (output in {})", log.display()));
        return Ok(done);
    }
    let mut profile = Profile::load(&path)?;
    for r in &mut profile.runs {
        r.name = format!("{}/{}", set.name, s.name);
    }
    profile.save(&path)?;
    let names = select(&profile, None, None)?;
    done.detail = format!(
        "({:.1} s, {} syscalls in {} roles)",
        out.elapsed.as_secs_f64(),
        names.len(),
        profile.roles.len()
    );
    if args.oracle_strace && !oracle(set, s, dir, &names, &mut done)? {
        return Ok(done);
    }
    done.profile = Some(profile);
    Ok(done)
}

/// Runs the scenario again under strace in a fresh environment; its syscalls must be the
/// profile's `names`. False when the scenario failed under strace (its profile is not kept).
fn oracle(
    set: &ScenarioSet,
    s: &Scenario,
    dir: &Path,
    names: &std::collections::BTreeSet<String>,
    done: &mut Done,
) -> anyhow::Result<bool> {
    let st = dir.join(format!("{}.strace", s.name));
    let o = runner::run(set, s, &Tracer::Strace { log: st.clone() })?;
    let log = std::fs::read_to_string(&st).unwrap_or_default();
    let _ = std::fs::remove_file(&st);
    if let Some(why) = o.failure {
        done.failure = Some(format!("under strace: {why}"));
        return Ok(false);
    }
    let d = OracleDiff::new(&strace_names(&log), names);
    if d.agrees() {
        done.detail.push_str(&format!("; {}", d.describe()));
    } else {
        done.failure = Some(format!("differs from strace: {}", d.describe()));
    }
    done.oracle = Some(d);
    Ok(true)
}

/// `path` made absolute against the current directory (it must exist).
fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    Ok(path.canonicalize().map_err(FileError::on("find", path))?)
}

/// The set at `args.file`, with a rule file it names found beside it, wherever scenarios run.
fn load_set(args: &ScenariosRunArgs) -> anyhow::Result<ScenarioSet> {
    let mut set = ScenarioSet::load(&args.file)?;
    let builtin = set.phases == "auto" || BUILTIN.iter().any(|(n, _)| *n == set.phases);
    if !builtin && Path::new(&set.phases).is_relative() {
        let here = args.file.parent().unwrap_or(Path::new("."));
        set.phases = absolute(&here.join(&set.phases))?.display().to_string();
    }
    if let Some(oci) = &args.seccomp {
        // A bad profile fails once, here, rather than in every scenario.
        phasebox_core::seccomp::oci::OciProfile::load(oci)?;
    }
    Ok(set)
}

pub fn run(args: &ScenariosRunArgs) -> anyhow::Result<i32> {
    let set = load_set(args)?;
    let chosen = selected(&set, &args.only)?;
    let dir = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("phasebox-scenarios-{}", set.name)));
    std::fs::create_dir_all(&dir).map_err(FileError::on("create", &dir))?;
    // Each scenario runs in a directory of its own: paths given relative to here must not
    // depend on that.
    let dir = absolute(&dir)?;
    let mut args = args.clone();
    args.seccomp = args.seccomp.as_deref().map(absolute).transpose()?;
    let progress = Progress {
        total: chosen.len(),
        tty: std::io::stderr().is_terminal(),
    };
    let mut results = Vec::new();
    for (i, s) in chosen.iter().enumerate() {
        progress.start(i, &s.name);
        let done = one(&set, s, &dir, &args)?;
        progress.line(i + 1, &done.line());
        results.push(done);
    }
    let failed = results.iter().filter(|d| d.failure.is_some()).count();
    let text = write_results(&set, &results, &dir)?;
    phasebox::out!("{text}");
    phasebox::say!(
        "phasebox: {} of {} scenarios passed; profiles, merged.profile.json, coverage and report.html in {}",
        chosen.len() - failed,
        chosen.len(),
        dir.display()
    );
    Ok(if failed == 0 { 0 } else { 1 })
}

/// The merged profile, the coverage (text and JSON) and the report of a set's results in
/// `dir`; returns the coverage text.
fn write_results(set: &ScenarioSet, results: &[Done], dir: &Path) -> anyhow::Result<String> {
    let learned: Vec<(String, &Profile)> = results
        .iter()
        .filter_map(|d| d.profile.as_ref().map(|p| (d.name.clone(), p)))
        .collect();
    if learned.is_empty() {
        anyhow::bail!("no scenario of {} passed: nothing learned", set.name);
    }
    let all: Vec<Profile> = learned.iter().map(|(_, p)| (*p).clone()).collect();
    merge(&all)?.save(&dir.join("merged.profile.json"))?;
    let cov: Vec<ScenarioCoverage> = coverage::coverage(&learned);
    let text = coverage::render(&cov);
    write_atomic(&dir.join("coverage.txt"), text.as_bytes())?;
    let oracle: std::collections::BTreeMap<_, _> = results
        .iter()
        .filter_map(|d| d.oracle.as_ref().map(|o| (d.name.clone(), o)))
        .collect();
    let json = serde_json::json!({ "set": set.name, "scenarios": cov, "oracle": oracle });
    let json = serde_json::to_string_pretty(&json).expect("serializes");
    write_atomic(&dir.join("coverage.json"), json.as_bytes())?;
    let title = Some(format!("phasebox scenarios: {}", set.name));
    let page = phasebox_core::report::page(learned, &[], title, Vec::new())?;
    write_atomic(&dir.join("report.html"), page.as_bytes())?;
    Ok(text)
}
