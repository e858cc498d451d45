//! One connection: a place under the cap, a TLS handshake when the web config asks for TLS
//! (bounded by the header timeout), hyper's HTTP/1 server with its header timeout, and an
//! idle timeout of phasebox's own (hyper has none for a connection that stops moving bytes,
//! such as a client that stops reading its answer).
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use phasebox_core::metrics::HttpMetrics;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::Limits;
use super::slots::{Slot, Slots};

/// What every connection of one server shares.
pub struct Shared {
    pub router: axum::Router,
    /// TLS, from the web config.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub limits: Limits,
    pub metrics: HttpMetrics,
    pub slots: Mutex<Slots>,
}

impl Shared {
    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Gives an accepted connection a place (closing the one that gives up its own at the cap)
/// and serves it on a task of its own.
pub fn admit(shared: &Arc<Shared>, stream: TcpStream) {
    let slot = Arc::new(Slot::new(Instant::now()));
    let (id, evicted) = shared.slots().admit(slot.clone());
    if let Some(old) = evicted {
        old.close();
        shared.metrics.refused.inc();
    }
    shared.metrics.open.inc();
    tokio::spawn(serve(shared.clone(), id, slot, stream));
}

/// Serves one connection until it ends, is told to close, or times out.
async fn serve(shared: Arc<Shared>, id: u64, slot: Arc<Slot>, stream: TcpStream) {
    let _place = Place {
        shared: &shared,
        id,
    };
    let watched = Watched {
        stream,
        slot: slot.clone(),
    };
    let timed_out = tokio::select! {
        t = handshake_and_http(&shared, watched) => t,
        () = slot.closed() => false,
        () = idle(&slot, shared.limits.idle_timeout) => true,
    };
    if timed_out && slot.slow() {
        shared.metrics.timed_out.inc();
    }
}

/// The TLS handshake (when configured), then HTTP; whether it ended by timing out.
async fn handshake_and_http(shared: &Shared, watched: Watched) -> bool {
    let Some(tls) = &shared.tls else {
        return http(shared, watched).await;
    };
    match tokio::time::timeout(shared.limits.header_timeout, tls.accept(watched)).await {
        Ok(Ok(stream)) => http(shared, stream).await,
        Ok(Err(e)) => {
            log::debug!("a TLS handshake failed: {e}");
            false
        }
        Err(_) => true,
    }
}

/// hyper's HTTP/1 server over `io`; whether it ended by timing out.
async fn http<S>(shared: &Shared, io: S) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // The header timeout runs from the moment hyper waits for a request (right away, and
    // after each answer) until its headers are complete, whatever trickles in meanwhile.
    http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.limits.header_timeout)
        .serve_connection(
            TokioIo::new(io),
            TowerToHyperService::new(shared.router.clone()),
        )
        .await
        .is_err_and(|e| e.is_timeout())
}

/// Resolves once no byte has moved on the connection for `limit`.
async fn idle(slot: &Slot, limit: Duration) {
    loop {
        let deadline = slot.last_io() + limit;
        tokio::time::sleep_until(deadline.into()).await;
        if slot.last_io() + limit <= Instant::now() {
            return;
        }
    }
}

/// A connection's place, given back (and the open connections counted down) when it ends.
struct Place<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.shared.slots().release(self.id);
        self.shared.metrics.open.dec();
    }
}

/// The connection's socket, telling its place about every byte that moves.
struct Watched {
    stream: TcpStream,
    slot: Arc<Slot>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.slot.heard(Instant::now());
        }
        read
    }
}

impl Watched {
    /// Tells the place when bytes of an answer went out.
    fn wrote(&self, written: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = written
            && n > 0
        {
            self.slot.answered(Instant::now());
        }
        written
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write(cx, data);
        self.wrote(written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.wrote(written)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
