//! The server's idea of now. Production uses the system clock; tests move a shared clock
//! forward to see what happens a day later (chats moving to History) without waiting.

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};

use chrono::{DateTime, Duration, Utc};

/// The system clock plus an offset that only ever grows. Clones share the offset, so
/// several servers in one test can share one clock.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// A clock that reads `at` now and runs on from there (tests of dated rules, such as
    /// pricing eras).
    pub fn starting_at(at: DateTime<Utc>) -> Self {
        let offset = (at - Utc::now()).num_milliseconds();
        Self {
            offset_ms: Arc::new(AtomicI64::new(offset)),
        }
    }

    /// Moves the clock forward (tests).
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_offset() {
        let clock = Clock::default();
        let shared = clock.clone();
        let before = clock.now();
        shared.advance(std::time::Duration::from_secs(3600));
        assert!(clock.now() - before >= Duration::minutes(59));
    }

    #[test]
    fn a_clock_can_start_in_the_past() {
        let at = DateTime::parse_from_rfc3339("2024-10-31T22:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = Clock::starting_at(at);
        assert!((clock.now() - at).num_seconds().abs() < 5);
    }
}
