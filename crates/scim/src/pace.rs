//! Pacing the client's requests: one every `1/rate` seconds, evenly, with no burst, at the
//! configured rate until the target rejects one for rate; then slower, climbing back.
//!
//! Why not a token bucket like the target's: a client that spends a bucket as fast as the
//! bucket allows arrives at the target's bucket (which is spent too by then) with the jitter of
//! the network and the scheduler, and every request that arrives a little early is rejected;
//! each rejection then costs its request a `Retry-After`. Sent evenly at the rate with no
//! burst, the requests leave the target's bucket about full, so the jitter is absorbed.
//!
//! When the target rejects a request for rate anyway (its limit is lower than configured, or
//! shared with another client), the rate is cut to [`CUT`] of what it was, at most once for the
//! requests in flight when it happened, and climbs back to the configured rate by
//! [`RECOVERY_PER_S`] of it a second (additive increase, multiplicative decrease).

use std::sync::Mutex;
use tokio::time::Instant;

/// What a rejection for rate leaves of the pace.
pub(crate) const CUT: f64 = 0.8;
/// How fast the pace climbs back after a cut: this share of the configured rate a second.
pub(crate) const RECOVERY_PER_S: f64 = 0.02;
/// The slowest pace, as a share of the configured rate (never below one request a second).
const FLOOR: f64 = 0.05;

#[derive(Debug)]
pub(crate) struct Pacer {
    /// The configured rate, requests a second.
    ceiling: f64,
    state: Mutex<Pace>,
}

#[derive(Debug)]
struct Pace {
    /// The earliest moment the next request may leave.
    next: Option<Instant>,
    /// The last cut: when, and the rate it left.
    cut: Option<(Instant, f64)>,
}

impl Pacer {
    pub fn new(requests_per_second: u32) -> Self {
        Self {
            ceiling: f64::from(requests_per_second.max(1)),
            state: Mutex::new(Pace {
                next: None,
                cut: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pace> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn floor(&self) -> f64 {
        (self.ceiling * FLOOR).max(1.0).min(self.ceiling)
    }

    /// The pace at `now`, requests a second.
    fn rate_at(&self, pace: &Pace, now: Instant) -> f64 {
        match pace.cut {
            None => self.ceiling,
            Some((at, rate)) => {
                let climbed =
                    self.ceiling * RECOVERY_PER_S * now.saturating_duration_since(at).as_secs_f64();
                (rate + climbed).min(self.ceiling)
            }
        }
    }

    /// The current pace, requests a second (for the stats).
    pub fn rate(&self) -> f64 {
        let pace = self.lock();
        self.rate_at(&pace, Instant::now())
    }

    /// Reserves the next slot from `now` on: the moment a request may leave.
    pub fn reserve(&self, now: Instant) -> Instant {
        let mut pace = self.lock();
        let slot = pace.next.map_or(now, |next| next.max(now));
        let rate = self.rate_at(&pace, slot);
        pace.next = Some(slot + std::time::Duration::from_secs_f64(1.0 / rate));
        slot
    }

    /// Waits for the next slot.
    pub async fn ready(&self) {
        let slot = self.reserve(Instant::now());
        tokio::time::sleep_until(slot).await;
    }

    /// The target rejected for rate a request sent at `sent_at`: the pace is cut, unless it
    /// already was after that request left (one cut for the requests in flight together).
    /// Returns whether it was cut.
    pub fn rejected(&self, sent_at: Instant, now: Instant) -> bool {
        let mut pace = self.lock();
        if pace.cut.is_some_and(|(at, _)| at >= sent_at) {
            return false;
        }
        let rate = (self.rate_at(&pace, now) * CUT).max(self.floor());
        pace.cut = Some((now, rate));
        // The slot already reserved keeps; the ones after it follow the new pace.
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn gaps(p: &Pacer, from: Instant, n: usize) -> Vec<Duration> {
        let mut slots = Vec::new();
        for _ in 0..=n {
            slots.push(p.reserve(from));
        }
        slots.windows(2).map(|w| w[1] - w[0]).collect()
    }

    fn close(a: Duration, b: Duration) -> bool {
        a.abs_diff(b) < Duration::from_micros(50)
    }

    #[test]
    fn requests_leave_evenly_at_the_rate_with_no_burst() {
        let p = Pacer::new(250);
        let t0 = Instant::now();
        // Twenty requests asking at once leave 4 ms apart, the first at once.
        assert_eq!(p.reserve(t0), t0);
        for g in gaps(&p, t0, 20) {
            assert!(close(g, Duration::from_millis(4)), "{g:?}");
        }
        // After a quiet second, the next leaves at once but no burst was saved up.
        let later = t0 + Duration::from_secs(2);
        assert_eq!(p.reserve(later), later);
        assert!(close(p.reserve(later) - later, Duration::from_millis(4)));
    }

    #[test]
    fn a_rejection_slows_the_pace_once_and_it_climbs_back() {
        let p = Pacer::new(100);
        let t0 = Instant::now();
        let sent = p.reserve(t0);
        let at = t0 + Duration::from_millis(30);
        assert!(p.rejected(sent, at));
        // The others in flight with it, rejected too, do not cut again.
        assert!(!p.rejected(sent, at + Duration::from_millis(5)));
        assert!((p.rate_at(&p.lock(), at) - 80.0).abs() < 1e-9);
        let g = gaps(&p, at, 3);
        assert!(
            g.iter().all(|g| *g > Duration::from_micros(12_400)),
            "{g:?}"
        );
        // A request sent after the cut and rejected cuts again.
        let sent = at + Duration::from_millis(100);
        assert!(p.rejected(sent, sent + Duration::from_millis(20)));
        let rate = p.rate_at(&p.lock(), sent + Duration::from_millis(20));
        assert!(rate < 65.0, "{rate}");
        // Climbing 2 a second, it is back at 100 within 20 s and never above.
        let back = sent + Duration::from_secs(20);
        assert!((p.rate_at(&p.lock(), back) - 100.0).abs() < 1e-9);
        for g in gaps(&p, back + Duration::from_secs(1), 5) {
            assert!(close(g, Duration::from_millis(10)), "{g:?}");
        }
    }

    #[test]
    fn the_pace_never_falls_below_its_floor() {
        let p = Pacer::new(20);
        let mut now = Instant::now();
        for _ in 0..50 {
            now += Duration::from_millis(1);
            assert!(p.rejected(now - Duration::from_micros(1), now));
            now += Duration::from_millis(1);
        }
        assert!((p.rate_at(&p.lock(), now) - 1.0).abs() < 0.01);
    }
}
