//! nginx launched under `phasebox run --phases nginx`: the learned profile has the seed
//! poster's 11 phases in the right roles, compared set by set with the poster's table, and the
//! same trace analyzed offline gives the same profile. (Automatic phases on the same kind of
//! trace: auto_phases.rs.)
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use phasebox_tests::{TempDir, analyze, nginx::Nginx, phasebox_bin, phasebox_ok, profile};

const REQUESTS: usize = 20;

/// nginx 1.22's order of the poster's phases (docs/phases.md says why it differs).
const MASTER: [&str; 8] = [
    "execution-initiation",
    "loading-shared-libraries",
    "initializing-logging",
    "reading-configuration-files",
    "opening-files-and-directories",
    "creating-and-configuring-sockets",
    "setting-up-signal-handlers",
    "setting-up-worker-processes",
];
const WORKER: [&str; 3] = [
    "worker-process-initialization",
    "entering-event-loop",
    "accepting-and-serving-requests",
];

/// The poster's table: phase → syscalls.
fn poster() -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/poster-nginx-phases.tsv"),
    )
    .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("order"))
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (
                cols[1].to_string(),
                cols[2].split(',').map(String::from).collect(),
            )
        })
        .collect()
}

/// Names a poster syscall goes by on this system: glibc 2.36 makes fstat and stat calls with
/// newfstatat.
fn equivalents(name: &str) -> Vec<&str> {
    match name {
        "fstat" | "stat" => vec![name, "newfstatat"],
        _ => vec![name],
    }
}

/// The documented differences: (phase, poster syscall) → reason, from docs/phases.md.
fn documented() -> BTreeMap<(String, String), String> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/phases.md"))
            .unwrap();
    let section = doc
        .split("<!-- poster-differences -->")
        .nth(1)
        .expect("differences table in docs/phases.md");
    section
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| phase") && !l.starts_with("|--"))
        .map(|l| {
            let c: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            (
                (
                    c[0].trim_matches('`').to_string(),
                    c[1].trim_matches('`').to_string(),
                ),
                c[2].to_string(),
            )
        })
        .collect()
}

#[test]
fn nginx_profile_matches_the_poster() {
    let dir = TempDir::new("phases");
    let prof = dir.path("nginx.json");
    let trace = dir.path("nginx.pbtrace");
    let bin = phasebox_bin();
    let wrapper = [
        bin.to_str().unwrap(),
        "run",
        "--phases",
        "nginx",
        "--profile",
        prof.to_str().unwrap(),
        "-o",
        trace.to_str().unwrap(),
        "--",
    ];
    let mut nginx = Nginx::start_under(&wrapper);
    assert!(
        nginx
            .curl("/index.html", REQUESTS)
            .iter()
            .all(|c| c == "200")
    );
    assert!(nginx.curl("/big.bin", REQUESTS).iter().all(|c| c == "200"));
    let st = nginx.quit();
    assert!(st.success(), "phasebox run ended with {st}");

    let p = profile::load(&prof);
    assert_eq!(p["complete"], true, "{}", p["incomplete_reasons"]);
    let master = profile::role(&p, "master");
    let worker = profile::role(&p, "worker");
    assert_eq!(
        profile::phase_names(master),
        MASTER,
        "master phases, in order"
    );
    assert_eq!(
        profile::phase_names(worker),
        WORKER,
        "worker phases, in order"
    );

    // Each phase's set against the poster's.
    let docs = documented();
    let mut undocumented = Vec::new();
    let (mut found_total, mut poster_total) = (0, 0);
    eprintln!(
        "{:<34} {:>6} {:>8}  missing (poster) / extra (here)",
        "phase", "poster", "found"
    );
    for (name, want) in poster() {
        let role = if WORKER.contains(&name.as_str()) {
            worker
        } else {
            master
        };
        let have = profile::syscalls(profile::phase(role, &name));
        let missing: Vec<&String> = want
            .iter()
            .filter(|w| !equivalents(w).iter().any(|e| have.contains(*e)))
            .collect();
        let mapped: BTreeSet<&str> = want.iter().flat_map(|w| equivalents(w)).collect();
        let extra: Vec<&String> = have
            .iter()
            .filter(|h| !mapped.contains(h.as_str()))
            .collect();
        poster_total += want.len();
        found_total += want.len() - missing.len();
        eprintln!(
            "{name:<34} {:>6} {:>8}  -{missing:?} / +{} others",
            want.len(),
            want.len() - missing.len(),
            extra.len()
        );
        for m in missing {
            if !docs.contains_key(&(name.clone(), m.clone())) {
                undocumented.push(format!("{name}: {m}"));
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "poster syscalls missing here and not explained in docs/phases.md: {undocumented:?}"
    );
    eprintln!("poster syscalls found in their phase: {found_total} of {poster_total}");
    assert!(
        found_total * 10 >= poster_total * 8,
        "only {found_total} of {poster_total}"
    );

    // Specialization: serving needs fewer syscalls than the worker's whole life.
    let serving = profile::syscalls(profile::phase(worker, WORKER[2]));
    let all = profile::union(worker);
    eprintln!(
        "worker: {} syscalls while serving, {} over all its phases",
        serving.len(),
        all.len()
    );
    assert!(serving.len() < all.len());
    for s in [
        "accept4",
        "recvfrom",
        "sendfile",
        "writev",
        "epoll_wait",
        "close",
    ] {
        assert!(serving.contains(s), "serving lacks {s}: {serving:?}");
    }
    for s in ["setuid", "setgid", "epoll_create"] {
        assert!(
            !serving.contains(s),
            "{s} is an init-only call, yet in serving"
        );
    }

    // The serving phase against Docker's default profile and against the worker's own union.
    let cmp = dir.path("compare.json");
    let docker = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/docker-default-seccomp.json");
    let out = phasebox_ok(&[
        "compare",
        prof.to_str().unwrap(),
        docker.to_str().unwrap(),
        prof.to_str().unwrap(),
        "--role",
        "worker",
        "--phase",
        WORKER[2],
        "--json",
        cmp.to_str().unwrap(),
    ]);
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    let c = profile::load(&cmp);
    let rows = c["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let (d, own) = (&rows[0], &rows[1]);
    assert_eq!(d["used_count"].as_u64().unwrap() as usize, serving.len());
    assert_eq!(
        d["missing"].as_array().unwrap().len(),
        0,
        "Docker allows all of nginx's serving calls"
    );
    assert!(d["over_approximation"].as_array().unwrap().len() > 200);
    let crit: Vec<&str> = d["critical_allowed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        crit.contains(&"execve") && crit.contains(&"ptrace"),
        "{crit:?}"
    );
    assert_eq!(own["allowed_count"].as_u64().unwrap() as usize, all.len());
    assert_eq!(
        own["over_approximation"].as_array().unwrap().len(),
        all.len() - serving.len()
    );
    assert_eq!(own["missing"].as_array().unwrap().len(), 0);

    // The same trace analyzed offline gives the same roles, phases and sets.
    let q = analyze(&dir, &trace, "nginx");

    for role in ["master", "worker"] {
        let (a, b) = (profile::role(&p, role), profile::role(&q, role));
        assert_eq!(profile::phase_names(a), profile::phase_names(b));
        for ph in profile::phase_names(a) {
            assert_eq!(
                profile::syscalls(profile::phase(a, &ph)),
                profile::syscalls(profile::phase(b, &ph)),
                "{role}/{ph} differs between live and offline"
            );
        }
    }
}
