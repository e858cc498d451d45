//! The built-in HTTP driver: HTTP/1.1 over loopback with ureq, one thread per concurrent
//! client, every response checked. A raw request (malformed on purpose) goes through
//! [`raw`], since no client sends bytes that are not HTTP.
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use phasebox_core::scenario::HttpStep;

use super::{
    raw,
    response::{IO_TIMEOUT, Response},
};

/// Waits until 127.0.0.1:`port` accepts a connection.
pub fn wait_port(port: u16, limit: Duration) -> anyhow::Result<()> {
    let end = Instant::now() + limit;
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if Instant::now() > end {
            return Err(anyhow!(
                "nothing accepted connections on 127.0.0.1:{port} within {limit:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn check(step: &HttpStep, resp: &Response) -> anyhow::Result<()> {
    let what = step
        .raw
        .as_deref()
        .map_or(step.path.as_str(), |_| "the raw request");
    if resp.status != step.status {
        return Err(anyhow!(
            "{what} got status {}, expected {}",
            resp.status,
            step.status
        ));
    }
    if let Some(want) = &step.body_contains
        && !String::from_utf8_lossy(&resp.body).contains(want.as_str())
    {
        return Err(anyhow!("the body of {what} does not contain {want:?}"));
    }
    if let Some(n) = step.body_bytes
        && resp.length != n
    {
        return Err(anyhow!(
            "the body of {what} has {} bytes, expected {n}",
            resp.length
        ));
    }
    Ok(())
}

/// A client that answers every status (the step checks it), follows no redirect, goes
/// through no proxy from the environment (the server is on loopback) and keeps at most one
/// idle connection: the one a keep-alive client sends all its requests on.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .user_agent("phasebox-scenario")
        .timeout_connect(Some(IO_TIMEOUT))
        .timeout_per_read(Some(IO_TIMEOUT))
        .timeout_per_write(Some(IO_TIMEOUT))
        .max_idle_connections(1)
        .max_idle_connections_per_host(1)
        .build()
        .new_agent()
}

/// `GET url`; with `close` the connection ends after the response (`Connection: close`).
fn get(agent: &ureq::Agent, url: &str, close: bool, keep: bool) -> anyhow::Result<Response> {
    let mut request = agent.get(url);
    if close {
        request = request.header("Connection", "close");
    }
    let mut resp = request.call().map_err(|e| match e {
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => anyhow!("{url} is not a request ({e})"),
        e => anyhow!("GET {url}: {e}"),
    })?;
    let status = resp.status().as_u16();
    Response::read(status, resp.body_mut().as_reader(), keep)
        .map_err(|e| anyhow!("the body of GET {url} was cut: {e}"))
}

/// One client's share: `count` requests, on one connection with keep-alive (the last one
/// closes it), else each on its own.
fn client(port: u16, step: &HttpStep, count: u32) -> anyhow::Result<()> {
    let keep = step.body_contains.is_some();
    if let Some(bytes) = &step.raw {
        for _ in 0..count {
            check(step, &raw::send(port, bytes.as_bytes(), keep)?)?;
        }
        return Ok(());
    }
    let agent = agent();
    let url = format!("http://127.0.0.1:{port}{}", step.path);
    for i in 0..count {
        let close = !step.keepalive || i + 1 == count;
        check(step, &get(&agent, &url, close, keep)?)?;
    }
    Ok(())
}

/// Runs the step: `count` requests over `concurrency` clients at once.
pub fn run(port: u16, step: &HttpStep) -> anyhow::Result<()> {
    let clients = step.concurrency.min(step.count);
    let results: Vec<anyhow::Result<()>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|i| {
                let share = step.count / clients + u32::from(i < step.count % clients);
                scope.spawn(move || client(port, step, share))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a client thread failed")))
            })
            .collect()
    });
    results.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A loopback server that answers every request with `reply` (and closes when the request
    /// says `Connection: close`); returns its port and how many connections it accepted.
    fn server(reply: &'static [u8]) -> (u16, Arc<AtomicUsize>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || serve(s, reply));
            }
        });
        (port, accepted)
    }

    fn serve(mut s: TcpStream, reply: &[u8]) {
        let mut r = BufReader::new(s.try_clone().unwrap());
        loop {
            let mut close = false;
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                close |= line.eq_ignore_ascii_case("connection: close\r\n");
                line.clear();
            }
            if line.is_empty() || s.write_all(reply).is_err() || close {
                return;
            }
        }
    }

    fn step(count: u32, keepalive: bool) -> HttpStep {
        HttpStep {
            path: "/x".into(),
            status: 200,
            count,
            concurrency: 1,
            keepalive,
            raw: None,
            body_contains: Some("hi!".into()),
            body_bytes: Some(3),
        }
    }

    #[test]
    fn keepalive_sends_every_request_on_one_connection() {
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n1\r\n!\r\n0\r\n\r\n";
        let (port, accepted) = server(chunked);
        run(port, &step(5, true)).unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        let (port, accepted) = server(chunked);
        run(port, &step(5, false)).unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn every_response_is_checked_and_no_redirect_followed() {
        let (port, _) =
            server(b"HTTP/1.1 302 Found\r\nLocation: /y\r\nContent-Length: 3\r\n\r\nhi!");
        let e = run(port, &step(2, true)).unwrap_err().to_string();
        assert_eq!(e, "/x got status 302, expected 200");
        let (port, _) = server(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nhi!!");
        let e = run(port, &step(1, false)).unwrap_err().to_string();
        assert_eq!(e, "the body of /x has 4 bytes, expected 3");
        let mut raw = step(1, false);
        raw.raw = Some("GARBAGE\r\n\r\n".into());
        raw.status = 400;
        let (port, _) = server(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nhi!");
        run(port, &raw).unwrap();
    }
}
