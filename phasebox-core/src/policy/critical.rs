//! Security-critical syscalls: those an attacker who controls a process most wants, each with
//! the reason. A policy that still allows them leaves that door open.

/// (syscall, why it matters).
pub const CRITICAL: &[(&str, &str)] = &[
    (
        "execve",
        "runs a new program: the usual goal of code injection (a shell)",
    ),
    ("execveat", "runs a new program, like execve"),
    (
        "ptrace",
        "reads and writes other processes' memory and registers",
    ),
    ("process_vm_writev", "writes another process's memory"),
    ("process_vm_readv", "reads another process's memory"),
    ("mprotect", "makes injected data executable (W^X bypass)"),
    ("pkey_mprotect", "makes memory executable, like mprotect"),
    (
        "mount",
        "changes the file system view: escapes and privilege escalation",
    ),
    ("umount2", "removes mounts that confine the process"),
    ("pivot_root", "changes the root file system"),
    ("chroot", "changes the root directory: chroot escapes"),
    ("setuid", "changes the user id"),
    ("setgid", "changes the group id"),
    ("setreuid", "changes user ids"),
    ("setregid", "changes group ids"),
    ("setresuid", "changes user ids"),
    ("setresgid", "changes group ids"),
    ("setfsuid", "changes the file system user id"),
    ("setfsgid", "changes the file system group id"),
    ("capset", "changes capabilities"),
    ("bpf", "loads programs into the kernel"),
    ("init_module", "loads a kernel module"),
    ("finit_module", "loads a kernel module from a file"),
    ("delete_module", "unloads a kernel module"),
    ("kexec_load", "replaces the running kernel"),
    ("kexec_file_load", "replaces the running kernel"),
    ("reboot", "reboots or halts the machine"),
    (
        "unshare",
        "creates namespaces: a frequent step in kernel exploits",
    ),
    ("setns", "joins other namespaces"),
    (
        "userfaultfd",
        "stalls kernel accesses at will: a common exploit primitive",
    ),
    (
        "perf_event_open",
        "a large kernel attack surface, and side channels",
    ),
    ("keyctl", "kernel keyring: a frequent exploit target"),
    ("add_key", "kernel keyring"),
    ("request_key", "kernel keyring"),
    (
        "open_by_handle_at",
        "opens files by handle, bypassing path checks (the shocker escape)",
    ),
    (
        "io_uring_setup",
        "a large kernel attack surface that bypasses syscall filters",
    ),
    (
        "personality",
        "changes the execution domain (disables ASLR)",
    ),
    (
        "socket",
        "opens new network connections: exfiltration, reverse shells",
    ),
    ("connect", "connects out: exfiltration, reverse shells"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_critical_name_is_a_syscall_here() {
        for (name, why) in CRITICAL {
            assert!(crate::sysnames::number(name).is_some(), "{name}");
            assert!(!why.is_empty());
        }
    }
}
