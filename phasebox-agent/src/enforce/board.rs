//! The phase board: each traced process's role and phase as the session learns them, shared
//! with the threads that answer seccomp notifications (phase-aware enforcement decides on it,
//! validation names the phase of a denied call).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One process's place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    pub role: String,
    pub phase: String,
    /// It reached its role's steady (serving) phase or a later one.
    pub serving: bool,
}

/// tgid → place, shared.
#[derive(Clone, Debug, Default)]
pub struct PhaseBoard(Arc<Mutex<HashMap<u32, Place>>>);

impl PhaseBoard {
    pub fn set(&self, tgid: u32, place: Place) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(tgid, place);
        }
    }

    pub fn remove(&self, tgid: u32) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(&tgid);
        }
    }

    pub fn get(&self, tgid: u32) -> Option<Place> {
        self.0.lock().ok()?.get(&tgid).cloned()
    }

    /// Whether `tgid` is in its serving phase (or later).
    pub fn serving(&self, tgid: u32) -> bool {
        self.get(tgid).is_some_and(|p| p.serving)
    }
}
