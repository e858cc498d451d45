//! The container engines' HTTP APIs on their unix sockets: Docker's (`DOCKER_HOST`, else
//! /var/run/docker.sock) and Podman's, which answers the same requests in Docker's form
//! (`CONTAINER_HOST`, else /run/podman/podman.sock, where Podman's socket unit or `podman system
//! service` listens). phasebox asks one thing of them: what a container is (`/containers/ID/json`).
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// The engines' sockets, in the order they are asked: the ones the environment names first.
pub fn sockets() -> Vec<String> {
    let named = |var: &str| {
        std::env::var(var)
            .ok()
            .and_then(|h| h.strip_prefix("unix://").map(str::to_string))
    };
    let mut out: Vec<String> = [named("DOCKER_HOST"), named("CONTAINER_HOST")]
        .into_iter()
        .flatten()
        .collect();
    for default in ["/var/run/docker.sock", "/run/podman/podman.sock"] {
        if !out.iter().any(|s| s == default) {
            out.push(default.to_string());
        }
    }
    out
}

/// What the engines say of one container.
pub enum Inspected {
    /// No engine answers.
    NoEngine,
    /// Some engine answers, and none knows the container.
    Unknown,
    /// An engine's description of it (Docker's inspect form).
    Known(serde_json::Value),
}

/// Asks every engine that answers about container `spec` (a name or an id).
pub fn inspect(spec: &str) -> Inspected {
    let mut answered = false;
    for socket in sockets() {
        let Ok((status, body)) = get(&socket, &format!("/containers/{spec}/json")) else {
            continue;
        };
        answered = true;
        if status == 200
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&body)
        {
            return Inspected::Known(v);
        }
    }
    if answered {
        Inspected::Unknown
    } else {
        Inspected::NoEngine
    }
}

const MAX_ANSWER: u64 = 16 << 20;

/// `GET path` on the engine API at `socket`: the status and the body. A plain write on
/// the unix socket, not a client crate: ureq has no unix sockets, and hyper's client is async
/// where every caller here is not. HTTP/1.0, so the engine ends its answer by closing the
/// connection (no chunks, no keep-alive); phasebox reads at most MAX_ANSWER bytes of it, and
/// httparse reads its head.
fn get(socket: &str, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Error, ErrorKind};
    let bad = |what: &str| Error::new(ErrorKind::InvalidData, format!("the engine's {what}"));
    // `find` checked the name already; nothing else reaches the request line either.
    if !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::new(ErrorKind::InvalidInput, "not a request path"));
    }
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").as_bytes())?;
    let mut reply = Vec::new();
    s.take(MAX_ANSWER + 1).read_to_end(&mut reply)?;
    if reply.len() as u64 > MAX_ANSWER {
        return Err(bad(&format!("answer is over {MAX_ANSWER} bytes")));
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut head = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(at)) = head.parse(&reply) else {
        return Err(bad("answer is not HTTP"));
    };
    let header = |name: &str| {
        let h = head
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))?;
        Some(std::str::from_utf8(h.value).ok()?.trim())
    };
    if header("transfer-encoding").is_some() {
        return Err(bad("answer to HTTP/1.0 is chunked"));
    }
    let mut body = &reply[at..];
    if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body = body.get(..n).ok_or_else(|| bad("answer was cut"))?;
    }
    let body = std::str::from_utf8(body).map_err(|_| bad("answer is not UTF-8"))?;
    Ok((head.code.unwrap_or(0), body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An engine on a unix socket that answers `reply` to one request; its socket's path.
    fn engine(dir: &std::path::Path, reply: Vec<u8>) -> String {
        use std::io::BufRead;
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("engine-{n}.sock"));
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut r = std::io::BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 && !line.ends_with("\r\n\r\n") {}
            let _ = s.write_all(&reply);
        });
        path.display().to_string()
    }

    #[test]
    fn engine_answers_are_read_whole_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let ask = |reply: &[u8]| get(&engine(dir.path(), reply.to_vec()), "/x");
        let ok = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n{\"a\": 1}";
        assert_eq!(ask(ok).unwrap(), (200, "{\"a\": 1}".to_string()));
        let closed = b"HTTP/1.0 404 Not Found\r\n\r\n{\"message\": \"no such container\"}";
        assert_eq!(ask(closed).unwrap().0, 404);
        for (reply, why) in [
            (
                &b"HTTP/1.0 200 OK\r\nContent-Length: 80\r\n\r\n{}"[..],
                "cut",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
                "chunked",
            ),
            (b"SSH-2.0-OpenSSH\r\n", "not HTTP"),
            (b"HTTP/1.0 200 OK\r\n\r\n\xff\xfe", "not UTF-8"),
        ] {
            let e = ask(reply).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
        let huge = [
            &b"HTTP/1.0 200 OK\r\n\r\n"[..],
            &vec![b'x'; MAX_ANSWER as usize],
        ]
        .concat();
        let e = ask(&huge).unwrap_err().to_string();
        assert!(e.contains("over 16777216 bytes"), "{e}");
        let e = get("/nonexistent", "/containers/a b\r\nHost: x/json").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    }
}
