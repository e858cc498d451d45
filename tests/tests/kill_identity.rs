//! Monitor mode's kill acts on the process instances the agent traces, never on a pid: an
//! unrelated process that takes the pid of a traced root that died is neither killed nor
//! counted (even while the agent is stopped and has not read the death yet); a pid reused
//! inside the traced tree is enforced as the new process it is; a program whose role the
//! profile lacks is killed unless unknown roles are ignored; once the agent has ended
//! (stopped, or killed), nothing is killed: not the process it traced, not the processes
//! started right after it.
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use phasebox_tests::{
    CARGO_LIBRARY_PATH, Guard, TempDir, ask, bpf_programs_of, bpftool, fixture,
    loaded_bpf_programs,
    metrics::{eventually, scrape, sum, value},
    nginx::free_port,
    phasebox, phasebox_bin,
};

/// A profile of phased_server's normal run (role `main`).
fn learn(dir: &TempDir) -> String {
    let prof = dir.path("normal.json");
    let port = free_port();
    let mut learn = Guard::new(
        Command::new(phasebox_bin())
            .args(["run", "-q", "--phases", "generic", "--profile"])
            .arg(&prof)
            .arg("--")
            .arg(fixture("phased_server"))
            .arg(port.to_string())
            .env_remove(CARGO_LIBRARY_PATH)
            .spawn()
            .unwrap(),
    );
    for _ in 0..3 {
        assert_eq!(ask(port, "GET"), "hello\n");
    }
    assert_eq!(ask(port, "quit"), "bye\n");
    assert!(learn.wait().unwrap().success());
    prof.to_str().unwrap().to_string()
}

/// A phased_server on `port`, a child of this test (not traced unless attached to).
fn server(port: u16) -> Child {
    Command::new(fixture("phased_server"))
        .arg(port.to_string())
        .env_remove(CARGO_LIBRARY_PATH)
        .spawn()
        .unwrap()
}

/// Makes the next pid the kernel hands out `want` (when no other fork comes first).
fn next_pid_is(want: u32) {
    std::fs::write("/proc/sys/kernel/ns_last_pid", (want - 1).to_string())
        .expect("root can set ns_last_pid");
}

/// Runs `make()` until the process it spawns gets pid `want` (other processes on the machine
/// may take it first: those are killed and it is tried again).
fn spawn_as(want: u32, make: impl Fn() -> Command) -> Child {
    for _ in 0..200 {
        next_pid_is(want);
        let mut child = make().spawn().unwrap();
        if child.id() == want {
            return child;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("no process could be given pid {want}");
}

fn agent(args: &[&str]) -> (Guard, String) {
    let (agent, err, line) = phasebox_tests::spawn_agent(args);
    assert!(line.contains("metrics on"), "agent did not start: {line}");
    // The agent's log goes on to the test's output (shown when it fails).
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in err.lines().map_while(Result::ok) {
            eprintln!("agent: {l}");
        }
    });
    let listen = args[args.iter().position(|a| *a == "--listen").unwrap() + 1];
    (agent, listen.to_string())
}

/// `phasebox agent -p PIDS --phases generic --monitor PROFILE --on-violation kill`, serving
/// metrics on a free port; returns it with that address.
fn kill_monitor(pids: &str, prof: &str) -> (Guard, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let monitor = ["--monitor", prof, "--on-violation", "kill"];
    let args = ["-p", pids, "--phases", "generic", "--listen", &listen];
    agent(&[&args[..], &monitor[..]].concat())
}

/// Calls of `syscall` by processes of `role`, in all their phases (None: no series yet).
fn counted(listen: &str, role: &str, syscall: &str) -> Option<f64> {
    let page = scrape(listen);
    let with = [("role", role), ("syscall", syscall)];
    value(&page, "phasebox_syscalls_total", &with)?;
    Some(sum(&page, "phasebox_syscalls_total", &with))
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: signalling a process this test started.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
}

