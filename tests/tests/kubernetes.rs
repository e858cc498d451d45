//! deploy/kubernetes, checked by types (no cluster exists here; nothing is applied): every
//! manifest is read into the Kubernetes API types (k8s-openapi) or a typed copy of its custom
//! resource's schema, and must come back unchanged (a misspelled or unknown field would be
//! dropped on the way); the fields that matter are checked against what the agent and its
//! image need, the agent really starts with the DaemonSet's arguments, and the
//! SeccompProfile example is exactly what `phasebox export --format spo` writes.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Container, Namespace, Pod, PodSpec, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use phasebox_tests::{TempDir, image, phasebox_ok, spawn_agent};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

fn dir() -> PathBuf {
    image::deploy_dir().join("kubernetes")
}

/// A manifest as JSON.
fn manifest(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
    serde_json::to_value(yaml).expect("YAML as JSON")
}

/// A manifest read into `T`; it must serialize back to the same document, so no field was
/// unknown to the type.
fn typed<T: DeserializeOwned + Serialize>(path: &Path) -> T {
    let original = manifest(path);
    let value: T = serde_json::from_value(original.clone())
        .unwrap_or_else(|e| panic!("{} does not fit its type: {e}", path.display()));
    let back = serde_json::to_value(&value).unwrap();
    let mut lost = Vec::new();
    differences(&original, &back, "", &mut lost);
    assert!(
        lost.is_empty(),
        "{}: the type does not know {lost:?}",
        path.display()
    );
    value
}

/// Where `b` differs from `a`, as JSON paths (a field the type dropped shows up here).
fn differences(a: &serde_json::Value, b: &serde_json::Value, at: &str, out: &mut Vec<String>) {
    use serde_json::Value::{Array, Object};
    match (a, b) {
        (Object(x), Object(y)) => {
            for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                let (u, v) = (&x.get(k), &y.get(k));
                match (u, v) {
                    (Some(u), Some(v)) => differences(u, v, &format!("{at}.{k}"), out),
                    _ => out.push(format!("{at}.{k}")),
                }
            }
        }
        (Array(x), Array(y)) if x.len() == y.len() => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                differences(u, v, &format!("{at}[{i}]"), out);
            }
        }
        _ if a != b => out.push(at.to_string()),
        _ => {}
    }
}

/// Every manifest file under deploy/kubernetes, with its kind.
fn manifests() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for d in [dir(), dir().join("seccomp")] {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "yaml") {
                let kind = manifest(&p)["kind"].as_str().unwrap_or("").to_string();
                out.push((p, kind));
            }
        }
    }
    out.sort();
    out
}

fn one<T: DeserializeOwned + Serialize>(kind: &str, sub: &str) -> T {
    let found: Vec<PathBuf> = manifests()
        .into_iter()
        .filter(|(p, k)| k == kind && p.parent() == Some(&dir().join(sub)))
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {kind} in deploy/kubernetes/{sub}: {found:?}"
    );
    typed(&found[0])
}

