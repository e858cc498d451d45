//! strace as the oracle of a scenario: the same scenario run again under `strace -f` in a
//! fresh environment, and the syscall names it saw set against the learned profile's.
use std::collections::BTreeSet;

/// Syscall names in `strace -f -o FILE` output ("PID name(args) = ret"; the "<... name
/// resumed>" halves of interrupted calls were already counted by their first half).
pub fn strace_names(log: &str) -> BTreeSet<String> {
    log.lines()
        .filter_map(|line| {
            let call = line.split_once(' ')?.1.trim_start();
            let name = &call[..call.find('(')?];
            let ok =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            ok.then(|| name.to_string())
        })
        .collect()
}

/// What strace saw that the profile lacks, and what the profile has that strace did not see.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct OracleDiff {
    pub only_strace: Vec<String>,
    pub only_phasebox: Vec<String>,
}

impl OracleDiff {
    pub fn new(strace: &BTreeSet<String>, phasebox: &BTreeSet<String>) -> OracleDiff {
        OracleDiff {
            only_strace: strace.difference(phasebox).cloned().collect(),
            only_phasebox: phasebox.difference(strace).cloned().collect(),
        }
    }

    pub fn agrees(&self) -> bool {
        self.only_strace.is_empty() && self.only_phasebox.is_empty()
    }

    pub fn describe(&self) -> String {
        if self.agrees() {
            return "same syscalls as strace".into();
        }
        let list = |v: &[String]| {
            if v.is_empty() {
                "-".into()
            } else {
                v.join(" ")
            }
        };
        format!(
            "strace only: {}; phasebox only: {}",
            list(&self.only_strace),
            list(&self.only_phasebox)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_strace_names() {
        let log = "12 execve(\"/bin/pwd\", [\"pwd\"], 0x7ff /* 3 vars */) = 0\n\
                   12 read(3, <unfinished ...>\n\
                   13 <... read resumed>\"\", 10) = 0\n\
                   13 --- SIGCHLD {si_signo=SIGCHLD} ---\n\
                   12 exit_group(0)                     = ?\n\
                   12 +++ exited with 0 +++\n";
        let names: Vec<String> = strace_names(log).into_iter().collect();
        assert_eq!(names, ["execve", "exit_group", "read"]);
        let d = OracleDiff::new(
            &strace_names(log),
            &["read", "execve", "write"].map(String::from).into(),
        );
        assert_eq!(
            d.describe(),
            "strace only: exit_group; phasebox only: write"
        );
        assert!(!d.agrees());
    }
}
