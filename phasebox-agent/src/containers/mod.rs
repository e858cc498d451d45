//! Finding a container to trace (`--container ID|NAME`): by an engine's API when its socket
//! answers (Docker's, or Podman's in Docker's form: names, the image, the init's pid), else by
//! the monitor every Podman container has (conmon, whose command line names the container),
//! else by the id in the cgroups of the processes in /proc. A container is its cgroup: its
//! processes are the ones whose /proc/PID/cgroup names its id, never merely those in its pid
//! namespace (which may be the host's, or a pod's shared by several containers). A container
//! that does not exist yet, or is not running, is waited for.
mod engine_api;
mod podman;

use crate::procfs;
use engine_api::Inspected;

/// A container phasebox traces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerTarget {
    /// The full id.
    pub id: String,
    /// Its name and image, when the engine's API or Podman's monitor said them.
    pub name: Option<String>,
    pub image: Option<String>,
    /// Its first process, as the host sees it.
    pub init_pid: u32,
    /// Its pid namespace (device, inode).
    pub pidns: (u64, u64),
}

/// A container an engine knows but does not run now: its id if it knows it, and whether it
/// shares the host's pid namespace.
struct Absent {
    id: Option<String>,
    host_pid: bool,
}

/// What the engines' APIs say of `spec` (a name or an id): Ok(None) when no engine knows it
/// (`answered`: whether any engine answers at all), Err when one knows it but does not run it.
fn from_engine_api(spec: &str, answered: &mut bool) -> Result<Option<ContainerTarget>, Absent> {
    let v = match engine_api::inspect(spec) {
        Inspected::NoEngine => return Ok(None),
        Inspected::Unknown => {
            *answered = true;
            return Ok(None);
        }
        Inspected::Known(v) => v,
    };
    *answered = true;
    let id = v["Id"].as_str().map(str::to_string);
    let host_pid = v["HostConfig"]["PidMode"].as_str() == Some("host");
    let pid = v["State"]["Pid"].as_u64().unwrap_or(0) as u32;
    let Some(pidns) = (pid != 0).then(|| procfs::pid_namespace(pid)).flatten() else {
        return Err(Absent { id, host_pid });
    };
    let (name, image) = name_and_image(&v);
    Ok(Some(ContainerTarget {
        id: id.unwrap_or_default(),
        name,
        image,
        init_pid: pid,
        pidns,
    }))
}

/// The name and image in an engine's description of a container.
fn name_and_image(v: &serde_json::Value) -> (Option<String>, Option<String>) {
    let name = v["Name"]
        .as_str()
        .map(|n| n.trim_start_matches('/').to_string());
    (name, v["Config"]["Image"].as_str().map(str::to_string))
}

/// Whether the container with full id `id` is the one `spec` names, and then the container:
/// by its id, or by the name an engine or Podman's monitor gives it. `pid` is one of its
/// processes.
pub fn identify(spec: &str, id: &str, pid: u32) -> Option<ContainerTarget> {
    let pidns = procfs::pid_namespace(pid);
    let (name, image) = match engine_api::inspect(id) {
        Inspected::Known(v) => name_and_image(&v),
        _ => podman::monitored(id).map_or((None, None), |m| (m.name, m.image)),
    };
    let by_id = id.starts_with(&spec.to_ascii_lowercase());
    let by_name = name.as_deref() == Some(spec);
    (by_id || by_name).then(|| ContainerTarget {
        id: id.to_string(),
        name,
        image,
        init_pid: pid,
        pidns: pidns.unwrap_or((0, 0)),
    })
}

/// Why no container was found in /proc's cgroups.
enum CgroupSearch {
    /// No process runs in a container with that id (yet).
    None,
    Failed(anyhow::Error),
}

/// The container whose id starts with `prefix`, from the cgroups in /proc: its first process
/// is the one whose parent is not in it.
fn from_cgroups(prefix: &str) -> Result<ContainerTarget, CgroupSearch> {
    let members: Vec<(u32, String)> = procfs::pids()
        .into_iter()
        .filter_map(|pid| Some((pid, procfs::container(pid)?.id)))
        .filter(|(_, id)| id.starts_with(prefix))
        .collect();
    let ids: std::collections::BTreeSet<&str> = members.iter().map(|(_, id)| id.as_str()).collect();
    match ids.len() {
        0 => return Err(CgroupSearch::None),
        1 => {}
        n => {
            return Err(CgroupSearch::Failed(anyhow::anyhow!(
                "{prefix} names {n} containers: give more of the id"
            )));
        }
    }
    let pids: std::collections::BTreeSet<u32> = members.iter().map(|(p, _)| *p).collect();
    let init = pids
        .iter()
        .copied()
        .find(|&p| procfs::stat(p).is_none_or(|s| !pids.contains(&s.ppid)))
        .unwrap_or_else(|| *pids.iter().next().expect("one member at least"));
    let Some(pidns) = procfs::pid_namespace(init) else {
        return Err(CgroupSearch::None);
    };
    Ok(ContainerTarget {
        id: members[0].1.clone(),
        name: None,
        image: None,
        init_pid: init,
        pidns,
    })
}

