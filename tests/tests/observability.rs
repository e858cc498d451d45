//! deploy/grafana/phasebox.json and deploy/prometheus/rules.yml against a real agent: every
//! metric their PromQL uses is on the agent's /metrics page with the labels they name, every
//! phasebox metric the agent exports is on the dashboard, and every dashboard query returns
//! series from a Prometheus scraping that agent. The agent runs in monitor mode with --errors
//! on a small server that makes a failing call outside its profile, so the violation and error
//! series exist too. The rules pass `promtool check rules` and their unit tests.
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use phasebox_tests::{
    CARGO_LIBRARY_PATH, Guard, TempDir, ask, fixture, image,
    metrics::{label_names, scrape_until, sum},
    nginx::free_port,
    phasebox_bin,
    prometheus::Prometheus,
    promql, spawn_agent,
};

/// Labels Prometheus adds to every scraped series, and the PodMonitor's `node`.
const TARGET_LABELS: [&str; 3] = ["instance", "job", "node"];

fn dashboard() -> serde_json::Value {
    let path = image::deploy_dir().join("grafana/phasebox.json");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every panel query of the dashboard, with its panel's title.
fn panel_queries(d: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("every target has a PromQL expr");
            out.push((p["title"].as_str().unwrap().to_string(), expr.to_string()));
        }
    }
    out
}

/// The selector and label of each `label_values(SELECTOR, LABEL)` variable query.
fn variable_queries(d: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for v in d["templating"]["list"].as_array().unwrap() {
        if v["type"] != "query" {
            continue;
        }
        let q = v["query"]["query"]
            .as_str()
            .expect("a query variable's query");
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {}: not label_values(…): {q}", v["name"]));
        let (selector, label) = inner
            .rsplit_once(',')
            .expect("label_values(SELECTOR, LABEL)");
        out.push((selector.trim().to_string(), label.trim().to_string()));
    }
    out
}

fn rules() -> serde_yaml::Value {
    let text = std::fs::read_to_string(image::deploy_dir().join("prometheus/rules.yml")).unwrap();
    serde_yaml::from_str(&text).expect("rules.yml is YAML")
}

/// (name, expr) of every rule; name is the record or the alert.
fn rule_exprs(r: &serde_yaml::Value) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    for g in r["groups"].as_sequence().unwrap() {
        for rule in g["rules"].as_sequence().unwrap() {
            let (name, record) = match (rule["record"].as_str(), rule["alert"].as_str()) {
                (Some(n), _) => (n, true),
                (_, Some(n)) => (n, false),
                _ => panic!("a rule with neither record nor alert: {rule:?}"),
            };
            out.push((
                name.to_string(),
                rule["expr"].as_str().unwrap().to_string(),
                record,
            ));
        }
    }
    out
}

/// What `query` (from `from`) uses that the page lacks: unknown metrics, or labels no series of
/// the metric carries.
fn missing(
    from: &str,
    query: &str,
    page: &BTreeMap<String, BTreeSet<String>>,
    extra_metrics: &BTreeSet<String>,
) -> Vec<String> {
    let uses = promql::uses(query);
    let mut out = Vec::new();
    let known = |l: &str| TARGET_LABELS.contains(&l);
    let mut labels_of_query = BTreeSet::new();
    for (metric, labels) in &uses.selectors {
        if extra_metrics.contains(metric) {
            continue;
        }
        let Some(have) = page.get(metric) else {
            out.push(format!(
                "{from}: metric {metric} is not on the agent's page"
            ));
            continue;
        };
        labels_of_query.extend(have.iter().cloned());
        for l in labels.iter().filter(|l| !have.contains(*l) && !known(l)) {
            out.push(format!("{from}: {metric} has no label {l}"));
        }
    }
    for l in uses.grouping.iter().filter(|l| !known(l)) {
        if !labels_of_query.contains(l) {
            out.push(format!(
                "{from}: groups by {l}, which none of its metrics has"
            ));
        }
    }
    if uses.selectors.is_empty() {
        out.push(format!("{from}: uses no metric at all: {query}"));
    }
    out
}

/// A server with a learned profile, running, and an agent monitoring it that has seen a
/// violation; returns the agent's address and what to stop.
struct Monitored {
    listen: String,
    /// The server's port.
    port: u16,
    // Declared before the server: the agent stops first.
    _agent: Guard,
    _server: Guard,
    /// The agent's standard error, kept open: it logs each violation there.
    _log: std::io::BufReader<std::process::ChildStderr>,
    _dir: TempDir,
}

fn monitored_server() -> Monitored {
    let dir = TempDir::new("observability");
    let profile = dir.path("normal.json");
    let port = free_port();
    let mut learn = Command::new(phasebox_bin())
        .args(["run", "-q", "--profile", profile.to_str().unwrap(), "--"])
        .arg(fixture("phased_server"))
        .arg(port.to_string())
        .env_remove(CARGO_LIBRARY_PATH)
        .spawn()
        .unwrap();
    assert_eq!(ask(port, "GET"), "hello\n");
    assert_eq!(ask(port, "quit"), "bye\n");
    assert!(learn.wait().unwrap().success());

    let port = free_port();
    let server = Guard::new(
        Command::new(fixture("phased_server"))
            .arg(port.to_string())
            .env_remove(CARGO_LIBRARY_PATH)
            .spawn()
            .unwrap(),
    );
    assert_eq!(ask(port, "GET"), "hello\n");
    let listen = format!("127.0.0.1:{}", free_port());
    let pid = server.id().to_string();
    // --errors: the failed ptrace call is counted too.
    let args = [
        "-p",
        &pid,
        "--listen",
        &listen,
        "--errors",
        "--monitor",
        profile.to_str().unwrap(),
    ];
    let (agent, log, line) = spawn_agent(&args);
    let m = Monitored {
        listen,
        port,
        _agent: agent,
        _server: server,
        _log: log,
        _dir: dir,
    };
    assert!(line.contains("metrics on"), "agent did not start: {line}");
    assert_eq!(ask(port, "GET"), "hello\n");
    assert!(ask(port, "ptrace").starts_with("ptrace: "));
    m
}

