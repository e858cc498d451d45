//! A child's output read line by line on a thread of its own, so a test can wait for a line
//! with a deadline (the agent saying it found a container) and never blocks on a pipe.
use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// Lines of one stream, as they come.
pub struct Lines {
    rx: Receiver<String>,
    /// Every line read so far.
    seen: Vec<String>,
}

impl Lines {
    /// Starts reading `stream` (a child's stderr, say) until it ends.
    pub fn follow(stream: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// The first line (from the start) containing `needle`, waiting for it at most `limit`;
    /// Err with every line seen when it does not come or the stream ends.
    pub fn wait_for(&mut self, needle: &str, limit: Duration) -> Result<String, String> {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return Ok(l.clone());
        }
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "no line with {needle:?} within {limit:?}; seen:\n{}",
                        self.seen.join("\n")
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "the stream ended without {needle:?}; seen:\n{}",
                        self.seen.join("\n")
                    ));
                }
            }
        }
    }

    /// Every line read so far, and those that have come since, without waiting.
    pub fn text(&mut self) -> String {
        while let Ok(line) = self.rx.try_recv() {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }

    /// Every line until the stream ends (the child has exited), waiting at most `limit`.
    pub fn rest(&mut self, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => return self.seen.join("\n"),
            }
        }
    }
}
