//! The agent's metrics server under abuse, on a real agent tracing a real process
//! (syscall_loop, driven from here: every batch is a known number of getppid calls):
//! 2,000 idle connections against an agent whose open-files limit is 1,024 neither stop its
//! tracing nor keep a scrape out, and are counted as refused; running out of descriptors is
//! not taken for the traced process's exit; slow headers are cut off; `--listen …:0` names
//! the port it got.
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use phasebox_tests::{
    CARGO_LIBRARY_PATH, Guard, fixture,
    metrics::{eventually, sum, value},
    phasebox_bin, spawn_agent_command,
};

/// A scrape that has not answered in this long failed.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// The idle connections held against the agent.
const FLOOD: usize = 2000;
/// The agent's default --web.max-connections.
const CAP: usize = 64;
/// getppid calls per batch of the traced loop.
const BATCH: u64 = 10_000;

/// syscall_loop, traced: each batch makes BATCH getppid calls.
struct Target {
    child: Guard,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    batches: u64,
}

impl Target {
    fn start() -> Target {
        let mut child = Command::new(fixture("syscall_loop"))
            .arg("0")
            .env_remove(CARGO_LIBRARY_PATH)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("syscall_loop starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Target {
            child: Guard::new(child),
            stdin,
            stdout,
            batches: 0,
        }
    }

    /// Runs one batch and waits until it is done.
    fn batch(&mut self) {
        writeln!(self.stdin, "{BATCH}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "syscall_loop ended");
        self.batches += 1;
    }

    fn calls(&self) -> u64 {
        self.batches * BATCH
    }
}

/// A running agent: its address (from its start-up line) and the lines it logs.
struct Agent {
    guard: Guard,
    addr: SocketAddr,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Agent {
    /// `phasebox agent -p PID --listen 127.0.0.1:0 EXTRA…`, under `prlimit --nofile=N:N` when
    /// `nofile` is given.
    fn start(pid: u32, extra: &[&str], nofile: Option<u32>) -> Agent {
        let mut command = match nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg(phasebox_bin());
                c
            }
            None => Command::new(phasebox_bin()),
        };
        let pid = pid.to_string();
        command
            .args(["agent", "-p", &pid, "--listen", "127.0.0.1:0"])
            .args(extra);
        let (guard, err, first) = spawn_agent_command(command);
        let (tx, lines) = mpsc::channel();
        let _ = tx.send(first);
        std::thread::spawn(move || forward(err, tx));
        let mut agent = Agent {
            guard,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            lines,
            seen: Vec::new(),
        };
        let line = agent.wait_for("metrics on", Duration::from_secs(30));
        agent.addr = metrics_address(&line);
        agent
    }

    /// Waits for a logged line containing `needle`; returns it.
    fn wait_for(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!(
                    "the agent did not log {needle:?} within {limit:?}; it logged:\n{}",
                    self.seen.join("")
                ),
            }
        }
    }

    /// Fails the test if the agent has ended, or said its target did.
    fn assert_running(&mut self) {
        self.seen.extend(self.lines.try_iter());
        let log = self.seen.join("");
        assert!(
            self.guard.try_wait().unwrap().is_none(),
            "the agent exited; it logged:\n{log}"
        );
        assert!(!log.contains("have exited"), "the agent gave up:\n{log}");
    }
}

/// Sends each line of `err` to `tx` until the agent closes it.
fn forward(mut err: BufReader<ChildStderr>, tx: mpsc::Sender<String>) {
    let mut line = String::new();
    while err.read_line(&mut line).is_ok_and(|n| n > 0) {
        let _ = tx.send(std::mem::take(&mut line));
    }
}

/// The address in "… metrics on http://ADDR/metrics".
fn metrics_address(line: &str) -> SocketAddr {
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split("/metrics").next())
        .unwrap_or_else(|| panic!("no metrics address in the start-up line: {line}"));
    addr.parse()
        .unwrap_or_else(|e| panic!("{addr:?} in {line:?} is not an address: {e}"))
}

