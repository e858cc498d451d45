//! Podman's containers found by their monitors: every running Podman container has a conmon
//! process whose command line names its id, its name and its bundle, whether Podman's API
//! service runs or not, rootful or rootless.
use phasebox_core::conmon;

use crate::procfs;

/// A running Podman container, as its monitor and storage name it.
pub struct Monitored {
    /// conmon's pid.
    pub monitor: u32,
    pub id: String,
    pub name: Option<String>,
    pub image: Option<String>,
}

/// Every container a conmon monitors now.
fn all() -> Vec<Monitored> {
    procfs::pids()
        .into_iter()
        .filter(|&pid| procfs::stat(pid).is_some_and(|s| s.comm == "conmon"))
        .filter_map(|pid| {
            let argv = procfs::cmdline(pid)?;
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            Some((pid, conmon::monitored(&argv)?))
        })
        .map(|(monitor, m)| {
            let image = m
                .bundle
                .as_deref()
                .and_then(conmon::containers_json_of)
                .and_then(|path| std::fs::read_to_string(path).ok())
                .and_then(|text| conmon::image_of(&text, &m.id));
            Monitored {
                monitor,
                id: m.id,
                name: m.name,
                image,
            }
        })
        .collect()
}

/// The running Podman container with full id `id`.
pub fn monitored(id: &str) -> Option<Monitored> {
    all().into_iter().find(|m| m.id == id)
}

/// The running Podman container `spec` names: its name, or its id or the start of it.
pub fn find(spec: &str) -> anyhow::Result<Option<Monitored>> {
    let prefix = spec.to_ascii_lowercase();
    let mut matching: Vec<Monitored> = all()
        .into_iter()
        .filter(|m| m.name.as_deref() == Some(spec) || m.id.starts_with(&prefix))
        .collect();
    matching.sort_by(|a, b| a.id.cmp(&b.id));
    matching.dedup_by(|a, b| a.id == b.id);
    if matching.len() > 1 {
        anyhow::bail!(
            "{spec} names {} Podman containers: give more of the id",
            matching.len()
        );
    }
    Ok(matching.pop())
}

impl Monitored {
    /// The container's first process: conmon's child (conmon is its subreaper), once it runs.
    pub fn first_process(&self) -> Option<u32> {
        let m = self.monitor;
        let text = std::fs::read_to_string(format!("/proc/{m}/task/{m}/children")).ok()?;
        text.split_whitespace().find_map(|p| p.parse().ok())
    }
}
