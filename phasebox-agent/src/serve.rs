//! The agent's HTTP endpoint: /metrics, the latest rendering of the registry.
use std::net::SocketAddr;
use std::sync::Arc;

/// Serves `/metrics` (the latest rendering in `page`) on `addr`.
pub async fn serve(
    addr: SocketAddr,
    page: Arc<std::sync::Mutex<String>>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use axum::{Router, http::header, routing::get};
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {addr}: {}",
            phasebox_core::sysnames::describe_io(&e)
        )
    })?;
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let page = page.clone();
            async move {
                let body = page.lock().map(|p| p.clone()).unwrap_or_default();
                ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
            }
        }),
    );
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    }))
}
