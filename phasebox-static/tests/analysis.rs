//! The analysis on small programs compiled here with cc, and on /bin/true.
use std::path::{Path, PathBuf};
use std::process::Command;

use phasebox_static::{Error, SearchPaths, analyze, analyze_with};

/// Compiles `src` with `args` into `dir/name`.
fn cc(dir: &Path, name: &str, src: &str, args: &[&str]) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, src).unwrap();
    let out = dir.join(name);
    let st = Command::new("cc")
        .args(args)
        .arg("-o")
        .arg(&out)
        .arg(&c)
        .status()
        .expect("cc runs");
    assert!(st.success(), "cc failed for {name}");
    out
}

/// A freestanding program: raw `syscall` instructions, no libc.
const FREESTANDING: &str = r#"
static inline __attribute__((always_inline)) long sc1(long n, long a) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a) : "rcx", "r11", "memory");
    return r;
}
__attribute__((noinline)) void via_pointer(void) { sc1(63, 0); }          /* uname */
__attribute__((noinline, used)) void never_called(void) { sc1(83, 0); }   /* mkdir */
void (*volatile hook)(void) = via_pointer;
__attribute__((noinline)) void direct(void) { sc1(39, 0); sc1(110, 0); } /* getpid, getppid */
/* gcc computes the number without a branch (sbb/and/add): the analysis cannot know it. */
__attribute__((noinline)) void computed(long x) { sc1(x ? 95 : 96, 0); }
void _start(void) {
    direct();
    computed(1);
    hook();
    sc1(231, 0);                                                         /* exit_group */
    for (;;) {}
}
"#;

#[test]
fn freestanding_program_keeps_only_reachable_calls() {
    let dir = tempfile::tempdir().unwrap();
    let bin = cc(
        dir.path(),
        "free",
        FREESTANDING,
        &["-O2", "-nostdlib", "-static", "-fno-pie", "-no-pie"],
    );
    let a = analyze(&bin).unwrap();
    let names: Vec<&str> = a.syscalls.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["execve", "exit_group", "getpid", "getppid", "uname"],
        "{a:#?}"
    );
    // Reachable only through the function pointer: the chain says so.
    assert!(
        a.syscalls["uname"]
            .chain
            .iter()
            .any(|f| f == "*free:via_pointer"),
        "{:?}",
        a.syscalls["uname"]
    );
    assert_eq!(a.syscalls["getpid"].chain, ["free:_start", "free:direct"]);
    // Whole-image analysis sees the unreachable one too.
    assert!(a.whole_image.contains("mkdir"));
    assert!(!a.syscalls.contains_key("mkdir"));
    assert!(a.provenance.libraries.is_empty());
    let unresolved = &a.provenance.unresolved_sites;
    assert_eq!(unresolved.len(), 1, "{unresolved:?}");
    assert_eq!(unresolved[0].function, "free:computed");
    assert!(unresolved[0].reason.contains("computed"), "{unresolved:?}");
    assert!(!a.syscalls.contains_key("umask") && !a.syscalls.contains_key("gettimeofday"));
    assert!(a.provenance.indirect_call_sites >= 1);
}

/// A libc program: the `syscall()` wrapper with constants, a shared library of its own found
/// through DT_RUNPATH=$ORIGIN, and libc functions.
const WITH_LIBC: &str = r#"
#include <sys/syscall.h>
#include <unistd.h>
#include <sys/stat.h>
int helper_sync(void);
__attribute__((noinline)) static long wrapped(long nr) { return syscall(nr); }
int main(int argc, char **argv) {
    syscall(SYS_getppid);
    wrapped(SYS_sync);
    if (argc > 5) chmod(argv[1], 0600);
    return helper_sync();
}
"#;

const HELPER: &str = r#"
#include <sys/syscall.h>
#include <unistd.h>
int helper_sync(void) { return (int)syscall(SYS_syncfs, 0); }
int helper_unused(void) { return (int)syscall(SYS_acct, 0); }
"#;

