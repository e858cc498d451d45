//! The study's page (docs/study.md): the answers in words with the run's numbers, and the
//! layout around the tables that `study.rs` measured.
use std::fmt::Write as _;

/// nginx under one policy: median requests/s, the rounds' spread, failed requests, and
/// whether every nginx quit cleanly.
pub struct Perf {
    pub label: String,
    pub rps: f64,
    /// (max - min) / median of the rounds, in percent.
    pub spread: f64,
    pub failed: u64,
    pub quit_ok: bool,
}

/// The numbers the answers quote.
pub struct Stat {
    pub key: &'static str,
    pub allowed: usize,
    pub missing: usize,
    pub passed: Option<String>,
    pub critical: Vec<String>,
}

/// The answers to RQ2 and RQ3, in words, with this run's numbers.
pub fn answers(stats: &[(String, Vec<Stat>)], perf: &[Perf]) -> (String, String) {
    // The rounds of one mode differ by this much on this machine: smaller differences
    // between modes are not findings.
    let noise = perf.iter().map(|p| p.spread).fold(0.0, f64::max);
    let mut rq2 = String::from("**Answer.** ");
    for prog in ["pwd", "nginx"] {
        accuracy_answer(&mut rq2, stats, prog);
    }
    filter_cost_answer(&mut rq2, perf, noise);
    let mut rq3 = String::from("**Answer.** ");
    phase_policy_answer(&mut rq3, stats);
    phase_cost_answer(&mut rq3, perf, noise);
    rq3.push_str(COVERAGE_ANSWER);
    // The texts are written over several source lines: one space between words.
    let tidy = |t: String| t.split_whitespace().collect::<Vec<_>>().join(" ");
    (tidy(rq2), tidy(rq3))
}

/// The numbers of one program's policy (`key`), when the study has them.
fn stat<'a>(stats: &'a [(String, Vec<Stat>)], prog: &str, key: &str) -> Option<&'a Stat> {
    stats
        .iter()
        .find(|(p, _)| p == prog)
        .and_then(|(_, v)| v.iter().find(|s| s.key == key))
}

/// The median requests/s of the first mode whose label starts with `prefix`.
fn rate(perf: &[Perf], prefix: &str) -> Option<f64> {
    perf.iter()
        .find(|p| p.label.starts_with(prefix))
        .map(|p| p.rps)
}

/// RQ2 for one program: static against dynamic, in calls allowed, missed and critical.
fn accuracy_answer(rq2: &mut String, stats: &[(String, Vec<Stat>)], prog: &str) {
    let get = |key: &str| stat(stats, prog, key);
    let (Some(st), Some(un), Some(one), Some(dk), Some(wh)) = (
        get("static"),
        get("union"),
        get("one"),
        get("docker"),
        get("whole"),
    ) else {
        return;
    };
    let _ = write!(
        rq2,
        "For {prog}, static analysis allows {} calls and misses {} (scenarios passed under it: \
         {}); the dynamic profile of every scenario allows {} and passes {}, but one learned \
         from a single scenario allows {}, misses {} and passes only {}. Static analysis missed \
         no call here, while dynamic learning is only as accurate as its scenarios; the \
         price of static accuracy is {} extra calls, {} of them security-critical ({} vs {}), \
         still far below the whole image ({}) and Docker's default ({}). ",
        st.allowed,
        st.missing,
        st.passed.as_deref().unwrap_or("—"),
        un.allowed,
        un.passed.as_deref().unwrap_or("—"),
        one.allowed,
        one.missing,
        one.passed.as_deref().unwrap_or("—"),
        st.allowed.saturating_sub(un.allowed),
        st.critical.len().saturating_sub(un.critical.len()),
        st.critical.len(),
        un.critical.len(),
        wh.allowed,
        dk.allowed,
    );
}

/// RQ2 on performance: nginx under the static and the dynamic policy.
fn filter_cost_answer(rq2: &mut String, perf: &[Perf], noise: f64) {
    let (Some(run), Some(st), Some(un)) = (
        rate(perf, "phasebox run, no filter"),
        rate(perf, "phasebox static"),
        rate(perf, "dynamic union"),
    ) else {
        return;
    };
    let _ = write!(
        rq2,
        "On performance, nginx served {:.0} req/s under the static policy and {:.0} under \
         the dynamic one ({:.1}% and {:.1}% of the same tracer without a filter; static \
         against dynamic: {}). A filter's cost grows only slightly with its rule count \
         (libseccomp builds a decision tree), so the longer static list is not expected to \
         cost more than the noise of this shared 2-core machine.",
        st,
        un,
        100.0 * st / run,
        100.0 * un / run,
        relative(st, un, noise)
    );
}

/// RQ3: what nginx's phase-aware policy allows once it serves, against the flat ones.
fn phase_policy_answer(rq3: &mut String, stats: &[(String, Vec<Stat>)]) {
    let (Some(un), Some(ph), Some(st)) = (
        stat(stats, "nginx", "union"),
        stat(stats, "nginx", "phase"),
        stat(stats, "nginx", "static"),
    ) else {
        return;
    };
    let _ = write!(
        rq3,
        "{}Once nginx's worker serves, the phase-aware policy allows {} calls \
         instead of {} (dynamic union) or {} (static), and {} security-critical calls ({}) \
         instead of {} ({}) and {}. ",
        if ph.allowed < un.allowed {
            "Yes, for a server. "
        } else {
            ""
        },
        ph.allowed,
        un.allowed,
        st.allowed,
        ph.critical.len(),
        if ph.critical.is_empty() {
            "none".into()
        } else {
            ph.critical.join(" ")
        },
        un.critical.len(),
        un.critical.join(" "),
        st.critical.len()
    );
}

