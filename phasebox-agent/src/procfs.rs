//! What /proc says about processes: parents, programs, liveness, descendants.
use std::collections::{BTreeMap, BTreeSet};
use std::fs;

/// The fields of /proc/PID/stat phasebox uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    pub comm: String,
    pub state: char,
    pub ppid: u32,
}

/// Parses a /proc/PID/stat line. The comm may hold spaces and parentheses, so it is the text
/// between the first '(' and the last ')'.
pub fn parse_stat(line: &str) -> Option<Stat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let comm = line.get(open + 1..close)?.to_string();
    let mut rest = line.get(close + 1..)?.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some(Stat { comm, state, ppid })
}

/// /proc/PID/stat: `Ok(None)` when no such process exists, `Err` when it cannot be read for
/// another reason (too many open files, permission…), which says nothing about the process.
pub fn read_stat(pid: u32) -> std::io::Result<Option<Stat>> {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(line) => parse_stat(&line).map(Some).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("/proc/{pid}/stat cannot be parsed"),
            )
        }),
        Err(e) if gone(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether a failed /proc read means the process does not exist: its directory is not there
/// (ENOENT), or it was reaped between the open and the read (ESRCH).
fn gone(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESRCH))
}

/// /proc/PID/stat when it can be read; None when the process is gone or /proc cannot tell
/// (use [`read_stat`] where the difference matters).
pub fn stat(pid: u32) -> Option<Stat> {
    read_stat(pid).ok().flatten()
}

/// The process (thread group) a thread belongs to.
pub fn tgid(tid: u32) -> Option<u32> {
    let status = fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Whether `pid` exists and has not exited (a zombie has exited); `Err` when /proc cannot tell
/// (phasebox's own descriptors ran out, say), which must not be taken for an exit.
pub fn is_alive(pid: u32) -> std::io::Result<bool> {
    Ok(read_stat(pid)?.is_some_and(|s| s.state != 'Z' && s.state != 'X'))
}

/// The program `pid` runs, or "" when it cannot be read.
pub fn exe(pid: u32) -> String {
    fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Every process's parent.
pub fn parents() -> BTreeMap<u32, u32> {
    pids()
        .into_iter()
        .filter_map(|pid| Some((pid, stat(pid)?.ppid)))
        .collect()
}

/// `root` and all its descendants in a parent map, leaving out `skip` and its descendants.
pub fn descendants(parents: &BTreeMap<u32, u32>, root: u32, skip: u32) -> BTreeSet<u32> {
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (&pid, &ppid) in parents {
        children.entry(ppid).or_default().push(pid);
    }
    let mut out = BTreeSet::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        if pid == skip || !out.insert(pid) {
            continue;
        }
        stack.extend(children.get(&pid).into_iter().flatten());
    }
    out
}

/// The container `pid` runs in, from its cgroups (None: the host, or it is gone).
pub fn container(pid: u32) -> Option<phasebox_core::container::Container> {
    phasebox_core::container::from_proc_cgroup(&cgroups(pid)?)
}

/// Whether `pid` runs under a seccomp filter (/proc/PID/status says `Seccomp: 2`).
pub fn under_seccomp(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Seccomp:"))
            .is_some_and(|v| v.trim() == "2")
    })
}

/// The text of /proc/PID/cgroup (None: the process is gone).
pub fn cgroups(pid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()
}

/// The device and inode of `pid`'s pid namespace.
pub fn pid_namespace(pid: u32) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(format!("/proc/{pid}/ns/pid")).ok()?;
    Some((m.dev(), m.ino()))
}

/// Every pid in /proc.
pub fn pids() -> Vec<u32> {
    numbered("/proc").into_iter().map(|(pid, _)| pid).collect()
}

/// This process's open descriptors, each with what it refers to (`anon_inode:bpf_link`, a
/// path, `socket:[…]`).
pub fn descriptors() -> Vec<(i32, std::path::PathBuf)> {
    numbered("/proc/self/fd")
        .into_iter()
        .filter_map(|(fd, path)| Some((fd, fs::read_link(path).ok()?)))
        .collect()
}

/// The entries of `dir` named by a number, with their paths.
fn numbered<T: std::str::FromStr>(dir: &str) -> Vec<(T, std::path::PathBuf)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path())))
        .collect()
}

/// The kernel release (`uname -r`).
pub fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_comm() {
        let s = parse_stat("42 (we (ird) name) S 7 42 42 0 -1").unwrap();
        assert_eq!(
            s,
            Stat {
                comm: "we (ird) name".into(),
                state: 'S',
                ppid: 7
            }
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn descendants_walk_the_tree_and_skip() {
        let parents: BTreeMap<u32, u32> = [
            (1, 0),
            (10, 1),
            (11, 10),
            (12, 11),
            (13, 10),
            (20, 1),
            (99, 11),
        ]
        .into();
        let d: Vec<u32> = descendants(&parents, 10, 99).into_iter().collect();
        assert_eq!(d, vec![10, 11, 12, 13]);
    }

    #[test]
    fn this_process_is_alive() {
        let me = std::process::id();
        assert!(is_alive(me).unwrap());
        assert!(pids().contains(&me));
        let parent = std::os::unix::process::parent_id();
        assert!(pid_namespace(me).is_some());
        assert_eq!(pid_namespace(me), pid_namespace(parent));
        assert_eq!(stat(me).unwrap().ppid, std::os::unix::process::parent_id());
        assert!(!exe(me).is_empty());
    }

    #[test]
    fn only_a_missing_process_is_gone() {
        // No pid is this large (pid_max is at most 2^22).
        assert_eq!(read_stat(u32::MAX).unwrap(), None);
        assert!(!is_alive(u32::MAX).unwrap());
        let err = std::io::Error::from_raw_os_error;
        assert!(gone(&err(libc::ENOENT)) && gone(&err(libc::ESRCH)));
        for errno in [libc::EMFILE, libc::ENFILE, libc::EACCES, libc::ENOMEM] {
            assert!(!gone(&err(errno)), "errno {errno} taken for an exit");
        }
    }

    #[test]
    fn descriptors_name_what_they_refer_to() {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let (r, _w) = rustix::pipe::pipe().unwrap();
        let fds = descriptors();
        let target = |fd: i32| fds.iter().find(|(f, _)| *f == fd).map(|(_, t)| t.clone());
        assert!(target(file.as_raw_fd()).unwrap().ends_with("status"));
        let pipe = target(r.as_raw_fd()).unwrap();
        assert!(pipe.to_string_lossy().starts_with("pipe:["), "{pipe:?}");
    }
}