#[test]
fn libc_program_and_its_own_library() {
    let dir = tempfile::tempdir().unwrap();
    let lib = cc(
        dir.path(),
        "libhelper.so",
        HELPER,
        &["-O2", "-shared", "-fPIC"],
    );
    assert!(lib.exists());
    let src = dir.path().join("prog.c");
    std::fs::write(&src, WITH_LIBC).unwrap();
    let bin = dir.path().join("prog");
    let st = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .arg(format!("-L{}", dir.path().display()))
        .args(["-lhelper", "-Wl,--enable-new-dtags,-rpath,$ORIGIN"])
        .status()
        .unwrap();
    assert!(st.success());
    let a = analyze(&bin).unwrap();
    let libs: Vec<&str> = a
        .provenance
        .libraries
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(libs, ["libhelper.so", "libc.so.6", "ld-linux-x86-64.so.2"]);
    for call in [
        "getppid",
        "sync",
        "syncfs",
        "chmod",
        "exit_group",
        "execve",
        "mmap",
    ] {
        assert!(
            a.syscalls.contains_key(call),
            "{call} missing: {:?}",
            a.syscalls.keys()
        );
    }
    assert_eq!(a.syscalls["getppid"].how, "number passed by a caller");
    assert_eq!(a.syscalls["sync"].how, "number passed by a caller");
    assert!(
        a.syscalls["sync"]
            .chain
            .iter()
            .any(|f| f.ends_with(":syscall")),
        "{:?}",
        a.syscalls["sync"]
    );
    assert_eq!(
        a.syscalls["chmod"].short("prog"),
        "prog:main -> libc:chmod",
        "{:?}",
        a.syscalls["chmod"]
    );
    // The library's unused function is not reachable, but it is in the whole image.
    assert!(!a.syscalls.contains_key("acct"));
    assert!(a.whole_image.contains("acct"));
    // Without the library beside it, the program cannot be analyzed.
    std::fs::remove_file(&lib).unwrap();
    match analyze(&bin) {
        Err(e @ Error::MissingLibrary(..)) => assert_eq!(
            e.to_string(),
            format!(
                "cannot find the library libhelper.so that {} needs",
                bin.display()
            )
        ),
        other => panic!("expected a missing library, got {other:?}"),
    }
}

#[test]
fn bin_true() {
    let a = analyze(Path::new("/bin/true")).unwrap();
    for call in ["execve", "exit_group", "brk", "mmap", "write", "close"] {
        assert!(
            a.syscalls.contains_key(call),
            "{call}: {:?}",
            a.syscalls.keys()
        );
    }
    // Far from everything, and a strict subset of the whole image.
    assert!(a.syscalls.len() < 100, "{}", a.syscalls.len());
    assert!(a.syscalls.keys().all(|s| a.whole_image.contains(s)));
    assert!(a.whole_image.len() > a.syscalls.len() + 100);
    for dangerous in ["reboot", "kexec_load", "init_module", "ptrace", "mount"] {
        assert!(!a.syscalls.contains_key(dangerous), "{dangerous}");
    }
    assert!(a.provenance.functions_reached < a.provenance.functions_total);
    assert!(a.provenance.syscall_sites_reached < a.provenance.syscall_sites_total);
}

