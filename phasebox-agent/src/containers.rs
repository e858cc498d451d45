//! Finding a container to trace (`--container ID|NAME`): by the Docker Engine API when its
//! socket answers (names, the image, the init's pid), else by the id in the cgroups of the
//! processes in /proc. A container is its cgroup: its processes are the ones whose
//! /proc/PID/cgroup names its id, never merely those in its pid namespace (which may be the
//! host's, or a pod's shared by several containers). A container that does not exist yet, or
//! is not running, is waited for.
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

/// The most phasebox reads of one answer from the engine (an inspect is a few KB).
const MAX_ANSWER: u64 = 16 << 20;

/// `GET path` on the Docker Engine API at `socket`: the status and the body. A plain write on
/// the unix socket, not a client crate: ureq has no unix sockets, and hyper's client is async
/// where every caller here is not. HTTP/1.0, so the engine ends its answer by closing the
/// connection (no chunks, no keep-alive); phasebox reads at most MAX_ANSWER bytes of it, and
/// httparse reads its head.
fn docker_get(socket: &str, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Error, ErrorKind};
    let bad = |what: &str| Error::new(ErrorKind::InvalidData, format!("the engine's {what}"));
    // `find` checked the name already; nothing else reaches the request line either.
    if !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::new(ErrorKind::InvalidInput, "not a request path"));
    }
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").as_bytes())?;
    let mut reply = Vec::new();
    s.take(MAX_ANSWER + 1).read_to_end(&mut reply)?;
    if reply.len() as u64 > MAX_ANSWER {
        return Err(bad(&format!("answer is over {MAX_ANSWER} bytes")));
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut head = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(at)) = head.parse(&reply) else {
        return Err(bad("answer is not HTTP"));
    };
    let header = |name: &str| {
        let h = head
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))?;
        Some(std::str::from_utf8(h.value).ok()?.trim())
    };
    if header("transfer-encoding").is_some() {
        return Err(bad("answer to HTTP/1.0 is chunked"));
    }
    let mut body = &reply[at..];
    if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body = body.get(..n).ok_or_else(|| bad("answer was cut"))?;
    }
    let body = std::str::from_utf8(body).map_err(|_| bad("answer is not UTF-8"))?;
    Ok((head.code.unwrap_or(0), body.to_string()))
}

/// A container the engine does not run now: its id if it knows it, and whether it shares
/// the host's pid namespace.
struct Absent {
    id: Option<String>,
    host_pid: bool,
}

/// What the Docker Engine API says of `spec` (a name or an id), if its socket answers:
/// Ok(None) when no engine answers, Err when it has no running container by that name.
fn from_docker_api(spec: &str) -> Result<Option<ContainerTarget>, Absent> {
    let Some(v) = inspect(spec) else {
        return Ok(None);
    };
    let id = v["Id"].as_str().map(str::to_string);
    let host_pid = v["HostConfig"]["PidMode"].as_str() == Some("host");
    let pid = v["State"]["Pid"].as_u64().unwrap_or(0) as u32;
    let Some(pidns) = (pid != 0).then(|| procfs::pid_namespace(pid)).flatten() else {
        return Err(Absent { id, host_pid });
    };
    Ok(Some(ContainerTarget {
        id: id.unwrap_or_default(),
        name: v["Name"]
            .as_str()
            .map(|n| n.trim_start_matches('/').to_string()),
        image: v["Config"]["Image"].as_str().map(str::to_string),
        init_pid: pid,
        pidns,
    }))
}

/// The engine's description of container `spec` (name or id): None when no engine answers;
/// `null` when it knows no such container.
fn inspect(spec: &str) -> Option<serde_json::Value> {
    let (status, body) = docker_get(&docker_socket(), &format!("/containers/{spec}/json")).ok()?;
    if status == 404 {
        return Some(serde_json::Value::Null);
    }
    serde_json::from_str(&body).ok()
}

/// Whether the container with full id `id` is the one `spec` names, and then the container:
/// by its id, or by the name the engine gives it. `pid` is one of its processes.
pub fn identify(spec: &str, id: &str, pid: u32) -> Option<ContainerTarget> {
    let pidns = procfs::pid_namespace(pid);
    let mut target = ContainerTarget {
        id: id.to_string(),
        name: None,
        image: None,
        init_pid: pid,
        pidns: pidns.unwrap_or((0, 0)),
    };
    let v = inspect(id).filter(|v| !v.is_null());
    if let Some(v) = &v {
        target.name = v["Name"]
            .as_str()
            .map(|n| n.trim_start_matches('/').to_string());
        target.image = v["Config"]["Image"].as_str().map(str::to_string);
    }
    let by_id = id.starts_with(&spec.to_ascii_lowercase());
    let by_name = target.name.as_deref() == Some(spec);
    (by_id || by_name).then_some(target)
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
    match from_docker_api(spec) {
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
    let hex = spec.len() >= 12 && spec.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex {
        anyhow::bail!(
            "cannot find container {spec}: no container engine answers at {} to look the name \
             up (set DOCKER_HOST, or give the container's id)",
            docker_socket()
        );
    }
    let prefix = spec.to_ascii_lowercase();
    match from_cgroups(&prefix) {
        Ok(t) => Ok(Found::Running(t)),
        Err(CgroupSearch::None) => Ok(Found::Waiting(Wanted {
            spec: prefix,
            id: None,
            host_pid: false,
        })),
        Err(CgroupSearch::Failed(e)) => Err(e),
    }
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

    /// An engine on a unix socket that answers `reply` to one request; its socket's path.
    fn engine(dir: &std::path::Path, reply: Vec<u8>) -> String {
        use std::io::BufRead;
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("engine-{n}.sock"));
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut r = std::io::BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 && !line.ends_with("\r\n\r\n") {}
            let _ = s.write_all(&reply);
        });
        path.display().to_string()
    }

    #[test]
    fn engine_answers_are_read_whole_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let get = |reply: &[u8]| docker_get(&engine(dir.path(), reply.to_vec()), "/x");
        let ok = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n{\"a\": 1}";
        assert_eq!(get(ok).unwrap(), (200, "{\"a\": 1}".to_string()));
        let closed = b"HTTP/1.0 404 Not Found\r\n\r\n{\"message\": \"no such container\"}";
        assert_eq!(get(closed).unwrap().0, 404);
        for (reply, why) in [
            (
                &b"HTTP/1.0 200 OK\r\nContent-Length: 80\r\n\r\n{}"[..],
                "cut",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
                "chunked",
            ),
            (b"SSH-2.0-OpenSSH\r\n", "not HTTP"),
            (b"HTTP/1.0 200 OK\r\n\r\n\xff\xfe", "not UTF-8"),
        ] {
            let e = get(reply).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
        let huge = [
            &b"HTTP/1.0 200 OK\r\n\r\n"[..],
            &vec![b'x'; MAX_ANSWER as usize],
        ]
        .concat();
        let e = get(&huge).unwrap_err().to_string();
        assert!(e.contains("over 16777216 bytes"), "{e}");
        let e = docker_get("/nonexistent", "/containers/a b\r\nHost: x/json").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    }

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
