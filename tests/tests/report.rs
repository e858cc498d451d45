//! The HTML report of real scenario profiles, opened in Debian's headless Chromium: no console
//! errors, nothing fetched, the timeline and the phase table present; a screenshot is kept in
//! target/test-artifacts/report.png.
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use phasebox_tests::{TempDir, phasebox, phasebox_ok};

/// Headless Chromium with the flags this machine's closed network needs.
fn chromium(profile_dir: &Path, args: &[&str], page: &Path) -> Output {
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile_dir.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .output()
        .expect("chromium runs (cargo xtask setup installs it)")
}

/// Console messages Chromium logged for the page.
fn console_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(String::from)
        .collect()
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn report_opens_in_chromium_with_timeline_and_tables() {
    let dir = TempDir::new("report");
    let scen = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/pwd.toml");
    let out_dir = dir.path("pwd");
    let only = "plain,deleted,deep,locale,stdout-full,help";
    phasebox_ok(&[
        "scenarios",
        "run",
        scen.to_str().unwrap(),
        "--only",
        only,
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    let mut args: Vec<String> = vec!["report".into()];
    for name in only.split(',') {
        args.push(
            out_dir
                .join(format!("{name}.profile.json"))
                .display()
                .to_string(),
        );
    }
    let docker = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/docker-default-seccomp.json");
    let page = dir.path("report.html");
    args.extend(["--compare".into(), docker.display().to_string()]);
    args.extend(["-o".into(), page.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = phasebox(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: no scripts, no external resources, links only within the page.
    assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("<link"));
    assert!(html.matches("href=\"").count() == html.matches("href=\"#").count());

    // The check below can fail: a page that logs an error is caught.
    let bad = dir.path("bad.html");
    std::fs::write(
        &bad,
        "<html><body><script>console.error('broken page')</script></body></html>",
    )
    .unwrap();
    let out = chromium(&dir.path("chrome-bad"), &["--dump-dom"], &bad);
    assert!(
        console_lines(&out)
            .iter()
            .any(|l| l.contains("broken page")),
        "control page's error not seen"
    );

    let out = chromium(&dir.path("chrome-dom"), &["--dump-dom"], &page);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        console_lines(&out),
        Vec::<String>::new(),
        "console messages on the report"
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    // The parsed page: a timeline (an SVG with syscall rows) per profile and the phase tables.
    assert_eq!(
        dom.matches("<figure class=\"timeline\"><svg").count(),
        6,
        "timelines"
    );
    assert_eq!(
        dom.matches("<table class=\"phase-table\">").count(),
        6,
        "phase tables"
    );
    assert!(
        dom.contains(">getcwd<") || dom.contains(">\ngetcwd\n<"),
        "getcwd row missing"
    );
    assert!(dom.contains("<td>initialization</td>"));
    assert!(dom.contains("id=\"coverage\"") && dom.contains("<td>pwd/deleted</td>"));
    assert!(dom.contains("id=\"comparison\"") && dom.contains("docker-default-seccomp.json"));

    let shot = artifacts().join("report.png");
    let _ = std::fs::remove_file(&shot);
    let arg = format!("--screenshot={}", shot.display());
    let out = chromium(
        &dir.path("chrome-shot"),
        &[&arg, "--window-size=1280,2400"],
        &page,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
}
