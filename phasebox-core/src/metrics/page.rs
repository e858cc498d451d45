//! The rendered page the metrics server hands out, and what the refresher learns from it: the
//! last rendering a client was given, and when the page was last refreshed.
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The latest rendering of the metrics, numbered.
#[derive(Debug, Default)]
pub struct Page {
    text: String,
    /// The number of the rendering in `text` (0: none yet).
    rendering: u64,
    /// The number of the last rendering handed to a client.
    served: u64,
    refreshed: Option<Instant>,
}

/// The page, shared by the refresher and the server (held for a copy).
#[derive(Clone, Debug, Default)]
pub struct SharedPage(Arc<Mutex<Page>>);

impl SharedPage {
    fn with<T>(&self, f: impl FnOnce(&mut Page) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The page for a client (counted as seen).
    pub fn serve(&self) -> String {
        self.with(|p| {
            p.served = p.rendering;
            p.text.clone()
        })
    }

    /// The number of the last rendering a client was given (0: none).
    pub fn served(&self) -> u64 {
        self.with(|p| p.served)
    }

    /// How long ago the page was last refreshed (None: never).
    pub fn age(&self, now: Instant) -> Option<Duration> {
        self.with(|p| p.refreshed.map(|r| now.saturating_duration_since(r)))
    }

    /// Puts rendering number `rendering` in place, refreshed at `now`.
    pub(super) fn set(&self, text: String, rendering: u64, now: Instant) {
        self.with(|p| {
            p.text = text;
            p.rendering = rendering;
            p.refreshed = Some(now);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendering_counts_as_seen_once_served() {
        let page = SharedPage::default();
        let t0 = Instant::now();
        assert_eq!(page.age(t0), None);
        page.set("a 1\n".into(), 1, t0);
        assert_eq!(page.served(), 0);
        assert_eq!(page.serve(), "a 1\n");
        assert_eq!(page.served(), 1);
        page.set("a 2\n".into(), 2, t0);
        assert_eq!(page.served(), 1, "rendering 2 not served yet");
        assert_eq!(
            page.age(t0 + Duration::from_secs(3)),
            Some(Duration::from_secs(3))
        );
    }
}
