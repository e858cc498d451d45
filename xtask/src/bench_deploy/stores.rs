//! The data stores of the deployment table: redis and memcached on 127.0.0.1, the operations
//! that write their data or report on it, and how they stop.
use std::time::Duration;

use phasebox_tests::redis;

use super::load::{self, Memcached};
use super::place::Target;
use super::servers::{argv, no_crash_line, none, signal_stop, until, write};
use super::{Op, Server};

/// The names of the files in redis's append-only directory.
fn aof_files(t: &Target) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(t.dir.join("appendonlydir"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// BGREWRITEAOF, waited for: a new base file, the rewrite done and successful.
fn bgrewriteaof(t: &Target) -> Result<(), String> {
    let before = aof_files(t);
    redis::cli(t.port, &["BGREWRITEAOF"])?;
    until("BGREWRITEAOF done", || {
        redis::info(t.port, "aof_rewrite_in_progress").as_deref() == Some("0")
            && redis::info(t.port, "aof_rewrite_scheduled").as_deref() == Some("0")
            && aof_files(t) != before
    })?;
    match redis::info(t.port, "aof_last_bgrewrite_status").as_deref() {
        Some("ok") => Ok(()),
        other => Err(format!("BGREWRITEAOF ended with {other:?}")),
    }
}

/// CONFIG SET of a value that changes each time, CONFIG REWRITE, and the file rewritten.
fn config_rewrite(t: &Target) -> Result<(), String> {
    let hz = 11 + aof_files(t).len() % 5;
    redis::cli(t.port, &["CONFIG", "SET", "hz", &hz.to_string()])?;
    redis::cli(t.port, &["CONFIG", "REWRITE"])?;
    let conf = std::fs::read_to_string(t.dir.join("redis.conf")).unwrap_or_default();
    conf.contains(&format!("hz {hz}"))
        .then_some(())
        .ok_or_else(|| "redis.conf not rewritten".into())
}

/// SHUTDOWN SAVE: the server exits after writing its dump.
fn shutdown_save(t: &Target) -> Result<(), String> {
    let dump = t.dir.join("dump.rdb");
    let _ = std::fs::remove_file(&dump);
    // The server closes the connection as it exits: no reply is no failure.
    let said = redis::cli(t.port, &["SHUTDOWN", "SAVE"]);
    t.wait_exit(Duration::from_secs(30))
        .map_err(|e| format!("{e} (redis said {said:?})"))?;
    dump.exists()
        .then_some(())
        .ok_or_else(|| "no dump.rdb written at shutdown".into())
}

pub fn redis() -> Server {
    let ops = vec![
        Op {
            name: "SET, GET, INCR",
            run: |t| {
                redis::cli(t.port, &["SET", "greeting", "hello"])?;
                match redis::cli(t.port, &["GET", "greeting"])?.as_str() {
                    "hello" => redis::cli(t.port, &["INCR", "visits"]).map(|_| ()),
                    other => Err(format!("GET said {other:?}")),
                }
            },
        },
        Op {
            name: "BGSAVE",
            run: |t| redis::bgsave(t.port, Duration::from_secs(60)),
        },
        Op {
            name: "BGREWRITEAOF",
            run: bgrewriteaof,
        },
        Op {
            name: "CONFIG SET, CONFIG REWRITE",
            run: config_rewrite,
        },
    ];
    Server {
        name: "redis",
        program: redis::SERVER,
        version: &[redis::SERVER, "--version"],
        files: none,
        rules: "auto",
        setup: |dir, port| {
            std::fs::create_dir_all(dir)?;
            let conf = dir.join("redis.conf");
            write(&conf, redis::config(dir, port))?;
            Ok(vec![redis::SERVER.into(), conf.display().to_string()])
        },
        ready: |t| redis::cli(t.port, &["PING"]).is_ok_and(|r| r == "PONG"),
        ops,
        stop: Op {
            name: "SHUTDOWN SAVE",
            run: shutdown_save,
        },
        load: |t, rounds| load::redis_benchmark(t.port, rounds),
        crashed: |l| {
            [
                "terminated by signal",
                "crashed by signal",
                "Guru Meditation",
            ]
            .iter()
            .any(|s| l.contains(s))
        },
    }
}

/// Traffic, statistics, and a flush.
fn memcached_ops() -> Vec<Op> {
    vec![
        Op {
            name: "set, get, incr, delete",
            run: |t| {
                let mut m = Memcached::connect(t.port)?;
                m.set("greeting", b"hello")?;
                if m.get("greeting")? != Some(5) {
                    return Err("get greeting: not what was set".into());
                }
                m.set("n", b"1")?;
                m.ask("incr n 5", &["6"])?;
                m.ask("delete greeting", &["DELETED"]).map(|_| ())
            },
        },
        Op {
            name: "stats, stats slabs, stats items, stats settings",
            run: |t| {
                let mut m = Memcached::connect(t.port)?;
                for c in ["stats", "stats slabs", "stats items", "stats settings"] {
                    m.ask(c, &["END"])?;
                }
                Ok(())
            },
        },
        Op {
            name: "flush_all",
            run: |t| {
                let mut m = Memcached::connect(t.port)?;
                m.set("doomed", b"x")?;
                m.ask("flush_all", &["OK"])?;
                match m.get("doomed")? {
                    None => Ok(()),
                    Some(_) => Err("a key survived flush_all".into()),
                }
            },
        },
    ]
}

pub fn memcached() -> Server {
    Server {
        name: "memcached",
        program: "/usr/bin/memcached",
        version: &["/usr/bin/memcached", "-V"],
        files: none,
        rules: "auto",
        setup: |dir, port| {
            std::fs::create_dir_all(dir)?;
            let port = port.to_string();
            Ok(argv(&[
                "/usr/bin/memcached",
                "-u",
                "memcache",
                "-l",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "0",
                "-m",
                "64",
                "-c",
                "1024",
                "-t",
                "4",
            ]))
        },
        ready: |t| {
            Memcached::connect(t.port)
                .and_then(|mut m| m.ask("version", &["VERSION"]))
                .is_ok()
        },
        ops: memcached_ops(),
        stop: signal_stop("TERM"),
        load: |t, rounds| load::memcached_load(t.port, rounds),
        crashed: no_crash_line,
    }
}
