//! `cargo xtask study`: the poster's three research questions answered with measurements, for
//! pwd and nginx, into docs/study.md. Every number comes from this run: the scenario sets
//! traced (per-phase essential calls), `phasebox static`, the exported policies compared
//! (allowed, missing, security-critical), each scenario set re-run under each policy
//! (accuracy), and nginx's requests/s under each policy with wrk (performance).
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use phasebox_tests::nginx::Nginx;
use serde_json::Value;

use crate::measure::{median, phasebox};
use crate::study_page::{Perf, Stat, answers, render};
use crate::util;

/// The programs: (name, binary, the scenario a one-scenario profile is learned from).
const PROGRAMS: &[(&str, &str, &str)] = &[
    ("pwd", "/bin/pwd", "plain"),
    ("nginx", "/usr/sbin/nginx", "static-file"),
];
/// Loopback ports for the nginx measurements, one per policy.
const FIRST_PORT: u16 = 18160;

fn json(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

fn set(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Every syscall of a profile, or of one role.
fn profile_names(p: &Value, role: Option<&str>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for r in p["roles"].as_array().into_iter().flatten() {
        if role.is_some_and(|want| r["name"] != want) {
            continue;
        }
        for ph in r["phases"].as_array().into_iter().flatten() {
            out.extend(
                ph["syscalls"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k.clone()),
            );
        }
    }
    out
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// One policy of the comparison.
struct PolicyRow {
    /// docker, whole, static, one, union, imported, phase.
    key: &'static str,
    label: String,
    allowed: BTreeSet<String>,
    /// "N of M" scenarios passed under it, when it was run.
    passed: Option<String>,
}

/// "phasebox: N of M scenarios passed" → "N of M".
fn passed(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| {
            let l = l.strip_prefix("phasebox: ")?;
            let (n, _) = l.split_once(" scenarios passed")?;
            Some(n.to_string())
        })
        .unwrap_or_else(|| format!("none ({})", stderr.lines().last().unwrap_or("no output")))
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let extra: Vec<PathBuf> = args
        .windows(2)
        .filter(|w| w[0] == "--policy")
        .map(|w| PathBuf::from(&w[1]))
        .collect();
    let bin = util::build_phasebox()?;
    let root = util::root();
    let dir = root.join("target/study");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let study = Study {
        bin,
        docker: root.join("tests/fixtures/docker-default-seccomp.json"),
        dir,
        extra,
    };
    let mut doc = String::new();
    let mut rq2 = String::new();
    let mut nginx = None;
    // Per program: (key, allowed, missing, scenarios passed, critical allowed).
    let mut stats: Vec<(String, Vec<Stat>)> = Vec::new();
    for &program in PROGRAMS {
        let p = Program::new(&root, &study.dir, program);
        let prog_stats = study.program(&p, &mut doc, &mut rq2)?;
        stats.push((p.name.to_string(), prog_stats));
        if p.name == "nginx" {
            nginx = Some(p);
        }
    }
    let nginx = nginx.context("nginx was not studied")?;
    let perf = nginx_bench(
        &study.bin,
        &nginx.oci("static"),
        &nginx.oci("union"),
        &nginx.phases.join("manifest.json"),
        quick,
    )?;
    let page = render(&doc, &rq2, &perf, &answers(&stats, &perf), quick);
    std::fs::write(root.join("docs/study.md"), page)?;
    println!(
        "study: docs/study.md written; files in {}",
        study.dir.display()
    );
    Ok(())
}

/// What every program's study shares: the phasebox binary, the output directory, and the
/// policies every comparison includes besides the program's own.
struct Study {
    bin: PathBuf,
    dir: PathBuf,
    /// Docker's default seccomp profile.
    docker: PathBuf,
    /// Imported policies (`--policy FILE`).
    extra: Vec<PathBuf>,
}

/// One program of the study and the files made for it.
struct Program {
    name: &'static str,
    /// Its binary, for static analysis.
    binary: &'static str,
    /// The scenario a one-scenario profile is learned from.
    one: &'static str,
    /// Its scenario set, `scenarios/NAME.toml`.
    set_file: PathBuf,
    /// Where the scenario set's run writes its profiles.
    scen: PathBuf,
    /// The profile learned from one scenario.
    one_profile: PathBuf,
    /// The profile learned from every scenario.
    dynamic: PathBuf,
    /// `phasebox static`'s output.
    stat: PathBuf,
    /// The per-phase export's directory.
    phases: PathBuf,
    dir: PathBuf,
}

impl Program {
    fn new(
        root: &Path,
        dir: &Path,
        (name, binary, one): (&'static str, &'static str, &'static str),
    ) -> Self {
        let scen = dir.join(name);
        Program {
            name,
            binary,
            one,
            set_file: root.join(format!("scenarios/{name}.toml")),
            one_profile: scen.join(format!("{one}.profile.json")),
            scen,
            dynamic: dir.join(format!("{name}.dynamic.profile.json")),
            stat: dir.join(format!("{name}.static.json")),
            phases: dir.join(format!("{name}-phases")),
            dir: dir.to_path_buf(),
        }
    }

    /// The exported flat policy of one kind: static, union or one.
    fn oci(&self, tag: &str) -> PathBuf {
        self.dir.join(format!("{}.{tag}.oci.json", self.name))
    }
}

/// The call sets of one program that its policies are made of.
struct CallSets {
    /// Every call some scenario made (the dynamic profile).
    used: BTreeSet<String>,
    /// Every call in the binary and its libraries.
    whole: BTreeSet<String>,
    /// The calls reachable from the entry points (`phasebox static`).
    static_set: BTreeSet<String>,
    /// The calls of the profile learned from one scenario.
    one_set: BTreeSet<String>,
}

impl CallSets {
    fn read(p: &Program, profile: &Value) -> anyhow::Result<Self> {
        let st = json(&p.stat)?;
        Ok(CallSets {
            used: profile_names(profile, None),
            whole: set(&st["static"]["whole_image"]),
            static_set: profile_names(&st, None),
            one_set: profile_names(&json(&p.one_profile)?, None),
        })
    }
}

/// A server's steady phase: "role / phase" and its calls, the phase-aware policy.
struct SteadyPhase {
    label: String,
    calls: BTreeSet<String>,
}

impl Study {
    /// One program's study: its RQ1 table into `doc`, its RQ2 table into `rq2`; the numbers
    /// the answers quote.
    fn program(
        &self,
        p: &Program,
        doc: &mut String,
        rq2: &mut String,
    ) -> anyhow::Result<Vec<Stat>> {
        eprintln!("study: {}: scenarios, static analysis, policies", p.name);
        self.produce(p)?;
        let under = self.run_under_policies(p)?;
        let c = self.compare(p)?;
        let critical = critical_names(&c);
        let profile = json(&p.dynamic)?;
        let sets = CallSets::read(p, &profile)?;
        let steady = write_phase_table(doc, p, &profile)?;
        let mut rows = measured_rows(&c, &profile, &sets, p.one, &under)?;
        rows.extend(imported_rows(&c, &profile, &self.extra)?);
        if let Some(steady) = steady {
            rows.push(PolicyRow {
                key: "phase",
                label: format!("**phase-aware** (once serving: {})", steady.label),
                allowed: steady.calls,
                passed: None,
            });
        }
        Ok(write_policy_table(rq2, p.name, &rows, &sets, &critical))
    }

    /// Traces the scenario set, analyzes the binary, exports the flat and per-phase policies.
    fn produce(&self, p: &Program) -> anyhow::Result<()> {
        let bin = &self.bin;
        phasebox(
            bin,
            &["scenarios", "run", s(&p.set_file), "-o", s(&p.scen)],
            false,
        )?;
        std::fs::copy(p.scen.join("merged.profile.json"), &p.dynamic)?;
        phasebox(bin, &["static", p.binary, "-o", s(&p.stat)], false)?;
        phasebox(
            bin,
            &["export", s(&p.stat), "-o", s(&p.oci("static"))],
            false,
        )?;
        phasebox(
            bin,
            &["export", s(&p.dynamic), "-o", s(&p.oci("union"))],
            false,
        )?;
        phasebox(
            bin,
            &["export", s(&p.one_profile), "-o", s(&p.oci("one"))],
            false,
        )?;
        phasebox(
            bin,
            &["export", s(&p.dynamic), "--per-phase", s(&p.phases)],
            false,
        )?;
        Ok(())
    }

    /// Accuracy for real: the whole scenario set under each flat policy; per policy, the
    /// scenarios passed ("N of M").
    fn run_under_policies(&self, p: &Program) -> anyhow::Result<BTreeMap<&'static str, String>> {
        let mut under = BTreeMap::new();
        for tag in ["static", "union", "one"] {
            eprintln!("study: {}: scenarios under the {tag} policy", p.name);
            let out = self.dir.join(format!("{}-under-{tag}", p.name));
            let (_, err) = phasebox(
                &self.bin,
                &[
                    "scenarios",
                    "run",
                    s(&p.set_file),
                    "-o",
                    s(&out),
                    "--seccomp",
                    s(&p.oci(tag)),
                ],
                true,
            )?;
            under.insert(tag, passed(&err));
        }
        Ok(under)
    }

    /// `phasebox compare` of the dynamic profile, the static analysis, Docker's default and
    /// the imported policies; its JSON.
    fn compare(&self, p: &Program) -> anyhow::Result<Value> {
        let cmp = self.dir.join(format!("{}.compare.json", p.name));
        let mut cmp_args = vec!["compare", s(&p.dynamic), s(&p.stat), s(&self.docker)];
        cmp_args.extend(self.extra.iter().map(|e| s(e)));
        cmp_args.extend(["--json", s(&cmp)]);
        phasebox(&self.bin, &cmp_args, false)?;
        json(&cmp)
    }
}

/// The security-critical calls a comparison JSON lists.
fn critical_names(c: &Value) -> BTreeSet<String> {
    c["critical"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x["name"].as_str().map(String::from))
        .collect()
}

/// RQ1: one program's per-phase table into `doc`; its steady phase, when it has one.
fn write_phase_table(
    doc: &mut String,
    p: &Program,
    profile: &Value,
) -> anyhow::Result<Option<SteadyPhase>> {
    let name = p.name;
    let _ = writeln!(
        doc,
        "### {name}\n\n{} scenarios (`scenarios/{name}.toml`), every one traced from its \
         execve; a call is essential to a phase when some scenario made it there.\n\n\
         | role | phase | calls | essential system calls |\n|---|---|---|---|",
        json(&p.scen.join("coverage.json"))?["scenarios"]
            .as_array()
            .map_or(0, Vec::len)
    );
    let mut steady = None;
    for r in profile["roles"].as_array().into_iter().flatten() {
        let role = r["name"].as_str().unwrap_or_default();
        for ph in r["phases"].as_array().into_iter().flatten() {
            let names: Vec<&String> = ph["syscalls"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
                .collect();
            let phase = ph["name"].as_str().unwrap_or_default();
            let _ = writeln!(
                doc,
                "| {role} | {phase} | {} | {} |",
                names.len(),
                names
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if phase == "accepting-and-serving-requests" {
                steady = Some(SteadyPhase {
                    label: format!("{role} / {phase}"),
                    calls: names.iter().map(|n| n.to_string()).collect(),
                });
            }
        }
    }
    doc.push('\n');
    Ok(steady)
}

/// RQ2: the rows of the policies this study made or measured: Docker's default, the whole
/// image, static, one scenario, dynamic union.
fn measured_rows(
    c: &Value,
    profile: &Value,
    sets: &CallSets,
    one: &str,
    under: &BTreeMap<&str, String>,
) -> anyhow::Result<Vec<PolicyRow>> {
    Ok(vec![
        PolicyRow {
            key: "docker",
            label: "Docker's default profile".into(),
            allowed: allowed_of(c, "docker-default-seccomp.json", profile)?,
            passed: None,
        },
        PolicyRow {
            key: "whole",
            label: "Confine-style whole image (every syscall in the binary and its libraries)"
                .into(),
            allowed: sets.whole.clone(),
            passed: None,
        },
        PolicyRow {
            key: "static",
            label: "**phasebox static** (reachable from the entry points)".into(),
            allowed: sets.static_set.clone(),
            passed: Some(under["static"].clone()),
        },
        PolicyRow {
            key: "one",
            label: format!("dynamic, one scenario ({one})"),
            allowed: sets.one_set.clone(),
            passed: Some(under["one"].clone()),
        },
        PolicyRow {
            key: "union",
            label: "**dynamic** (every scenario, union of roles and phases)".into(),
            allowed: sets.used.clone(),
            passed: Some(under["union"].clone()),
        },
    ])
}

/// RQ2: one row per imported policy (`--policy FILE`).
fn imported_rows(c: &Value, profile: &Value, extra: &[PathBuf]) -> anyhow::Result<Vec<PolicyRow>> {
    let mut rows = Vec::new();
    for e in extra {
        let n = e
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        rows.push(PolicyRow {
            key: "imported",
            label: format!("imported: {n}"),
            allowed: allowed_of(c, &n, profile)?,
            passed: None,
        });
    }
    Ok(rows)
}

/// RQ2: one program's policy table into `rq2`, then how far static analysis over-approximates;
/// each row's numbers for the answers.
fn write_policy_table(
    rq2: &mut String,
    name: &str,
    rows: &[PolicyRow],
    sets: &CallSets,
    critical_names: &BTreeSet<String>,
) -> Vec<Stat> {
    let _ = writeln!(
        rq2,
        "### {name}\n\nMissing: calls some scenario made that the policy denies (it would \
         break the program). Scenarios passed: the whole set re-run under the policy \
         (`phasebox scenarios run … --seccomp`). Critical: of the {} security-critical \
         calls phasebox lists, those the policy allows.\n\n\
         | policy | allows | missing | scenarios passed under it | critical allowed |\n|---|---|---|---|---|",
        critical_names.len()
    );
    let stats = rows
        .iter()
        .map(|r| write_policy_row(rq2, r, &sets.used, critical_names))
        .collect();
    let _ = writeln!(
        rq2,
        "\nphasebox static over-approximates the traced set by {} calls ({} vs {}); the \
         whole-image set has {}.\n",
        sets.static_set.difference(&sets.used).count(),
        sets.static_set.len(),
        sets.used.len(),
        sets.whole.len()
    );
    stats
}

/// One row of the policy table into `rq2`; its numbers for the answers.
fn write_policy_row(
    rq2: &mut String,
    r: &PolicyRow,
    used: &BTreeSet<String>,
    critical_names: &BTreeSet<String>,
) -> Stat {
    // The phase-aware row is judged against its own phase only.
    let missing: Vec<&String> = if r.key == "phase" {
        Vec::new()
    } else {
        used.difference(&r.allowed).collect()
    };
    let critical: Vec<&String> = critical_names.intersection(&r.allowed).collect();
    let _ = writeln!(
        rq2,
        "| {} | {} | {} | {} | {}: {} |",
        r.label,
        r.allowed.len(),
        if missing.is_empty() {
            "0".to_string()
        } else {
            format!("{}: {}", missing.len(), spaced(&missing))
        },
        r.passed.as_deref().unwrap_or("—"),
        critical.len(),
        if critical.is_empty() {
            "none".to_string()
        } else {
            spaced(&critical)
        }
    );
    Stat {
        key: r.key,
        allowed: r.allowed.len(),
        missing: missing.len(),
        passed: r.passed.clone(),
        critical: critical.iter().map(|c| c.to_string()).collect(),
    }
}

/// Names separated by spaces.
fn spaced(names: &[&String]) -> String {
    names
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The allowed set of `policy` from a comparison JSON: for any role, its over-approximation
/// plus the role's calls it does not miss.
fn allowed_of(c: &Value, policy: &str, profile: &Value) -> anyhow::Result<BTreeSet<String>> {
    let row = c["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["policy"] == policy && r["phase"] == "(all phases)")
        .with_context(|| format!("no comparison row for {policy}"))?;
    let used = profile_names(profile, row["role"].as_str());
    let missing = set(&row["missing"]);
    let mut out = set(&row["over_approximation"]);
    out.extend(used.difference(&missing).cloned());
    Ok(out)
}

/// One nginx measurement: requests/s and failed requests (non-2xx/3xx plus socket errors).
fn wrk(url: &str, secs: u64) -> anyhow::Result<(f64, u64)> {
    let out = util::output("wrk", &["-t1", "-c32", &format!("-d{secs}s"), url])?;
    let rps = out
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk output:\n{out}"))?;
    let mut failed = 0;
    for l in out.lines() {
        if let Some(v) = l.trim().strip_prefix("Non-2xx or 3xx responses:") {
            failed += v.trim().parse::<u64>().unwrap_or(0);
        }
        if let Some(v) = l.trim().strip_prefix("Socket errors:") {
            failed += v
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    Ok((rps, failed))
}

/// nginx under each policy, modes alternated per round; (label, median req/s, failed, quit ok).
fn nginx_bench(
    bin: &Path,
    static_oci: &Path,
    union_oci: &Path,
    manifest: &Path,
    quick: bool,
) -> anyhow::Result<Vec<Perf>> {
    let (rounds, secs) = if quick { (2, 2) } else { (5, 5) };
    let b = s(bin);
    let modes: Vec<(&str, Vec<&str>)> = vec![
        ("nginx alone (no phasebox, no filter)", vec![]),
        ("phasebox run, no filter", vec![b, "run", "-q", "--"]),
        (
            "phasebox static policy (run --seccomp)",
            vec![b, "run", "-q", "--seccomp", s(static_oci), "--"],
        ),
        (
            "dynamic union policy (run --seccomp)",
            vec![b, "run", "-q", "--seccomp", s(union_oci), "--"],
        ),
        (
            "phase-aware (run --seccomp-phases)",
            vec![b, "run", "-q", "--seccomp-phases", s(manifest), "--"],
        ),
    ];
    let mut rps: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    let mut failed = vec![0u64; modes.len()];
    let mut quit_ok = vec![true; modes.len()];
    for round in 0..rounds {
        for k in 0..modes.len() {
            let m = (k + round) % modes.len();
            let mut nginx = Nginx::start_under_on(&modes[m].1, FIRST_PORT + m as u16);
            let url = nginx.url("/index.html");
            let (_, f0) = wrk(&url, 1)?;
            let (r, f) = wrk(&url, secs)?;
            quit_ok[m] &= nginx.quit().success();
            eprintln!(
                "study: round {} {}: {r:.0} req/s, {} failed",
                round + 1,
                modes[m].0,
                f0 + f
            );
            rps[m].push(r);
            failed[m] += f0 + f;
        }
    }
    Ok(modes
        .iter()
        .enumerate()
        .map(|(m, (label, _))| {
            let (lo, hi) = rps[m]
                .iter()
                .fold((f64::MAX, 0.0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
            let med = median(&mut rps[m]);
            Perf {
                label: label.to_string(),
                rps: med,
                spread: 100.0 * (hi - lo) / med,
                failed: failed[m],
                quit_ok: quit_ok[m],
            }
        })
        .collect())
}
