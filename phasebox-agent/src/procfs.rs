//! What /proc says about processes: parents, programs, liveness, descendants. phasebox's
//! facade over the procfs crate, which opens and parses the process files; what phasebox
//! adds is what a failed read means (only a missing process is gone).
use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use ::procfs::ProcError;
use ::procfs::process::Process;

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
    use ::procfs::FromRead;
    ::procfs::process::Stat::from_read(line.as_bytes())
        .ok()
        .map(Stat::from)
}

impl From<::procfs::process::Stat> for Stat {
    fn from(s: ::procfs::process::Stat) -> Stat {
        Stat {
            comm: s.comm,
            state: s.state,
            ppid: u32::try_from(s.ppid).unwrap_or(0),
        }
    }
}

/// `pid`'s directory in /proc, opened.
fn process(pid: u32) -> Result<Process, ProcError> {
    // A pid above i32::MAX names no process; -1 would be taken for /proc/-1, which is missing.
    Process::new(i32::try_from(pid).unwrap_or(-1))
}

/// /proc/PID/stat: `Ok(None)` when no such process exists, `Err` when it cannot be read for
/// another reason (too many open files, permission…), which says nothing about the process.
pub fn read_stat(pid: u32) -> std::io::Result<Option<Stat>> {
    match process(pid).and_then(|p| p.stat()) {
        Ok(s) => Ok(Some(Stat::from(s))),
        Err(e) if gone(&e) => Ok(None),
        Err(e) => Err(io_error(e)),
    }
}

/// Whether a failed /proc read means the process does not exist: procfs says `NotFound` when
/// its directory is not there (ENOENT) or when it was reaped between the open and the read
/// (ESRCH); too many open files, a denied permission or a short read are other errors.
fn gone(e: &ProcError) -> bool {
    matches!(e, ProcError::NotFound(_))
}

/// A procfs error as an I/O error, keeping the errno where there is one.
fn io_error(e: ProcError) -> std::io::Error {
    use std::io::{Error, ErrorKind};
    match e {
        ProcError::Io(e, _) => e,
        ProcError::PermissionDenied(_) => Error::from(ErrorKind::PermissionDenied),
        ProcError::NotFound(_) => Error::from(ErrorKind::NotFound),
        e => Error::new(ErrorKind::InvalidData, e.to_string()),
    }
}

/// /proc/PID/stat when it can be read; None when the process is gone or /proc cannot tell
/// (use [`read_stat`] where the difference matters).
pub fn stat(pid: u32) -> Option<Stat> {
    read_stat(pid).ok().flatten()
}

/// The process (thread group) a thread belongs to.
pub fn tgid(tid: u32) -> Option<u32> {
    let status = process(tid).and_then(|p| p.status()).ok()?;
    u32::try_from(status.tgid).ok()
}

/// Whether `pid` exists and has not exited (a zombie has exited); `Err` when /proc cannot tell
/// (phasebox's own descriptors ran out, say), which must not be taken for an exit.
pub fn is_alive(pid: u32) -> std::io::Result<bool> {
    Ok(read_stat(pid)?.is_some_and(|s| s.state != 'Z' && s.state != 'X'))
}

/// The program `pid` runs, or "" when it cannot be read.
pub fn exe(pid: u32) -> String {
    process(pid)
        .and_then(|p| p.exe())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The command line of `pid`, argument by argument (None: gone, or a kernel thread).
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    (!args.is_empty()).then_some(args)
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
    process(pid)
        .and_then(|p| p.status())
        .is_ok_and(|s| s.seccomp == Some(2))
}

/// The text of /proc/PID/cgroup (None: the process is gone). Read as text, not through
/// procfs's parsed cgroups: phasebox_core finds the container in that text, without root.
pub fn cgroups(pid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()
}

/// The device and inode of `pid`'s pid namespace.
pub fn pid_namespace(pid: u32) -> Option<(u64, u64)> {
    let namespaces = process(pid).and_then(|p| p.namespaces()).ok()?;
    let ns = namespaces.0.get(std::ffi::OsStr::new("pid"))?;
    Some((ns.device_id, ns.identifier))
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

/// The entries of `dir` named by a number, with their paths. Not procfs's iterators: they
/// open every process's directory (or stat every descriptor) and turn a descriptor's target
/// into an enum, where phasebox wants the numbers and the link's text.
fn numbered<T: std::str::FromStr>(dir: &str) -> Vec<(T, std::path::PathBuf)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path())))
        .collect()
}

/// The kernel release (`uname -r`), whole: procfs's `Version` keeps only its numbers.
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
        let line = "42 (we (ird) name) S 7 42 42 0 -1 4194560 110 0 0 0 0 0 0 0 20 0 1 0 \
                    2911 2265088 240 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let s = parse_stat(line).unwrap();
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

    /// A program whose name has spaces and parentheses: its comm reads whole, and once it
    /// has exited (a zombie, not yet reaped) it is not alive, though its stat still reads.
    #[test]
    fn a_real_odd_comm_and_a_zombie() {
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("x) (y z");
        std::os::unix::fs::symlink("/bin/sleep", &odd).unwrap();
        let mut child = std::process::Command::new(&odd).arg("30").spawn().unwrap();
        let pid = child.id();
        let st = read_stat(pid).unwrap().unwrap();
        assert_eq!((st.comm.as_str(), st.ppid), ("x) (y z", std::process::id()));
        assert!(is_alive(pid).unwrap());
        child.kill().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while stat(pid).is_some_and(|s| s.state != 'Z') {
            assert!(
                std::time::Instant::now() < deadline,
                "{pid} never became a zombie"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(read_stat(pid).unwrap().map(|s| s.state), Some('Z'));
        assert!(!is_alive(pid).unwrap());
        child.wait().unwrap();
        assert_eq!(read_stat(pid).unwrap(), None);
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
        let (tx, rx) = std::sync::mpsc::channel();
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            tx.send(rustix::thread::gettid().as_raw_nonzero().get() as u32)
                .unwrap();
            let _ = wait.recv();
        });
        let tid = rx.recv().unwrap();
        assert_ne!(tid, me);
        assert_eq!((tgid(tid), tgid(me)), (Some(me), Some(me)));
        drop(done);
        thread.join().unwrap();
        let own = std::fs::read_to_string("/proc/self/status").unwrap();
        assert_eq!(under_seccomp(me), own.contains("Seccomp:\t2"));
    }

    #[test]
    fn only_a_missing_process_is_gone() {
        // No pid is this large (pid_max is at most 2^22).
        assert_eq!(read_stat(u32::MAX).unwrap(), None);
        assert!(!is_alive(u32::MAX).unwrap());
        // procfs says NotFound for ENOENT and ESRCH; any other failure keeps its errno and
        // is not an exit.
        assert!(gone(&ProcError::NotFound(None)));
        for errno in [libc::EMFILE, libc::ENFILE, libc::ENOMEM] {
            let e = ProcError::from(std::io::Error::from_raw_os_error(errno));
            assert!(!gone(&e), "errno {errno} taken for an exit");
            assert_eq!(io_error(e).raw_os_error(), Some(errno));
        }
        let denied = ProcError::from(std::io::Error::from_raw_os_error(libc::EACCES));
        assert!(!gone(&denied));
        assert_eq!(
            io_error(denied).kind(),
            std::io::ErrorKind::PermissionDenied
        );
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