#[test]
fn an_unrelated_process_with_a_traced_pid_is_never_touched() {
    let dir = TempDir::new("kill-identity");
    let prof = learn(&dir);
    for trial in 0..5 {
        let (tp, kp) = (free_port(), free_port());
        let mut t = Guard::new(server(tp));
        let _k = Guard::new(server(kp));
        assert_eq!(ask(tp, "GET"), "hello\n");
        assert_eq!(ask(kp, "GET"), "hello\n");
        let pids = format!("{},{}", t.id(), _k.id());
        let (agent, listen) = kill_monitor(&pids, &prof);
        assert_eq!(ask(tp, "GET"), "hello\n");
        assert_eq!(ask(tp, "GET"), "hello\n");
        eventually(Duration::from_secs(15), "T's calls counted", || {
            counted(&listen, "main", "accept4").filter(|&n| n >= 2.0)
        });
        let before = scrape(&listen);
        // Stop the agent, so the kernel alone stands between the pid and the new process.
        let t_pid = t.id();
        signal(agent.id(), libc::SIGSTOP);
        t.kill().unwrap();
        t.wait().unwrap();
        let out = dir.path(&format!("survived-{trial}"));
        let script = format!(
            "for i in 1 2 3; do ls / > /dev/null; done; echo yes > {}",
            out.display()
        );
        let mut intruder = spawn_as(t_pid, || {
            let mut c = Command::new("/bin/sh");
            c.args(["-c", &script]).env_remove(CARGO_LIBRARY_PATH);
            c
        });
        let status = intruder.wait().unwrap();
        signal(agent.id(), libc::SIGCONT);
        assert!(
            status.success(),
            "trial {trial}: the process that took pid {t_pid} was killed: {status:?}"
        );
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "yes\n");
        // The agent goes on, and counts nothing of the intruder (its shell, its ls).
        assert_eq!(ask(kp, "GET"), "hello\n");
        let after = scrape(&listen);
        assert_eq!(
            value(&after, "phasebox_processes_killed_total", &[]),
            Some(0.0)
        );
        for role in ["ls", "sh"] {
            assert_eq!(
                value(&after, "phasebox_syscalls_total", &[("role", role)]),
                None,
                "trial {trial}: the intruder was counted as {role}: before {before}\nafter {after}"
            );
        }
        let violations = value(&after, "phasebox_profile_violations_total", &[]);
        assert_eq!(violations, None, "trial {trial}: {after}");
        drop(agent);
    }
}

#[test]
fn nothing_is_killed_once_the_agent_has_ended() {
    let dir = TempDir::new("kill-after-end");
    let prof = learn(&dir);
    for trial in 0..6 {
        // Stopped (SIGTERM) or killed (SIGKILL): the kernel lets go of the programs a few
        // milliseconds after the agent's end, in an order of its own.
        let (how, sig) = if trial % 2 == 0 {
            ("stopped", libc::SIGTERM)
        } else {
            ("killed", libc::SIGKILL)
        };
        let tp = free_port();
        let mut t = Guard::new(server(tp));
        assert_eq!(ask(tp, "GET"), "hello\n");
        let (mut agent, listen) = kill_monitor(&t.id().to_string(), &prof);
        assert_eq!(ask(tp, "GET"), "hello\n");
        eventually(Duration::from_secs(15), "T's calls counted", || {
            counted(&listen, "main", "accept4")
        });
        std::thread::sleep(Duration::from_millis(1500)); // a refresh writes its kill set
        signal(agent.id(), sig);
        let status = agent.wait().unwrap();
        assert_eq!(status.success(), sig == libc::SIGTERM, "{how}: {status:?}");
        // At once: a call outside the profile (after a stop: the agent's word is that it no
        // longer enforces), the server's end, and new processes, one of which may take the
        // server's kernel stack.
        if sig == libc::SIGTERM {
            let reply = ask(tp, "ptrace");
            assert!(
                reply.starts_with("ptrace: "),
                "trial {trial}: the server was killed after the agent {how}"
            );
        }
        assert_eq!(ask(tp, "quit"), "bye\n", "trial {trial} ({how})");
        assert!(t.wait().unwrap().success(), "trial {trial} ({how})");
        for i in 0..200 {
            let st = Command::new("/bin/true").status().unwrap();
            assert!(
                st.success(),
                "trial {trial}: process {i} after the agent {how} ended with {st:?}"
            );
        }
    }
}