// The custom resources, as typed copies of the fields their schemas define (unknown fields
// refused): the Prometheus Operator's PodMonitor (monitoring.coreos.com/v1) and the Security
// Profiles Operator's SeccompProfile (security-profiles-operator.x-k8s.io/v1beta1).

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PodMonitor {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: PodMonitorSpec,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PodMonitorSpec {
    selector: LabelSelector,
    pod_metrics_endpoints: Vec<PodMetricsEndpoint>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PodMetricsEndpoint {
    port: String,
    path: String,
    interval: String,
    relabelings: Vec<Relabeling>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Relabeling {
    source_labels: Vec<String>,
    target_label: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SeccompProfile {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: SeccompProfileSpec,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SeccompProfileSpec {
    default_action: String,
    architectures: Vec<String>,
    syscalls: Vec<SeccompRule>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SeccompRule {
    action: String,
    /// A string in the operator's API (v1beta1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    errno_ret: Option<String>,
    names: Vec<String>,
}

/// The SPO's enum of seccomp actions.
const SCMP_ACTIONS: [&str; 9] = [
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
];

fn agent_pod() -> (DaemonSet, PodSpec, Container) {
    let ds: DaemonSet = one("DaemonSet", "");
    let pod = ds
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .clone()
        .expect("pod spec");
    assert_eq!(pod.containers.len(), 1, "one container: the agent");
    let c = pod.containers[0].clone();
    (ds, pod, c)
}

/// The value following `flag` in the container's arguments.
fn arg<'a>(c: &'a Container, flag: &str) -> &'a str {
    let args = c.args.as_deref().unwrap_or_default();
    let i = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("the agent has no {flag}: {args:?}"));
    &args[i + 1]
}

#[test]
fn every_manifest_has_a_type_and_fits_it() {
    let all = manifests();
    let kinds: Vec<&str> = all.iter().map(|(_, k)| k.as_str()).collect();
    for (path, kind) in &all {
        match kind.as_str() {
            "Namespace" => drop(typed::<Namespace>(path)),
            "ServiceAccount" => drop(typed::<ServiceAccount>(path)),
            "DaemonSet" => drop(typed::<DaemonSet>(path)),
            "Pod" => drop(typed::<Pod>(path)),
            "PodMonitor" => drop(typed::<PodMonitor>(path)),
            "SeccompProfile" => drop(typed::<SeccompProfile>(path)),
            other => panic!("{}: no type checks kind {other:?}", path.display()),
        }
    }
    for kind in [
        "Namespace",
        "ServiceAccount",
        "DaemonSet",
        "PodMonitor",
        "SeccompProfile",
        "Pod",
    ] {
        assert!(kinds.contains(&kind), "no {kind} manifest: {kinds:?}");
    }
}

#[test]
fn daemonset_gives_the_agent_what_it_needs() {
    let ns: Namespace = one("Namespace", "");
    let sa: ServiceAccount = one("ServiceAccount", "");
    let (ds, pod, c) = agent_pod();
    let namespace = ns.metadata.name.as_deref().unwrap();
    assert_eq!(ds.metadata.namespace.as_deref(), Some(namespace));
    assert_eq!(sa.metadata.namespace.as_deref(), Some(namespace));
    assert_eq!(pod.service_account_name, sa.metadata.name);

    // The selector picks the template's pods (the API server refuses a DaemonSet otherwise).
    let spec = ds.spec.as_ref().unwrap();
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    let wanted = spec.selector.match_labels.clone().unwrap();
    assert!(
        wanted
            .iter()
            .all(|(k, v)| template_labels.get(k) == Some(v))
    );

    // As the image test runs it: host pids, the image, `agent`, /sys/kernel from the host.
    assert_eq!(pod.host_pid, Some(true));
    assert_eq!(c.image.as_deref(), Some(image::TAG));
    assert_eq!(c.args.as_deref().unwrap()[0], "agent");
    let mount = c
        .volume_mounts
        .as_deref()
        .unwrap()
        .iter()
        .find(|m| m.mount_path == "/sys/kernel")
        .expect("/sys/kernel mounted");
    let volume = pod
        .volumes
        .as_deref()
        .unwrap()
        .iter()
        .find(|v| v.name == mount.name)
        .expect("the mount's volume");
    assert_eq!(volume.host_path.as_ref().unwrap().path, "/sys/kernel");
    // The profile goes to a host directory, under a root file system that stays read-only.
    let profile = arg(&c, "--profile");
    let profiles = c
        .volume_mounts
        .as_deref()
        .unwrap()
        .iter()
        .find(|m| Path::new(profile).starts_with(&m.mount_path))
        .expect("--profile is on a mounted volume");
    assert_ne!(profiles.read_only, Some(true));

    // Privileges: privileged, or the capabilities the agent checks for and uses.
    let sc = c.security_context.as_ref().expect("a security context");
    let caps: Vec<&str> = sc
        .capabilities
        .as_ref()
        .and_then(|c| c.add.as_deref())
        .unwrap_or_default()
        .iter()
        .map(String::as_str)
        .collect();
    assert!(
        sc.privileged == Some(true)
            || ["BPF", "PERFMON", "SYS_ADMIN"]
                .iter()
                .all(|c| caps.contains(c)),
        "neither privileged nor CAP_BPF+CAP_PERFMON+CAP_SYS_ADMIN: {caps:?}"
    );
    // The API server refuses allowPrivilegeEscalation: false next to SYS_ADMIN or privileged.
    assert_ne!(sc.allow_privilege_escalation, Some(false));
    if sc.privileged != Some(true) {
        let seccomp = sc
            .seccomp_profile
            .as_ref()
            .expect("a seccomp profile setting");
        assert_eq!(
            seccomp.type_, "Unconfined",
            "the default profile refuses bpf"
        );
    }

    // One port: --listen's, named, probed and scraped.
    let listen: std::net::SocketAddr = arg(&c, "--listen").parse().expect("--listen ADDR");
    assert!(
        listen.ip().is_unspecified(),
        "the kubelet and Prometheus reach the pod's address"
    );
    let ports = c.ports.as_deref().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].container_port, i32::from(listen.port()));
    let port_name = ports[0].name.clone().expect("a named port");
    for probe in [&c.liveness_probe, &c.readiness_probe] {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .expect("an HTTP probe");
        assert_eq!(get.path.as_deref(), Some("/metrics"));
        assert_eq!(get.port, IntOrString::String(port_name.clone()));
    }
    let annotations: BTreeMap<String, String> = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .clone()
        .unwrap();
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], listen.port().to_string());
    assert_eq!(annotations["prometheus.io/path"], "/metrics");

    let pm: PodMonitor = one("PodMonitor", "");
    assert_eq!(pm.api_version, "monitoring.coreos.com/v1");
    assert_eq!(pm.metadata.namespace.as_deref(), Some(namespace));
    let selected = pm.spec.selector.match_labels.unwrap();
    assert!(
        selected
            .iter()
            .all(|(k, v)| template_labels.get(k) == Some(v))
    );
    assert_eq!(pm.spec.pod_metrics_endpoints[0].port, port_name);
    assert_eq!(pm.spec.pod_metrics_endpoints[0].path, "/metrics");

    let res = c.resources.as_ref().expect("resources");
    let requests = res.requests.as_ref().expect("requests");
    assert!(requests.contains_key("cpu") && requests.contains_key("memory"));
    assert!(
        res.limits
            .as_ref()
            .is_some_and(|l| l.contains_key("memory"))
    );
}

