//! Many containers: [`CONTAINERS`] containers of a one-file image in a private dockerd, each
//! making exactly [`CALLS`] getppid calls and then waiting, under three agents started before
//! them with `--exec-name` (one per way of labelling the series).
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use phasebox_tests::{
    docker::Dockerd,
    fixture,
    metrics::{scrape_until, value},
};

use super::reading::{Agent, End, live};
use super::{Check, Measured, Row, guarded, thousands};

pub const CONTAINERS: usize = 100;
/// getppid calls each container's first process makes.
pub const CALLS: u64 = 1000;
/// Containers started at once.
pub const PARALLEL: usize = 4;
const IMAGE: &str = "phasebox-bench/tiny:scale";
/// The image's only file, the static `tiny_init` test program (run as `PROGRAM calls
/// CALLS`), under a name of its own: the tests' containers run it as /init, and
/// `--exec-name` must find these containers only.
pub const PROGRAM: &str = "scale_init";
/// How long the agents may take to have found every container.
const FOUND_LIMIT: Duration = Duration::from_secs(120);

/// An agent watching the containers, one a row.
struct Variant {
    name: &'static str,
    /// Its arguments after `--exec-name PROGRAM`.
    args: &'static [&'static str],
    /// Whether it folds series into `_other` (its getppid calls may be there): its count is
    /// then every call on its page, against the first agent's.
    folds: bool,
}

const VARIANTS: [Variant; 3] = [
    Variant {
        name: "100 containers",
        args: &[],
        folds: false,
    },
    Variant {
        name: "100 containers, series summed over containers",
        args: &["--metrics.without", "container_id"],
        folds: false,
    },
    Variant {
        name: "100 containers, at most 100 series",
        args: &["--metrics.max-series", "100"],
        folds: true,
    },
];

/// The three rows; all of them fail together when the containers could not be run.
pub fn run(bin: &Path) -> Vec<Row> {
    let outcome = guarded(|| measure(bin));
    if let Err(e) = &outcome {
        eprintln!("scale: the containers failed: {e}");
    }
    let outcomes: Vec<Result<Measured, String>> = match outcome {
        Ok(m) => m.into_iter().map(Ok).collect(),
        Err(e) => VARIANTS.iter().map(|_| Err(e.clone())).collect(),
    };
    VARIANTS
        .iter()
        .zip(outcomes)
        .map(|(v, outcome)| Row {
            name: v.name.to_string(),
            agent: format!("`{}`", v.agent_args().join(" ")),
            outcome,
        })
        .collect()
}

/// dockerd, the agents, then the containers; each agent measured once it has found every
/// container and its counters have settled.
fn measure(bin: &Path) -> anyhow::Result<Vec<Measured>> {
    let d = Dockerd::start();
    let root = d.dir().join("scale-root");
    std::fs::create_dir_all(&root)?;
    std::fs::copy(fixture("tiny_init"), root.join(PROGRAM))?;
    d.import(&root, IMAGE, &[&format!(r#"ENTRYPOINT ["/{PROGRAM}"]"#)]);
    let agents = VARIANTS
        .iter()
        .map(|v| Agent::start(bin, &v.agent_args()))
        .collect::<anyhow::Result<Vec<Agent>>>()?;
    let t0 = Instant::now();
    start_containers(&d)?;
    let ready_s = t0.elapsed().as_secs_f64();
    eprintln!("scale: {CONTAINERS} containers started in {ready_s:.1} s");
    for a in &agents {
        let page = scrape_until(a.listen(), FOUND_LIMIT, |p| {
            value(p, "phasebox_tracked_processes", &[]) >= Some(CONTAINERS as f64)
        });
        let found = value(&page, "phasebox_tracked_processes", &[]).unwrap_or(0.0);
        if found < CONTAINERS as f64 {
            bail!("an agent found {found} of the {CONTAINERS} containers");
        }
        End::settle(a)?;
    }
    let lives = live(&agents.iter().collect::<Vec<_>>())?;
    let ends = agents
        .iter()
        .map(End::settle)
        .collect::<anyhow::Result<Vec<End>>>()?;
    let mut warnings = Vec::new();
    for a in agents {
        warnings.push(a.stop()?);
    }
    // Every call of every series: what a folding agent must still count.
    let all = |e: &End| e.sum("phasebox_syscalls_total", &[]);
    let checks: Vec<Check> = VARIANTS
        .iter()
        .zip(&ends)
        .map(|(v, end)| {
            if v.folds {
                Check {
                    what: "all calls = the first row's".into(),
                    counted: all(end),
                    expected: all(&ends[0]),
                }
            } else {
                getppid_check(end)
            }
        })
        .collect();
    Ok(lives
        .into_iter()
        .zip(ends)
        .zip(checks)
        .zip(warnings)
        .map(|(((live, end), check), warnings)| Measured {
            processes: CONTAINERS as u64,
            ready_s,
            exited_per_min: None,
            live,
            end,
            check,
            warnings,
        })
        .collect())
}

impl Variant {
    /// The agent's arguments.
    fn agent_args(&self) -> Vec<&'static str> {
        [&["--exec-name", PROGRAM], self.args].concat()
    }
}

/// The containers' getppid calls on an agent's page, against what they made.
fn getppid_check(end: &End) -> Check {
    Check {
        what: format!("getppid = {CONTAINERS} containers × {}", thousands(CALLS)),
        counted: end.sum(
            "phasebox_syscalls_total",
            &[("program", PROGRAM), ("syscall", "getppid")],
        ),
        expected: (CONTAINERS as u64 * CALLS) as f64,
    }
}

/// `docker run -d … IMAGE calls CALLS` [`CONTAINERS`] times, [`PARALLEL`] at once.
fn start_containers(d: &Dockerd) -> anyhow::Result<()> {
    let next = AtomicUsize::new(0);
    let calls = CALLS.to_string();
    let failures: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..PARALLEL)
            .map(|_| {
                s.spawn(|| {
                    let mut failed = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= CONTAINERS {
                            return failed;
                        }
                        let name = format!("scale-{i}");
                        let out = d.docker(&[
                            "run",
                            "-d",
                            "--network",
                            "none",
                            "--name",
                            &name,
                            IMAGE,
                            "calls",
                            &calls,
                        ]);
                        if !out.status.success() {
                            failed.push(format!(
                                "{name}: {}",
                                String::from_utf8_lossy(&out.stderr).trim()
                            ));
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|_| vec!["a starter panicked".into()])
            })
            .collect()
    });
    if !failures.is_empty() {
        bail!(
            "{} of {CONTAINERS} containers did not start: {}",
            failures.len(),
            failures[0]
        );
    }
    Ok(())
}
