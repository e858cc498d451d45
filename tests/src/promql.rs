//! Just enough of PromQL to say which metrics and labels a query uses: a scanner that skips
//! strings, durations, numbers, functions, operators and Grafana variables, and reports each
//! metric selector with the labels it matches on and the labels the query groups by.
use std::collections::BTreeSet;

/// The metrics and labels one query uses.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Uses {
    /// Each selector's metric name with the label names of its matchers.
    pub selectors: Vec<(String, BTreeSet<String>)>,
    /// Labels named in `by`, `without`, `on`, `ignoring`, `group_left` and `group_right`.
    pub grouping: BTreeSet<String>,
}

impl Uses {
    /// The metric names, without repeats.
    pub fn metrics(&self) -> BTreeSet<&str> {
        self.selectors.iter().map(|(m, _)| m.as_str()).collect()
    }
}

/// Operators and aggregations (an aggregation may come before `by (…)` instead of `(`).
const KEYWORDS: [&str; 22] = [
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    "atan2",
    "start",
    "end",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];
const GROUPING: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The metrics and labels `query` uses.
pub fn uses(query: &str) -> Uses {
    let s: Vec<char> = query.chars().collect();
    let mut out = Uses::default();
    let mut i = 0;
    let skip_ws = |mut i: usize| {
        while i < s.len() && s[i].is_whitespace() {
            i += 1;
        }
        i
    };
    while i < s.len() {
        let c = s[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&s, i);
        } else if c == '[' {
            // A range or subquery duration.
            while i < s.len() && s[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c == '$' {
            // A Grafana variable: $name or ${name}.
            i += 1;
            if i < s.len() && s[i] == '{' {
                while i < s.len() && s[i] != '}' {
                    i += 1;
                }
                i += 1;
            } else {
                while i < s.len() && ident_char(s[i]) {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit() || (c == '.' && s.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // A number: 0.01, 1e-9, 5.
            while i < s.len()
                && (s[i].is_ascii_alphanumeric()
                    || s[i] == '.'
                    || ((s[i] == '-' || s[i] == '+') && matches!(s[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
        } else if c == '{' {
            // Matchers without a metric name: {__name__=~"…"} and the like.
            let (labels, next) = matchers(&s, i);
            out.selectors.push((String::new(), labels));
            i = next;
        } else if ident_start(c) {
            let start = i;
            while i < s.len() && ident_char(s[i]) {
                i += 1;
            }
            let word: String = s[start..i].iter().collect();
            let next = skip_ws(i);
            if GROUPING.contains(&word.as_str()) {
                if next < s.len() && s[next] == '(' {
                    let close = (next..s.len()).find(|&j| s[j] == ')').unwrap_or(s.len());
                    let inner: String = s[next + 1..close].iter().collect();
                    out.grouping.extend(
                        inner
                            .split(',')
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(str::to_string),
                    );
                    i = close + 1;
                }
            } else if next < s.len() && s[next] == '(' {
                // A function or an aggregation.
            } else if KEYWORDS.contains(&word.to_lowercase().as_str()) {
            } else if next < s.len() && s[next] == '{' {
                let (labels, after) = matchers(&s, next);
                out.selectors.push((word, labels));
                i = after;
            } else {
                out.selectors.push((word, BTreeSet::new()));
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The label names of the matchers in the `{…}` at `open`, and the index after it.
fn matchers(s: &[char], open: usize) -> (BTreeSet<String>, usize) {
    let mut labels = BTreeSet::new();
    let mut i = open + 1;
    while i < s.len() && s[i] != '}' {
        if s[i] == '"' || s[i] == '\'' || s[i] == '`' {
            i = skip_string(s, i);
        } else if ident_start(s[i]) {
            let start = i;
            while i < s.len() && ident_char(s[i]) {
                i += 1;
            }
            labels.insert(s[start..i].iter().collect());
        } else {
            i += 1;
        }
    }
    (labels, i + 1)
}

/// The index after the string literal starting at `i`.
fn skip_string(s: &[char], i: usize) -> usize {
    let quote = s[i];
    let mut j = i + 1;
    while j < s.len() && s[j] != quote {
        if s[j] == '\\' && quote != '`' {
            j += 1;
        }
        j += 1;
    }
    j + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(xs: &[&str]) -> BTreeSet<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn selectors_and_grouping() {
        let u = uses(
            r#"sum by (program, role) (rate(phasebox_syscalls_total{instance=~"$instance", program=~"a,b}"}[$__rate_interval])) / on (program) group_left(role) phasebox_phase_info > 0.5e-3"#,
        );
        assert_eq!(
            u.selectors,
            [
                (
                    "phasebox_syscalls_total".to_string(),
                    set(&["instance", "program"])
                ),
                ("phasebox_phase_info".to_string(), set(&[])),
            ]
        );
        assert_eq!(u.grouping, set(&["program", "role"]));
    }

    #[test]
    fn keywords_numbers_and_functions_are_not_metrics() {
        let u = uses(
            "topk(10, x_total) and bool y offset 5m unless absent(up{job=~\".*a.*\"}) or 1e-9 + Inf",
        );
        let metrics: Vec<&str> = u.metrics().into_iter().collect();
        assert_eq!(metrics, ["up", "x_total", "y"]);
        assert_eq!(
            u.selectors.iter().find(|(m, _)| m == "up").unwrap().1,
            set(&["job"])
        );
        let u = uses("sum without(instance)(rate(a:b:rate5m[5m]))");
        assert_eq!(u.metrics().into_iter().collect::<Vec<_>>(), ["a:b:rate5m"]);
        assert_eq!(u.grouping, set(&["instance"]));
    }
}