/// GET /metrics: the page and how long it took, or why it failed (within CLIENT_TIMEOUT).
fn scrape(addr: SocketAddr) -> Result<(String, Duration), String> {
    let started = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, CLIENT_TIMEOUT).map_err(|e| format!("{e}"))?;
    s.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("sending the request: {e}"))?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)
        .map_err(|e| format!("reading the answer: {e}"))?;
    let took = started.elapsed();
    if took > CLIENT_TIMEOUT {
        return Err(format!("no answer within {CLIENT_TIMEOUT:?} ({took:?})"));
    }
    let answer = String::from_utf8_lossy(&answer);
    match answer.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok((body.to_string(), took)),
        _ => Err(format!("answered {:?}", answer.lines().next())),
    }
}

/// Scrapes `addr`, failing the test unless it answers within CLIENT_TIMEOUT.
fn page(addr: SocketAddr, took: &mut Vec<Duration>) -> String {
    let (text, t) = scrape(addr).unwrap_or_else(|e| panic!("scraping {addr}: {e}"));
    took.push(t);
    text
}

/// getppid calls of the traced loop on a page.
fn getppid(text: &str) -> f64 {
    sum(text, "phasebox_syscalls_total", &[("syscall", "getppid")])
}

/// Raises this process's open-files limit to its hard limit; returns it.
fn raise_own_file_limit() -> u64 {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit write and read the struct passed, nothing else.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut l), 0);
        l.rlim_cur = l.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &l), 0);
    }
    l.rlim_cur
}

/// The soft open-files limit of `pid`, from /proc/PID/limits.
fn file_limit_of(pid: u32) -> String {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("an open-files line");
    line.split_whitespace().nth(3).unwrap().to_string()
}

/// Opens `n` connections to `addr` and sends nothing on them.
fn idle_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            TcpStream::connect_timeout(&addr, CLIENT_TIMEOUT)
                .unwrap_or_else(|e| panic!("idle connection {i} of {n}: {e}"))
        })
        .collect()
}

fn summary(took: &[Duration]) -> String {
    let mut v = took.to_vec();
    v.sort();
    match (v.first(), v.get(v.len() / 2), v.last()) {
        (Some(min), Some(median), Some(max)) => {
            format!(
                "{} scrapes: min {min:?}, median {median:?}, max {max:?}",
                v.len()
            )
        }
        _ => "no scrapes".into(),
    }
}

#[test]
fn idle_connections_neither_stop_tracing_nor_keep_a_scrape_out() {
    assert!(
        raise_own_file_limit() >= FLOOD as u64 + 200,
        "this test needs {FLOOD} descriptors of its own"
    );
    let mut target = Target::start();
    let mut agent = Agent::start(target.child.id(), &[], Some(1024));
    assert_eq!(file_limit_of(agent.guard.id()), "1024");
    let addr = agent.addr;
    let mut took = Vec::new();
    target.batch();
    eventually(Duration::from_secs(15), "the first batch counted", || {
        (getppid(&page(addr, &mut took)) >= target.calls() as f64).then_some(())
    });

    // The flood, on a thread of its own; meanwhile the loop runs and the page is read.
    let flood = std::thread::spawn(move || idle_connections(addr, FLOOD));
    let mut during = Vec::new();
    while !flood.is_finished() {
        target.batch();
        page(addr, &mut during);
    }
    let held = flood.join().expect("every idle connection opened");
    assert_eq!(held.len(), FLOOD);

    // With all of them open: the loop's calls keep being counted, scrapes answer, and the
    // connections over the cap were refused.
    let mut after = Vec::new();
    target.batch();
    let text = eventually(
        Duration::from_secs(15),
        "the calls made during the flood counted",
        || {
            let text = page(addr, &mut after);
            let counted = getppid(&text) >= target.calls() as f64;
            let refused = value(&text, "phasebox_http_connections_refused_total", &[])?;
            (counted && refused >= (FLOOD - CAP) as f64).then_some(text)
        },
    );
    for _ in 0..20 {
        page(addr, &mut after);
    }
    let open = value(&text, "phasebox_http_open_connections", &[]).unwrap();
    assert!(
        open <= CAP as f64,
        "{open} connections open over a cap of {CAP}"
    );
    let fds = std::fs::read_dir(format!("/proc/{}/fd", agent.guard.id()))
        .unwrap()
        .count();
    assert!(fds < 1024 / 2, "the agent holds {fds} descriptors");
    agent.assert_running();
    assert!(target.child.try_wait().unwrap().is_none());
    eprintln!(
        "{FLOOD} idle connections against an agent limited to 1024 files; getppid counted {}; \
         refused {:?}; agent descriptors {fds}\n  during the flood: {}\n  with all open: {}",
        getppid(&text),
        value(&text, "phasebox_http_connections_refused_total", &[]),
        summary(&during),
        summary(&after)
    );
    drop(held);
}

