//! Which container a process runs in, read from its /proc/PID/cgroup: the cgroup path each
//! engine gives a container names it by its 64-hex id, in a form that also says which engine
//! made it, and under Kubernetes the path holds the pod's UID too.
//!
//! Forms recognised (a component of the path; the last one that names a container wins, so a
//! container nested in another one, as with kind, is the inner one):
//!
//! | engine     | cgroupfs driver                      | systemd driver                          |
//! |------------|--------------------------------------|-----------------------------------------|
//! | Docker     | `/docker/<id>`, `docker-<id>`        | `docker-<id>.scope`                     |
//! | containerd | `/containerd/<id>`, `/default/<id>`  | `cri-containerd-<id>.scope`, `nerdctl-<id>.scope`, `<pod slice>:cri-containerd:<id>` (v1) |
//! | CRI-O      | `crio-<id>`                          | `crio-<id>.scope`                       |
//! | Podman     | `/libpod_parent/libpod-<id>`         | `libpod-<id>.scope` (`/container` below it), `libpod-payload-<id>` |
//! | other      | `<id>` under any other parent (kubepods' cgroupfs layout, `--cgroup-parent`, ECS) | |
//!
//! Kubernetes pods: `/kubepods[/burstable|/besteffort]/pod<uid>/…` (cgroupfs) and
//! `kubepods[-<qos>]-pod<uid>.slice` (systemd, the UID's dashes written as underscores).
//! Runtime monitors (`crio-conmon-<id>.scope`, `libpod-conmon-<id>.scope`) are not the
//! container: their processes are not attributed to it.

/// How many characters of the id `docker ps` and most tools show.
pub const SHORT_ID_LEN: usize = 12;

/// The engine whose naming a container's cgroup follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Engine {
    Docker,
    Containerd,
    CriO,
    Podman,
    /// A bare id whose parent does not say which engine made it.
    Other,
}

impl Engine {
    /// The engine's name as a label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Docker => "docker",
            Engine::Containerd => "containerd",
            Engine::CriO => "cri-o",
            Engine::Podman => "podman",
            Engine::Other => "other",
        }
    }
}

/// A container as its cgroup path names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Container {
    /// The full id: 64 lowercase hex digits.
    pub id: String,
    pub engine: Engine,
    /// The Kubernetes pod's UID (dashed form) when the container runs in a pod.
    pub pod_uid: Option<String>,
}

impl Container {
    /// The id's first 12 characters, as `docker ps` shows it.
    pub fn short_id(&self) -> &str {
        &self.id[..SHORT_ID_LEN]
    }
}

/// The container of a process from the text of its /proc/PID/cgroup (cgroup v1, v2 or both);
/// `None` for a process of the host. The first line whose path names a container decides (on
/// a hybrid host every hierarchy a container joined names the same one).
pub fn from_proc_cgroup(text: &str) -> Option<Container> {
    text.lines()
        .filter_map(|line| line.splitn(3, ':').nth(2))
        .find_map(from_path)
}

/// The container one cgroup path names, if any.
pub fn from_path(path: &str) -> Option<Container> {
    let mut found = None;
    let mut pod_uid = None;
    let mut parent = "";
    for part in path.split('/').filter(|p| !p.is_empty()) {
        // containerd's systemd cgroups on v1 put the pod slice and the id in one component.
        let mut pieces = part.splitn(3, ':');
        let (first, prefix, id) = (pieces.next(), pieces.next(), pieces.next());
        if let (Some(slice), Some(prefix), Some(id)) = (first, prefix, id) {
            if let Some(uid) = pod_in(slice, path) {
                pod_uid = Some(uid);
            }
            if let (Some(engine), true) = (engine_of_prefix(prefix), is_id(id)) {
                found = Some(container(id, engine, &pod_uid));
            }
        } else if let Some(uid) = pod_in(part, path) {
            pod_uid = Some(uid);
        } else if let Some((id, engine)) = container_in(part, parent) {
            found = Some(container(id, engine, &pod_uid));
        }
        parent = part;
    }
    found
}

fn container(id: &str, engine: Engine, pod_uid: &Option<String>) -> Container {
    Container {
        id: id.to_string(),
        engine,
        pod_uid: pod_uid.clone(),
    }
}