/// RQ3 on performance: nginx under phase-aware enforcement against the union policy.
fn phase_cost_answer(rq3: &mut String, perf: &[Perf], noise: f64) {
    let (Some(run), Some(un), Some(ph)) = (
        rate(perf, "phasebox run, no filter"),
        rate(perf, "dynamic union"),
        rate(perf, "phase-aware"),
    ) else {
        return;
    };
    let failed = perf
        .iter()
        .find(|p| p.label.starts_with("phase-aware"))
        .map_or(0, |p| p.failed);
    let _ = write!(
        rq3,
        "Under phase-aware enforcement nginx served {:.0} req/s against {:.0} under the union
         policy ({:.1}% of the tracer alone; phase-aware against union: {}), with {failed} failed \
         requests. ",
        ph,
        un,
        100.0 * ph / run,
        relative(ph, un, noise)
    );
}

/// RQ3's condition, the same for every run.
const COVERAGE_ANSWER: &str = "For pwd it brings nothing: pwd lives about a millisecond and runs \
     each phase once, so the union of its phases is the policy that matters. The condition is \
     coverage: a phase-aware policy is as good as the scenarios that taught it, which is what \
     the hybrid export's review (`export --hybrid`, docs/static.md) is for: the calls static \
     analysis finds reachable that no scenario exercised, each with the code it is reachable \
     from.";

/// `a` against `b` in words, judged against the spread between rounds (`noise`, percent).
fn relative(a: f64, b: f64, noise: f64) -> String {
    let d = 100.0 * (a - b) / b;
    if d.abs() < noise {
        format!("{d:+.1}%, less than the {noise:.0}% spread between rounds of one mode")
    } else {
        format!("{d:+.1}%, more than the {noise:.0}% spread between rounds of one mode")
    }
}

/// The whole page.
pub fn render(
    rq1: &str,
    rq2: &str,
    perf: &[Perf],
    answers: &(String, String),
    quick: bool,
) -> String {
    let base = perf[1].rps;
    let mut t = String::new();
    for p in perf {
        let _ = writeln!(
            t,
            "| {} | {:.0} | {:.0}% | {:.1}% | {} | {} |",
            p.label,
            p.rps,
            p.spread,
            100.0 * p.rps / base,
            p.failed,
            if p.quit_ok { "yes" } else { "no" }
        );
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "# The study: essential calls per phase, static vs dynamic vs phase-aware\n\n\
         Generated by `cargo xtask study{q}` (this page is its output; every number is from that \
         run, on kernel {k}, 2 cores). It traces pwd's and nginx's scenario sets, analyzes both \
         binaries with `phasebox static`, exports and compares the policies, re-runs the scenario \
         sets under each policy, and measures nginx under each with wrk. Its files stay in \
         `target/study/`. `cargo xtask study --policy FILE` adds imported policies (sysfilter or \
         Chestnut output, any format `phasebox compare` reads) to the comparison.\n\n\
         The commands it runs, per program P (pwd, nginx):\n\n```sh\n\
         phasebox scenarios run scenarios/P.toml -o target/study/P\n\
         phasebox static BINARY -o target/study/P.static.json\n\
         phasebox export target/study/P.static.json -o P.static.oci.json          # static\n\
         phasebox export target/study/P/merged.profile.json -o P.union.oci.json   # dynamic\n\
         phasebox export target/study/P/plain.profile.json -o P.one.oci.json      # one scenario (nginx: static-file)\n\
         phasebox export target/study/P/merged.profile.json --per-phase P-phases  # phase-aware\n\
         phasebox scenarios run scenarios/P.toml --seccomp P.{{static,union,one}}.oci.json\n\
         phasebox compare P.dynamic.profile.json P.static.json docker-default-seccomp.json --json P.compare.json\n\
         wrk -t1 -c32 -d5s http://127.0.0.1:1816N/index.html  # nginx under: nothing, run, --seccomp static|union, --seccomp-phases\n```\n\n\
         ## RQ1: what are the essential system calls of pwd and nginx, phase by phase?\n\n{rq1}\
         ## RQ2: static vs dynamic: accuracy, security, performance\n\n{rq2}\
         ### Performance: nginx requests/s under each policy\n\n\
         A fresh nginx (master and one worker, 127.0.0.1:18160–18164) per measurement, 1 s \
         warm-up, then `wrk -t1 -c32 -d{secs}s` on a small page; {rounds} rounds, policies \
         alternated; medians. Failed: non-2xx responses and socket errors over all rounds. \
         Every filtered mode runs under `phasebox run` (it installs the filter), so the ratio is \
         against \"phasebox run, no filter\". The machine is shared: the spread column says how \
         much one mode's rounds differed, and a difference between modes smaller than that is \
         not a finding (BENCHMARKS.md measures the seccomp modes alone, with more rounds).\n\n\
         | mode | median req/s | spread of the rounds | vs phasebox run, no filter | failed requests | clean quit |\n|---|---|---|---|---|---|\n{t}\n\
         {a2}\n\n\
         ## RQ3: does phase-aware sandboxing fit the context better, without costing performance?\n\n\
         {a3}\n",
        a2 = answers.0,
        a3 = answers.1,
        q = if quick { " --quick" } else { "" },
        k = kernel.trim(),
        secs = if quick { 2 } else { 5 },
        rounds = if quick { 2 } else { 5 },
    )
}
