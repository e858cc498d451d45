//! Learned profiles as seccomp filters: pwd's profile is sufficient for its runs and (but for
//! the documented exceptions) minimal; nginx serves under its exported union; the exported OCI
//! file runs /bin/pwd under runc.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use phasebox_tests::{CARGO_LIBRARY_PATH, TempDir, nginx::Nginx, phasebox, phasebox_bin, profile};

const PWD_RUNS: [&[&str]; 3] = [&[], &["-P"], &["--help"]];

fn pwd_argv(args: &[&str]) -> Vec<String> {
    std::iter::once("/bin/pwd")
        .chain(args.iter().copied())
        .map(String::from)
        .collect()
}

fn ok(out: &Output) -> &Output {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Status and stdout of pwd without a filter.
fn unconfined(args: &[&str]) -> (Option<i32>, Vec<u8>) {
    let out = Command::new("/bin/pwd")
        .args(args)
        .env_remove(CARGO_LIBRARY_PATH)
        .output()
        .unwrap();
    (out.status.code(), out.stdout)
}

/// Status and stdout of pwd under the OCI profile `filter`.
fn confined(filter: &Path, args: &[&str]) -> (Option<i32>, Vec<u8>) {
    let mut argv = vec!["run", "-q", "--seccomp", filter.to_str().unwrap(), "--"];
    let pwd = pwd_argv(args);
    argv.extend(pwd.iter().map(String::as_str));
    let out = phasebox(&argv);
    (out.status.code(), out.stdout)
}

/// The syscalls pwd's runs may go without, from docs/seccomp.md.
fn documented_exceptions() -> BTreeMap<String, String> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/seccomp.md"))
            .unwrap();
    let table = doc
        .split("<!-- pwd-exceptions -->")
        .nth(1)
        .expect("exceptions table in docs/seccomp.md");
    table
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter(|l| !l.starts_with("| syscall") && !l.starts_with("|--"))
        .map(|l| {
            let c: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            (c[0].trim_matches('`').to_string(), c[1].to_string())
        })
        .collect()
}

/// Learns pwd's profile over all its runs and exports the union as OCI JSON.
fn pwd_union(dir: &TempDir, extra: &[&str]) -> PathBuf {
    let mut profiles = Vec::new();
    for (i, args) in PWD_RUNS.iter().enumerate() {
        let p = dir.path(&format!("pwd-{i}.json"));
        let mut argv = vec!["run", "-q", "--profile", p.to_str().unwrap(), "--"];
        let pwd = pwd_argv(args);
        argv.extend(pwd.iter().map(String::as_str));
        ok(&phasebox(&argv));
        profiles.push(p);
    }
    let merged = dir.path("pwd.json");
    let mut argv = vec!["profile", "merge"];
    argv.extend(profiles.iter().map(|p| p.to_str().unwrap()));
    argv.extend(["-o", merged.to_str().unwrap()]);
    ok(&phasebox(&argv));
    let union = dir.path("pwd-union.json");
    let mut argv = vec![
        "export",
        merged.to_str().unwrap(),
        "--format",
        "oci",
        "-o",
        union.to_str().unwrap(),
    ];
    argv.extend_from_slice(extra);
    ok(&phasebox(&argv));
    union
}

#[test]
fn pwd_profile_is_sufficient_and_minimal() {
    let dir = TempDir::new("seccomp-pwd");
    let union = pwd_union(&dir, &[]);
    for args in PWD_RUNS {
        assert_eq!(
            confined(&union, args),
            unconfined(args),
            "pwd {args:?} under its own profile"
        );
    }
    let profile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&union).unwrap()).unwrap();
    let names: Vec<String> = profile["syscalls"][0]["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let documented = documented_exceptions();
    let mut exceptions = Vec::new();
    for name in &names {
        let mut less = profile.clone();
        let list = less["syscalls"][0]["names"].as_array_mut().unwrap();
        list.retain(|v| v != name.as_str());
        let path = dir.path(&format!("without-{name}.json"));
        std::fs::write(&path, serde_json::to_string(&less).unwrap()).unwrap();
        let breaks = PWD_RUNS
            .iter()
            .any(|args| confined(&path, args) != unconfined(args));
        if !breaks {
            exceptions.push(name.clone());
        }
    }
    eprintln!(
        "pwd's profile: {} syscalls; runs still succeed without: {exceptions:?}",
        names.len()
    );
    let undocumented: Vec<&String> = exceptions
        .iter()
        .filter(|e| !documented.contains_key(*e))
        .collect();
    assert!(
        undocumented.is_empty(),
        "not explained in docs/seccomp.md: {undocumented:?}"
    );
    assert!(
        exceptions.len() * 2 < names.len(),
        "most of the profile must be needed"
    );
}

/// nginx under `wrapper` serves 20 small and 20 large files, answers 404, and quits cleanly.
fn serves_under(wrapper: &[&str], what: &str) {
    let mut nginx = Nginx::start_under(wrapper);
    let codes = [nginx.curl("/index.html", 20), nginx.curl("/big.bin", 20)].concat();
    assert!(codes.iter().all(|c| c == "200"), "under {what}: {codes:?}");
    assert!(nginx.curl("/missing", 1) == ["404"], "under {what}");
    assert!(
        nginx.quit().success(),
        "nginx ended badly under {what}: {}",
        nginx.error_log()
    );
}

