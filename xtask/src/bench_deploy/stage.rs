//! The stages of one row: learning in a container or on the host, enforcing in a container
//! or under phase-aware enforcement, validating; each drives the server through its
//! operations (and load) and reports what failed and what crashed.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use phasebox_tests::{Guard, docker::Dockerd, lines::Lines, rootfs::server_root};

use super::Server;
use super::load::Load;
use super::place::{Place, Target, Wrapper, tree_rss_kib};

/// What one stage saw.
#[derive(Default)]
pub struct Stage {
    /// (operation, why) for each operation that failed.
    pub failed: Vec<(String, String)>,
    pub crashes: Vec<String>,
    pub load: Option<Load>,
    /// Resident memory of the server's processes before and after the load, KiB.
    pub rss: Option<(u64, u64)>,
    /// Everything the server and its wrapper said.
    pub output: String,
}

/// What the bench shares between stages.
pub struct Ctx<'a> {
    pub bin: &'a Path,
    pub d: &'a Dockerd,
    pub dir: &'a Path,
    pub rounds: usize,
}

/// A free loopback port.
fn free_port() -> u16 {
    phasebox_tests::nginx::free_port()
}

/// Waits for the server to answer (60 s at most, less if it exits).
fn wait_ready(s: &Server, t: &Target) -> Result<(), String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !(s.ready)(t) {
        if !t.running() {
            return Err("exited before it answered".into());
        }
        if std::time::Instant::now() > deadline {
            return Err("did not answer within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Runs `ops` in order, each named with `suffix`; stops at the first that leaves the server
/// gone (a crash).
fn run_ops(s: &Server, t: &Target, suffix: &str, stage: &mut Stage) -> bool {
    for op in &s.ops {
        if let Err(why) = (op.run)(t) {
            stage.failed.push((format!("{}{suffix}", op.name), why));
        }
        if !t.running() {
            let code = t.wait_exit(Duration::from_secs(5));
            stage
                .crashes
                .push(format!("exited ({code:?}) during {}{suffix}", op.name));
            return false;
        }
    }
    true
}

/// The load, with the memory of the server's processes before and after.
fn run_load(s: &Server, t: &Target, rounds: usize, stage: &mut Stage) {
    let main = t.main_pid().ok();
    let before = main.map(tree_rss_kib);
    match (s.load)(t, rounds) {
        Ok(l) => stage.load = Some(l),
        Err(why) => stage.failed.push(("load".into(), why)),
    }
    if let (Some(m), Some(b)) = (main, before) {
        stage.rss = Some((b, tree_rss_kib(m)));
    }
}

/// Drives a started server: its operations, with `rounds` of load then the operations
/// again, and its stop; what failed and what crashed.
fn drive(s: &Server, t: &Target, rounds: Option<usize>) -> Stage {
    let mut stage = Stage::default();
    let alive = match wait_ready(s, t) {
        Ok(()) => run_ops(s, t, "", &mut stage),
        Err(why) => {
            stage.crashes.push(format!("did not start: {why}"));
            false
        }
    };
    let alive = alive
        && match rounds {
            Some(r) => {
                run_load(s, t, r, &mut stage);
                run_ops(s, t, " (after load)", &mut stage)
            }
            None => true,
        };
    if alive {
        let stopped = (s.stop.run)(t).and_then(|()| t.wait_exit(Duration::from_secs(30)));
        match stopped {
            Ok(0) => {}
            Ok(code) => stage
                .crashes
                .push(format!("exited with status {code} after {}", s.stop.name)),
            Err(why) => stage.failed.push((s.stop.name.into(), why)),
        }
    }
    t.kill();
    stage.output = t.logs();
    t.remove();
    let crash_lines = stage.output.lines().filter(|l| (s.crashed)(l));
    stage
        .crashes
        .extend(crash_lines.map(|l| l.trim().to_string()));
    stage
}

/// `DIR:DIR`, the server's directory at the same path in the container.
fn volume(dir: &Path) -> String {
    format!("{0}:{0}", dir.display())
}

/// The image of `s`: its program, libraries and files, from the host.
pub fn image(ctx: &Ctx, s: &Server) -> anyhow::Result<String> {
    let tag = format!(
        "phasebox-bench/{}:deploy",
        s.name.split_whitespace().next().unwrap_or(s.name)
    );
    let root = ctx.dir.join(format!("rootfs-{}", s.name.replace(' ', "-")));
    server_root(&root, &[s.program], &(s.files)()?)?;
    ctx.d.import(&root, &tag, &[]);
    let _ = std::fs::remove_dir_all(&root);
    Ok(tag)
}

/// `docker run -d` of `argv` in `image` as `name`, with `extra` options; the target.
fn container<'a>(
    ctx: &Ctx<'a>,
    name: &str,
    image: &str,
    argv: &[String],
    (dir, port): (&Path, u16),
    extra: &[&str],
) -> Result<Target<'a>, String> {
    let vol = volume(dir);
    let mut args = vec!["run", "-d", "--name", name, "--network", "host", "-v", &vol];
    args.extend_from_slice(extra);
    args.extend(["--entrypoint", argv[0].as_str(), image]);
    args.extend(argv[1..].iter().map(String::as_str));
    let out = ctx.d.docker(&args);
    if !out.status.success() {
        return Err(format!(
            "docker run: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(Target {
        port,
        dir: dir.to_path_buf(),
        place: Place::Docker {
            d: ctx.d,
            name: name.into(),
        },
    })
}

/// `phasebox ARGS -- ARGV` on the host in a process group of its own, its output in `dir`.
fn host<'a>(
    ctx: &Ctx,
    args: &[&str],
    argv: &[String],
    (dir, port): (&Path, u16),
    wrapper: Wrapper,
) -> Result<Target<'a>, String> {
    use std::os::unix::process::CommandExt;
    let (out, err) = (dir.join("phasebox.out"), dir.join("phasebox.err"));
    let file = |p: &Path| std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()));
    let child = Command::new(ctx.bin)
        .args(args)
        .arg("--")
        .args(argv)
        .env_remove(phasebox_tests::CARGO_LIBRARY_PATH)
        .stdin(Stdio::null())
        .stdout(file(&out)?)
        .stderr(file(&err)?)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("phasebox: {e}"))?;
    Ok(Target {
        port,
        dir: dir.to_path_buf(),
        place: Place::Host {
            child: Mutex::new(child),
            wrapper,
            out,
            err,
        },
    })
}

