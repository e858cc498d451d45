//! The web servers of the deployment table: nginx, lighttpd, haproxy and Python's
//! http.server, each configured in one directory on 127.0.0.1, with what a deployment does to
//! it and how it stops.
use std::path::{Path, PathBuf};
use std::time::Duration;

use phasebox_tests::{children, nginx::deploy_config, rootfs::files_under};

use super::load::{self, expect};
use super::place::Target;
use super::servers::{
    argv, big_file, http_load, http_ops, http_ready, new_children, no_crash_line, none, rotate,
    signal_stop, signalled, site, write,
};
use super::{Op, Server};

/// `dir`/`name`, as a string for a command line.
fn at(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// Requests, reloads by signal and by a second nginx, a configuration test, log rotation,
/// and a worker that dies.
fn nginx_ops() -> Vec<Op> {
    let mut ops = http_ops(true);
    ops.extend([
        Op {
            name: "reload (SIGHUP)",
            run: |t| {
                let old = children(t.main_pid()?);
                signalled(t, "HUP", "reconfiguring")?;
                new_children(t, 2, &old)
            },
        },
        Op {
            name: "nginx -s reload",
            run: |t| {
                let old = children(t.main_pid()?);
                t.exec(&[
                    "/usr/sbin/nginx",
                    "-c",
                    &at(&t.dir, "nginx.conf"),
                    "-s",
                    "reload",
                ])?;
                new_children(t, 2, &old)?;
                expect(t.port, "/", 200).map(|_| ())
            },
        },
        Op {
            name: "nginx -t",
            run: |t| {
                t.exec(&["/usr/sbin/nginx", "-c", &at(&t.dir, "nginx.conf"), "-t"])
                    .map(|_| ())
            },
        },
        Op {
            name: "log reopen (SIGUSR1)",
            run: |t| rotate(t, "USR1", "reopening logs"),
        },
        Op {
            name: "a worker killed and replaced",
            run: |t| {
                let first = *children(t.main_pid()?).first().ok_or("no worker")?;
                // SAFETY: kill(2) of a worker of the server this stage started.
                unsafe { libc::kill(first as i32, libc::SIGKILL) };
                new_children(t, 2, &[first])?;
                expect(t.port, "/", 200).map(|_| ())
            },
        },
    ]);
    ops
}

pub fn nginx() -> Server {
    Server {
        name: "nginx",
        program: "/usr/sbin/nginx",
        version: &["/usr/sbin/nginx", "-v"],
        files: || Ok(vec![PathBuf::from("/etc/nginx/mime.types")]),
        rules: "nginx",
        setup: |dir, port| {
            site(dir)?;
            std::fs::create_dir_all(dir.join("tmp"))?;
            write(&dir.join("nginx.conf"), deploy_config(dir, port))?;
            let conf = at(dir, "nginx.conf");
            Ok(argv(&["/usr/sbin/nginx", "-c", &conf, "-g", "daemon off;"]))
        },
        ready: http_ready,
        ops: nginx_ops(),
        stop: signal_stop("QUIT"),
        load: http_load,
        // The worker the operations kill (signal 9) is no crash.
        crashed: |l| {
            (l.contains("exited on signal") && !l.contains("signal 9"))
                || l.contains("exited with fatal code")
        },
    }
}

fn lighttpd_config(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "server.modules = ( \"mod_accesslog\" )\nserver.bind = \"127.0.0.1\"\n\
         server.port = {port}\nserver.document-root = \"{d}/www\"\n\
         server.errorlog = \"{d}/logs/error.log\"\naccesslog.filename = \"{d}/logs/access.log\"\n\
         server.pid-file = \"{d}/lighttpd.pid\"\nserver.username = \"www-data\"\n\
         server.groupname = \"www-data\"\nindex-file.names = ( \"index.html\" )\n\
         mimetype.assign = ( \".html\" => \"text/html\", \".bin\" => \"application/octet-stream\" )\n"
    )
}

pub fn lighttpd() -> Server {
    let mut ops = http_ops(true);
    ops.extend([
        Op {
            name: "log reopen (SIGHUP)",
            run: |t| rotate(t, "HUP", "logfiles cycled"),
        },
        Op {
            name: "graceful restart (SIGUSR1)",
            run: |t| signalled(t, "USR1", "server started"),
        },
        Op {
            name: "lighttpd -tt",
            run: |t| {
                let conf = at(&t.dir, "lighttpd.conf");
                t.exec(&["/usr/sbin/lighttpd", "-tt", "-f", &conf])
                    .map(|_| ())
            },
        },
    ]);
    Server {
        name: "lighttpd",
        program: "/usr/sbin/lighttpd",
        version: &["/usr/sbin/lighttpd", "-v"],
        files: || files_under(Path::new("/usr/lib/lighttpd")),
        rules: "auto",
        setup: |dir, port| {
            site(dir)?;
            write(&dir.join("lighttpd.conf"), lighttpd_config(dir, port))?;
            let conf = at(dir, "lighttpd.conf");
            Ok(argv(&["/usr/sbin/lighttpd", "-D", "-f", &conf]))
        },
        ready: http_ready,
        ops,
        stop: signal_stop("INT"),
        load: http_load,
        crashed: no_crash_line,
    }
}

