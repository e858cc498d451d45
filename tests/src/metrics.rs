//! Reading an agent's /metrics page, and waiting for conditions with a deadline.
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// One sample: metric name, labels, value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The page at http://LISTEN/metrics ("" when it cannot be fetched).
pub fn scrape(listen: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-s", "--max-time", "5", &format!("http://{listen}/metrics")])
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Parses the text exposition format (label values without escaped quotes, as phasebox's are).
pub fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split("\",")
            .filter_map(|kv| {
                let (k, v) = kv.split_once("=\"")?;
                Some((k.to_string(), v.trim_end_matches('"').to_string()))
            })
            .collect();
        out.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    out
}

/// The samples of `name` whose labels include every `key=value` of `with`.
fn matching(text: &str, name: &str, with: &[(&str, &str)]) -> impl Iterator<Item = Sample> {
    let with: Vec<(String, String)> = with
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let name = name.to_string();
    parse(text)
        .into_iter()
        .filter(move |s| s.name == name && with.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
}

/// The value of the first sample of `name` whose labels include every `key=value` of `with`.
pub fn value(text: &str, name: &str, with: &[(&str, &str)]) -> Option<f64> {
    matching(text, name, with).next().map(|s| s.value)
}

/// Every metric name on the page with the label names its samples carry.
pub fn label_names(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in parse(text) {
        out.entry(s.name).or_default().extend(s.labels.into_keys());
    }
    out
}

/// The sum of the samples of `name` whose labels include every `key=value` of `with`.
pub fn sum(text: &str, name: &str, with: &[(&str, &str)]) -> f64 {
    matching(text, name, with).map(|s| s.value).sum()
}

/// Scrapes `listen` until `done` holds for the page (for at most `limit`); returns the last
/// page either way, for the caller to assert on with what it knows.
pub fn scrape_until(listen: &str, limit: Duration, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let page = scrape(listen);
        if done(&page) || Instant::now() >= deadline {
            return page;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Calls `check` until it returns Some, or panics with `what` after `limit`.
pub fn eventually<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until two scrapes of `listen`, `gap` apart, give the same `name` samples (nothing
/// moves any more); returns the last page.
pub fn settled(listen: &str, name: &str, gap: Duration, limit: Duration) -> String {
    let of = |text: &str| -> Vec<Sample> {
        parse(text).into_iter().filter(|s| s.name == name).collect()
    };
    let mut last = scrape(listen);
    eventually(limit, &format!("{name} to settle"), || {
        std::thread::sleep(gap);
        let now = scrape(listen);
        let same = !of(&now).is_empty() && of(&now) == of(&last);
        last = now.clone();
        same.then_some(now)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_and_values() {
        let text = "# HELP x y\nphasebox_syscalls_total{phase=\"a b\",role=\"worker\",syscall=\"read\"} 12\nplain 3\n";
        let s = parse(text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].labels["phase"], "a b");
        assert_eq!(
            value(text, "phasebox_syscalls_total", &[("syscall", "read")]),
            Some(12.0)
        );
        assert_eq!(value(text, "plain", &[]), Some(3.0));
        assert_eq!(value(text, "plain", &[("x", "y")]), None);
        let two = "a{r=\"w\",s=\"read\"} 3\na{r=\"m\",s=\"read\"} 4\n";
        assert_eq!(sum(two, "a", &[("s", "read")]), 7.0);
        assert_eq!(sum(two, "a", &[("r", "w")]), 3.0);
        assert_eq!(sum(two, "b", &[]), 0.0);
        let names = label_names(&format!("{two}plain 1\n"));
        assert_eq!(names["a"].iter().collect::<Vec<_>>(), ["r", "s"]);
        assert!(names["plain"].is_empty());
    }
}
