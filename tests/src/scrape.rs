//! Reading an agent's Prometheus page: fetching it, summing a metric's series, listing the
//! metric names it exposes.
use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

/// The /metrics page at `listen` (host:port); "" when it does not answer.
pub fn scrape(listen: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "2", &format!("http://{listen}/metrics")])
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The sum of metric `name`'s series that carry every one of `labels` (`key="value"`).
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| series_name(l) == Some(name) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Every metric name with at least one series on the page.
pub fn metric_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(series_name)
        .map(str::to_string)
        .collect()
}

fn series_name(line: &str) -> Option<&str> {
    if line.starts_with('#') || line.trim().is_empty() {
        return None;
    }
    line.split(['{', ' ']).next()
}

/// Scrapes `listen` until `done` holds for the page (every 200 ms, for at most `limit`);
/// returns the last page, which the caller asserts on.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_names() {
        let page = "# HELP a_total x\n# TYPE a_total counter\n\
            a_total{role=\"w\",syscall=\"read\"} 3\na_total{role=\"m\",syscall=\"read\"} 4\n\
            a_total_other{role=\"w\"} 100\nb 7\n";
        assert_eq!(metric_sum(page, "a_total", &[r#"syscall="read""#]), 7.0);
        assert_eq!(metric_sum(page, "a_total", &[r#"role="w""#]), 3.0);
        assert_eq!(metric_sum(page, "b", &[]), 7.0);
        assert_eq!(metric_sum(page, "c", &[]), 0.0);
        let names: Vec<String> = metric_names(page).into_iter().collect();
        assert_eq!(names, ["a_total", "a_total_other", "b"]);
    }
}