#[test]
fn dashboard_and_rules_use_what_the_agent_exports() {
    let m = monitored_server();
    let page = scrape_until(&m.listen, Duration::from_secs(10), |p| {
        sum(p, "phasebox_profile_violations_total", &[]) >= 1.0
    });
    assert!(
        sum(&page, "phasebox_profile_violations_total", &[]) >= 1.0,
        "no violation series:\n{page}"
    );
    let labels = label_names(&page);

    let d = dashboard();
    let rules = rules();
    let records: BTreeSet<String> = rule_exprs(&rules)
        .into_iter()
        .filter(|(_, _, record)| *record)
        .map(|(n, _, _)| n)
        .collect();
    let mut problems = Vec::new();
    let mut on_dashboard = BTreeSet::new();
    for (title, expr) in panel_queries(&d) {
        problems.extend(missing(
            &format!("panel {title:?}"),
            &expr,
            &labels,
            &BTreeSet::new(),
        ));
        on_dashboard.extend(
            promql::uses(&expr)
                .metrics()
                .into_iter()
                .map(str::to_string),
        );
    }
    for (selector, label) in variable_queries(&d) {
        problems.extend(missing("a variable", &selector, &labels, &BTreeSet::new()));
        let metric = promql::uses(&selector).selectors[0].0.clone();
        let has = labels.get(&metric).is_some_and(|l| l.contains(&label));
        if !has && !TARGET_LABELS.contains(&label.as_str()) {
            problems.push(format!(
                "a variable lists {label} of {metric}, which has no such label"
            ));
        }
    }
    // Alerts may use recorded series and Prometheus's own `up`.
    let mut allowed = records.clone();
    allowed.insert("up".to_string());
    for (name, expr, _) in rule_exprs(&rules) {
        problems.extend(missing(&format!("rule {name}"), &expr, &labels, &allowed));
    }
    // phasebox's own metrics, all of them; of the standard process_* ones the dashboard shows
    // those worth watching (CPU, memory, descriptors, start time).
    let own = labels.keys().filter(|m| m.starts_with("phasebox_"));
    for metric in own.filter(|m| !on_dashboard.contains(*m)) {
        problems.push(format!(
            "the agent exports {metric}, which no dashboard panel shows"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Every panel query, as Grafana would send it, returns series while the server serves.
    let prom = Prometheus::start(&m.listen);
    let deadline = Instant::now() + Duration::from_secs(40);
    for (title, expr) in panel_queries(&d) {
        let q = grafana_to_promql(&expr);
        let answer = loop {
            assert_eq!(ask(m.port, "GET"), "hello\n");
            let a = prom.query(&q);
            let has = a["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty());
            if has || Instant::now() >= deadline {
                break a;
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        assert_eq!(
            answer["status"], "success",
            "panel {title:?}: {q}: {answer}"
        );
        assert!(
            answer["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty()),
            "panel {title:?} shows nothing: {q}: {answer}"
        );
    }
}

/// A dashboard query with Grafana's variables as Grafana fills them for "All" and a 1-minute
/// step: every multi-value variable matches anything.
fn grafana_to_promql(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__range", "5m")
        .replace("$instance", ".*")
        .replace("$program", ".*")
        .replace("$container", ".*")
}

#[test]
fn dashboard_is_well_formed() {
    let d = dashboard();
    let vars: BTreeSet<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(vars.contains("datasource"), "a datasource variable");
    let mut ids = BTreeSet::new();
    for p in d["panels"].as_array().unwrap() {
        let title = p["title"].as_str().unwrap();
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "panel id repeated: {title}"
        );
        let g = &p["gridPos"];
        assert!(
            g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24,
            "{title}: too wide"
        );
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        let mut refs = BTreeSet::new();
        for t in p["targets"].as_array().unwrap() {
            assert!(
                refs.insert(t["refId"].as_str().unwrap()),
                "{title}: refId repeated"
            );
            let expr = t["expr"].as_str().unwrap();
            // Every $variable is the dashboard's or one of Grafana's own.
            for part in expr.split('$').skip(1) {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    vars.contains(name.as_str()) || name.starts_with("__"),
                    "{title}: unknown variable ${name}"
                );
            }
        }
    }
    // What the dashboard is for.
    let titles: Vec<String> = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap().to_lowercase())
        .collect();
    for topic in [
        "role and phase",
        "phase now",
        "failed",
        "violations",
        "dropped",
        "kernel time",
        "container",
        "agent memory",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(topic)),
            "no panel about {topic}: {titles:?}"
        );
    }
}

#[test]
fn rules_pass_promtool() {
    let dir: PathBuf = image::deploy_dir().join("prometheus");
    for args in [
        ["check", "rules", "rules.yml"],
        ["test", "rules", "rules.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("promtool is installed (Debian's prometheus package)");
        assert!(
            out.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Every alert the issue asks for exists.
    let names: Vec<String> = rule_exprs(&rules())
        .into_iter()
        .map(|(n, _, _)| n)
        .collect();
    for alert in [
        "PhaseboxProfileViolation",
        "PhaseboxEventsDropped",
        "PhaseboxAgentDown",
    ] {
        assert!(names.iter().any(|n| n == alert), "no {alert} in {names:?}");
    }
}
