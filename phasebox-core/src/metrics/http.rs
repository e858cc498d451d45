//! The metrics server's own metrics.
use prometheus::{IntCounter, IntGauge, Registry};

use super::{MetricsError, counter, registered};

/// The metrics server's own metrics. The server holds a clone and updates them as it goes
/// (they are shared atomics); the page shows them at its next rendering.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    /// Connections open now.
    pub open: IntGauge,
    /// Connections closed unanswered because the server was at its connection cap.
    pub refused: IntCounter,
    /// Connections closed for sending their request too slowly, or for moving nothing.
    pub timed_out: IntCounter,
    /// Requests for /metrics answered.
    pub requests: IntCounter,
}

impl HttpMetrics {
    pub(super) fn register(registry: &Registry) -> Result<HttpMetrics, MetricsError> {
        Ok(HttpMetrics {
            open: registered(
                registry,
                IntGauge::new(
                    "phasebox_http_open_connections",
                    "Connections to the metrics server open now.",
                )?,
            )?,
            refused: counter(
                registry,
                "phasebox_http_connections_refused_total",
                "Connections closed unanswered because --web.max-connections were open (the one \
                 that had waited longest for a request made room for the newest).",
            )?,
            timed_out: counter(
                registry,
                "phasebox_http_connections_timed_out_total",
                "Connections closed because their request headers took longer than \
                 --web.header-timeout or nothing moved for --web.idle-timeout (kept-alive \
                 connections closed between requests are not counted).",
            )?,
            requests: counter(
                registry,
                "phasebox_http_requests_total",
                "Requests for /metrics answered.",
            )?,
        })
    }
}