#[test]
fn nginx_serves_under_its_exported_union() {
    let dir = TempDir::new("seccomp-nginx");
    let prof = dir.path("nginx.json");
    let bin = phasebox_bin();
    let learn = [
        bin.to_str().unwrap(),
        "run",
        "-q",
        "--phases",
        "nginx",
        "--profile",
        prof.to_str().unwrap(),
        "--",
    ];
    let mut nginx = Nginx::start_under(&learn);
    assert!(nginx.curl("/index.html", 10).iter().all(|c| c == "200"));
    assert!(nginx.curl("/big.bin", 10).iter().all(|c| c == "200"));
    assert!(nginx.quit().success());
    drop(nginx);

    let union = dir.path("nginx-union.json");
    ok(&phasebox(&[
        "export",
        prof.to_str().unwrap(),
        "-o",
        union.to_str().unwrap(),
    ]));
    let enforce = [
        bin.to_str().unwrap(),
        "run",
        "-q",
        "--seccomp",
        union.to_str().unwrap(),
        "--",
    ];
    serves_under(&enforce, "its union profile");

    // Phase-aware: the union, tightened per process once it serves; requests keep succeeding.
    let phases = dir.path("phases");
    ok(&phasebox(&[
        "export",
        prof.to_str().unwrap(),
        "--per-phase",
        phases.to_str().unwrap(),
    ]));
    let manifest = phases.join("manifest.json");
    let m = profile::load(&manifest);
    assert_eq!(m["rules"], "nginx");
    let aware = [
        bin.to_str().unwrap(),
        "run",
        "-q",
        "--seccomp-phases",
        manifest.to_str().unwrap(),
        "--",
    ];
    serves_under(&aware, "phase-aware enforcement");
}

/// `runc run` of `bundle` as container `id`, then its removal.
fn runc_run(bundle: &Path, id: &str) -> Output {
    let out = Command::new("runc")
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(id)
        .stdin(Stdio::null())
        .output()
        .expect("runc is installed");
    let _ = Command::new("runc")
        .args(["delete", "--force", id])
        .output();
    out
}

#[test]
fn runc_runs_pwd_under_the_exported_profile() {
    let dir = TempDir::new("runc");
    // runc's own init makes a few calls after it installs the filter.
    let union = pwd_union(&dir, &["--for-runtime", "runc"]);
    let bundle = dir.path("bundle");
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    phasebox_tests::image::copy_with_libraries(Path::new("/bin/pwd"), &rootfs).unwrap();
    let config_path = bundle.join("config.json");
    let mut config = phasebox_tests::image::runc_spec(&bundle, serde_json::json!(["/bin/pwd"]));
    config["linux"]["seccomp"] =
        serde_json::from_str(&std::fs::read_to_string(&union).unwrap()).unwrap();
    std::fs::write(&config_path, serde_json::to_string_pretty(&config).unwrap()).unwrap();

    let id = format!("phasebox-test-{}", std::process::id());
    let out = runc_run(&bundle, &id);
    assert!(
        out.status.success(),
        "runc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "/\n");

    // The same bundle with getcwd removed from the profile: pwd cannot work.
    let mut strict = config.clone();
    let names = strict["linux"]["seccomp"]["syscalls"][0]["names"]
        .as_array_mut()
        .unwrap();
    names.retain(|v| v != "getcwd" && v != "newfstatat");
    std::fs::write(&config_path, serde_json::to_string_pretty(&strict).unwrap()).unwrap();
    let out = runc_run(&bundle, &id);
    assert!(
        !out.status.success() || out.stdout.is_empty(),
        "pwd worked without getcwd and newfstatat"
    );
}

#[test]
fn run_seccomp_reports_what_it_denied_or_says_it_cannot() {
    let dir = TempDir::new("run-denials");
    let union = pwd_union(&dir, &[]);
    let mut profile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&union).unwrap()).unwrap();
    profile["syscalls"][0]["names"]
        .as_array_mut()
        .unwrap()
        .retain(|v| v != "getcwd");
    // `phasebox run EXTRA --seccomp POLICY -- /bin/pwd`.
    let pwd_under = |extra: &[&str], policy: &Path| {
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        args.extend(["--seccomp", policy.to_str().unwrap(), "--", "/bin/pwd"]);
        phasebox(&args)
    };
    let strict = dir.path("no-getcwd.json");
    std::fs::write(&strict, profile.to_string()).unwrap();
    let out = pwd_under(&["-q"], &strict);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "pwd cannot work without getcwd: {err}"
    );
    let line = err
        .lines()
        .find(|l| l.contains("denied: getcwd×"))
        .unwrap_or_else(|| panic!("getcwd's denial reported: {err}"));
    assert!(
        line.contains("in role main, phase ") && line.contains("(pid "),
        "{line}"
    );
    // The whole profile: nothing denied, nothing reported as denied.
    let out = pwd_under(&[], &union);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("denied no call"), "{err}");
    // A profile whose default action kills: phasebox says plainly it cannot report.
    profile["defaultAction"] = "SCMP_ACT_KILL_PROCESS".into();
    std::fs::write(&strict, profile.to_string()).unwrap();
    let out = pwd_under(&["-q"], &strict);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("cannot report calls outside it"), "{err}");
}
