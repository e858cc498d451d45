//! `cargo xtask demo`: phasebox's main job on built-in examples, each step explained. First
//! the agent attached to a running nginx (2 workers) while it serves, reloads and serves
//! again: its per-phase metrics and the profile it learned. Then /bin/pwd traced from its
//! first instruction, its scenario set checked against strace, and its HTML report.
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use phasebox_tests::{
    metrics::{eventually, parse, scrape},
    nginx::{Nginx, free_port},
};

use crate::util;

pub fn run() -> anyhow::Result<()> {
    let bin = util::build_phasebox()?;
    let dir = std::env::temp_dir().join("phasebox-demo");
    std::fs::create_dir_all(&dir)?;
    nginx_demo(&bin, &dir)?;
    pwd_demo(&bin, &dir)
}

/// The agent on a running nginx, through traffic and a reload.
fn nginx_demo(bin: &Path, dir: &Path) -> anyhow::Result<()> {
    let nginx = Nginx::start_with(2, &[]);
    let master = nginx.pid();
    let listen = format!("127.0.0.1:{}", free_port());
    let profile = dir.join("nginx.profile.json");
    println!(
        "== phasebox agent -p {master} --phases nginx --listen {listen} --profile {}",
        profile.display()
    );
    println!(
        "   nginx runs (a master and 2 workers, on {}); the agent attaches to it by pid,",
        nginx.url("/")
    );
    println!("   counts every system call in the kernel, in the phase its process was in, and");
    println!(
        "   serves Prometheus metrics. Meanwhile: 30 requests, 5 not found, `nginx -s reload`"
    );
    println!("   (new workers start: their startup is counted apart from serving), 30 requests.\n");
    let mut agent = Command::new(bin)
        .args([
            "agent",
            "-p",
            &master.to_string(),
            "--phases",
            "nginx",
            "--listen",
            &listen,
        ])
        .arg("--profile")
        .arg(&profile)
        .env_remove("LD_LIBRARY_PATH")
        .stderr(Stdio::null())
        .spawn()?;
    let result = drive_and_show(&nginx, &listen);
    // SAFETY: signalling our own child: it writes the profile and exits.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    agent.wait()?;
    result?;
    println!("\n== phasebox profile show {}", profile.display());
    println!("   What the agent learned, per role and phase (the poster's phase table):\n");
    util::run(Command::new(bin).arg("profile").arg("show").arg(&profile))?;
    let oci = dir.join("nginx-worker-serving.oci.json");
    println!(
        "\n== phasebox export --role worker --phase accepting-and-serving-requests -o {}",
        oci.display()
    );
    println!(
        "   The worker's serving phase as an OCI seccomp profile (Docker, runc, Kubernetes):\n"
    );
    util::run(
        Command::new(bin)
            .arg("export")
            .arg(&profile)
            .args([
                "--role",
                "worker",
                "--phase",
                "accepting-and-serving-requests",
                "-o",
            ])
            .arg(&oci),
    )?;
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&oci)?)?;
    let names: Vec<&str> = v["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["action"] == "SCMP_ACT_ALLOW")
        .flat_map(|r| r["names"].as_array().into_iter().flatten())
        .filter_map(|n| n.as_str())
        .collect();
    println!(
        "   {} allows {} calls ({}); everything else fails with {}.",
        oci.display(),
        names.len(),
        names.join(", "),
        v["defaultAction"].as_str().unwrap_or("?")
    );
    Ok(())
}

