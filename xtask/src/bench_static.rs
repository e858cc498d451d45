//! `cargo xtask bench --static`: time and peak memory of `phasebox static` per program (release
//! build), side by side with `objdump -d` over the same files (the program and every library
//! the analysis read), alternating, medians of the rounds.
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::Context as _;
use phasebox_tests::TempDir;

use crate::measure::{median, run_measured};

pub const BEGIN: &str = "<!-- bench:static:begin -->";
pub const END: &str = "<!-- bench:static:end -->";

/// The programs measured: those of docs/static.md.
const PROGRAMS: &[&str] = &[
    "/bin/pwd",
    "/bin/cat",
    "/bin/ls",
    "/bin/gzip",
    "/usr/bin/curl",
    "/usr/sbin/nginx",
    "/usr/bin/memcached",
    "/usr/bin/redis-server",
];

/// The section for BENCHMARKS.md.
pub fn bench(bin: &Path, rounds: usize) -> anyhow::Result<String> {
    let dir = TempDir::new("bench-static");
    let mut rows = String::new();
    for program in PROGRAMS {
        if !Path::new(program).exists() {
            continue;
        }
        let out = dir.path("p.json");
        let (mut secs, mut rss, mut objdump) = (Vec::new(), Vec::new(), Vec::new());
        let mut files = vec![program.to_string()];
        for _ in 0..rounds {
            let t = Instant::now();
            let (_, maxrss) =
                run_measured(Command::new(bin).args(["static", program, "-o"]).arg(&out))?;
            secs.push(t.elapsed().as_secs_f64());
            rss.push(maxrss as f64 / 1024.0);
            if files.len() == 1 {
                let p: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out)?)?;
                let libs = p["static"]["provenance"]["libraries"]
                    .as_array()
                    .context("the profile has no libraries list")?;
                files.extend(
                    libs.iter()
                        .filter_map(|l| l["path"].as_str().map(String::from)),
                );
            }
            let t = Instant::now();
            let st = Command::new("objdump")
                .arg("-d")
                .args(&files)
                .stdout(std::process::Stdio::null())
                .status()?;
            anyhow::ensure!(st.success(), "objdump -d failed on {files:?}");
            objdump.push(t.elapsed().as_secs_f64());
        }
        let p: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out)?)?;
        let prov = &p["static"]["provenance"];
        let (s, o) = (median(&mut secs), median(&mut objdump));
        rows.push_str(&format!(
            "| {program} | {} | {} | {} | {:.2} s | {:.0} MiB | {:.2} s | {:.2} |\n",
            files.len() - 1,
            prov["functions_total"],
            p["roles"][0]["phases"][0]["syscalls"]
                .as_object()
                .map_or(0, |m| m.len()),
            s,
            median(&mut rss),
            o,
            s / o
        ));
    }
    Ok(format!(
        "## Static analysis: time and memory per program\n\n\
         `cargo xtask bench --static` (release build): `phasebox static PROGRAM -o FILE` — \
         loader search, disassembly of the program and every library, call graph, \
         reachability, and the whole-image set — against `objdump -d` over the same files, \
         alternating, median of {rounds} rounds; peak RSS from wait4. The analysis of each \
         library is made once per run and shared by both walks.\n\n\
         | program | libraries | functions | reachable syscalls | phasebox static | peak RSS | objdump -d | ratio |\n\
         |---|---|---|---|---|---|---|---|\n{rows}"
    ))
}
