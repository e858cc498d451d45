//! `cargo xtask bench --deploy`: do the policies phasebox exports keep real servers working?
//! For each server (servers.rs), measured in one run:
//!
//! - learned by the documented flow in a private dockerd: `phasebox agent --container NAME`
//!   started before the container, the server driven through its operations and stopped, then
//!   `phasebox export --for-runtime docker`;
//! - (a) a fresh container under that profile through the same operations, load, the
//!   operations again, and the stop;
//! - (b) the same server on the host under phase-aware enforcement (`phasebox run
//!   --seccomp-phases`) of a profile learned by `phasebox run --profile` through the
//!   operations, with the same load;
//! - what was said before deployment: `export` and `profile show` warnings, the hybrid review
//!   (`export --hybrid` of `phasebox static`), and `phasebox validate` with each profile
//!   through the same operations and load.
//!
//! A failure is reported as measured, with its reason, and whether it was named beforehand.
mod load;
mod place;
mod report;
mod said;
mod servers;
mod stage;
mod stores;
mod web;

use std::path::{Path, PathBuf};

use phasebox_tests::{TempDir, docker::Dockerd};

use load::Load;
use place::Target;
use said::{Said, before_deployment};
use stage::{Ctx, Stage};

pub const BEGIN: &str = "<!-- bench:deploy:begin -->";
pub const END: &str = "<!-- bench:deploy:end -->";

/// Something a deployment does to a running server; Err says what went wrong.
pub struct Op {
    pub name: &'static str,
    pub run: fn(&Target) -> Result<(), String>,
}

/// A server of the table.
pub struct Server {
    pub name: &'static str,
    pub program: &'static str,
    /// The command that prints its version.
    pub version: &'static [&'static str],
    /// Files its image needs besides the program and its libraries.
    pub files: fn() -> anyhow::Result<Vec<PathBuf>>,
    /// The phase rules it is learned with.
    pub rules: &'static str,
    /// Writes its configuration and content for 127.0.0.1:PORT into DIR; its command line.
    pub setup: fn(&Path, u16) -> anyhow::Result<Vec<String>>,
    /// Whether it answers.
    pub ready: fn(&Target) -> bool,
    pub ops: Vec<Op>,
    /// How it is stopped; a clean stop exits with status 0.
    pub stop: Op,
    pub load: fn(&Target, usize) -> Result<Load, String>,
    /// Whether a line of its logs reports a process of it that crashed.
    pub crashed: fn(&str) -> bool,
}

/// A profile learned by one flow, and what was said about it before deployment.
pub struct Learned {
    /// The learning run: operations that failed there, crashes.
    pub run: Stage,
    pub said: Said,
    /// Syscalls the exported policy allows (for Docker: the union, runtime calls included).
    pub allowed: usize,
}

/// One row: a server through both flows.
pub struct Row {
    pub name: &'static str,
    /// The operations, in their order, and the stop.
    pub ops: Vec<&'static str>,
    pub version: String,
    pub docker: Result<Learned, String>,
    /// (a): a fresh container under the Docker export.
    pub a: Result<Stage, String>,
    /// validate with the profile learned in Docker.
    pub validate_a: Result<Stage, String>,
    pub host: Result<Learned, String>,
    /// (b): phase-aware enforcement of the profile learned on the host.
    pub b: Result<Stage, String>,
    /// validate with the profile learned on the host.
    pub validate_b: Result<Stage, String>,
}

/// The first line `argv` prints (on either stream).
fn version(argv: &[&str]) -> String {
    std::process::Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr);
            text.lines().next().unwrap_or_default().trim().to_string()
        })
        .unwrap_or_default()
}

/// The number of syscalls the first (allow) rule of the OCI policy at `path` names.
fn allowed(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["syscalls"][0]["names"].as_array().map(Vec::len))
        .unwrap_or(0)
}

/// What one flow gives: the profile learned and what was said about it, the enforced stage,
/// and the profile's path for validate.
type Flow = (
    Result<Learned, String>,
    Result<Stage, String>,
    Option<PathBuf>,
);

/// The documented container flow and (a): learn in Docker, export for Docker, enforce.
fn docker_flow(ctx: &Ctx, s: &Server, statics: &Path) -> Flow {
    let image = match stage::image(ctx, s) {
        Ok(i) => i,
        Err(e) => return (Err(format!("{e:#}")), Err("no image".into()), None),
    };
    let (profile, run) = match stage::learn_in_docker(ctx, s, &image) {
        Ok(v) => v,
        Err(e) => return (Err(e), Err("not learned".into()), None),
    };
    let policy = profile.with_extension("docker.json");
    let out = policy.to_str().expect("UTF-8 path");
    let said = before_deployment(
        ctx,
        &profile,
        &["--for-runtime", "docker", "-o", out],
        statics,
    );
    let a = match &said.export {
        Ok(()) => stage::enforce_in_docker(ctx, s, &image, &policy),
        Err(why) => Err(format!("export refused: {why}")),
    };
    let learned = Learned {
        run,
        said,
        allowed: allowed(&policy),
    };
    (Ok(learned), a, Some(profile))
}

