//! The engine's clock: the one place the engine reads the time of day.
//!
//! A run's start and end, the planner's "now", the lease's expiry and each renewal, the
//! scheduler's metrics and the daemon's stuck detection all read [`now`]. Waiting (the lease's
//! renewal interval, a job's own sleeps, the adapters' backoff) is tokio's, and durations are
//! measured with [`tokio::time::Instant`].
//!
//! In production [`now`] is the system clock. Tokio's time can be paused in tests
//! (`#[tokio::test(start_paused = true)]`): sleeps then end at once and tokio's clock jumps
//! ahead, but the system clock does not, so a lease stamped with it would never expire while
//! its renewer "waited" a minute. A test on paused time therefore first calls
//! [`follow_tokio_time`]: until the returned guard is dropped, [`now`] on that thread is a
//! fixed instant plus however far tokio's clock has moved since, and the time of day and the
//! sleeps move together.
//!
//! The override is per thread. That is sound for paused time, which tokio allows only on a
//! current-thread runtime, whose tasks all run on the thread that drives it; tests running in
//! parallel on other threads keep their own clocks. Work sent to `spawn_blocking` threads
//! reads the system clock (the engine reads no time there).

use scimsync_core::Timestamp;
use std::cell::Cell;

thread_local! {
    /// When set: the time of day at the tokio instant next to it.
    static FOLLOWED: Cell<Option<(Timestamp, tokio::time::Instant)>> = const { Cell::new(None) };
}

/// The current time as a core [`Timestamp`]: the system clock, or on a thread that follows
/// tokio's time ([`follow_tokio_time`]), the instant it started at plus tokio's time since.
pub fn now() -> Timestamp {
    match FOLLOWED.with(Cell::get) {
        Some((at, since)) => {
            let elapsed = tokio::time::Instant::now().saturating_duration_since(since);
            let ms = i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX);
            Timestamp::from_millis(at.millis().saturating_add(ms))
        }
        None => system_now(),
    }
}

/// The system clock, in milliseconds since the Unix epoch (0 for a clock set before 1970).
fn system_now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp::from_millis(ms)
}

/// Makes [`now`] on this thread follow tokio's clock from `start` until the guard is dropped
/// (for tests on paused time; see the module's documentation). Guards nest: dropping one
/// restores the clock that was in force before it.
pub fn follow_tokio_time(start: Timestamp) -> FollowingTokioTime {
    let previous = FOLLOWED.with(|f| f.replace(Some((start, tokio::time::Instant::now()))));
    FollowingTokioTime {
        previous,
        _not_send: std::marker::PhantomData,
    }
}

/// While alive, [`now`] on the thread that made it follows tokio's clock. Not `Send`: it must
/// be dropped on that thread.
#[derive(Debug)]
#[must_use = "the clock follows tokio's time only while the guard lives"]
pub struct FollowingTokioTime {
    previous: Option<(Timestamp, tokio::time::Instant)>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for FollowingTokioTime {
    fn drop(&mut self) {
        FOLLOWED.with(|f| f.set(self.previous));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_followed_clock_moves_with_tokio_time_and_only_while_the_guard_lives() {
        // 3000-01-01: far from the system clock, whatever day the test runs on.
        let start = Timestamp::from_millis(32_503_680_000_000);
        let guard = follow_tokio_time(start);
        assert_eq!(now(), start);
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(
            now(),
            start.plus_millis(3_600_000),
            "an hour of paused time"
        );
        {
            let inner = follow_tokio_time(Timestamp::from_millis(0));
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert_eq!(now(), Timestamp::from_millis(5));
            drop(inner);
        }
        assert_eq!(now(), start.plus_millis(3_600_005), "the outer clock again");
        drop(guard);
        assert!(now() < start, "the system clock once the guard is gone");
    }

    #[test]
    fn without_a_guard_the_clock_is_the_systems() {
        let before = system_now();
        let at = now();
        assert!(at >= before && at <= system_now());
    }
}