/// What `--container SPEC` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// The container runs.
    Running(ContainerTarget),
    /// It does not exist yet, or is not running: the session waits for its first process.
    Waiting(Wanted),
}

/// A container waited for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// What the user gave: a name, or a full or short id.
    pub spec: String,
    /// Its full id, when the engine knows the container already (created, or stopped).
    pub id: Option<String>,
    /// Whether it shares the host's pid namespace (`--pid host`), when the engine says.
    pub host_pid: bool,
}

/// Checks a `--container` argument: an id (hex) or a name as engines allow them (a letter or
/// digit, then letters, digits, `_`, `.`, `-`), so nothing else reaches an API request.
fn check_spec(spec: &str) -> anyhow::Result<()> {
    let mut chars = spec.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && spec.len() <= 255;
    if !ok {
        anyhow::bail!(
            "{:?} is not a container id or name (names are letters, digits, '_', '.' and '-')",
            spec.escape_debug().to_string()
        );
    }
    Ok(())
}

/// Finds the container `spec` (a full or short id, or a name), or says what to wait for.
pub fn find(spec: &str) -> anyhow::Result<Found> {
    check_spec(spec)?;
    let mut answered = false;
    match from_engine_api(spec, &mut answered) {
        Ok(Some(t)) => return Ok(Found::Running(t)),
        Ok(None) => {}
        Err(Absent { id, host_pid }) => {
            return Ok(Found::Waiting(Wanted {
                spec: spec.to_string(),
                id,
                host_pid,
            }));
        }
    }
    if let Some(m) = podman::find(spec)? {
        return match from_cgroups(&m.id) {
            Ok(t) => Ok(Found::Running(ContainerTarget {
                name: m.name,
                image: m.image,
                ..t
            })),
            Err(CgroupSearch::Failed(e)) => Err(e),
            Err(CgroupSearch::None) => match m.first_process() {
                // Its monitor runs, its first process does not yet.
                None => Ok(Found::Waiting(Wanted {
                    spec: spec.to_string(),
                    id: Some(m.id),
                    host_pid: false,
                })),
                Some(pid) => anyhow::bail!(
                    "container {spec} runs without a cgroup of its own (rootless Podman on \
                     cgroup v1 runs containers with --cgroups=disabled), and phasebox finds a \
                     container's processes by its cgroup: trace its first process and what it \
                     starts with --pid {pid} instead"
                ),
            },
        };
    }
    let hex = spec.len() >= 12 && spec.bytes().all(|b| b.is_ascii_hexdigit());
    if hex {
        let prefix = spec.to_ascii_lowercase();
        return match from_cgroups(&prefix) {
            Ok(t) => Ok(Found::Running(t)),
            Err(CgroupSearch::None) => Ok(Found::Waiting(Wanted {
                spec: prefix,
                id: None,
                host_pid: false,
            })),
            Err(CgroupSearch::Failed(e)) => Err(e),
        };
    }
    if !answered {
        anyhow::bail!(
            "cannot find container {spec}: no container engine answers at {} to look the name \
             up, and no Podman container of that name runs (start it first, set DOCKER_HOST or \
             CONTAINER_HOST, or give the container's id)",
            engine_api::sockets().join(" or ")
        );
    }
    // An engine answers and does not know it yet: it may be created later.
    Ok(Found::Waiting(Wanted {
        spec: spec.to_string(),
        id: None,
        host_pid: false,
    }))
}

/// Every live process in the container: those whose cgroup names its id (a zombie has
/// exited, and is left out).
pub fn members(target: &ContainerTarget) -> Vec<u32> {
    procfs::pids()
        .into_iter()
        .filter(|&p| procfs::container(p).is_some_and(|c| c.id == target.id))
        .filter(|&p| procfs::is_alive(p).unwrap_or(true))
        .collect()
}

/// Where a process runs, as far as /proc can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Membership {
    /// In the container with this full id.
    Container(String),
    /// On the host (its cgroups name no container).
    Host,
    /// /proc cannot tell: the process is gone.
    Unknown,
}

/// Which container `pid` runs in, from its cgroups.
pub fn membership(pid: u32) -> Membership {
    match procfs::cgroups(pid) {
        None => Membership::Unknown,
        Some(text) => match phasebox_core::container::from_proc_cgroup(&text) {
            Some(c) => Membership::Container(c.id),
            None => Membership::Host,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_ids_or_names() {
        for good in ["web", "nginx-1", "a.b_c", "0123456789ab"] {
            check_spec(good).unwrap();
        }
        for bad in ["", "-x", "a/b", "web\r\nHost: x", "a b", "ü"] {
            let e = check_spec(bad).unwrap_err().to_string();
            assert!(e.contains("is not a container id or name"), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
