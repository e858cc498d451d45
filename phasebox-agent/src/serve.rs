//! The agent's HTTP endpoint: /metrics, the latest rendering of the registry, with a landing
//! page and health endpoints (`routes.rs`), TLS and basic auth from `--web.config.file`
//! (`web_config.rs`, `auth.rs`), bounded so that no number of clients can take the agent's
//! descriptors or keep a scrape out.
//!
//! It runs on a thread of its own, with a single-threaded runtime of its own: tracing never
//! waits for it, and a flooded or stuck server cannot slow the drain loop (the two share only
//! the page's lock, held for a copy).
//!
//! Connections are driven by hyper's HTTP/1 server directly (hyper and hyper-util come with
//! axum, which still routes): `axum::serve` has neither a connection cap nor a header timeout.
//! hyper's header read timeout cuts off slow headers (slowloris), `conn.rs` closes
//! connections that move nothing, and the accept loop here keeps the cap.
//!
//! At the cap the server keeps accepting. If it stopped, new connections would wait in the
//! kernel's listen backlog, a scrape behind every idle one, and a server that accepted and
//! closed them instead would close the scrape too. So every connection is accepted and the
//! one that has waited longest for a request gives up its place (`slots.rs`): a scrape sends
//! its request at once and is answered in the poll that reads it, so idle connections,
//! however many, never keep it out, and the server holds at most `max_connections` of them.
//! Under TLS the same holds: the handshake must end within the header timeout, and its bytes
//! count as the connection's.
mod auth;
mod conn;
mod routes;
mod slots;
pub mod web_config;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use phasebox_core::metrics::{HttpMetrics, SharedPage};
use phasebox_core::sysnames::describe_io;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;

/// The listen backlog. Connections wait there only while the accept loop is busy, since it
/// accepts whatever comes; the kernel caps it at net.core.somaxconn.
const BACKLOG: u32 = 1024;

/// How long the accept loop rests after an error such as running out of descriptors (the
/// connection waits in the backlog meanwhile), instead of trying again at once, forever.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// How many connections the server holds, and how long it waits for them.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections open at once.
    pub max_connections: usize,
    /// From the moment the server waits for a request until its headers are complete.
    pub header_timeout: Duration,
    /// How long a connection may move no byte either way.
    pub idle_timeout: Duration,
}

/// Descriptors the agent needs besides the server's connections: its kernel programs, maps and
/// links, the ring buffer, /proc reads, outputs, the listener.
const OTHER_DESCRIPTORS: u64 = 128;

impl Limits {
    /// Warns when the open-files limit cannot hold `max_connections` besides what the agent
    /// needs: connections past it would wait in the backlog.
    pub fn check_descriptors(&self, open_files: Option<u64>) {
        if let Some(limit) = open_files
            && self.max_connections as u64 + OTHER_DESCRIPTORS > limit
        {
            log::warn!(
                "--web.max-connections {} does not fit the open-files limit of {limit} \
                 (the agent keeps about {OTHER_DESCRIPTORS} for itself)",
                self.max_connections
            );
        }
    }
}

/// A running metrics server; it stops when dropped.
pub struct Server {
    addr: SocketAddr,
    tls: bool,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// The address it listens on (with the port the kernel chose for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The metrics' URL, `http://` or `https://`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/metrics", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves `/metrics` (the latest rendering in `page`) on `addr` within `limits`, with `web`'s
/// TLS and users, on a thread of its own; `metrics` counts what the server does.
pub fn start(
    addr: SocketAddr,
    limits: Limits,
    page: SharedPage,
    metrics: HttpMetrics,
    web: web_config::WebConfig,
) -> anyhow::Result<Server> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the metrics server: {}", describe_io(&e)))?;
    let listener = {
        let _inside = runtime.enter();
        listen(addr)
    }
    .and_then(|l| Ok((l.local_addr()?, l)));
    let (addr, listener) =
        listener.map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {}", describe_io(&e)))?;
    let users = (!web.users.is_empty()).then(|| Arc::new(auth::Users::new(web.users)));
    let tls = web.tls.is_some();
    let shared = Arc::new(conn::Shared {
        router: routes::router(page, metrics.requests.clone(), users),
        tls: web.tls.map(tokio_rustls::TlsAcceptor::from),
        slots: Mutex::new(slots::Slots::new(limits.max_connections)),
        limits,
        metrics,
    });
    let (stop, stopped) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("phasebox-http".into())
        .spawn(move || runtime.block_on(accept(listener, shared, stopped)))
        .map_err(|e| anyhow::anyhow!("cannot start the metrics server: {}", describe_io(&e)))?;
    Ok(Server {
        addr,
        tls,
        stop: Some(stop),
        thread: Some(thread),
    })
}

fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Accepts connections until told to stop (or the server is dropped).
async fn accept(listener: TcpListener, shared: Arc<conn::Shared>, stop: oneshot::Receiver<()>) {
    let mut stop = std::pin::pin!(stop);
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _)) => conn::admit(&shared, stream),
            Err(e) if is_connection_error(&e) => {}
            Err(_) => tokio::time::sleep(ACCEPT_PAUSE).await,
        }
        // The connection closed to make room and the new one run before the next accept:
        // the server never holds more than the cap, and a waiting scrape is answered now.
        tokio::task::yield_now().await;
    }
}

/// A connection that failed before it was accepted: skipped.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}
