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
}