/// A fresh directory for one stage, with the server's configuration for a free port; the
/// directory, port and command line.
fn stage_dir(ctx: &Ctx, s: &Server, stage: &str) -> Result<(PathBuf, u16, Vec<String>), String> {
    let dir = ctx.dir.join(s.name.replace(' ', "-")).join(stage);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let port = free_port();
    let argv = (s.setup)(&dir, port).map_err(|e| format!("{e:#}"))?;
    Ok((dir, port, argv))
}

/// Learns `s` in a container with `agent --container` started first; the profile and what
/// the learning run saw.
pub fn learn_in_docker(ctx: &Ctx, s: &Server, image: &str) -> Result<(PathBuf, Stage), String> {
    let (dir, port, argv) = stage_dir(ctx, s, "learn-docker")?;
    let name = format!(
        "learn-{}",
        image.split('/').nth(1).unwrap_or("x").replace(':', "-")
    );
    let profile = dir.join("profile.json");
    let mut agent = Command::new(ctx.bin);
    agent
        .args(["agent", "--container", &name, "--phases", s.rules])
        .args(["--listen", "127.0.0.1:0", "--profile"])
        .arg(&profile)
        .env("DOCKER_HOST", ctx.d.host())
        .stderr(Stdio::piped());
    if s.rules == "auto" {
        agent.arg("--stream");
    }
    let mut agent = Guard::new(agent.spawn().map_err(|e| e.to_string())?);
    let mut said = Lines::follow(agent.stderr.take().expect("piped"));
    let wait = Duration::from_secs(60);
    said.wait_for(&format!("waiting for container {name}"), wait)?;
    let t = container(ctx, &name, image, &argv, (&dir, port), &[])?;
    said.wait_for(&format!("container {name} found"), wait)?;
    let stage = drive(s, &t, None);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    let status = agent.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!(
            "the agent ended with {status}: {}",
            said.rest(wait)
        ));
    }
    Ok((profile, stage))
}

/// Learns `s` on the host with `phasebox run --profile`.
pub fn learn_on_host(ctx: &Ctx, s: &Server) -> Result<(PathBuf, Stage), String> {
    let (dir, port, argv) = stage_dir(ctx, s, "learn-host")?;
    let profile = dir.join("profile.json");
    let p = profile.to_str().expect("UTF-8 path");
    let args = ["run", "-q", "--phases", s.rules, "--profile", p];
    let t = host(ctx, &args, &argv, (&dir, port), Wrapper::Run)?;
    Ok((profile, drive(s, &t, None)))
}

/// `phasebox validate --profile P` of `s` through the operations and load.
pub fn validate(ctx: &Ctx, s: &Server, profile: &Path, tag: &str) -> Result<Stage, String> {
    let (dir, port, argv) = stage_dir(ctx, s, tag)?;
    let args = [
        "validate",
        "--profile",
        profile.to_str().expect("UTF-8 path"),
    ];
    let t = host(ctx, &args, &argv, (&dir, port), Wrapper::Validate)?;
    Ok(drive(s, &t, Some(ctx.rounds)))
}

/// (a): a fresh container under `policy`.
pub fn enforce_in_docker(
    ctx: &Ctx,
    s: &Server,
    image: &str,
    policy: &Path,
) -> Result<Stage, String> {
    let (dir, port, argv) = stage_dir(ctx, s, "enforce-docker")?;
    let name = format!(
        "enforce-{}",
        image.split('/').nth(1).unwrap_or("x").replace(':', "-")
    );
    let opt = format!("seccomp={}", policy.display());
    let t = container(
        ctx,
        &name,
        image,
        &argv,
        (&dir, port),
        &["--security-opt", &opt],
    )?;
    Ok(drive(s, &t, Some(ctx.rounds)))
}

/// (b): on the host under phase-aware enforcement of `manifest`.
pub fn enforce_phases(ctx: &Ctx, s: &Server, manifest: &Path) -> Result<Stage, String> {
    let (dir, port, argv) = stage_dir(ctx, s, "enforce-phases")?;
    let m = manifest.to_str().expect("UTF-8 path");
    let args = ["run", "-q", "--seccomp-phases", m];
    let t = host(ctx, &args, &argv, (&dir, port), Wrapper::Run)?;
    Ok(drive(s, &t, Some(ctx.rounds)))
}