/// Under `kill -9` the kernel lets go of the agent's programs one at a time, tens of ms apart:
/// the syscall program must leave first, never after the exit program, which clears the
/// thread cache entry of a thread that ends (without it, a new thread on the same kernel stack
/// would be taken for the one that ended, and killed in its stead).
#[test]
fn under_kill_9_the_syscall_program_leaves_before_the_exit_program() {
    for trial in 0..3 {
        let sleeper = Guard::new(Command::new("sleep").arg("60").spawn().unwrap());
        let listen = format!("127.0.0.1:{}", free_port());
        let pid = sleeper.id().to_string();
        let (mut agent, _) = agent(&["-p", &pid, "--listen", &listen]);
        let ours = bpf_programs_of(agent.id());
        let named = |prefix: &str| -> u32 {
            *ours
                .iter()
                .find(|id| {
                    let info = bpftool(&["prog", "show", "id", &id.to_string()]);
                    info["name"].as_str().is_some_and(|n| n.starts_with(prefix))
                })
                .unwrap_or_else(|| panic!("the agent has no program {prefix}*: {ours:?}"))
        };
        let (enter, exit) = (named("pb_sys_enter"), named("pb_exit"));
        signal(agent.id(), libc::SIGKILL);
        let mut polls = 0;
        loop {
            let loaded = loaded_bpf_programs();
            let (enter_in, exit_in) = (loaded.contains(&enter), loaded.contains(&exit));
            assert!(
                !enter_in || exit_in,
                "trial {trial}: the exit program left while the syscall program was loaded \
                 (after {polls} looks)"
            );
            if !enter_in && !exit_in {
                break;
            }
            polls += 1;
            assert!(
                polls < 10_000,
                "the agent's programs stay loaded after kill -9"
            );
        }
        let _ = agent.wait();
        drop(sleeper);
    }
}

/// A bash script reading commands from `fifo` and running each in the background. A read
/// that fails (the open of the FIFO interrupted by a child's end) is tried again.
fn command_script(fifo: &std::path::Path) -> String {
    format!(
        "while :; do read -r line < {f} || continue; eval \"$line\" & done",
        f = fifo.display()
    )
}

/// The command shell: the traced tree.
fn command_shell(fifo: &std::path::Path) -> Guard {
    Guard::group(
        Command::new("/bin/bash")
            .args(["-c", &command_script(fifo)])
            .env_remove(CARGO_LIBRARY_PATH)
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap(),
    )
}

/// Writes `line` to the command shell's FIFO, once the shell is there to read it.
fn send(fifo: &std::path::Path, line: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = eventually(Duration::from_secs(10), "the shell to read", || {
        // Without a reader, a non-blocking open fails (ENXIO) instead of waiting forever.
        std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(fifo)
            .ok()
    });
    writeln!(f, "{line}").unwrap();
}

/// The pid of the process listening on 127.0.0.1:`port` (from /proc/net/tcp and fds).
fn listener_pid(port: u16) -> u32 {
    eventually(Duration::from_secs(10), "the server to listen", || {
        let tcp = std::fs::read_to_string("/proc/net/tcp").ok()?;
        let inode = tcp.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local_port = u16::from_str_radix(f[1].rsplit(':').next()?, 16).ok()?;
            (local_port == port && f[3] == "0A").then(|| f[9].to_string())
        })?;
        let want = format!("socket:[{inode}]");
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
            fds.flatten()
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t.to_str() == Some(&want)))
                .then_some(pid)
        })
    })
}