/// The engine a `<prefix>-<id>` name belongs to.
fn engine_of_prefix(prefix: &str) -> Option<Engine> {
    Some(match prefix {
        "docker" => Engine::Docker,
        "cri-containerd" | "nerdctl" => Engine::Containerd,
        "crio" => Engine::CriO,
        "libpod" | "libpod-payload" => Engine::Podman,
        _ => return None,
    })
}

/// A container named by one path component, given the component above it.
fn container_in<'a>(part: &'a str, parent: &str) -> Option<(&'a str, Engine)> {
    if is_id(part) {
        let engine = match parent {
            "docker" => Engine::Docker,
            "containerd" | "default" => Engine::Containerd,
            _ => Engine::Other,
        };
        return Some((part, engine));
    }
    let name = part.strip_suffix(".scope").unwrap_or(part);
    let (prefix, id) = name.split_at_checked(name.len().checked_sub(65)?)?;
    let id = id.strip_prefix('-')?;
    Some((id, engine_of_prefix(prefix)?)).filter(|(id, _)| is_id(id))
}

/// A Kubernetes pod's UID in one path component (`pod<uid>` under kubepods, or a
/// `…kubepods…-pod<uid>.slice`), in its dashed form.
fn pod_in(part: &str, path: &str) -> Option<String> {
    let raw = if let Some(slice) = part.strip_suffix(".slice") {
        if !slice.contains("kubepods") {
            return None;
        }
        &slice[slice.rfind("-pod")? + 4..]
    } else {
        if !path.contains("/kubepods/") && !path.starts_with("kubepods/") {
            return None;
        }
        part.strip_prefix("pod")?
    };
    is_pod_uid(raw).then(|| raw.replace('_', "-"))
}

