//! Finding a container to trace (`--container ID|NAME`): by the Docker Engine API when its
//! socket answers (names, the image, the init's pid), else by the id in the cgroups of the
//! processes in /proc. The container's processes are then the ones in its init's pid
//! namespace, including those `docker exec` starts later.
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::procfs;

/// A container phasebox traces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerTarget {
    /// The full id.
    pub id: String,
    /// Its name and image, when the engine's API said them.
    pub name: Option<String>,
    pub image: Option<String>,
    /// Its first process, as the host sees it.
    pub init_pid: u32,
    /// Its pid namespace (device, inode).
    pub pidns: (u64, u64),
}

/// The Docker socket: `DOCKER_HOST` when it is a unix socket, else the usual path.
fn docker_socket() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(str::to_string))
        .unwrap_or_else(|| "/var/run/docker.sock".into())
}

/// `GET path` on the Docker Engine API at `socket`: the status and the body.
fn docker_get(socket: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n")?;
    let mut reply = String::new();
    s.take(16 << 20).read_to_string(&mut reply)?;
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = reply
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
}

/// What the Docker Engine API says of `spec`, if its socket answers.
fn from_docker_api(spec: &str) -> anyhow::Result<Option<ContainerTarget>> {
    let socket = docker_socket();
    let Ok((status, body)) = docker_get(&socket, &format!("/containers/{spec}/json")) else {
        return Ok(None);
    };
    if status == 404 {
        anyhow::bail!("the container engine at {socket} knows no container {spec}");
    }
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|_| {
        anyhow::anyhow!("the container engine at {socket} answered {status} for {spec}")
    })?;
    let pid = v["State"]["Pid"].as_u64().unwrap_or(0) as u32;
    if pid == 0 {
        anyhow::bail!("container {spec} is not running");
    }
    let pidns = procfs::pid_namespace(pid)
        .ok_or_else(|| anyhow::anyhow!("container {spec}'s process {pid} is not in /proc"))?;
    Ok(Some(ContainerTarget {
        id: v["Id"].as_str().unwrap_or_default().to_string(),
        name: v["Name"]
            .as_str()
            .map(|n| n.trim_start_matches('/').to_string()),
        image: v["Config"]["Image"].as_str().map(str::to_string),
        init_pid: pid,
        pidns,
    }))
}

/// The container whose id starts with `prefix`, from the cgroups in /proc: its first process
/// is the one whose parent is not in it.
fn from_cgroups(prefix: &str) -> anyhow::Result<ContainerTarget> {
    let members: Vec<(u32, String)> = procfs::pids()
        .into_iter()
        .filter_map(|pid| Some((pid, procfs::container(pid)?.id)))
        .filter(|(_, id)| id.starts_with(prefix))
        .collect();
    let ids: std::collections::BTreeSet<&str> = members.iter().map(|(_, id)| id.as_str()).collect();
    match ids.len() {
        0 => anyhow::bail!(
            "no running process belongs to a container {prefix} (give a full or 12-character id, \
             or a name with the engine's socket in DOCKER_HOST)"
        ),
        1 => {}
        n => anyhow::bail!("{prefix} names {n} containers: give more of the id"),
    }
    let pids: std::collections::BTreeSet<u32> = members.iter().map(|(p, _)| *p).collect();
    let init = pids
        .iter()
        .copied()
        .find(|&p| procfs::stat(p).is_none_or(|s| !pids.contains(&s.ppid)))
        .unwrap_or_else(|| *pids.iter().next().expect("one member at least"));
    let pidns = procfs::pid_namespace(init)
        .ok_or_else(|| anyhow::anyhow!("container {prefix}'s process {init} is gone"))?;
    Ok(ContainerTarget {
        id: members[0].1.clone(),
        name: None,
        image: None,
        init_pid: init,
        pidns,
    })
}

/// Finds the container `spec` (a full or short id, or a name).
pub fn resolve(spec: &str) -> anyhow::Result<ContainerTarget> {
    if spec.is_empty() || spec.contains('/') {
        anyhow::bail!("{spec:?} is not a container id or name");
    }
    if let Some(t) = from_docker_api(spec)? {
        return Ok(t);
    }
    let hex = spec.len() >= 12 && spec.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex {
        anyhow::bail!(
            "cannot find container {spec}: no container engine answers at {} to look the name \
             up (set DOCKER_HOST, or give the container's id)",
            docker_socket()
        );
    }
    from_cgroups(&spec.to_ascii_lowercase())
}

/// Every process in the container's pid namespace.
pub fn members(target: &ContainerTarget) -> Vec<u32> {
    procfs::pids()
        .into_iter()
        .filter(|&p| procfs::pid_namespace(p) == Some(target.pidns))
        .collect()
}
