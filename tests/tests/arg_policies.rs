//! Argument-level policies: nginx learned on the host through its operations, exported with
//! the arguments each phase used, keeps serving under them (one filter for the run, and phase
//! by phase); its worker's serving phase, exported by names and with arguments, and Docker's
//! default profile, each under the attack probe (fixtures/attack_probe.c): the arguments block
//! what names alone let through, and no primitive the phase never used gets through.
use std::path::Path;

use phasebox_tests::{
    TempDir, attack,
    nginx::{self, Nginx},
    phasebox_bin, phasebox_ok, profile, read_json,
};

const WORKERS: usize = 2;
const SERVING: &str = "accepting-and-serving-requests";

/// `phasebox export PROF EXTRA… -o OUT`.
fn export(prof: &Path, extra: &[&str], out: &Path) {
    let mut args = vec!["export", prof.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-o", out.to_str().unwrap()]);
    phasebox_ok(&args);
}

/// nginx under `phasebox run ENFORCE…` goes through its operations with every response right
/// and nothing denied.
fn serves_under(enforce: &[&str]) {
    let bin = phasebox_bin();
    let mut wrapper = vec![bin.to_str().unwrap(), "run", "-q"];
    wrapper.extend_from_slice(enforce);
    wrapper.push("--");
    let mut nginx = Nginx::start_with(WORKERS, &wrapper);
    nginx.operate(WORKERS);
    let log = nginx.error_log();
    assert!(!log.contains("not permitted"), "{enforce:?}: {log}");
    assert!(nginx.quit().success(), "{enforce:?}: {}", nginx.error_log());
}

#[test]
fn nginx_serves_under_its_argument_level_profiles_and_the_probe_gets_less_through() {
    let dir = TempDir::new("arg-policies");
    let prof = dir.path("nginx.profile.json");
    nginx::learn_through_operations(&phasebox_bin(), &prof, WORKERS);
    let p = profile::load(&prof);
    let worker = profile::role(&p, "worker");
    let serving = profile::phase(worker, SERVING);
    // The arguments were learned: the worker's sockets and files are restricted.
    assert!(
        serving["syscalls"]["openat"]["args"].is_array(),
        "{serving}"
    );

    // The union with arguments, and phase by phase.
    let union = dir.path("union.json");
    export(&prof, &[], &union);
    let text = std::fs::read_to_string(&union).unwrap();
    assert!(text.contains("SCMP_CMP_MASKED_EQ"), "{text}");
    serves_under(&["--seccomp", union.to_str().unwrap()]);
    let phases = dir.path("phases");
    phasebox_ok(&[
        "export",
        prof.to_str().unwrap(),
        "--per-phase",
        phases.to_str().unwrap(),
    ]);
    let manifest = phases.join("manifest.json");
    serves_under(&["--seccomp-phases", manifest.to_str().unwrap()]);

    // The worker's serving phase by names, with arguments, and Docker's default.
    let (names, args) = (dir.path("names.json"), dir.path("args.json"));
    let select = ["--role", "worker", "--phase", SERVING];
    export(&prof, &[&select[..], &["--no-args"]].concat(), &names);
    export(&prof, &select, &args);
    assert!(read_json(&names).to_string().contains("openat"));
    assert!(!read_json(&names).to_string().contains("SCMP_CMP_MASKED_EQ"));
    // `compare` tells the two apart, and so does the profile read as a policy.
    let out = phasebox_ok(&[
        "compare",
        prof.to_str().unwrap(),
        names.to_str().unwrap(),
        args.to_str().unwrap(),
        prof.to_str().unwrap(),
        "--role",
        "worker",
        "--phase",
        SERVING,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let restricted: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("allowed only with some arguments: "))
        .collect();
    assert_eq!(restricted.len(), 3, "{text}");
    assert_eq!(restricted[0], "-", "{text}");
    for r in &restricted[1..] {
        assert!(r.split(' ').any(|c| c == "openat"), "{text}");
    }
    let docker = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/docker-default-seccomp.json");
    let (by_names, by_args, by_docker) = (
        attack::through(&names),
        attack::through(&args),
        attack::through(&docker),
    );
    let count = |m: &std::collections::BTreeMap<String, bool>| m.values().filter(|t| **t).count();
    eprintln!(
        "through: names {}, arguments {}, Docker's default {} of {}",
        count(&by_names),
        count(&by_args),
        count(&by_docker),
        attack::PRIMITIVES.len()
    );
    for (name, through) in &by_args {
        // What gets through is what the phase did itself, with these arguments.
        assert!(
            !through || attack::used_by(serving, name),
            "{name} gets through the argument-level profile, and the serving phase never made it"
        );
        // Arguments only narrow a names-only policy.
        assert!(!through || by_names[name], "{name}");
    }
    let names_through = count(&by_names);
    let stopped = by_names.iter().filter(|(n, t)| **t && !by_args[*n]).count();
    assert!(
        stopped * 10 >= names_through * 8,
        "arguments block {stopped} of the {names_through} primitives names let through: {by_args:?}"
    );
    assert!(
        count(&by_args) < count(&by_docker),
        "arguments {by_args:?}, Docker's default {by_docker:?}"
    );
}
