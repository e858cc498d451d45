//! What a guest sent back over its console (the protocol of tests/vm/checks.sh).
use std::collections::BTreeMap;

/// A guest's report: its kernel, each step's exit status, each file it sent.
#[derive(Debug, Default)]
pub struct Report {
    /// `uname -r` and `uname -m` in the guest.
    pub release: String,
    pub machine: String,
    pub statuses: BTreeMap<String, i32>,
    pub files: BTreeMap<String, String>,
    /// Whether the checks ran to their end.
    pub done: bool,
}

impl Report {
    /// Reads a console log. Protocol lines may follow kernel output on the same line.
    pub fn parse(console: &str) -> Report {
        let mut r = Report::default();
        let mut partial: BTreeMap<String, String> = BTreeMap::new();
        for line in console.lines() {
            let Some(at) = line.find("PBVM-") else {
                continue;
            };
            let line = line[at..].trim_end_matches('\r');
            let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
            match tag {
                "PBVM-KERNEL" => {
                    let mut words = rest.split_whitespace();
                    r.release = words.next().unwrap_or_default().to_string();
                    r.machine = words.next().unwrap_or_default().to_string();
                }
                "PBVM-STATUS" => {
                    if let Some((step, code)) = rest.split_once(' ') {
                        let code = code.trim().parse().unwrap_or(-1);
                        r.statuses.insert(step.to_string(), code);
                    }
                }
                "PBVM-FILE" => {
                    let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
                    let file = partial.entry(name.to_string()).or_default();
                    file.push_str(text);
                    file.push('\n');
                }
                "PBVM-SENT" => {
                    let text = partial.remove(rest.trim()).unwrap_or_default();
                    r.files.insert(rest.trim().to_string(), text);
                }
                "PBVM-DONE" => r.done = true,
                _ => {}
            }
        }
        r
    }

    /// A step's exit status.
    pub fn status(&self, step: &str) -> Result<i32, String> {
        self.statuses
            .get(step)
            .copied()
            .ok_or_else(|| format!("step {step} never ran"))
    }

    /// A file the guest sent.
    pub fn file(&self, name: &str) -> Result<&str, String> {
        self.files
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("{name} was not written"))
    }

    /// A JSON file the guest sent.
    pub fn json(&self, name: &str) -> Result<serde_json::Value, String> {
        serde_json::from_str(self.file(name)?).map_err(|e| format!("{name} is not JSON: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_statuses_and_files_between_kernel_lines() {
        let log = "[    1.0] random: crng init done\r\nPBVM-KERNEL 6.1.0-50-cloud-arm64 aarch64\r\n\
                   PBVM-STATUS export 0\r\nPBVM-FILE a.json {\"x\":\r\nPBVM-FILE a.json 1}\r\n\
                   PBVM-FILE b \r\nPBVM-SENT a.json\r\n[    2.0] x PBVM-SENT b\r\nPBVM-DONE\r\n";
        let r = Report::parse(log);
        assert_eq!(
            (r.release.as_str(), r.machine.as_str()),
            ("6.1.0-50-cloud-arm64", "aarch64")
        );
        assert_eq!(r.status("export"), Ok(0));
        assert_eq!(r.json("a.json").unwrap()["x"], 1);
        assert_eq!(r.file("b"), Ok("\n"));
        assert!(r.file("c").is_err() && r.status("run").is_err());
        assert!(r.done);
    }
}