#[test]
fn bad_input_is_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello").unwrap();
    assert!(matches!(analyze(&text), Err(Error::NotElf(_))));
    let fifo = dir.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    // Read as every input of phasebox is: without a writer it ends at once, empty.
    let e = analyze(&fifo).unwrap_err().to_string();
    assert_eq!(e, format!("{} is not an ELF file", fifo.display()));
    let e = analyze(dir.path()).unwrap_err().to_string();
    assert!(
        e.ends_with("it is a directory, and phasebox reads pipes and regular files only"),
        "{e}"
    );
    let e = analyze(Path::new("/dev/zero")).unwrap_err().to_string();
    assert!(e.contains("it is a character device"), "{e}");
    let e = analyze(&dir.path().join("absent")).unwrap_err().to_string();
    assert!(e.ends_with("no such file"), "{e}");
    // /bin/true with its machine changed to aarch64 (e_machine at offset 18).
    let mut bytes = std::fs::read("/bin/true").unwrap();
    bytes[18] = 183;
    bytes[19] = 0;
    let arm = dir.path().join("arm");
    std::fs::write(&arm, bytes).unwrap();
    let e = analyze(&arm).unwrap_err().to_string();
    assert!(
        e.contains("phasebox static reads x86_64 programs only"),
        "{e}"
    );
}

/// This machine's search paths with nsswitch.conf at `nsswitch`.
fn with_nsswitch(nsswitch: &Path) -> SearchPaths {
    SearchPaths {
        nsswitch: nsswitch.to_path_buf(),
        ..SearchPaths::system().unwrap()
    }
}

#[test]
fn nss_modules_named_in_nsswitch_conf_are_followed() {
    let module = Path::new("/lib/x86_64-linux-gnu/libnss_systemd.so.2");
    assert!(module.exists(), "this test needs Debian's libnss-systemd");
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nsswitch.conf");
    let nginx = Path::new("/usr/sbin/nginx");
    // nginx looks users and groups up (`user www-data`): with systemd named for them, its
    // module's calls are reachable from nginx's own code.
    std::fs::write(
        &conf,
        "passwd: files systemd\ngroup: files [NOTFOUND=return] systemd\nhosts: files dns\n",
    )
    .unwrap();
    let a = analyze_with(nginx, &with_nsswitch(&conf)).unwrap();
    let r = &a.syscalls["readlinkat"];
    assert_eq!(r.chain[0], "nginx:_start", "{r:?}");
    assert!(
        r.chain
            .iter()
            .any(|f| f.starts_with("*libnss_systemd:_nss_systemd_")),
        "{r:?}"
    );
    let loaded = &a.provenance.loaded_at_run_time;
    assert_eq!(loaded.len(), 1, "{loaded:?}");
    assert_eq!(loaded[0].name, "libnss_systemd.so.2");
    assert!(
        loaded[0]
            .loaded_by
            .starts_with("nsswitch.conf passwd, group"),
        "{loaded:?}"
    );
    // files and dns are built into libc: nothing loaded for them. Without systemd in the
    // file, or without the file, nothing is loaded at all.
    std::fs::write(&conf, "passwd: files\ngroup: files\n").unwrap();
    let a = analyze_with(nginx, &with_nsswitch(&conf)).unwrap();
    assert!(
        !a.syscalls.contains_key("readlinkat"),
        "{:?}",
        a.syscalls["readlinkat"]
    );
    assert!(a.provenance.loaded_at_run_time.is_empty());
    let a = analyze_with(nginx, &with_nsswitch(&dir.path().join("absent"))).unwrap();
    assert!(a.provenance.loaded_at_run_time.is_empty());
    // A module this machine lacks is named, with no path.
    std::fs::write(&conf, "passwd: files nosuchservice\n").unwrap();
    let a = analyze_with(nginx, &with_nsswitch(&conf)).unwrap();
    let loaded = &a.provenance.loaded_at_run_time;
    assert_eq!(loaded[0].name, "libnss_nosuchservice.so.2", "{loaded:?}");
    assert_eq!(loaded[0].path, "");
}

/// A plugin whose exported function calls syncfs(-1) (EBADF: harmless when run).
const PLUGIN: &str = r#"
#include <sys/syscall.h>
#include <unistd.h>
void plugin_run(void) { syscall(SYS_syncfs, -1); }
"#;

