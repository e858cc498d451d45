//! `cargo xtask study`: the poster's three research questions answered with measurements, for
//! pwd and nginx, into docs/study.md. Every number comes from this run: the scenario sets
//! traced (per-phase essential calls), `phasebox static`, the exported policies compared
//! (allowed, missing, security-critical), each scenario set re-run under each policy
//! (accuracy), and nginx's requests/s under each policy with wrk (performance).
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use phasebox_tests::nginx::Nginx;
use serde_json::Value;

use crate::bench::median;
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

/// Runs phasebox; its stderr. Fails unless `may_fail`.
fn phasebox(bin: &Path, args: &[&str], may_fail: bool) -> anyhow::Result<(bool, String)> {
    let out = Command::new(bin)
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .with_context(|| format!("cannot run phasebox {args:?}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() && !may_fail {
        bail!("phasebox {args:?} failed: {stderr}");
    }
    Ok((out.status.success(), stderr))
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
    let docker = root.join("tests/fixtures/docker-default-seccomp.json");
    let mut doc = String::new();
    let mut rq2 = String::new();
    let mut nginx_files = None;
    // Per program: (key, allowed, missing, scenarios passed, critical allowed).
    let mut stats: Vec<(String, Vec<Stat>)> = Vec::new();
    for (name, binary, one) in PROGRAMS {
        eprintln!("study: {name}: scenarios, static analysis, policies");
        let scen = dir.join(name);
        let set_file = root.join(format!("scenarios/{name}.toml"));
        phasebox(
            &bin,
            &["scenarios", "run", s(&set_file), "-o", s(&scen)],
            false,
        )?;
        let merged = scen.join("merged.profile.json");
        let dynamic = dir.join(format!("{name}.dynamic.profile.json"));
        std::fs::copy(&merged, &dynamic)?;
        let stat = dir.join(format!("{name}.static.json"));
        phasebox(&bin, &["static", binary, "-o", s(&stat)], false)?;
        let oci = |tag: &str| dir.join(format!("{name}.{tag}.oci.json"));
        phasebox(&bin, &["export", s(&stat), "-o", s(&oci("static"))], false)?;
        phasebox(
            &bin,
            &["export", s(&dynamic), "-o", s(&oci("union"))],
            false,
        )?;
        let one_profile = scen.join(format!("{one}.profile.json"));
        phasebox(
            &bin,
            &["export", s(&one_profile), "-o", s(&oci("one"))],
            false,
        )?;
        let phases = dir.join(format!("{name}-phases"));
        phasebox(
            &bin,
            &["export", s(&dynamic), "--per-phase", s(&phases)],
            false,
        )?;
        // Accuracy for real: the whole scenario set under each flat policy.
        let mut under = std::collections::BTreeMap::new();
        for tag in ["static", "union", "one"] {
            eprintln!("study: {name}: scenarios under the {tag} policy");
            let out = dir.join(format!("{name}-under-{tag}"));
            let (_, err) = phasebox(
                &bin,
                &[
                    "scenarios",
                    "run",
                    s(&set_file),
                    "-o",
                    s(&out),
                    "--seccomp",
                    s(&oci(tag)),
                ],
                true,
            )?;
            under.insert(tag, passed(&err));
        }
        let cmp = dir.join(format!("{name}.compare.json"));
        let mut cmp_args = vec!["compare", s(&dynamic), s(&stat), s(&docker)];
        cmp_args.extend(extra.iter().map(|p| s(p)));
        cmp_args.extend(["--json", s(&cmp)]);
        phasebox(&bin, &cmp_args, false)?;
        let c = json(&cmp)?;
        let critical_names: BTreeSet<String> = c["critical"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x["name"].as_str().map(String::from))
            .collect();
        let p = json(&dynamic)?;
        let st = json(&stat)?;
        let used = profile_names(&p, None);
        let whole = set(&st["static"]["whole_image"]);
        let static_set = profile_names(&st, None);
        let one_set = profile_names(&json(&one_profile)?, None);
        // RQ1: the per-phase table.
        let _ = writeln!(
            doc,
            "### {name}\n\n{} scenarios (`scenarios/{name}.toml`), every one traced from its \
             execve; a call is essential to a phase when some scenario made it there.\n\n\
             | role | phase | calls | essential system calls |\n|---|---|---|---|",
            json(&scen.join("coverage.json"))?["scenarios"]
                .as_array()
                .map_or(0, Vec::len)
        );
        let mut steady = None;
        for r in p["roles"].as_array().into_iter().flatten() {
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
                    steady = Some((
                        format!("{role} / {phase}"),
                        names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>(),
                    ));
                }
            }
        }
        doc.push('\n');
        // RQ2: one row per policy.
        let mut rows = vec![
            PolicyRow {
                key: "docker",
                label: "Docker's default profile".into(),
                allowed: allowed_of(&c, "docker-default-seccomp.json", &p)?,
                passed: None,
            },
            PolicyRow {
                key: "whole",
                label: "Confine-style whole image (every syscall in the binary and its libraries)"
                    .into(),
                allowed: whole.clone(),
                passed: None,
            },
            PolicyRow {
                key: "static",
                label: "**phasebox static** (reachable from the entry points)".into(),
                allowed: static_set.clone(),
                passed: Some(under["static"].clone()),
            },
            PolicyRow {
                key: "one",
                label: format!("dynamic, one scenario ({one})"),
                allowed: one_set,
                passed: Some(under["one"].clone()),
            },
            PolicyRow {
                key: "union",
                label: "**dynamic** (every scenario, union of roles and phases)".into(),
                allowed: used.clone(),
                passed: Some(under["union"].clone()),
            },
        ];
        for e in &extra {
            let n = e
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            rows.push(PolicyRow {
                key: "imported",
                label: format!("imported: {n}"),
                allowed: allowed_of(&c, &n, &p)?,
                passed: None,
            });
        }
        if let Some((label, calls)) = &steady {
            rows.push(PolicyRow {
                key: "phase",
                label: format!("**phase-aware** (once serving: {label})"),
                allowed: calls.clone(),
                passed: None,
            });
        }
        let _ = writeln!(
            rq2,
            "### {name}\n\nMissing: calls some scenario made that the policy denies (it would \
             break the program). Scenarios passed: the whole set re-run under the policy \
             (`phasebox scenarios run … --seccomp`). Critical: of the {} security-critical \
             calls phasebox lists, those the policy allows.\n\n\
             | policy | allows | missing | scenarios passed under it | critical allowed |\n|---|---|---|---|---|",
            critical_names.len()
        );
        let mut prog_stats = Vec::new();
        for r in &rows {
            let missing: Vec<&String> = used.difference(&r.allowed).collect();
            // The phase-aware row is judged against its own phase only.
            let missing = if r.key == "phase" {
                Vec::new()
            } else {
                missing
            };
            let critical: Vec<&String> = critical_names.intersection(&r.allowed).collect();
            prog_stats.push(Stat {
                key: r.key,
                allowed: r.allowed.len(),
                missing: missing.len(),
                passed: r.passed.clone(),
                critical: critical.iter().map(|c| c.to_string()).collect(),
            });
            let _ = writeln!(
                rq2,
                "| {} | {} | {} | {} | {}: {} |",
                r.label,
                r.allowed.len(),
                if missing.is_empty() {
                    "0".to_string()
                } else {
                    format!(
                        "{}: {}",
                        missing.len(),
                        missing
                            .iter()
                            .map(|m| m.as_str())
                            .collect::<Vec<_>>()
                            .join(" ")
                    )
                },
                r.passed.as_deref().unwrap_or("—"),
                critical.len(),
                if critical.is_empty() {
                    "none".to_string()
                } else {
                    critical
                        .iter()
                        .map(|m| m.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                }
            );
        }
        stats.push((name.to_string(), prog_stats));
        let _ = writeln!(
            rq2,
            "\nphasebox static over-approximates the traced set by {} calls ({} vs {}); the \
             whole-image set has {}.\n",
            static_set.difference(&used).count(),
            static_set.len(),
            used.len(),
            whole.len()
        );
        if *name == "nginx" {
            nginx_files = Some((
                oci("static"),
                oci("union"),
                phases.join("manifest.json"),
                steady,
            ));
        }
    }
    let (static_oci, union_oci, manifest, _) = nginx_files.context("nginx was not studied")?;
    let perf = nginx_bench(&bin, &static_oci, &union_oci, &manifest, quick)?;
    let page = render(&doc, &rq2, &perf, &answers(&stats, &perf), quick);
    std::fs::write(root.join("docs/study.md"), page)?;
    println!("study: docs/study.md written; files in {}", dir.display());
    Ok(())
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
