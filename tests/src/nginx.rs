//! An nginx from the system's package, started with the test's own config on 127.0.0.1:
//! master process on, one worker, its own prefix, pid and log files. Stopped on drop.
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::TempDir;

pub struct Nginx {
    pub dir: TempDir,
    pub port: u16,
    /// nginx's master, or the program it runs under (`start_under`).
    pub master: Child,
    wrapped: bool,
    /// The directory of the symlink nginx runs through (`start_named`).
    _link: Option<TempDir>,
}

/// A free loopback port, chosen by the kernel.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().unwrap().port()
}

/// A free loopback port in `range`, other than `except`: for the tests whose ports the docs
/// name (a range of their own).
pub fn free_port_in(range: std::ops::Range<u16>, except: u16) -> u16 {
    range
        .clone()
        .filter(|&p| p != except)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .unwrap_or_else(|| panic!("no free loopback port in {range:?}"))
}

/// Waits until 127.0.0.1:`port` accepts a connection, or fails the test after `limit`.
pub fn wait_port(port: u16, limit: std::time::Duration) {
    let deadline = Instant::now() + limit;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The nginx config: everything under `prefix`, listening on 127.0.0.1:`port` only.
pub fn config(prefix: &str, port: u16, workers: usize) -> String {
    format!(
        "daemon off;\nmaster_process on;\nworker_processes {workers};\nuser root;\n\
         pid {prefix}/nginx.pid;\nerror_log {prefix}/error.log info;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log {prefix}/access.log;\n  sendfile on;\n  keepalive_timeout 5;\n\
           client_body_temp_path {prefix}/tmp/body;\n  proxy_temp_path {prefix}/tmp/proxy;\n\
           fastcgi_temp_path {prefix}/tmp/fastcgi;\n  uwsgi_temp_path {prefix}/tmp/uwsgi;\n\
           scgi_temp_path {prefix}/tmp/scgi;\n\
           server {{\n    listen 127.0.0.1:{port};\n    root {prefix}/html;\n\
             location / {{ index index.html; }}\n  }}\n}}\n"
    )
}

/// nginx's config in the shape of a deployment (master as root, two workers as www-data),
/// every file under `dir` (logs in logs/, the site in www/, temp paths in tmp/), listening on
/// 127.0.0.1:`port`: the same file serves on the host and in a container that mounts `dir`
/// at the same path.
pub fn deploy_config(dir: &std::path::Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "user www-data;\nworker_processes 2;\npid {d}/nginx.pid;\n\
         error_log {d}/logs/error.log info;\nevents {{ worker_connections 1024; }}\n\
         http {{\n  include /etc/nginx/mime.types;\n  access_log {d}/logs/access.log;\n\
           sendfile on;\n  keepalive_timeout 5;\n  client_body_temp_path {d}/tmp/body;\n\
           proxy_temp_path {d}/tmp/proxy;\n  fastcgi_temp_path {d}/tmp/fastcgi;\n\
           uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n\
           server {{\n    listen 127.0.0.1:{port};\n    root {d}/www;\n  }}\n}}\n"
    )
}

impl Nginx {
    /// Writes the config and a small site, starts nginx as a child (not daemonized), and waits
    /// until it accepts connections.
    pub fn start() -> Nginx {
        Nginx::start_under(&[])
    }

    /// Like `start`, with nginx's command line appended to `wrapper` (for example
    /// `phasebox run --profile F --`); the wrapper is the child, nginx's master its child.
    pub fn start_under(wrapper: &[&str]) -> Nginx {
        Nginx::launch(1, wrapper, free_port(), nginx_bin())
    }

    /// Like `start_under`, with `workers` worker processes.
    pub fn start_with(workers: usize, wrapper: &[&str]) -> Nginx {
        Nginx::launch(workers, wrapper, free_port(), nginx_bin())
    }

