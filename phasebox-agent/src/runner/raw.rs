//! A raw request: the step's bytes written as they are on a connection of their own, and the
//! answer read back. HTTP clients (ureq included) only send well-formed requests, and a raw
//! step exists to send the others, so this path writes to a plain socket; httparse (the
//! parser under hyper and ureq) reads the answer's head and chunk sizes.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use anyhow::anyhow;

use super::response::{IO_TIMEOUT, Response};

/// The most an answer's head may take.
const MAX_HEAD: usize = 64 << 10;

/// Sends `bytes` to 127.0.0.1:`port` and reads the answer (its body kept when `keep`).
pub fn send(port: u16, bytes: &[u8], keep: bool) -> anyhow::Result<Response> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .map_err(|e| anyhow!("cannot connect to 127.0.0.1:{port}: {e}"))?;
    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
    let _ = s.set_write_timeout(Some(IO_TIMEOUT));
    s.write_all(bytes)
        .map_err(|e| anyhow!("cannot send the raw request: {e}"))?;
    read_answer(&mut BufReader::new(s), keep)
}

/// Reads one answer: its body ends where its length says, after its last chunk, or when
/// the server closes the connection.
fn read_answer(r: &mut impl BufRead, keep: bool) -> anyhow::Result<Response> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") && !head.ends_with(b"\n\n") {
        let n = r
            .by_ref()
            .take((MAX_HEAD - head.len()) as u64)
            .read_until(b'\n', &mut head)
            .map_err(|e| anyhow!("no answer to the raw request: {e}"))?;
        if head.len() >= MAX_HEAD {
            return Err(anyhow!(
                "the head of the answer to the raw request is over {MAX_HEAD} bytes"
            ));
        }
        if n == 0 {
            return Err(anyhow!(
                "the answer to the raw request ended within its head ({} bytes)",
                head.len()
            ));
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut answer = httparse::Response::new(&mut headers);
    answer
        .parse(&head)
        .map_err(|e| anyhow!("the answer to the raw request is not HTTP: {e}"))?;
    let status = answer.code.unwrap_or_default();
    let header = |name: &str| {
        answer
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
    };
    let cut = |e| anyhow!("the body of the answer to the raw request was cut: {e}");
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        return Response::read(status, dechunk(r)?.as_slice(), keep).map_err(cut);
    }
    match header("content-length").and_then(|v| v.trim().parse::<u64>().ok()) {
        Some(n) => Response::read(status, r.take(n), keep).map_err(cut),
        None => Response::read(status, r, keep).map_err(cut),
    }
}

/// A chunked body, decoded.
fn dechunk(r: &mut impl BufRead) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        r.read_until(b'\n', &mut line)
            .map_err(|e| anyhow!("a chunk was cut: {e}"))?;
        let size = match httparse::parse_chunk_size(&line) {
            Ok(httparse::Status::Complete((_, size))) => size,
            _ => {
                return Err(anyhow!(
                    "bad chunk size {:?}",
                    String::from_utf8_lossy(&line).trim()
                ));
            }
        };
        if size == 0 {
            return Ok(body);
        }
        let start = body.len();
        r.take(size).read_to_end(&mut body)?;
        let mut end = [0; 2];
        if (body.len() - start) as u64 != size || r.read_exact(&mut end).is_err() {
            return Err(anyhow!(
                "a chunk was cut after {} bytes",
                body.len() - start
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_length_chunked_and_closed_bodies() {
        let mut r = &b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n1;ext=x\r\n!\r\n0\r\n\r\n"[..];
        let a = read_answer(&mut r, true).unwrap();
        assert_eq!((a.status, a.body.as_slice()), (200, &b"abc"[..]));
        let b = read_answer(&mut r, true).unwrap();
        assert_eq!(
            (b.status, b.length, b.body.as_slice()),
            (404, 3, &b"hi!"[..])
        );
        let mut r = &b"HTTP/1.1 400 Bad Request\r\n\r\nbye"[..];
        let c = read_answer(&mut r, false).unwrap();
        assert_eq!((c.status, c.length, c.body.len()), (400, 3, 0));
    }

    #[test]
    fn refuses_what_is_not_an_answer() {
        for (reply, why) in [
            (&b"garbage\r\n\r\n"[..], "not HTTP"),
            (b"HTTP/1.1 200 OK\r\nContent-", "ended within its head"),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                "bad chunk size",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                "cut after 2 bytes",
            ),
        ] {
            let e = read_answer(&mut &reply[..], true).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
        let huge = [&b"HTTP/1.1 200 OK\r\nX: "[..], &[b'x'; MAX_HEAD]].concat();
        let e = read_answer(&mut &huge[..], true).unwrap_err().to_string();
        assert!(e.contains("is over 65536 bytes"), "{e}");
    }
}
