//! Container identity from /proc/PID/cgroup on this machine's own Docker: every process of a
//! container (its first one and one started later by `docker exec`) is attributed to the id
//! Docker reports, with the pod UID when the container sits in a kubepods cgroup, and the
//! test's own process to no container.
use phasebox_core::container::{self, Engine};
use phasebox_tests::docker::Dockerd;

const IMAGE: &str = "phasebox-test/tiny:1";

/// Runs a waiting container with `extra` options; returns its id and host pid.
fn run_waiting(d: &Dockerd, extra: &[&str]) -> (String, u32) {
    let mut args = vec!["run", "-d", "--network", "none"];
    args.extend_from_slice(extra);
    args.extend([IMAGE, "wait"]);
    let id = d.docker_ok(&args);
    let pid = d.container_pid(&id);
    (id, pid)
}

/// Cgroup directories made for `--cgroup-parent` under one top directory of every hierarchy;
/// dockerd removes a container's cgroup but not the parents it created, so they go on drop.
struct CgroupParents(String);

impl Drop for CgroupParents {
    fn drop(&mut self) {
        let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
            return;
        };
        for h in hierarchies.flatten() {
            remove_tree(&h.path().join(&self.0));
        }
    }
}

/// Removes a tree of empty cgroup directories, deepest first (cgroupfs only removes with rmdir).
fn remove_tree(dir: &std::path::Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
}

fn of_pid(pid: u32) -> Option<container::Container> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/cgroup: {e}"));
    container::from_proc_cgroup(&text)
}

#[test]
fn containers_of_this_machines_docker() {
    let top = format!("phasebox-test-{}", std::process::id());
    // Declared before the daemon: dropped after its containers are gone.
    let _parents = CgroupParents(top.clone());
    let d = Dockerd::start();
    d.import_tiny(IMAGE);

    let (id, pid) = run_waiting(&d, &[]);
    let c = of_pid(pid).expect("a container's process is in a container");
    assert_eq!(
        (c.id.as_str(), c.engine, c.pod_uid.as_deref()),
        (id.as_str(), Engine::Docker, None)
    );
    assert_eq!(c.short_id(), &id[..12]);
    // A process started later in the same container, seen from inside (host cgroup namespace).
    let inside = d.docker_ok(&["exec", &id, "/init", "cgroup"]);
    let c = container::from_proc_cgroup(&inside).expect("docker exec's process");
    assert_eq!(c.id, id);

    // The kubelet's cgroupfs layout and its systemd slice names, as cgroup parents.
    let uid = "3d274242-8ee0-11e9-a8a6-1e68d864ef1a";
    let (id, pid) = run_waiting(
        &d,
        &[
            "--cgroup-parent",
            &format!("/{top}/kubepods/besteffort/pod{uid}"),
        ],
    );
    let c = of_pid(pid).expect("a kubepods container");
    assert_eq!((c.id.as_str(), c.engine), (id.as_str(), Engine::Other));
    assert_eq!(c.pod_uid.as_deref(), Some(uid));

    let slice = format!(
        "/{top}/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
        uid.replace('-', "_")
    );
    let (id, pid) = run_waiting(&d, &["--cgroup-parent", &slice]);
    let c = of_pid(pid).expect("a container under a pod slice");
    assert_eq!(c.id, id);
    assert_eq!(c.pod_uid.as_deref(), Some(uid));

    assert_eq!(
        of_pid(std::process::id()),
        None,
        "the test itself is on the host"
    );
}