/// 64 lowercase hex digits.
fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A UUID (8-4-4-4-12 hex digits, `-` or `_` between groups) or 32 hex digits (static pods
/// are named by the hash of their manifest).
fn is_pod_uid(s: &str) -> bool {
    let hex = |g: &str| !g.is_empty() && g.bytes().all(|b| b.is_ascii_hexdigit());
    if s.len() == 32 {
        return hex(s);
    }
    let sep = if s.contains('_') { '_' } else { '-' };
    let groups: Vec<&str> = s.split(sep).collect();
    groups.len() == 5
        && groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| hex(g))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, id: &str, engine: Engine, pod: Option<&str>) {
        let c = from_proc_cgroup(text).unwrap_or_else(|| panic!("no container in {text:?}"));
        assert_eq!(c.id, id, "{text}");
        assert_eq!(c.engine, engine, "{text}");
        assert_eq!(c.pod_uid.as_deref(), pod, "{text}");
        assert_eq!(c.short_id(), &id[..12]);
    }

    // Captured on this project's test machine: Docker 20.10 (Debian), cgroupfs driver, hybrid
    // cgroups (v1 controllers and the v2 line), a container started by `docker run`.
    #[test]
    fn docker_cgroupfs_on_a_hybrid_host() {
        let id = "58d6a607db08c49d31da82d1277c9e4def1b9973d64284cd83667b42628aa211";
        let text = [
            "9:name=systemd",
            "8:pids",
            "7:blkio",
            "6:freezer",
            "5:devices",
            "4:memory",
            "3:cpuset",
            "2:cpuacct",
            "1:cpu",
            "0:",
        ]
        .iter()
        .map(|h| format!("{h}:/docker/{id}\n"))
        .collect::<String>();
        check(&text, id, Engine::Docker, None);
    }

    // Same machine, `docker run --cgroup-parent /kubepods/burstable/pod<uid>`: the kubelet's
    // cgroupfs layout with Docker as the runtime.
    #[test]
    fn kubepods_cgroupfs_made_by_docker_here() {
        check(
            "9:name=systemd:/kubepods/burstable/pod1234abcd-0000-1111-2222-333344445555/e0b57b6f832e26d8efd09fd26d7561f471203979f99775177862d046546a3303\n\
             8:pids:/kubepods/burstable/pod1234abcd-0000-1111-2222-333344445555/e0b57b6f832e26d8efd09fd26d7561f471203979f99775177862d046546a3303\n",
            "e0b57b6f832e26d8efd09fd26d7561f471203979f99775177862d046546a3303",
            Engine::Other,
            Some("1234abcd-0000-1111-2222-333344445555"),
        );
    }

    // Datadog's container tagging examples (Docker v1 and kubepods besteffort, cgroupfs).
    #[test]
    fn docker_and_kubepods_besteffort_cgroupfs() {
        check(
            "13:name=systemd:/docker/3726184226f5d3147c25fdeab5b60097e378e8a720503a5e19ecfdf29f869860\n\
             12:pids:/docker/3726184226f5d3147c25fdeab5b60097e378e8a720503a5e19ecfdf29f869860\n",
            "3726184226f5d3147c25fdeab5b60097e378e8a720503a5e19ecfdf29f869860",
            Engine::Docker,
            None,
        );
        check(
            "8:cpu,cpuacct:/kubepods/besteffort/pod3d274242-8ee0-11e9-a8a6-1e68d864ef1a/3e74d3fd9db4c9dd921ae05c2502fb984d0cde1b36e581b13f79c639da4518a1",
            "3e74d3fd9db4c9dd921ae05c2502fb984d0cde1b36e581b13f79c639da4518a1",
            Engine::Other,
            Some("3d274242-8ee0-11e9-a8a6-1e68d864ef1a"),
        );
        // ECS: Docker under the agent's own parent.
        check(
            "9:perf_event:/ecs/haissam-ecs-classic/5a0d5ceddf6c44c1928d367a815d890f/38fac3e99302b3622be089dd41e7ccf38aff368a86cc339972075136ee2710ce",
            "38fac3e99302b3622be089dd41e7ccf38aff368a86cc339972075136ee2710ce",
            Engine::Other,
            None,
        );
    }

    // Docker with the systemd cgroup driver (CentOS, from NeuVector's tests; docker.slice from
    // Falco's).
    #[test]
    fn docker_systemd_scopes() {
        check(
            "10:devices:/system.slice/docker-9ec39b91f3d70e1beff50a308f77067065ea6be0d91a3378375056cd4422cf3d.scope\n\
             2:cpuacct,cpu:/system.slice/docker-9ec39b91f3d70e1beff50a308f77067065ea6be0d91a3378375056cd4422cf3d.scope\n",
            "9ec39b91f3d70e1beff50a308f77067065ea6be0d91a3378375056cd4422cf3d",
            Engine::Docker,
            None,
        );
        check(
            "0::/docker.slice/docker-7951fb549ab99e0722a949b6c121634e1f3a36b5bacbe5392991e3b12251e6b8.scope",
            "7951fb549ab99e0722a949b6c121634e1f3a36b5bacbe5392991e3b12251e6b8",
            Engine::Docker,
            None,
        );
    }

    // containerd under Kubernetes: cgroupfs (Falco's tests), the systemd driver on cgroup v2
    // (kind, from Kepler's tests), and containerd's v1 systemd form with the pod slice and the
    // id in one component (Kepler's and Falco's tests; the latter a static pod's hash).
    #[test]
    fn containerd_under_kubernetes() {
        check(
            "4:memory:/kubepods/besteffort/podac04f3f2-1f2c-11e9-b015-1ebee232acfa/605439acbd4fb18c145069289094b17f17e0cfa938f78012d4960bc797305f22",
            "605439acbd4fb18c145069289094b17f17e0cfa938f78012d4960bc797305f22",
            Engine::Other,
            Some("ac04f3f2-1f2c-11e9-b015-1ebee232acfa"),
        );
        check(
            "0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod3cae2e45_052c_4b11_80d3_4d7b2d2d3464.slice/cri-containerd-2b180104511194aab36fd295d3e217439f3ddb5bc88277f37b4952abee85c40e.scope",
            "2b180104511194aab36fd295d3e217439f3ddb5bc88277f37b4952abee85c40e",
            Engine::Containerd,
            Some("3cae2e45-052c-4b11-80d3-4d7b2d2d3464"),
        );
        check(
            "13:memory:/system.slice/containerd.service/kubepods-besteffort-pod0043435f_1854_4327_b76b_730f681a781d.slice:cri-containerd:01fd96f7ad292b02a8317cde4ecb8c7ef3cc06ffdd113f13410e0837eb2b2a20",
            "01fd96f7ad292b02a8317cde4ecb8c7ef3cc06ffdd113f13410e0837eb2b2a20",
            Engine::Containerd,
            Some("0043435f-1854-4327-b76b-730f681a781d"),
        );
        check(
            "1:name=systemd:/kubepods-burstable-podbd12dd3393227d950605a2444b13c27a.slice:cri-containerd:d52db56a9c80d536a91354c0951c061187ca46249e64865a12703003d8f42366",
            "d52db56a9c80d536a91354c0951c061187ca46249e64865a12703003d8f42366",
            Engine::Containerd,
            Some("bd12dd3393227d950605a2444b13c27a"),
        );
    }

    // kind: the node is a Docker container and the pod's container is nested in it.
    #[test]
    fn nested_container_is_the_inner_one() {
        check(
            "0::/system.slice/docker-fd9d0ea06257a9780827cbc7fd92e3812a54fca26d63e191b73610d5d48b9cbd.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-podeab5a334_93fe_48a8_b139_9e8079c1f163.slice/cri-containerd-99f3a16ea25b7724cb56a4f0c0df1113ad9474fbf5545bead97fd5c7f61c13f4.scope",
            "99f3a16ea25b7724cb56a4f0c0df1113ad9474fbf5545bead97fd5c7f61c13f4",
            Engine::Containerd,
            Some("eab5a334-93fe-48a8-b139-9e8079c1f163"),
        );
    }

    // containerd without Kubernetes: its own parent (Kepler's tests; an id of theirs).
    #[test]
    fn containerd_plain() {
        check(
            "0::/containerd/1234567890abcdef1234567890abcdef1234567890abcdef1234567890abcdef",
            "1234567890abcdef1234567890abcdef1234567890abcdef1234567890abcdef",
            Engine::Containerd,
            None,
        );
    }

    // CRI-O: cgroupfs and the systemd driver on v1 and v2 (Falco's and Kepler's tests), and
    // the guaranteed QoS slice (no QoS level in the name).
    #[test]
    fn crio() {
        check(
            "2:cpu:/kubepods/besteffort/pod63b3ebfc-2890-11e9-8154-16bf8ef8d9dc/crio-73bfe475650de66df8e2affdc98d440dcbe84f8df83b6f75a68a82eb7026136a",
            "73bfe475650de66df8e2affdc98d440dcbe84f8df83b6f75a68a82eb7026136a",
            Engine::CriO,
            Some("63b3ebfc-2890-11e9-8154-16bf8ef8d9dc"),
        );
        check(
            "1:name=systemd:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podd0511cd2_29d2_4215_be0f_f77bc0609d99.slice/crio-f93ee491b8ed2680d5a909eb098b14a9430173b57ca1c4efedd8768566d67e8e.scope",
            "f93ee491b8ed2680d5a909eb098b14a9430173b57ca1c4efedd8768566d67e8e",
            Engine::CriO,
            Some("d0511cd2-29d2-4215-be0f-f77bc0609d99"),
        );
        check(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod63b3ebfc_2890_11e9_8154_16bf8ef8d9dc.slice/crio-17d8c9eacc629f9945f304d89e9708c0c619649a484a215b240628319548a09f.scope",
            "17d8c9eacc629f9945f304d89e9708c0c619649a484a215b240628319548a09f",
            Engine::CriO,
            Some("63b3ebfc-2890-11e9-8154-16bf8ef8d9dc"),
        );
        check(
            "0::/kubepods.slice/kubepods-pod2c9f8a79_5391_454b_88cb_86190881cb96.slice/crio-a09343ca97901516c25036e2b954421254f8c68b384b536064e8999f0c4ed18d.scope",
            "a09343ca97901516c25036e2b954421254f8c68b384b536064e8999f0c4ed18d",
            Engine::CriO,
            Some("2c9f8a79-5391-454b-88cb-86190881cb96"),
        );
    }

    // Podman: rootful and rootless systemd scopes with the `container` sub-cgroup (Kepler's
    // tests), a hybrid v1 host (a published `cat /proc/1/cgroup`), cgroupfs (`podman inspect`'s
    // CgroupPath) and quadlet's split mode.
    #[test]
    fn podman() {
        check(
            "0::/machine.slice/libpod-06dc5f321aad8726aa26559f16ec203bc099245bc44894b14a89fc02b022d1d5.scope/container",
            "06dc5f321aad8726aa26559f16ec203bc099245bc44894b14a89fc02b022d1d5",
            Engine::Podman,
            None,
        );
        check(
            "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-3f05ee050f82c0145f1d88c94269c39dff0f07dbf8bba20aafd54b3a75dcaecc.scope/container",
            "3f05ee050f82c0145f1d88c94269c39dff0f07dbf8bba20aafd54b3a75dcaecc",
            Engine::Podman,
            None,
        );
        check(
            "15:name=systemd:/machine.slice/libpod-24fce7291bc6d7f8a5965a5920740b0df25dda9bb4e84ffb889d8ea2927acec5.scope\n\
             14:misc:/machine.slice/libpod-24fce7291bc6d7f8a5965a5920740b0df25dda9bb4e84ffb889d8ea2927acec5.scope/container\n",
            "24fce7291bc6d7f8a5965a5920740b0df25dda9bb4e84ffb889d8ea2927acec5",
            Engine::Podman,
            None,
        );
        check(
            "4:memory:/libpod_parent/libpod-cf594798841275880f780c2aa55954b2d218b92a7c82df039aef02e2f4fe83f1",
            "cf594798841275880f780c2aa55954b2d218b92a7c82df039aef02e2f4fe83f1",
            Engine::Podman,
            None,
        );
        check(
            "0::/system.slice/kepler.service/libpod-payload-8e363eb2287da4ccc9f52ffc5de11252ac5fe707e3ddb917a3c0bdf9bb64165b",
            "8e363eb2287da4ccc9f52ffc5de11252ac5fe707e3ddb917a3c0bdf9bb64165b",
            Engine::Podman,
            None,
        );
    }

    // The same published Podman host: conmon, the container's monitor, has a scope of its own
    // that names the container; its calls are not the container's.
    #[test]
    fn runtime_monitors_are_not_the_container() {
        let conmon = "15:name=systemd:/machine.slice/libpod-conmon-24fce7291bc6d7f8a5965a5920740b0df25dda9bb4e84ffb889d8ea2927acec5.scope\n\
                      6:devices:/machine.slice\n\
                      0::/machine.slice/libpod-conmon-24fce7291bc6d7f8a5965a5920740b0df25dda9bb4e84ffb889d8ea2927acec5.scope\n";
        assert_eq!(from_proc_cgroup(conmon), None);
        assert_eq!(
            from_path(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podd0511cd2_29d2_4215_be0f_f77bc0609d99.slice/crio-conmon-f93ee491b8ed2680d5a909eb098b14a9430173b57ca1c4efedd8768566d67e8e.scope"
            ),
            None
        );
    }

    #[test]
    fn host_processes_are_in_no_container() {
        for text in [
            // This machine's own shell.
            "9:name=systemd:/\n4:memory:/process_api/e0b454fc038b97ddf943bae1b41d5bd3\n0::/\n",
            "0::/user.slice/user-1000.slice/user@1000.service/init.scope\n",
            "0::/system.slice/docker.service\n",
            "0::/system.slice/containerd.service\n",
            // A pod's own cgroup holds no process of a container.
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod63b3ebfc_2890_11e9_8154_16bf8ef8d9dc.slice\n",
            "",
        ] {
            assert_eq!(from_proc_cgroup(text), None, "{text:?}");
        }
    }

    #[test]
    fn near_misses_are_not_ids() {
        let id63 = "3726184226f5d3147c25fdeab5b60097e378e8a720503a5e19ecfdf29f86986";
        let upper = "3726184226F5D3147C25FDEAB5B60097E378E8A720503A5E19ECFDF29F869860";
        for path in [
            format!("/docker/{id63}"),
            format!("/docker/{upper}"),
            format!("/system.slice/docker-{id63}.scope"),
            format!("/system.slice/unknown-{}.scope", &upper.to_lowercase()),
            "/docker/abc".to_string(),
        ] {
            assert_eq!(from_path(&path), None, "{path}");
        }
        // A malformed pod UID is no pod, though the container is still found.
        let c = from_path(
            "/kubepods/besteffort/podnot-a-uid/3e74d3fd9db4c9dd921ae05c2502fb984d0cde1b36e581b13f79c639da4518a1",
        )
        .unwrap();
        assert_eq!(c.pod_uid, None);
        assert!(is_pod_uid("3d274242-8ee0-11e9-a8a6-1e68d864ef1a"));
        assert!(!is_pod_uid("3d274242-8ee0_11e9-a8a6-1e68d864ef1a"));
        assert!(!is_pod_uid("3d274242-8ee0-11e9-a8a6"));
    }

    #[test]
    fn engine_names() {
        let names: Vec<&str> = [
            Engine::Docker,
            Engine::Containerd,
            Engine::CriO,
            Engine::Podman,
            Engine::Other,
        ]
        .iter()
        .map(|e| e.as_str())
        .collect();
        assert_eq!(names, ["docker", "containerd", "cri-o", "podman", "other"]);
    }
}