#[test]
fn running_out_of_descriptors_is_not_taken_for_an_exit() {
    assert!(raise_own_file_limit() >= FLOOD as u64 + 200);
    let mut target = Target::start();
    // A cap over what the limit holds, and connections kept past the test's length: the
    // agent runs out of descriptors, and its /proc reads fail with EMFILE.
    let args = [
        "--web.max-connections",
        "4000",
        "--web.header-timeout",
        "5m",
    ];
    let mut agent = Agent::start(target.child.id(), &args, Some(1024));
    agent.wait_for("does not fit the open-files limit", Duration::from_secs(5));
    // Connections until the agent's descriptors and then its listen backlog are full (a
    // connect that does not complete then); at most FLOOD.
    let mut held = Vec::new();
    while held.len() < FLOOD {
        match TcpStream::connect_timeout(&agent.addr, Duration::from_secs(2)) {
            Ok(s) => held.push(s),
            Err(_) => break,
        }
    }
    agent.wait_for("cannot read /proc/", Duration::from_secs(20));
    target.batch();
    // Its liveness check runs every 200 ms: it has failed many times by the time the
    // agent's fd table is seen full again.
    eventually(
        Duration::from_secs(10),
        "the agent still out of files",
        || {
            let fds = std::fs::read_dir(format!("/proc/{}/fd", agent.guard.id())).ok()?;
            (fds.count() >= 1000).then_some(())
        },
    );
    agent.assert_running();
    drop(held);
    let mut took = Vec::new();
    let text = eventually(
        Duration::from_secs(15),
        "the batch counted once files are free",
        || {
            let text = scrape(agent.addr).ok()?.0;
            (getppid(&text) >= target.calls() as f64).then_some(text)
        },
    );
    page(agent.addr, &mut took);
    agent.assert_running();
    assert_eq!(
        value(&text, "phasebox_tracked_processes", &[]),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn slow_headers_are_cut_off() {
    let target = Target::start();
    let mut agent = Agent::start(target.child.id(), &["--web.header-timeout", "2s"], None);
    let addr = agent.addr;
    let silent = TcpStream::connect(addr).unwrap();
    let mut slow = TcpStream::connect(addr).unwrap();
    // One byte a second: the read timeout paces the bytes and sees the server close.
    slow.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let started = Instant::now();
    let mut cut = None;
    for (i, byte) in request.bytes().enumerate() {
        if slow.write_all(&[byte]).is_err() {
            cut = Some(i);
            break;
        }
        let mut buf = [0u8; 256];
        match slow.read(&mut buf) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Ok(n) => {
                let said = String::from_utf8_lossy(&buf[..n]);
                assert!(
                    !said.contains(" 200 "),
                    "answered a partial request: {said}"
                );
                cut = Some(i + 1);
                break;
            }
            Err(_) => {
                cut = Some(i + 1);
                break;
            }
        }
    }
    let sent = cut.unwrap_or_else(|| {
        panic!(
            "a request sent over {:?} was not cut off",
            started.elapsed()
        )
    });
    assert!(sent < request.len(), "the whole request went through");
    eprintln!(
        "cut off after {sent} of {} bytes, {:?}",
        request.len(),
        started.elapsed()
    );
    let mut silent = silent;
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(
        silent.read(&mut [0u8; 16]).unwrap_or(0),
        0,
        "a silent connection is closed too"
    );
    let text = eventually(Duration::from_secs(10), "the timeouts counted", || {
        let text = scrape(addr).ok()?.0;
        let n = value(&text, "phasebox_http_connections_timed_out_total", &[])?;
        (n >= 2.0).then_some(text)
    });
    assert!(value(&text, "phasebox_http_requests_total", &[]).is_some());
    agent.assert_running();
}

#[test]
fn port_zero_names_the_port_it_got() {
    let target = Target::start();
    let mut agent = Agent::start(target.child.id(), &[], None);
    assert_eq!(agent.addr.ip().to_string(), "127.0.0.1");
    assert_ne!(agent.addr.port(), 0, "the start-up line names port 0");
    let (text, _) = scrape(agent.addr).unwrap_or_else(|e| panic!("{}: {e}", agent.addr));
    assert!(text.contains("phasebox_build_info{"), "{text}");
    agent.assert_running();
}

/// Every phasebox_syscalls_total series on a page, as (labels, value).
fn call_series(text: &str) -> Vec<(std::collections::BTreeMap<String, String>, f64)> {
    phasebox_tests::metrics::parse(text)
        .into_iter()
        .filter(|s| s.name == "phasebox_syscalls_total")
        .map(|s| (s.labels, s.value))
        .collect()
}

#[test]
fn a_series_limit_folds_the_rest_into_other_and_every_call_is_still_counted() {
    let mut target = Target::start();
    let pid = target.child.id();
    let mut limited = Agent::start(pid, &["--metrics.max-series", "2"], None);
    let mut whole = Agent::start(pid, &["--metrics.without", "container_id,phase"], None);
    for _ in 0..3 {
        target.batch();
    }
    // Both agents saw the same calls (the loop waited on stdin while they attached): once
    // both pages hold still, their sums agree and the loop's getppid calls are all there.
    let mut took = Vec::new();
    let (limited_page, whole_page) =
        eventually(Duration::from_secs(30), "both pages to settle", || {
            let a = page(limited.addr, &mut took);
            let b = page(whole.addr, &mut took);
            std::thread::sleep(Duration::from_millis(1500));
            let (a2, b2) = (page(limited.addr, &mut took), page(whole.addr, &mut took));
            let same = call_series(&a) == call_series(&a2) && call_series(&b) == call_series(&b2);
            (same && getppid(&b2) >= target.calls() as f64).then_some((a2, b2))
        });
    assert_eq!(getppid(&whole_page), target.calls() as f64, "{whole_page}");
    let total = |text: &str| call_series(text).iter().map(|(_, v)| v).sum::<f64>();
    assert_eq!(
        total(&limited_page),
        total(&whole_page),
        "{limited_page}\n{whole_page}"
    );
    let kept = call_series(&limited_page);
    let other: Vec<_> = kept
        .iter()
        .filter(|(l, _)| l["syscall"] == "_other")
        .collect();
    assert_eq!(kept.len(), 3, "2 series and _other: {kept:?}");
    assert_eq!(other.len(), 1, "{kept:?}");
    assert_eq!(other[0].0["role"], "_other");
    let whole_series = call_series(&whole_page);
    assert!(
        whole_series.len() > 2,
        "the loop makes more than 2 syscalls: {whole_series:?}"
    );
    assert_eq!(
        value(
            &limited_page,
            "phasebox_series_folded",
            &[("metric", "phasebox_syscalls_total")]
        ),
        Some((whole_series.len() - 2) as f64),
        "{limited_page}"
    );
    for (labels, _) in &whole_series {
        assert_eq!(
            (labels["container_id"].as_str(), labels["phase"].as_str()),
            ("", "")
        );
    }
    limited.wait_for("reached --metrics.max-series 2", Duration::from_secs(10));
    limited.assert_running();
    whole.assert_running();
}