/// The host flow and (b): learn with `run --profile`, export per phase, enforce by phase.
fn host_flow(ctx: &Ctx, s: &Server, statics: &Path) -> Flow {
    let (profile, run) = match stage::learn_on_host(ctx, s) {
        Ok(v) => v,
        Err(e) => return (Err(e), Err("not learned".into()), None),
    };
    let phases = profile.with_extension("phases");
    let out = phases.to_str().expect("UTF-8 path");
    let said = before_deployment(ctx, &profile, &["--per-phase", out], statics);
    let b = match &said.export {
        Ok(()) => stage::enforce_phases(ctx, s, &phases.join("manifest.json")),
        Err(why) => Err(format!("export refused: {why}")),
    };
    let union = profile.with_extension("union.json");
    let u = union.to_str().expect("UTF-8 path");
    let p = profile.to_str().expect("UTF-8 path");
    said::phasebox(ctx, &["export", p, "-o", u]);
    let learned = Learned {
        run,
        said,
        allowed: allowed(&union),
    };
    (Ok(learned), b, Some(profile))
}

/// Validates `profile` through the operations and load, if there is one.
fn validated(ctx: &Ctx, s: &Server, profile: Option<&Path>, tag: &str) -> Result<Stage, String> {
    match profile {
        Some(p) => stage::validate(ctx, s, p, tag),
        None => Err("no profile".into()),
    }
}

/// Every stage of one server.
fn row(ctx: &Ctx, s: &Server) -> Row {
    let statics = ctx
        .dir
        .join(format!("{}.static.json", s.name.replace(' ', "-")));
    let st = statics.to_str().expect("UTF-8 path");
    said::phasebox(ctx, &["static", s.program, "-o", st]);
    eprintln!(
        "bench --deploy: {}: learning in Docker, then enforcing",
        s.name
    );
    let (docker, a, docker_profile) = docker_flow(ctx, s, &statics);
    let validate_a = validated(ctx, s, docker_profile.as_deref(), "validate-docker");
    eprintln!(
        "bench --deploy: {}: learning on the host, then phase-aware",
        s.name
    );
    let (host, b, host_profile) = host_flow(ctx, s, &statics);
    let validate_b = validated(ctx, s, host_profile.as_deref(), "validate-host");
    let mut ops: Vec<&'static str> = s.ops.iter().map(|o| o.name).collect();
    ops.push(s.stop.name);
    Row {
        name: s.name,
        ops,
        version: version(s.version),
        docker,
        a,
        validate_a,
        host,
        b,
        validate_b,
    }
}

/// The section for BENCHMARKS.md: every server through both flows, `rounds` of load each.
pub fn run(bin: &Path, rounds: usize) -> anyhow::Result<String> {
    let dir = TempDir::new("bench-deploy");
    let d = Dockerd::start();
    let ctx = Ctx {
        bin,
        d: &d,
        dir: &dir.0,
        rounds,
    };
    let rows: Vec<Row> = servers::all().iter().map(|s| row(&ctx, s)).collect();
    // The temporary directory's name means nothing to a reader.
    Ok(report::render(&rows, rounds).replace(&dir.0.display().to_string(), "$DIR"))
}

/// How the table was measured.
fn method(rounds: usize) -> String {
    format!(
        "`cargo xtask bench --deploy` (`xtask/src/bench_deploy.rs`, the servers and their \
         operations in `xtask/src/bench_deploy/web.rs` and `stores.rs`), every row in one run \
         on this 2-core machine shared with other work, each \
         server from Debian's package, on 127.0.0.1 only, its configuration and data in one \
         directory mounted at the same path in its container.\n\n\
         - **Learned in Docker** (the documented flow): a private dockerd, an image made by \
         `docker import` of the program, its libraries and files; `phasebox agent --container \
         NAME` started before `docker run`; the server driven through its operations and \
         stopped; the agent stopped; `phasebox export --for-runtime docker`.\n\
         - **(a)** a fresh container under that policy: the operations, load ({rounds} rounds: \
         `wrk -t1 -c64 -d3s` for HTTP servers, redis-benchmark SET/GET with 512-byte values \
         over 100,000 keys, 8 memcached clients setting 1-16 KiB values over 20,000 keys), \
         the operations again (\"after load\"), the stop.\n\
         - **(b)** the same server on the host under `phasebox run --seccomp-phases \
         DIR/manifest.json`, from `export --per-phase` of a profile learned by `phasebox run \
         --profile` through the operations: the same operations, load and stop. `run` traces \
         as it enforces (it places each process in its phase), so (b)'s load numbers include \
         tracing; neither column is a measure of the filter's cost (see the seccomp section).\n\
         - **Named before deployment**: the warnings of `export` and `profile show` (operations \
         not seen; calls the program can reach that no run made, by purpose), the hybrid \
         review (`export --hybrid` against `phasebox static`), and `phasebox validate` of each \
         profile through the same operations and load. A failed operation is named when a \
         call denied there (from validate's report or phase-aware enforcement's) is named by a \
         warning or the review, when a warning says its operation was never seen, or when \
         validate failed it too.\n\
         - **Crashes**: a server process that ended other than by its stop (a status other \
         than 0 after the stop, an exit during an operation, a worker nginx or haproxy reports \
         dead by a signal nobody sent), never the worker the nginx operations kill on purpose. \
         **Memory**: resident memory of the server's processes before and after the load."
    )
}

/// The versions of what the table ran on.
fn versions() -> String {
    let kernel = version(&["uname", "-r"]);
    let docker = version(&[phasebox_tests::docker::DOCKERD, "--version"]);
    let runc = version(&["runc", "--version"]);
    let commit = version(&[
        "git",
        "-C",
        crate::util::root().to_str().unwrap_or("."),
        "rev-parse",
        "--short",
        "HEAD",
    ]);
    format!(
        "Kernel {kernel}; {docker}; {runc}; phasebox at commit {commit} (release build); \
         wrk {}; {}.",
        version(&["wrk", "-v"])
            .split_whitespace()
            .nth(1)
            .unwrap_or("?"),
        version(&["redis-benchmark", "--version"])
    )
}
