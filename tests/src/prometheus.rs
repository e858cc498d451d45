//! A Prometheus server from the system's package, started by a test on loopback with its own
//! config and data directory, scraping one target every second. Stopped on drop.
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{TempDir, nginx::free_port};

pub struct Prometheus {
    pub port: u16,
    child: Child,
    _dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (host:port) and waits until it is ready.
    pub fn start(target: &str) -> Prometheus {
        Prometheus::start_jobs(&format!(
            "  - job_name: phasebox\n    static_configs:\n      - targets: ['{target}']\n"
        ))
    }

    /// Starts Prometheus with these `scrape_configs` entries (YAML, one of them the job
    /// `phasebox`) and waits until it is ready and has scraped job `phasebox`.
    pub fn start_jobs(jobs: &str) -> Prometheus {
        let dir = TempDir::new("prometheus");
        let config = dir.path("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n{jobs}"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is installed (cargo xtask setup installs it)");
        let p = Prometheus {
            port,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !p.get("/-/ready").contains("Ready") {
            assert!(Instant::now() < deadline, "prometheus did not become ready");
            std::thread::sleep(Duration::from_millis(200));
        }
        // Target discovery runs a few seconds after start: wait for the first good scrape.
        while p.query_one(r#"up{job="phasebox"}"#) != Some(1.0) {
            assert!(
                Instant::now() < deadline,
                "prometheus never scraped job phasebox: {}",
                p.get("/api/v1/targets")
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        p
    }

    /// The answer to GET `path` of Prometheus's own API or pages.
    pub fn get(&self, path: &str) -> String {
        let out = Command::new("curl")
            .args([
                "-s",
                "--max-time",
                "5",
                &format!("http://127.0.0.1:{}{path}", self.port),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The value of an instant query with one result, if it has one.
    pub fn query_one(&self, query: &str) -> Option<f64> {
        let v = self.query(query);
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// The API's whole answer to an instant query (`status`, `data.result`, `error`); null
    /// when Prometheus does not answer.
    pub fn query(&self, query: &str) -> serde_json::Value {
        let out = Command::new("curl")
            .args([
                "-s",
                "--max-time",
                "5",
                "-G",
                &format!("http://127.0.0.1:{}/api/v1/query", self.port),
            ])
            .args(["--data-urlencode", &format!("query={query}")])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
