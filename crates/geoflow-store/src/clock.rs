//! Where a store reads the time. Catalog timestamps (loads, removals, jobs) and load durations
//! come from the store's clock, so that tests can place activity on chosen days without
//! waiting, and reports on those days can be checked exactly.

use std::fmt::Debug;
use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

pub trait Clock: Send + Sync + Debug {
    /// The current time, UTC.
    fn now(&self) -> OffsetDateTime;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that stands still until it is set, and moves on by `step` each time it is read
/// (so that a load started and finished on it takes `step`).
#[derive(Debug)]
pub struct ManualClock {
    state: Mutex<(OffsetDateTime, Duration)>,
}

impl ManualClock {
    pub fn new(at: OffsetDateTime) -> ManualClock {
        ManualClock { state: Mutex::new((at, Duration::ZERO)) }
    }

    /// Sets the time and the step the next reads advance it by.
    pub fn set(&self, at: OffsetDateTime, step: Duration) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = (at, step);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (now, step) = *state;
        state.0 = now + step;
        now
    }
}
