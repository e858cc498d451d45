//! Checks made before anything is loaded, each failing with one sentence that says what to do.
use std::path::Path;

use phasebox_core::policy::kernel_version;

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Effective capability bits from a /proc/PID/status text.
pub fn effective_caps(status: &str) -> Option<u64> {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

/// Whether the capability set allows loading tracing programs.
pub fn can_trace(caps: u64) -> bool {
    let has = |c: u32| caps & (1u64 << c) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
}

/// Root (or CAP_BPF with CAP_PERFMON) is needed to load and attach the kernel programs.
pub fn check_privileges() -> anyhow::Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if can_trace(effective_caps(&status).unwrap_or(0)) {
        return Ok(());
    }
    anyhow::bail!(
        "phasebox needs root (or the CAP_BPF and CAP_PERFMON capabilities) to load its eBPF \
         programs; run it as root, for example with sudo"
    )
}

/// What the kernel programs and the agent use, and the mainline release that brought it
/// (docs/kernels.md has the whole table). Newest first.
const KERNEL_FEATURES: [((u32, u32), &str); 6] = [
    ((5, 8), "the BPF ring buffer"),
    ((5, 7), "bpf_get_ns_current_pid_tgid"),
    ((5, 5), "the bpf_probe_read_kernel helpers"),
    ((5, 4), "BTF in /sys/kernel/btf/vmlinux"),
    ((5, 3), "bpf_send_signal"),
    ((5, 2), "BPF global data"),
];

/// The oldest kernel with everything phasebox uses.
pub const MIN_KERNEL: (u32, u32) = KERNEL_FEATURES[0].0;

/// One sentence saying what kernel `release` lacks, or `None` when it is recent enough (or
/// its release cannot be read, which is left to the loader to find out).
pub fn kernel_lacks(release: &str) -> Option<String> {
    let version = kernel_version(release)?;
    let missing: Vec<String> = KERNEL_FEATURES
        .iter()
        .filter(|(since, _)| version < *since)
        .map(|((major, minor), what)| format!("{what} ({major}.{minor})"))
        .collect();
    let list = match missing.as_slice() {
        [] => return None,
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    };
    Some(format!(
        "Linux {}.{} is too old for phasebox, which needs {}.{} or newer: it lacks {list}",
        version.0, version.1, MIN_KERNEL.0, MIN_KERNEL.1
    ))
}

/// Whether this kernel creates a BPF ring buffer (distribution kernels older than 5.8, such
/// as RHEL 8's 4.18, have it backported).
fn ring_buffer_works() -> bool {
    const BPF_MAP_CREATE: libc::c_long = 0;
    const BPF_MAP_TYPE_RINGBUF: u32 = 27;
    // The first fields of union bpf_attr for BPF_MAP_CREATE, the rest zero.
    let mut attr = [0u32; 16];
    attr[0] = BPF_MAP_TYPE_RINGBUF;
    attr[3] = 4096; // max_entries: one page
    // SAFETY: bpf(2) reads `size_of_val(&attr)` bytes from a live buffer.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_CREATE,
            attr.as_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if fd < 0 {
        return false;
    }
    // SAFETY: closing the descriptor bpf(2) just returned.
    unsafe { libc::close(fd as i32) };
    true
}

/// A kernel older than phasebox supports fails here, in one sentence, unless it has the
/// ring buffer anyway (a backport).
pub fn check_kernel() -> anyhow::Result<()> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    match kernel_lacks(&release) {
        Some(sentence) if !ring_buffer_works() => anyhow::bail!("{sentence}"),
        _ => Ok(()),
    }
}

/// Whether the syscall programs may use the thread cache (`phasebox_common::thread_cache`):
/// its entries are cleared with `bpf_task_pt_regs` (Linux 5.15), and the generation is read
/// before the pid bitmaps with plain loads, which x86-64 keeps in order (other architectures
/// may not: there the programs look every call up by pid).
pub fn thread_cache_works(release: &str) -> bool {
    cfg!(target_arch = "x86_64") && kernel_version(release).is_some_and(|v| v >= (5, 15))
}

/// The kernel's BTF, which the tracepoint programs' maps and helpers are checked against.
pub fn check_btf() -> anyhow::Result<()> {
    if Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Ok(());
    }
    anyhow::bail!(
        "this kernel exposes no BTF (/sys/kernel/btf/vmlinux is missing); phasebox needs a \
         kernel built with CONFIG_DEBUG_INFO_BTF=y"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities() {
        let root = "Name:\tx\nCapEff:\t000001ffffffffff\n";
        assert!(can_trace(effective_caps(root).unwrap()));
        let nobody = "CapEff:\t0000000000000000\n";
        assert!(!can_trace(effective_caps(nobody).unwrap()));
        let bpf_only = format!("CapEff:\t{:016x}\n", 1u64 << CAP_BPF);
        assert!(!can_trace(effective_caps(&bpf_only).unwrap()));
        let bpf_perfmon = (1u64 << CAP_BPF) | (1u64 << CAP_PERFMON);
        assert!(can_trace(bpf_perfmon));
        assert_eq!(effective_caps("no caps here"), None);
    }

    #[test]
    fn what_an_older_kernel_lacks() {
        for recent in [
            "5.8.0",
            "5.15.0-91-generic",
            "6.1.0-18-amd64",
            "6.18.44-fc-v595",
            "10.0",
        ] {
            assert_eq!(kernel_lacks(recent), None, "{recent}");
        }
        assert_eq!(
            kernel_lacks("5.4.0-150-generic").unwrap(),
            "Linux 5.4 is too old for phasebox, which needs 5.8 or newer: it lacks the BPF ring \
             buffer (5.8), bpf_get_ns_current_pid_tgid (5.7) and the bpf_probe_read_kernel \
             helpers (5.5)"
        );
        assert_eq!(
            kernel_lacks("5.7.19").unwrap(),
            "Linux 5.7 is too old for phasebox, which needs 5.8 or newer: it lacks the BPF ring \
             buffer (5.8)"
        );
        let old = kernel_lacks("4.19.0-25-amd64").unwrap();
        assert!(
            old.ends_with(
                "the BPF ring buffer (5.8), bpf_get_ns_current_pid_tgid (5.7), the \
                 bpf_probe_read_kernel helpers (5.5), BTF in /sys/kernel/btf/vmlinux (5.4), \
                 bpf_send_signal (5.3) and BPF global data (5.2)"
            ),
            "{old}"
        );
        assert!(!old.contains('\n') && !old.trim_end_matches(')').contains(". "));
        assert_eq!(kernel_lacks("not a release"), None);
    }
}