/// Traffic with a reload, then the serving and startup lines of /metrics.
fn drive_and_show(nginx: &Nginx, listen: &str) -> anyhow::Result<()> {
    eventually(Duration::from_secs(15), "the agent's metrics", || {
        (!scrape(listen).is_empty()).then_some(())
    });
    let codes = nginx.curl("/index.html", 30);
    anyhow::ensure!(codes.iter().all(|c| c == "200"), "nginx answered {codes:?}");
    nginx.curl("/missing.html", 5);
    let before = nginx.workers();
    nginx.signal("reload");
    eventually(Duration::from_secs(15), "the new workers", || {
        let now = nginx.workers();
        (now.len() == 2 && now.iter().all(|p| !before.contains(p))).then_some(())
    });
    nginx.curl("/index.html", 30);
    let page = eventually(Duration::from_secs(15), "the requests counted", || {
        let page = scrape(listen);
        page.contains(r#"syscall="setuid""#).then_some(page)
    });
    println!("   A few lines of http://{listen}/metrics:");
    for s in parse(&page) {
        let shown = match s.name.as_str() {
            "phasebox_phase_info" => true,
            "phasebox_syscalls_total" => ["accept4", "sendfile", "setuid", "epoll_create"]
                .contains(&s.labels["syscall"].as_str()),
            _ => false,
        };
        if shown {
            let labels: Vec<String> = ["role", "phase", "syscall"]
                .iter()
                .filter_map(|k| Some(format!("{k}=\"{}\"", s.labels.get(*k)?)))
                .collect();
            println!("   {}{{{}}} {}", s.name, labels.join(","), s.value);
        }
    }
    Ok(())
}

/// Traces /bin/pwd from its first instruction and shows what phasebox saw.
fn pwd_demo(bin: &Path, dir: &Path) -> anyhow::Result<()> {
    let trace = dir.join("pwd.pbtrace");
    let summary = dir.join("pwd-summary.json");
    println!("== phasebox run -- /bin/pwd");
    println!("   Launches /bin/pwd traced from its execve on. /bin/pwd prints the directory; then");
    println!(
        "   phasebox prints, per process, every system call it made, with calls and errors:\n"
    );
    util::run(
        Command::new(bin)
            // cargo sets LD_LIBRARY_PATH for xtask; pwd would search it for its libraries.
            .env_remove("LD_LIBRARY_PATH")
            .args(["run", "-o"])
            .arg(&trace)
            .arg("--summary")
            .arg(&summary)
            .args(["--", "/bin/pwd"]),
    )?;
    println!(
        "\n== phasebox trace dump {}  (the first 25 events)",
        trace.display()
    );
    println!(
        "   The trace file keeps every call in order: time since start, thread, call, result.\n"
    );
    let out = Command::new(bin)
        .arg("trace")
        .arg("dump")
        .arg(&trace)
        .output()?;
    for line in String::from_utf8_lossy(&out.stdout).lines().take(27) {
        println!("{line}");
    }
    println!("   ...");
    println!(
        "\nThe summary as JSON (for scripts) is in {}",
        summary.display()
    );
    scenarios_demo(bin, dir)
}

/// The demo's second half: pwd's scenario set and its HTML report.
fn scenarios_demo(bin: &Path, dir: &Path) -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let set = root.join("scenarios/pwd.toml");
    let out = dir.join("pwd-scenarios");
    println!("\n== phasebox scenarios run scenarios/pwd.toml --oracle-strace");
    println!(
        "   Runs pwd in 12 settings (symlinks, a deleted and a very deep directory, a locale,"
    );
    println!(
        "   bad options, stdout closed or full…), each traced in a fresh directory and checked"
    );
    println!("   against strace; then shows which calls each setting added:\n");
    util::run(
        Command::new(bin)
            .env_remove("LD_LIBRARY_PATH")
            .args(["scenarios", "run"])
            .arg(&set)
            .arg("-o")
            .arg(&out)
            .arg("--oracle-strace"),
    )?;
    let names = [
        "plain",
        "logical",
        "physical",
        "deleted",
        "deep",
        "locale",
        "help",
        "version",
        "bad-option",
        "stdout-closed",
        "stdout-full",
        "pid-namespace",
    ];
    let report = dir.join("pwd-report.html");
    let mut cmd = Command::new(bin);
    cmd.arg("report");
    for n in names {
        cmd.arg(out.join(format!("{n}.profile.json")));
    }
    cmd.arg(out.join("merged.profile.json"));
    cmd.arg("--compare")
        .arg(root.join("tests/fixtures/docker-default-seccomp.json"))
        .arg("-o")
        .arg(&report);
    util::run(&mut cmd)?;
    println!(
        "\nOpen {} in a browser: per scenario the timeline and the phase table, then the",
        report.display()
    );
    println!("coverage and the comparison with Docker's default seccomp profile.");
    Ok(())
}
