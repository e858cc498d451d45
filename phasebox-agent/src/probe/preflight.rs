//! Checks made before anything is loaded, each failing with one sentence that says what to do.
use std::path::Path;

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
}