    /// Like `start_under`, listening on 127.0.0.1:`port`.
    pub fn start_under_on(wrapper: &[&str], port: u16) -> Nginx {
        Nginx::launch(1, wrapper, port, nginx_bin())
    }

    /// Like `start`, running nginx through a symlink named `name` (its process name then, so
    /// `--exec-name NAME` finds this nginx and no other one running on the machine).
    pub fn start_named(name: &str) -> Nginx {
        let link_dir = TempDir::new("nginx-link");
        let link = link_dir.path(name);
        std::os::unix::fs::symlink(nginx_bin(), &link).expect("symlink to nginx");
        let mut n = Nginx::launch(1, &[], free_port(), link);
        n._link = Some(link_dir);
        n
    }

    fn launch(workers: usize, wrapper: &[&str], port: u16, nginx: PathBuf) -> Nginx {
        let dir = TempDir::new("nginx");
        let prefix = dir.0.to_str().unwrap().to_string();
        for sub in ["html", "tmp", "logs"] {
            std::fs::create_dir_all(dir.path(sub)).unwrap();
        }
        std::fs::write(dir.path("html/index.html"), "<h1>phasebox test page</h1>\n").unwrap();
        std::fs::write(dir.path("html/big.bin"), vec![b'x'; 256 * 1024]).unwrap();
        std::fs::write(dir.path("nginx.conf"), config(&prefix, port, workers)).unwrap();
        let nginx_args = [
            nginx.to_str().unwrap().to_string(),
            "-p".into(),
            prefix.clone(),
            "-c".into(),
            format!("{prefix}/nginx.conf"),
            "-e".into(),
            format!("{prefix}/error.log"),
        ];
        let argv: Vec<String> = wrapper
            .iter()
            .map(|s| s.to_string())
            .chain(nginx_args)
            .collect();
        // A wrapper's messages (phasebox's) go to the test's output.
        let stderr = if wrapper.is_empty() {
            Stdio::null()
        } else {
            Stdio::inherit()
        };
        let master = Command::new(&argv[0])
            .args(&argv[1..])
            .env_remove(crate::CARGO_LIBRARY_PATH)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("nginx starts (is the nginx package installed?)");
        let n = Nginx {
            dir,
            port,
            master,
            wrapped: !wrapper.is_empty(),
            _link: None,
        };
        n.wait_ready(workers);
        n
    }

    /// Waits until nginx accepts connections and its master has forked all `workers` workers:
    /// the port answers as soon as the master listens, which is before its pid file and its
    /// workers exist (a busy machine shows the gap).
    fn wait_ready(&self, workers: usize) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let listening = TcpStream::connect(("127.0.0.1", self.port)).is_ok();
            let forked = self.try_pid().map(workers_of);
            if listening && forked.as_ref().is_some_and(|w| w.len() == workers) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nginx not ready (listening: {listening}, workers: {forked:?}, {workers} wanted): {}",
                self.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The master's pid, once known (from its pid file when it runs under a wrapper).
    fn try_pid(&self) -> Option<u32> {
        if !self.wrapped {
            return Some(self.master.id());
        }
        let text = std::fs::read_to_string(self.dir.path("nginx.pid")).ok()?;
        text.trim().parse().ok()
    }

    /// The master's pid (from its pid file when it runs under a wrapper).
    pub fn pid(&self) -> u32 {
        self.try_pid()
            .unwrap_or_else(|| panic!("no nginx pid file: {}", self.error_log()))
    }

