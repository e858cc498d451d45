//! Clients for the deployment benchmark, all on loopback and bounded in count and time: plain
//! HTTP requests, wrk, redis-benchmark, and a memcached text-protocol client with a load
//! loop of its own.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::measure::median;
pub use phasebox_tests::http::request;

/// Throughput of a load, the median of its rounds.
pub struct Load {
    pub median: f64,
    pub unit: &'static str,
}

/// Two GET / on one HTTP/1.1 connection, the second sent once the first is answered (the
/// connection kept alive in between, as browsers and load generators do): both must answer
/// 200.
pub fn keep_alive(port: u16) -> Result<(), String> {
    let s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);
    for close in ["", "Connection: close\r\n"] {
        write!(w, "GET / HTTP/1.1\r\nHost: localhost\r\n{close}\r\n")
            .map_err(|e| format!("keep-alive: {e}"))?;
        let (mut status, mut length) = (String::new(), 0usize);
        r.read_line(&mut status)
            .map_err(|e| format!("keep-alive: {e}"))?;
        loop {
            let mut h = String::new();
            r.read_line(&mut h)
                .map_err(|e| format!("keep-alive: {e}"))?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().map_err(|_| format!("keep-alive: {h}"))?;
            }
        }
        let mut body = vec![0; length];
        r.read_exact(&mut body)
            .map_err(|e| format!("keep-alive: {e}"))?;
        if status.split_whitespace().nth(1) != Some("200") {
            return Err(format!("keep-alive: {}", status.trim()));
        }
    }
    Ok(())
}

/// GET `path` must answer `want`; the body's length.
pub fn expect(port: u16, path: &str, want: u16) -> Result<usize, String> {
    match request(port, "GET", path)? {
        (s, len) if s == want => Ok(len),
        (s, _) => Err(format!("GET {path}: {s}, expected {want}")),
    }
}

/// `rounds` runs of `wrk -t1 -c64 -d3s` on `url`: requests/s; an error for any socket error
/// or non-2xx/3xx answer.
pub fn wrk(url: &str, rounds: usize) -> Result<Load, String> {
    let mut rates = Vec::new();
    for _ in 0..rounds {
        let out = Command::new("wrk")
            .args(["-t1", "-c64", "-d3s", "--timeout", "5s", url])
            .output()
            .map_err(|e| format!("wrk: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        for bad in ["Non-2xx or 3xx responses", "Socket errors"] {
            if let Some(l) = text.lines().find(|l| l.contains(bad)) {
                return Err(format!("wrk {url}: {}", l.trim()));
            }
        }
        let rate: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("wrk {url} said: {text}"))?;
        rates.push(rate);
    }
    Ok(Load {
        median: median(&mut rates),
        unit: "req/s",
    })
}