/// The DaemonSet's arguments start the real agent (every flag exists and parses): only the
/// listen address (loopback, a test port) and the profile path (a temporary file) differ.
#[test]
fn daemonset_arguments_start_the_agent() {
    let (_, _, c) = agent_pod();
    let dir = TempDir::new("k8s-args");
    let port = phasebox_tests::nginx::free_port_in(18300..18400, 0);
    let listen = format!("127.0.0.1:{port}");
    let profile = dir.path("node-nginx.json").to_str().unwrap().to_string();
    let mut args: Vec<String> = c.args.clone().unwrap();
    for (flag, value) in [("--listen", &listen), ("--profile", &profile)] {
        let i = args.iter().position(|a| a == flag).unwrap();
        args[i + 1] = value.clone();
    }
    let args: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    let (agent, _err, line) = spawn_agent(&args);
    drop(agent);
    assert!(
        line.contains(&format!("metrics on http://{listen}/metrics")),
        "the agent did not start with the DaemonSet's arguments {args:?}: {line}"
    );
}

#[test]
fn seccomp_profile_example_is_phasebox_export_and_the_pod_uses_it() {
    let seccomp = dir().join("seccomp");
    let out = phasebox_ok(&[
        "export",
        seccomp.join("nginx.profile.json").to_str().unwrap(),
        "--format",
        "spo",
        "--add-basics",
        "--for-runtime",
        "runc",
    ]);
    let committed = std::fs::read_to_string(seccomp.join("nginx.seccompprofile.yaml")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        committed,
        "nginx.seccompprofile.yaml is not what phasebox exports from nginx.profile.json"
    );

    let sp: SeccompProfile = one("SeccompProfile", "seccomp");
    assert_eq!(
        sp.api_version,
        "security-profiles-operator.x-k8s.io/v1beta1"
    );
    assert!(SCMP_ACTIONS.contains(&sp.spec.default_action.as_str()));
    assert_eq!(sp.spec.architectures, ["SCMP_ARCH_X86_64"]);
    let allowed: Vec<&str> = sp
        .spec
        .syscalls
        .iter()
        .inspect(|r| assert!(SCMP_ACTIONS.contains(&r.action.as_str()), "{}", r.action))
        .flat_map(|r| r.names.iter().map(String::as_str))
        .collect();
    for needed in ["accept4", "epoll_wait", "execve", "exit_group", "sendfile"] {
        assert!(allowed.contains(&needed), "nginx needs {needed}");
    }

    let pod: Pod = one("Pod", "seccomp");
    let namespace = pod
        .metadata
        .namespace
        .as_deref()
        .expect("the pod's namespace");
    let name = sp.metadata.name.as_deref().unwrap();
    let spec = pod.spec.as_ref().unwrap();
    let profile = spec
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref())
        .expect("the pod names a seccomp profile");
    assert_eq!(profile.type_, "Localhost");
    // Where the operator installs a SeccompProfile applied in the pod's namespace.
    assert_eq!(
        profile.localhost_profile.as_deref(),
        Some(format!("operator/{namespace}/{name}.json").as_str())
    );
    let c = &spec.containers[0];
    let escalation = c
        .security_context
        .as_ref()
        .and_then(|s| s.allow_privilege_escalation);
    assert_eq!(
        escalation,
        Some(false),
        "no_new_privs keeps runc's own calls out"
    );
}
