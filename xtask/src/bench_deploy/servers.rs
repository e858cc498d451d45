//! The servers of the deployment table, from Debian's packages (web.rs, stores.rs), and what
//! their definitions share: waiting with a deadline, their directory, HTTP operations, stops.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use phasebox_tests::{children, count_lines};

use super::load::{self, Load, expect};
use super::place::Target;
use super::{Op, Server, stores, web};

/// Every server of the table, in its order.
pub fn all() -> Vec<Server> {
    vec![
        web::nginx(),
        stores::redis(),
        stores::memcached(),
        web::lighttpd(),
        web::haproxy(),
        web::python(),
    ]
}

/// Waits until `f` holds (every 50 ms, at most 15 s); Err(`what`) when it never does.
pub fn until(what: &str, mut f: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        if Instant::now() > deadline {
            return Err(format!("{what}: not within 15 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

pub fn write(path: &Path, text: impl AsRef<[u8]>) -> anyhow::Result<()> {
    std::fs::write(path, text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// A site in `dir/www`: an index page and a 1 MiB file; `dir/logs` writable by the users
/// servers switch to (they reopen their logs after dropping privileges).
pub fn site(dir: &Path) -> anyhow::Result<()> {
    let www = dir.join("www");
    std::fs::create_dir_all(&www)?;
    write(&www.join("index.html"), "<h1>phasebox</h1>\n")?;
    write(&www.join("big.bin"), vec![b'x'; 1 << 20])?;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o777))?;
    Ok(())
}

/// A command line of owned strings.
pub fn argv(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// GET / is 200 (alone, and twice on a kept-alive connection) and a missing page 404.
fn http_basics(t: &Target) -> Result<(), String> {
    for _ in 0..5 {
        expect(t.port, "/", 200)?;
    }
    load::keep_alive(t.port)?;
    expect(t.port, "/missing.html", 404).map(|_| ())
}

/// A 1 MiB file is served whole.
pub fn big_file(t: &Target) -> Result<(), String> {
    match expect(t.port, "/big.bin", 200)? {
        n if n == 1 << 20 => Ok(()),
        n => Err(format!("GET /big.bin: {n} bytes of {}", 1 << 20)),
    }
}

/// The operations every web server goes through first: requests (kept alive too), a 404, and
/// (`big`) a 1 MiB file.
pub fn http_ops(big: bool) -> Vec<Op> {
    let mut ops = vec![Op {
        name: "GET /, kept alive, and a 404",
        run: http_basics,
    }];
    if big {
        ops.push(Op {
            name: "a 1 MiB file (sendfile)",
            run: big_file,
        });
    }
    ops
}

/// Renames the access log away, sends `signal`, waits for `said` in the error log, and for
/// a request to reach a new access log.
pub fn rotate(t: &Target, signal: &str, said: &str) -> Result<(), String> {
    let (access, error) = (t.dir.join("logs/access.log"), t.dir.join("logs/error.log"));
    let before = count_lines(&error, said);
    std::fs::rename(&access, t.dir.join("logs/access.log.1")).map_err(|e| e.to_string())?;
    t.signal(signal)?;
    until(&format!("{said:?} in the error log"), || {
        count_lines(&error, said) > before
    })?;
    expect(t.port, "/", 200)?;
    until("the new access log written", || {
        count_lines(&access, "GET") > 0
    })
}

/// Sends `signal` and waits until `said` appears once more in the error log, then serves.
pub fn signalled(t: &Target, signal: &str, said: &str) -> Result<(), String> {
    let error = t.dir.join("logs/error.log");
    let before = count_lines(&error, said);
    t.signal(signal)?;
    until(&format!("{said:?} in the error log"), || {
        count_lines(&error, said) > before
    })?;
    expect(t.port, "/", 200).map(|_| ())
}

/// Waits until the server's first process has `n` children, none of them in `old`.
pub fn new_children(t: &Target, n: usize, old: &[u32]) -> Result<(), String> {
    let main = t.main_pid()?;
    until("new worker processes", || {
        let now = children(main);
        now.len() == n && now.iter().all(|p| !old.contains(p))
    })
}

pub fn http_ready(t: &Target) -> bool {
    load::request(t.port, "GET", "/").is_ok()
}

pub fn http_load(t: &Target, rounds: usize) -> Result<Load, String> {
    load::wrk(&format!("http://127.0.0.1:{}/", t.port), rounds)
}

/// A stop by signal; the stage waits for the exit.
pub fn signal_stop(name: &str) -> Op {
    match name {
        "QUIT" => Op {
            name: "graceful stop (SIGQUIT)",
            run: |t| t.signal("QUIT"),
        },
        "INT" => Op {
            name: "graceful stop (SIGINT)",
            run: |t| t.signal("INT"),
        },
        "USR1" => Op {
            name: "soft stop (SIGUSR1)",
            run: |t| t.signal("USR1"),
        },
        _ => Op {
            name: "stop (SIGTERM)",
            run: |t| t.signal("TERM"),
        },
    }
}

/// For servers whose logs never report a crashed process of theirs (one process).
pub fn no_crash_line(_: &str) -> bool {
    false
}

/// No files besides the program and its libraries.
pub fn none() -> anyhow::Result<Vec<PathBuf>> {
    Ok(Vec::new())
}