/// `rounds` runs of redis-benchmark (SET and GET, 50,000 each, 512-byte values over 100,000
/// keys, 16 clients): the mean of its requests/s per round; an error for any error reply.
pub fn redis_benchmark(port: u16, rounds: usize) -> Result<Load, String> {
    let mut rates = Vec::new();
    for _ in 0..rounds {
        let out = Command::new("timeout")
            .args(["120", "redis-benchmark", "-h", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .args(["-q", "-n", "50000", "-c", "16", "-d", "512", "-r", "100000"])
            .args(["-t", "set,get"])
            .output()
            .map_err(|e| format!("redis-benchmark: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).replace('\r', "\n")
            + &String::from_utf8_lossy(&out.stderr);
        if let Some(l) = text
            .lines()
            .find(|l| l.contains("ERR") || l.contains("Error"))
        {
            return Err(format!("redis-benchmark: {}", l.trim()));
        }
        let per: Vec<f64> = text
            .lines()
            .filter_map(|l| l.split_once(" requests per second"))
            .filter_map(|(head, _)| head.rsplit(' ').next()?.parse().ok())
            .collect();
        if per.len() != 2 || !out.status.success() {
            return Err(format!("redis-benchmark ({}): {text}", out.status));
        }
        rates.push(per.iter().sum::<f64>() / per.len() as f64);
    }
    Ok(Load {
        median: median(&mut rates),
        unit: "req/s",
    })
}

/// A memcached text-protocol connection.
pub struct Memcached {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Memcached {
    pub fn connect(port: u16) -> Result<Memcached, String> {
        let s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let w = s.try_clone().map_err(|e| e.to_string())?;
        Ok(Memcached {
            r: BufReader::new(s),
            w,
        })
    }

    fn line(&mut self) -> Result<String, String> {
        let mut l = String::new();
        match self.r.read_line(&mut l) {
            Ok(0) => Err("memcached closed the connection".into()),
            Ok(_) => Ok(l.trim_end().to_string()),
            Err(e) => Err(format!("memcached: {e}")),
        }
    }

    /// Sends `command` and reads lines up to one of `ends` (inclusive); Err on another
    /// first word such as ERROR or SERVER_ERROR.
    pub fn ask(&mut self, command: &str, ends: &[&str]) -> Result<Vec<String>, String> {
        self.w
            .write_all(format!("{command}\r\n").as_bytes())
            .map_err(|e| format!("memcached: {e}"))?;
        let mut out = Vec::new();
        loop {
            let l = self.line()?;
            if l.contains("ERROR") {
                return Err(format!("memcached {command:?}: {l}"));
            }
            let end = ends.iter().any(|e| l.starts_with(e));
            out.push(l);
            if end {
                return Ok(out);
            }
        }
    }

    /// `set KEY 0 0 LEN` with `value`; Err unless STORED.
    pub fn set(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
        let mut msg = format!("set {key} 0 0 {}\r\n", value.len()).into_bytes();
        msg.extend_from_slice(value);
        msg.extend_from_slice(b"\r\n");
        self.w
            .write_all(&msg)
            .map_err(|e| format!("memcached: {e}"))?;
        match self.line()?.as_str() {
            "STORED" => Ok(()),
            other => Err(format!("memcached set {key}: {other}")),
        }
    }

    /// `get KEY`: the value's length, None for a miss.
    pub fn get(&mut self, key: &str) -> Result<Option<usize>, String> {
        self.w
            .write_all(format!("get {key}\r\n").as_bytes())
            .map_err(|e| format!("memcached: {e}"))?;
        let head = self.line()?;
        if head == "END" {
            return Ok(None);
        }
        let len: usize = head
            .strip_prefix("VALUE ")
            .and_then(|h| h.split_whitespace().nth(2))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("memcached get {key}: {head}"))?;
        let mut data = vec![0; len + 2];
        self.r.read_exact(&mut data).map_err(|e| e.to_string())?;
        match self.line()?.as_str() {
            "END" => Ok(Some(len)),
            other => Err(format!("memcached get {key}: {other}")),
        }
    }
}

/// `rounds` runs of 8 clients, each 5,000 sets (values of 1 to 16 KiB, enough to fill the
/// slabs of a 64 MiB cache) and 5,000 gets over 20,000 keys, 30 s at most: operations/s.
pub fn memcached_load(port: u16, rounds: usize) -> Result<Load, String> {
    let mut rates = Vec::new();
    for round in 0..rounds {
        let t = Instant::now();
        let clients: Vec<_> = (0..8u64)
            .map(|c| std::thread::spawn(move || memcached_client(port, c + 8 * round as u64)))
            .collect();
        let mut ops = 0u64;
        for c in clients {
            ops += c.join().map_err(|_| "a client panicked".to_string())??;
        }
        rates.push(ops as f64 / t.elapsed().as_secs_f64());
    }
    Ok(Load {
        median: median(&mut rates),
        unit: "ops/s",
    })
}

fn memcached_client(port: u16, seed: u64) -> Result<u64, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut m = Memcached::connect(port)?;
    let value = vec![b'v'; 16 * 1024];
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut ops = 0;
    for _ in 0..5_000 {
        if Instant::now() > deadline {
            break;
        }
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let key = format!("k{}", (x >> 33) % 20_000);
        let len = 1024 + ((x >> 20) % (15 * 1024)) as usize;
        m.set(&key, &value[..len])?;
        m.get(&key)?;
        ops += 2;
    }
    Ok(ops)
}
