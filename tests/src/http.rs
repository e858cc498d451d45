//! A plain HTTP/1.0 client for tests and benchmarks: one request per connection, bounded in
//! time, the status and the body's length.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// `METHOD path` on 127.0.0.1:`port`: the status and the body's length, or why not.
pub fn request(port: u16, method: &str, path: &str) -> Result<(u16, usize), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(s, "{method} {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply)
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let head_end = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            format!(
                "{method} {path}: no complete answer ({} bytes)",
                reply.len()
            )
        })?;
    let head = String::from_utf8_lossy(&reply[..head_end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{method} {path}: no status in {head:?}"))?;
    Ok((status, reply.len() - head_end - 4))
}

/// The status of `GET path`; None when nothing answers.
pub fn status(port: u16, path: &str) -> Option<u16> {
    request(port, "GET", path).ok().map(|(s, _)| s)
}
