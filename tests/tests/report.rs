//! The HTML report of real scenario profiles, opened in Debian's headless Chromium: no console
//! errors, nothing fetched, the timeline and the tables present, the merged profile shown as
//! the merge, and no timeline label covering another (boxes measured in the browser).
//! Screenshots are kept in target/test-artifacts/report*.png.
use std::path::{Path, PathBuf};

use phasebox_core::profile::Profile;
use phasebox_tests::browser::{
    artifacts, chromium, console_lines, label_boxes, label_problems, screenshot,
};
use phasebox_tests::{TempDir, phasebox, phasebox_ok};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn docker() -> PathBuf {
    root().join("tests/fixtures/docker-default-seccomp.json")
}

/// `phasebox report PROFILES --compare docker -o page`.
fn report(profiles: &[PathBuf], page: &Path) {
    let mut args: Vec<String> = vec!["report".into()];
    args.extend(profiles.iter().map(|p| p.display().to_string()));
    args.extend(["--compare".into(), docker().display().to_string()]);
    args.extend(["-o".into(), page.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = phasebox(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `DIR/*.profile.json`, as the shell's glob lists them.
fn glob_profiles(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".profile.json"))
        .collect();
    out.sort();
    out
}

#[test]
fn report_opens_in_chromium_with_timeline_and_tables() {
    let dir = TempDir::new("report");
    let scen = root().join("scenarios/pwd.toml");
    let out_dir = dir.path("pwd");
    let only = "plain,deleted,deep,locale,stdout-full,help";
    let set = [
        "scenarios",
        "run",
        scen.to_str().unwrap(),
        "--only",
        only,
        "-o",
    ];
    let mut args = set.to_vec();
    args.push(out_dir.to_str().unwrap());
    phasebox_ok(&args);
    let profiles: Vec<PathBuf> = only
        .split(',')
        .map(|n| out_dir.join(format!("{n}.profile.json")))
        .collect();
    let page = dir.path("report.html");
    report(&profiles, &page);
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
    // The parsed page: a timeline (an SVG with syscall rows) per profile and the phase tables,
    // the merge's tables besides.
    assert_eq!(
        dom.matches("<figure class=\"timeline\"><svg").count(),
        6,
        "timelines"
    );
    assert_eq!(
        dom.matches("<table class=\"phase-table\">").count(),
        7,
        "phase tables"
    );
    assert!(
        dom.contains(">getcwd<") || dom.contains(">\ngetcwd\n<"),
        "getcwd row missing"
    );
    assert!(dom.contains("<td>initialization</td>"));
    assert!(dom.contains("id=\"coverage\"") && dom.contains("<td>pwd/deleted</td>"));
    assert!(dom.contains("id=\"comparison\"") && dom.contains("docker-default-seccomp.json"));
    // Docker's profile allows execve: named in the table, with its reason.
    assert!(dom.contains(">execve</span>"), "critical calls not named");
    assert!(
        dom.contains("phasebox export --per-phase <"),
        "no row of phasebox's own"
    );

    let shot = artifacts().join("report.png");
    screenshot(&dir.path("chrome-shot"), &page, &shot, 2400);
    assert!(std::fs::metadata(&shot).unwrap().len() > 20_000);
}

/// A page whose one timeline has two labels on top of each other.
const OVERLAPPING: &str = "<html><body><figure class=\"timeline\"><svg width=\"400\" \
height=\"60\" xmlns=\"http://www.w3.org/2000/svg\"><text class=\"phase-label\" x=\"10\" y=\"20\" \
font-size=\"12\">creating-and-configuring-sockets</text><text class=\"phase-label\" x=\"40\" \
y=\"24\" font-size=\"12\">setting-up-worker-processes</text></svg></figure></body></html>";

/// How many phases each timeline on a report of these profiles names, from the profiles
/// themselves, in page order: a role's phases with a recorded call (merges have no timeline).
fn expected_timelines(profiles: &[PathBuf]) -> Vec<usize> {
    let loaded = profiles.iter().map(|p| Profile::load(p).unwrap());
    let timed = |r: &phasebox_core::profile::Role| {
        let has_times = |ph: &&phasebox_core::profile::Phase| {
            ph.syscalls.values().any(|u| !u.times_ns.is_empty())
        };
        r.phases.iter().filter(has_times).count()
    };
    loaded
        .flat_map(|p| p.roles.iter().map(timed).collect::<Vec<_>>())
        .filter(|&n| n > 0)
        .collect()
}

/// The README's flow on one scenario set: `report OUT/*.profile.json` (merged.profile.json
/// included), every timeline's labels measured in Chromium.
fn labels_clear_on(set: &str, dir: &TempDir) {
    let out_dir = dir.path(set);
    let scen = root().join(format!("scenarios/{set}.toml"));
    let run = ["scenarios", "run", scen.to_str().unwrap(), "-o"];
    let mut args = run.to_vec();
    args.push(out_dir.to_str().unwrap());
    phasebox_ok(&args);
    let profiles = glob_profiles(&out_dir);
    assert!(profiles.iter().any(|p| p.ends_with("merged.profile.json")));
    let page = dir.path(&format!("{set}.html"));
    report(&profiles, &page);
    let html = std::fs::read_to_string(&page).unwrap();
    let scenarios = profiles.len() - 1;
    assert_eq!(
        html.matches("<section class=\"profile\"").count(),
        scenarios,
        "{set}: the merge shown as a scenario"
    );
    assert!(html.contains("merged.profile.json is this merge"), "{set}");

    let expected = expected_timelines(&profiles);
    let work = dir.path(&format!("{set}-measure"));
    std::fs::create_dir_all(&work).unwrap();
    let figures = label_boxes(&page, &work);
    assert_eq!(figures.len(), expected.len(), "{set}: timelines");
    for (k, (f, phases)) in figures.iter().zip(&expected).enumerate() {
        let named = f.labels.iter().filter(|l| l.class == "phase-label").count();
        let ticks = f.labels.iter().filter(|l| l.class == "tick-label").count();
        assert_eq!(named, *phases, "{set}: timeline {k}: phase labels");
        assert!(ticks >= 2, "{set}: timeline {k}: {ticks} ticks");
        assert_eq!(
            label_problems(f),
            Vec::<String>::new(),
            "{set}: timeline {k}"
        );
    }
    let shot = artifacts().join(format!("report-{set}.png"));
    screenshot(&dir.path(&format!("{set}-shot")), &page, &shot, 2400);
}

#[test]
fn timeline_labels_never_cover_each_other_in_chromium() {
    let dir = TempDir::new("report-labels");
    // The check can fail: labels on top of each other are caught.
    let bad = dir.path("overlapping.html");
    std::fs::write(&bad, OVERLAPPING).unwrap();
    let work = dir.path("bad-measure");
    std::fs::create_dir_all(&work).unwrap();
    let figures = label_boxes(&bad, &work);
    assert_eq!(figures.len(), 1);
    let problems = label_problems(&figures[0]);
    assert!(
        problems.iter().any(|p| p.contains("covers")),
        "overlap not seen: {problems:?}"
    );
    labels_clear_on("pwd", &dir);
    labels_clear_on("nginx", &dir);
}