/// Loads the plugin by a constant name, through a wrapper; and another by a name computed
/// from its argument.
const OPENER: &str = r#"
#include <dlfcn.h>
#include <stdio.h>
__attribute__((noipa)) static void *load(const char *name) { return dlopen(name, RTLD_NOW); }
int main(int argc, char **argv) {
    void *h = load("libpbplugin.so");
    if (!h) return 2;
    ((void (*)(void))dlsym(h, "plugin_run"))();
    if (argc > 1) {
        char name[64];
        snprintf(name, sizeof name, "lib%s.so", argv[1]);
        void *g = dlopen(name, RTLD_NOW);
        if (!g) return 3;
        ((void (*)(void))dlsym(g, "plugin_run"))();
    }
    return 0;
}
"#;

#[test]
fn dlopen_by_a_constant_name_is_followed_and_a_computed_one_reported() {
    let dir = tempfile::tempdir().unwrap();
    let shared = ["-O2", "-shared", "-fPIC"];
    let plugin = cc(dir.path(), "libpbplugin.so", PLUGIN, &shared);
    // The other plugin calls pivot_root(NULL, NULL) (EFAULT: harmless).
    let other = PLUGIN.replace("SYS_syncfs, -1", "SYS_pivot_root, 0, 0");
    cc(dir.path(), "libother.so", &other, &shared);
    let prog = cc(
        dir.path(),
        "opener",
        OPENER,
        &["-O2", "-Wl,--enable-new-dtags,-rpath,$ORIGIN"],
    );
    // strace, the oracle: run, the program loads both plugins and makes both calls.
    let log = dir.path().join("strace.log");
    let st = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=syncfs,pivot_root", "-o"])
        .arg(&log)
        .arg(&prog)
        .arg("other")
        .status()
        .expect("strace runs");
    assert!(st.success());
    let traced = std::fs::read_to_string(&log).unwrap();
    assert!(
        traced.contains("syncfs(") && traced.contains("pivot_root("),
        "{traced}"
    );
    // (No nsswitch.conf: no NSS module mixes in.)
    let search = with_nsswitch(&dir.path().join("absent"));
    let a = analyze_with(&prog, &search).unwrap();
    // The constant name, passed through a wrapper, is found in the program's RUNPATH; the
    // plugin's exported function is reachable from the function that names it.
    let loaded = &a.provenance.loaded_at_run_time;
    assert_eq!(loaded.len(), 1, "{loaded:?}");
    assert_eq!(loaded[0].name, "libpbplugin.so");
    assert_eq!(loaded[0].path, plugin.display().to_string());
    assert_eq!(
        loaded[0].loaded_by,
        "dlopen(\"libpbplugin.so\") in opener:main"
    );
    let syncfs = &a.syscalls["syncfs"];
    assert_eq!(
        syncfs.short("opener"),
        "opener:main -> libpbplugin:plugin_run -> libc:syscall",
        "{syncfs:?}"
    );
    assert!(
        syncfs
            .chain
            .contains(&"*libpbplugin:plugin_run".to_string())
    );
    // The computed name is reported, and what only that library does is not guessed: the one
    // call the traced run made that the analysis lacks.
    let unresolved: Vec<&str> = a
        .provenance
        .dlopen_unresolved
        .iter()
        .filter(|s| s.function == "opener:main")
        .map(|s| s.reason.as_str())
        .collect();
    assert_eq!(
        unresolved,
        ["dlopen's file name: it is built in a buffer on the stack"],
        "{:?}",
        a.provenance.dlopen_unresolved
    );
    assert!(!a.syscalls.contains_key("pivot_root"));
    // A library this machine lacks is named with no path, and nothing of it is guessed.
    std::fs::remove_file(&plugin).unwrap();
    let a = analyze_with(&prog, &search).unwrap();
    let loaded = &a.provenance.loaded_at_run_time;
    assert_eq!(
        (loaded[0].name.as_str(), loaded[0].path.as_str()),
        ("libpbplugin.so", "")
    );
    assert!(!a.syscalls.contains_key("syncfs"));
}
