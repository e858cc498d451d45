//! Argument-level policies against attack primitives (`--args`): nginx's worker serving phase,
//! redis's steady phase and pwd's whole run, each learned by phasebox and exported by names
//! only and with arguments, and Docker's default profile, under the attack probe
//! (tests/fixtures/attack_probe.c): which primitives each lets through.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use phasebox_tests::{TempDir, attack, nginx::free_port, redis};

use crate::measure::phasebox;

pub const BEGIN: &str = "<!-- bench:args:begin -->";
pub const END: &str = "<!-- bench:args:end -->";

/// redis learned with automatic phases through 20,000 requests of redis-benchmark.
fn learn_redis(bin: &Path, prof: &Path, dir: &Path) -> anyhow::Result<()> {
    let port = free_port();
    let conf = dir.join("redis.conf");
    std::fs::write(&conf, redis::config(dir, port))?;
    let mut child = Command::new(bin)
        .args(["run", "-q", "--phases", "auto", "--profile"])
        .arg(prof)
        .arg("--")
        .arg(redis::SERVER)
        .arg(&conf)
        .stdout(Stdio::null())
        .spawn()?;
    let served = (|| -> anyhow::Result<()> {
        redis::wait_up(port, Duration::from_secs(30)).map_err(anyhow::Error::msg)?;
        let port = port.to_string();
        let st = Command::new("redis-benchmark")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-n",
                "20000",
                "-q",
                "-t",
                "set,get",
            ])
            .stdout(Stdio::null())
            .status()?;
        if !st.success() {
            bail!("redis-benchmark failed");
        }
        Ok(())
    })();
    let _ = redis::cli(port, &["SHUTDOWN", "NOSAVE"]);
    let st = child.wait()?;
    served?;
    if !st.success() {
        bail!("redis under phasebox run ended with {st}");
    }
    Ok(())
}

/// The first of `names` that `role` of the profile at `prof` has as a phase.
fn phase_of(prof: &Path, role: &str, names: &[&'static str]) -> anyhow::Result<&'static str> {
    let p = phasebox_tests::profile::load(prof);
    let r = phasebox_tests::profile::role(&p, role);
    let have = phasebox_tests::profile::phase_names(r);
    names
        .iter()
        .find(|n| have.iter().any(|h| h == *n))
        .copied()
        .with_context(|| format!("{role} has none of {names:?}: {have:?}"))
}

/// One profile exported by names and with arguments; the primitives each lets through.
fn both(
    bin: &Path,
    prof: &Path,
    select: &[&str],
    dir: &Path,
    tag: &str,
) -> anyhow::Result<[BTreeMap<String, bool>; 2]> {
    let p = prof.to_str().context("UTF-8 path")?;
    let mut out = Vec::new();
    for (extra, file) in [(&["--no-args"][..], "names"), (&[][..], "args")] {
        let path = dir.join(format!("{tag}-{file}.json"));
        let mut args = vec!["export", p];
        args.extend_from_slice(select);
        args.extend_from_slice(extra);
        args.extend_from_slice(&["-o", path.to_str().context("UTF-8 path")?]);
        phasebox(bin, &args, false)?;
        out.push(attack::through(&path));
    }
    let args = out.pop().context("two exports")?;
    let names = out.pop().context("two exports")?;
    Ok([names, args])
}

/// The benchmark's Markdown section.
pub fn run(bin: &Path) -> anyhow::Result<String> {
    let dir = TempDir::new("bench-args");
    let (nginx, redis_prof, pwd) = (
        dir.path("nginx.profile.json"),
        dir.path("redis.profile.json"),
        dir.path("pwd.profile.json"),
    );
    phasebox_tests::nginx::learn_through_operations(bin, &nginx, 2);
    learn_redis(bin, &redis_prof, &dir.0)?;
    let pwd_path = pwd.to_str().context("UTF-8 path")?;
    phasebox(
        bin,
        &["run", "-q", "--profile", pwd_path, "--", "/bin/pwd"],
        false,
    )?;
    let redis_phase = phase_of(&redis_prof, "main", &["steady", "work"])?;
    let serving = "accepting-and-serving-requests";
    let mut columns: Vec<(String, BTreeMap<String, bool>)> = Vec::new();
    let runs: [(String, &PathBuf, Vec<&str>); 3] = [
        (
            "nginx worker, serving".into(),
            &nginx,
            vec!["--role", "worker", "--phase", serving],
        ),
        (
            format!("redis main, {redis_phase}"),
            &redis_prof,
            vec!["--role", "main", "--phase", redis_phase],
        ),
        ("pwd, whole run".into(), &pwd, vec![]),
    ];
    for (label, prof, select) in &runs {
        let tag = label.replace([' ', ','], "-");
        let [names, args] = both(bin, prof, select, &dir.0, &tag)?;
        columns.push((format!("{label}: names"), names));
        columns.push((format!("{label}: arguments"), args));
    }
    let docker = crate::util::root().join("tests/fixtures/docker-default-seccomp.json");
    columns.push(("Docker's default".into(), attack::through(&docker)));
    Ok(render(&columns))
}

fn render(columns: &[(String, BTreeMap<String, bool>)]) -> String {
    let mut s = String::from("## Argument-level policies against attack primitives\n\n");
    s.push_str(
        "`cargo xtask bench --args`: nginx (2 workers, through requests, 404s, two reloads, a \
         log reopening and a killed worker), redis (automatic phases, 20,000 requests of \
         redis-benchmark) and `/bin/pwd`, each learned by `phasebox run --profile`, exported by \
         names only (`--no-args`) and with the arguments each phase used (the default), and \
         Docker's default profile as a default container on x86_64 loads it. The attack probe \
         (`tests/fixtures/attack_probe.c`) makes each primitive in a child under the policy \
         (root, so only the policy stops it): `through` when the call reached the kernel, \
         `-` when the policy denied it.\n\n",
    );
    s.push_str("| primitive |");
    for (name, _) in columns {
        s.push_str(&format!(" {name} |"));
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(columns.len()));
    s.push('\n');
    for p in attack::PRIMITIVES {
        s.push_str(&format!("| {p} |"));
        for (_, c) in columns {
            let cell = if c.get(*p).copied().unwrap_or(false) {
                " through |"
            } else {
                " - |"
            };
            s.push_str(cell);
        }
        s.push('\n');
    }
    s.push_str("| **through, of 25** |");
    for (_, c) in columns {
        s.push_str(&format!(" **{}** |", c.values().filter(|t| **t).count()));
    }
    s.push('\n');
    s
}
