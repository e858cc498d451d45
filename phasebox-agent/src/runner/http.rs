//! The built-in HTTP driver: plain HTTP/1.1 over loopback, one thread per concurrent client,
//! every response checked.
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use phasebox_core::scenario::HttpStep;

const IO_TIMEOUT: Duration = Duration::from_secs(10);

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

/// One response: status and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

fn connect(port: u16) -> anyhow::Result<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port))
        .map_err(|e| anyhow!("cannot connect to 127.0.0.1:{port}: {e}"))?;
    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
    let _ = s.set_write_timeout(Some(IO_TIMEOUT));
    Ok(s)
}

/// Reads one response; `to_eof` when the server closes after it.
fn read_response(r: &mut impl BufRead, to_eof: bool) -> anyhow::Result<Response> {
    let mut line = String::new();
    r.read_line(&mut line)
        .map_err(|e| anyhow!("no response: {e}"))?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("not an HTTP status line: {:?}", line.trim_end()))?;
    let mut length = None;
    let mut chunked = false;
    loop {
        line.clear();
        r.read_line(&mut line)
            .map_err(|e| anyhow!("response headers cut: {e}"))?;
        let h = line.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap_or((h, ""));
        let k = k.to_ascii_lowercase();
        if k == "content-length" {
            length = v.trim().parse::<usize>().ok();
        } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)
                .map_err(|e| anyhow!("chunk cut: {e}"))?;
            let n = usize::from_str_radix(line.trim(), 16)
                .map_err(|_| anyhow!("bad chunk size {:?}", line.trim()))?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)
                .map_err(|e| anyhow!("chunk cut: {e}"))?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body)
            .map_err(|e| anyhow!("body cut after {} bytes: {e}", body.len()))?;
    } else if to_eof {
        r.read_to_end(&mut body)
            .map_err(|e| anyhow!("body cut: {e}"))?;
    }
    Ok(Response { status, body })
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
        && resp.body.len() as u64 != n
    {
        return Err(anyhow!(
            "the body of {what} has {} bytes, expected {n}",
            resp.body.len()
        ));
    }
    Ok(())
}

/// One client's share: `count` requests.
fn client(port: u16, step: &HttpStep, count: u32) -> anyhow::Result<()> {
    let get = |close: bool| {
        format!(
            "GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: phasebox-scenario\r\n{}\r\n",
            step.path,
            if close { "Connection: close\r\n" } else { "" }
        )
    };
    if step.keepalive && step.raw.is_none() {
        let mut s = connect(port)?;
        let mut r = BufReader::new(s.try_clone().map_err(anyhow::Error::from)?);
        for i in 0..count {
            let last = i + 1 == count;
            s.write_all(get(last).as_bytes())
                .map_err(|e| anyhow!("cannot send: {e}"))?;
            check(step, &read_response(&mut r, last)?)?;
        }
        return Ok(());
    }
    for _ in 0..count {
        let mut s = connect(port)?;
        let req = step.raw.clone().unwrap_or_else(|| get(true));
        s.write_all(req.as_bytes())
            .map_err(|e| anyhow!("cannot send: {e}"))?;
        let mut r = BufReader::new(s);
        check(step, &read_response(&mut r, true)?)?;
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

    #[test]
    fn reads_length_chunked_and_eof_bodies() {
        let mut r = BufReader::new(&b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"[..]);
        let a = read_response(&mut r, false).unwrap();
        assert_eq!((a.status, a.body.as_slice()), (200, &b"abc"[..]));
        let b = read_response(&mut r, false).unwrap();
        assert_eq!((b.status, b.body.as_slice()), (404, &b"hi"[..]));
        let mut r = BufReader::new(&b"HTTP/1.1 400 Bad Request\r\n\r\nbye"[..]);
        assert_eq!(read_response(&mut r, true).unwrap().body, b"bye");
        let mut r = BufReader::new(&b"garbage\r\n"[..]);
        assert!(
            read_response(&mut r, true)
                .unwrap_err()
                .to_string()
                .contains("not an HTTP status")
        );
    }
}