/// haproxy answering by itself (no backend), master and worker, a stats socket in `dir`.
fn haproxy_config(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "global\n  master-worker\n  pidfile {d}/haproxy.pid\n\
         \x20 stats socket {d}/admin.sock mode 600 level admin\n\
         defaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
         frontend web\n  bind 127.0.0.1:{port}\n\
         \x20 http-request return status 404 content-type text/plain string \"missing\" if {{ path /missing.html }}\n\
         \x20 http-request return status 200 content-type text/plain string \"hello\"\n"
    )
}

/// One command on haproxy's stats socket; its answer.
fn haproxy_stats(t: &Target, command: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let path = t.dir.join("admin.sock");
    let mut s = std::os::unix::net::UnixStream::connect(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("{command}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| format!("{command}: {e}"))?;
    Ok(out)
}

pub fn haproxy() -> Server {
    let mut ops = http_ops(false);
    ops.extend([
        Op {
            name: "stats socket (show info, show stat)",
            run: |t| {
                let info = haproxy_stats(t, "show info")?;
                if !info.contains("Name: HAProxy") {
                    return Err(format!("show info said {info:?}"));
                }
                haproxy_stats(t, "show stat").map(|_| ())
            },
        },
        Op {
            name: "reload (SIGUSR2: the master executes itself again)",
            run: |t| {
                let old = children(t.main_pid()?);
                t.signal("USR2")?;
                new_children(t, 1, &old)?;
                expect(t.port, "/", 200).map(|_| ())
            },
        },
        Op {
            name: "haproxy -c",
            run: |t| {
                let conf = at(&t.dir, "haproxy.cfg");
                t.exec(&["/usr/sbin/haproxy", "-c", "-f", &conf])
                    .map(|_| ())
            },
        },
    ]);
    Server {
        name: "haproxy",
        program: "/usr/sbin/haproxy",
        version: &["/usr/sbin/haproxy", "-v"],
        files: none,
        rules: "auto",
        setup: |dir, port| {
            std::fs::create_dir_all(dir)?;
            write(&dir.join("haproxy.cfg"), haproxy_config(dir, port))?;
            let conf = at(dir, "haproxy.cfg");
            Ok(argv(&["/usr/sbin/haproxy", "-W", "-db", "-f", &conf]))
        },
        ready: http_ready,
        ops,
        stop: signal_stop("USR1"),
        load: http_load,
        crashed: |l| l.contains("exited with code") && !l.contains("exited with code 0"),
    }
}

/// Python's standard library without its tests and its static build files.
fn python_files() -> anyhow::Result<Vec<PathBuf>> {
    let lib = Path::new("/usr/lib/python3.11");
    let skip = [lib.join("test"), lib.join("config-3.11-x86_64-linux-gnu")];
    Ok(files_under(lib)?
        .into_iter()
        .filter(|f| !skip.iter().any(|s| f.starts_with(s)))
        .collect())
}

pub fn python() -> Server {
    let ops = vec![
        Op {
            name: "GET / (a listing), a page and a 404",
            run: |t| {
                expect(t.port, "/", 200)?;
                expect(t.port, "/index.html", 200)?;
                expect(t.port, "/missing.html", 404).map(|_| ())
            },
        },
        Op {
            name: "a 1 MiB file",
            run: big_file,
        },
        Op {
            name: "HEAD",
            run: |t| match load::request(t.port, "HEAD", "/index.html")? {
                (200, _) => Ok(()),
                (s, _) => Err(format!("HEAD /index.html: {s}")),
            },
        },
    ];
    Server {
        name: "python3 -m http.server",
        program: "/usr/bin/python3.11",
        version: &["/usr/bin/python3.11", "--version"],
        files: python_files,
        rules: "auto",
        setup: |dir, port| {
            site(dir)?;
            let (port, www) = (port.to_string(), at(dir, "www"));
            Ok(argv(&[
                "/usr/bin/python3.11",
                "-m",
                "http.server",
                &port,
                "--bind",
                "127.0.0.1",
                "--directory",
                &www,
            ]))
        },
        ready: http_ready,
        ops,
        stop: signal_stop("INT"),
        load: http_load,
        crashed: no_crash_line,
    }
}