    /// Graceful quit (SIGQUIT to the master); waits for the child (nginx or its wrapper) to
    /// end and returns its exit status.
    pub fn quit(&mut self) -> std::process::ExitStatus {
        // SAFETY: signalling our own (grand)child.
        unsafe { libc::kill(self.pid() as i32, libc::SIGQUIT) };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(st)) = self.master.try_wait() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not quit: {}",
                self.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path("error.log")).unwrap_or_default()
    }

    /// The master's children, i.e. its worker processes.
    pub fn workers(&self) -> Vec<u32> {
        workers_of(self.pid())
    }

    /// Sends `nginx -s SIGNAL` for this instance.
    pub fn signal(&self, sig: &str) {
        let prefix = self.dir.0.to_str().unwrap();
        let st = Command::new(nginx_bin())
            .args([
                "-p",
                prefix,
                "-c",
                &format!("{prefix}/nginx.conf"),
                "-e",
                &format!("{prefix}/error.log"),
                "-s",
                sig,
            ])
            .status()
            .expect("nginx -s runs");
        assert!(st.success(), "nginx -s {sig} failed: {}", self.error_log());
    }

    /// What a deployment does to a running nginx with `workers` workers: requests, 404s, two
    /// reloads by `nginx -s reload`, a log reopening, a worker killed with SIGKILL and
    /// respawned by the master, and requests again. Each step is checked.
    pub fn operate(&self, workers: usize) {
        let wait_workers = |old: &[u32], what: &str| {
            crate::metrics::eventually(Duration::from_secs(15), what, || {
                let now = self.workers();
                (now.len() == workers && now.iter().all(|p| !old.contains(p))).then_some(())
            })
        };
        assert!(self.curl("/index.html", 20).iter().all(|c| c == "200"));
        assert!(self.curl("/missing.html", 5).iter().all(|c| c == "404"));
        for _ in 0..2 {
            let before = self.workers();
            self.signal("reload");
            wait_workers(&before, "new workers after a reload");
            assert!(self.curl("/index.html", 5).iter().all(|c| c == "200"));
        }
        self.signal("reopen");
        let before = self.workers();
        // SAFETY: signalling a worker of our own nginx.
        unsafe { libc::kill(before[0] as i32, libc::SIGKILL) };
        wait_workers(&before[..1], "a worker respawned after SIGKILL");
        assert!(self.curl("/index.html", 20).iter().all(|c| c == "200"));
        assert!(self.curl("/big.bin", 3).iter().all(|c| c == "200"));
    }

    /// `curl` GETs `path` `n` times; returns the HTTP status codes.
    pub fn curl(&self, path: &str, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                let out = Command::new("curl")
                    .args([
                        "-s",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_code}",
                        "--max-time",
                        "5",
                    ])
                    .arg(self.url(path))
                    .output()
                    .expect("curl runs");
                String::from_utf8_lossy(&out.stdout).into_owned()
            })
            .collect()
    }
}

/// nginx with `workers` workers under `BIN run -q --phases nginx --profile PROFILE`, through
/// its operations ([`Nginx::operate`]); fails unless nginx and phasebox end well.
pub fn learn_through_operations(bin: &std::path::Path, profile: &std::path::Path, workers: usize) {
    let (bin, profile) = (
        bin.to_str().expect("UTF-8 path"),
        profile.to_str().expect("UTF-8 path"),
    );
    let wrapper = [
        bin,
        "run",
        "-q",
        "--phases",
        "nginx",
        "--profile",
        profile,
        "--",
    ];
    let mut nginx = Nginx::start_with(workers, &wrapper);
    nginx.operate(workers);
    let st = nginx.quit();
    assert!(st.success(), "nginx under phasebox run ended with {st}");
}

pub fn nginx_bin() -> PathBuf {
    for p in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if std::path::Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("nginx is not installed (cargo xtask setup installs it)");
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.master.try_wait() {
            return;
        }
        // A wrapper (phasebox run) passes SIGTERM on to nginx.
        let pid = self.master.id() as i32;
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.master.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.master.kill();
        let _ = self.master.wait();
    }
}

/// The live children of `master` (an nginx master's workers), by pid.
fn workers_of(master: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let mut f = stat[close + 1..].split_whitespace();
        let state = f.next().unwrap_or("");
        let ppid: u32 = f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        if ppid == master && state != "Z" {
            out.push(pid);
        }
    }
    out.sort();
    out
}
