//! What the HTTP driver's two ways of asking (a client, raw bytes) share: how long they wait,
//! and the response they hand to the checks.
use std::io::Read;
use std::time::Duration;

/// How long a connection, a read or a write may take.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// One response: its status, its body's length and, when a check reads it, the body itself
/// (a body only counted is never held in memory).
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub length: u64,
    pub body: Vec<u8>,
}

impl Response {
    /// Reads a body to its end, keeping it when `keep`.
    pub fn read(status: u16, mut body: impl Read, keep: bool) -> std::io::Result<Response> {
        let mut kept = Vec::new();
        let length = if keep {
            body.read_to_end(&mut kept)? as u64
        } else {
            std::io::copy(&mut body, &mut std::io::sink())?
        };
        Ok(Response {
            status,
            length,
            body: kept,
        })
    }
}