/// Learns the command shell's profile through the operations the test then monitors (two
/// servers, one after the other, each asked and stopped), attached to it as the monitor will
/// be: the shell's role is seen in the phase it is in then.
fn learn_command_shell(dir: &TempDir) -> String {
    let prof = dir.path("shell.json");
    let fifo = dir.path("learn-commands");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let shell = command_shell(&fifo);
    let pid = shell.id().to_string();
    let listen = format!("127.0.0.1:{}", free_port());
    let args = ["-p", &pid, "--phases", "generic", "--listen", &listen];
    let (mut agent, listen) = agent(&[&args[..], &["--profile", prof.to_str().unwrap()]].concat());
    let srv = fixture("phased_server");
    for _ in 0..2 {
        let port = free_port();
        send(&fifo, &format!("exec {} {port}", srv.display()));
        assert_eq!(ask(port, "GET"), "hello\n");
        assert_eq!(ask(port, "quit"), "bye\n");
    }
    // A server killed, as the monitor will kill one: the shell says so on its stderr.
    let port = free_port();
    send(&fifo, &format!("exec {} {port}", srv.display()));
    assert_eq!(ask(port, "GET"), "hello\n");
    signal(listener_pid(port), libc::SIGKILL);
    eventually(Duration::from_secs(15), "the servers counted", || {
        counted(&listen, "phased_server", "exit_group").filter(|&n| n >= 2.0)
    });
    // The shell has reaped the killed one and said so.
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    assert!(agent.wait().unwrap().success());
    drop(shell);
    prof.to_str().unwrap().to_string()
}

#[test]
fn a_reused_pid_inside_the_tree_is_enforced_and_unknown_roles_are_violations() {
    let dir = TempDir::new("kill-reuse");
    let prof = learn_command_shell(&dir);
    let fifo = dir.path("commands");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let shell = command_shell(&fifo);
    let (agent, listen) = kill_monitor(&shell.id().to_string(), &prof);
    let srv = fixture("phased_server");
    // A first server: its pid is the one to reuse.
    let port = free_port();
    send(&fifo, &format!("exec {} {port}", srv.display()));
    assert_eq!(ask(port, "GET"), "hello\n");
    let first = listener_pid(port);
    eventually(Duration::from_secs(15), "the first server counted", || {
        counted(&listen, "phased_server", "accept4")
    });
    assert_eq!(ask(port, "quit"), "bye\n");
    // Servers until one gets the first one's pid (other processes may fork in between).
    let reused = (0..100)
        .find_map(|_| {
            let port = free_port();
            next_pid_is(first);
            send(&fifo, &format!("exec {} {port}", srv.display()));
            assert_eq!(ask(port, "GET"), "hello\n");
            if listener_pid(port) == first {
                return Some(port);
            }
            assert_eq!(ask(port, "quit"), "bye\n");
            None
        })
        .expect("a server got the first one's pid");
    // Its calls are counted as the new process's; its kill set is its own.
    let accepts = counted(&listen, "phased_server", "accept4").unwrap();
    assert_eq!(ask(reused, "GET"), "hello\n");
    eventually(Duration::from_secs(15), "the new server counted", || {
        let now = counted(&listen, "phased_server", "accept4");
        eprintln!("accept4 of phased_server: {now:?} (before: {accepts})");
        now.filter(|&n| n > accepts)
    });
    std::thread::sleep(Duration::from_millis(1500)); // a refresh writes its kill set
    assert_eq!(ask(reused, "ptrace"), "", "the reused pid was not enforced");
    eventually(Duration::from_secs(10), "the kill counted", || {
        (value(&scrape(&listen), "phasebox_processes_killed_total", &[]) >= Some(1.0)).then_some(())
    });
    let killed = value(&scrape(&listen), "phasebox_processes_killed_total", &[]).unwrap();
    // A program the profile never saw (role `sh`), launched by the traced shell, is a
    // violation: killed at a call once its empty set is in the kernel.
    let done = dir.path("unknown-finished");
    send(
        &fifo,
        &format!(
            "/bin/sh -c 'for i in $(seq 40); do sleep 0.1; done; echo yes > {}'",
            done.display()
        ),
    );
    eventually(
        Duration::from_secs(15),
        "the unknown program killed",
        || {
            (value(&scrape(&listen), "phasebox_processes_killed_total", &[]) > Some(killed))
                .then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(5));
    assert!(!done.exists(), "the program of an unknown role finished");
    let out = phasebox(&["profile", "show", &prof]);
    assert!(out.status.success());
    drop((agent, shell));
}
