//! What the server answers: a landing page at `/`, the metrics at `/metrics`, health at
//! `/-/healthy` and `/-/ready` (Prometheus's own paths), 404 elsewhere; behind basic auth when
//! the web config names users.
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use phasebox_core::metrics::SharedPage;

use super::auth::{self, Users};

/// The agent refreshes its metrics every second: a page older than this means its loop is
/// stuck, and /-/healthy says so.
pub const STALE: Duration = Duration::from_secs(30);

/// The server's routes over `page`; `requests` counts the pages served.
pub fn router(
    page: SharedPage,
    requests: prometheus::IntCounter,
    users: Option<Arc<Users>>,
) -> axum::Router {
    let (healthy, ready) = (page.clone(), page.clone());
    let r = axum::Router::new()
        .route("/", get(|| async { Html(landing()) }))
        .route(
            "/metrics",
            get(move || {
                let body = page.serve();
                requests.inc();
                async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body) }
            }),
        )
        .route("/-/healthy", get(move || async move { health(&healthy) }))
        .route("/-/ready", get(move || async move { readiness(&ready) }))
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found\n") });
    match users {
        Some(u) => r.layer(axum::middleware::from_fn_with_state(u, auth::require)),
        None => r,
    }
}

/// 200 while the metrics are refreshed, 503 once they are older than STALE.
fn health(page: &SharedPage) -> Response {
    match page.age(Instant::now()) {
        Some(age) if age <= STALE => "Healthy\n".into_response(),
        Some(age) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("The metrics were last refreshed {} s ago.\n", age.as_secs()),
        )
            .into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "Not refreshed yet.\n").into_response(),
    }
}

/// 200 once the first metrics are on the page.
fn readiness(page: &SharedPage) -> Response {
    match page.age(Instant::now()) {
        Some(_) => "Ready\n".into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "Not ready.\n").into_response(),
    }
}

/// The landing page: what this is and where its endpoints are.
fn landing() -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">\
         <title>phasebox agent</title></head>\n<body>\n<h1>phasebox agent</h1>\n\
         <p>Version {}. System calls by program, role and phase.</p>\n<ul>\n\
         <li><a href=\"metrics\">Metrics</a></li>\n\
         <li><a href=\"-/healthy\">Health</a></li>\n\
         <li><a href=\"-/ready\">Readiness</a></li>\n</ul>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION")
    )
}
