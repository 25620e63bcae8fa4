//! The one retry policy of every adapter (the SCIM transport and its token requests, the Duo
//! reader): exponential backoff with jitter (backon's), a bounded number of tries, and a
//! server's `Retry-After` honoured up to the longest wait, never beyond. Waiting is the
//! adapters' (they give backon tokio's sleep through [`Waits::sleeper`]), so this stays free
//! of any runtime; tests give them [`Waits::recording`] instead, which records each wait asked
//! and returns at once.

use backon::ExponentialBuilder;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

pub use backon::Retryable;

/// How often and how long to retry a passing failure (429, 5xx, a timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (at least one).
    pub max_attempts: u32,
    /// The wait after the first failure, doubled after each further one.
    pub base: Duration,
    /// The longest wait; a `Retry-After` asking for more is not waited for.
    pub max: Duration,
}

impl RetryPolicy {
    /// The backoff: waits of `base`·2ⁿ⁻¹ capped at `max`, each drawn between its half and
    /// its whole (jitter, so that clients failing together do not retry together), for
    /// `max_attempts - 1` retries.
    pub fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.base / 2)
            .with_max_delay(self.max / 2)
            .with_factor(2.0)
            .with_max_times(self.max_attempts.saturating_sub(1) as usize)
            .with_jitter()
    }

    /// The wait before the next try, for backon's `adjust`: `own` is the backoff's next wait
    /// (`None` once the tries are used up), `retry_after` what the server asked for. The
    /// longer of the two, at most `max`; `None` (no retry) when the tries are used up or the
    /// server asks for more than `max` (the next run tries again rather than hang for long).
    pub fn wait(&self, own: Option<Duration>, retry_after: Option<Duration>) -> Option<Duration> {
        let own = own?.min(self.max);
        match retry_after {
            Some(asked) if asked > self.max => None,
            Some(asked) => Some(asked.max(own)),
            None => Some(own),
        }
    }

    /// Whether a `Retry-After` asks for longer than this policy waits.
    pub fn too_long(&self, retry_after: Option<Duration>) -> bool {
        retry_after.is_some_and(|asked| asked > self.max)
    }
}

/// Where an adapter's retry waits go: the runtime's sleep (the default, production), or a
/// recorder for tests that notes each wait asked, returns at once and moves a virtual clock
/// on by it, so that a test asserts the waits instead of timing them on the wall clock.
#[derive(Debug, Clone, Default)]
pub struct Waits(Option<Arc<Mutex<Recorded>>>);

#[derive(Debug, Default)]
struct Recorded {
    asked: Vec<Duration>,
    /// Virtual time passed: the waits asked plus what the test let pass ([`Waits::pass`]).
    passed: Duration,
}

/// The future of one retry wait.
pub type Pause = Pin<Box<dyn Future<Output = ()> + Send>>;

impl Waits {
    /// Waits that are recorded and skipped, not slept.
    pub fn recording() -> Self {
        Self(Some(Arc::default()))
    }

    /// Whether waits are recorded (and skipped) rather than slept.
    pub fn is_recording(&self) -> bool {
        self.0.is_some()
    }

    /// The waits asked so far, in order (none when they are slept).
    pub fn asked(&self) -> Vec<Duration> {
        self.with(|r| r.asked.clone()).unwrap_or_default()
    }

    /// The virtual time passed: every wait skipped plus [`Waits::pass`]; zero when waits are
    /// slept (they pass on the clock itself). Add it to a clock's reading to read the virtual
    /// clock.
    pub fn skipped(&self) -> Duration {
        self.with(|r| r.passed).unwrap_or_default()
    }

    /// Moves the virtual clock on by `d` without a wait asked (a test's "later").
    pub fn pass(&self, d: Duration) {
        self.with(|r| r.passed = r.passed.saturating_add(d));
    }

    /// The sleeper for backon's `Retryable::sleep`: `real` (the runtime's sleep), or, when
    /// recording, a note of the wait and an at-once return.
    pub fn sleeper<F>(&self, real: fn(Duration) -> F) -> impl Fn(Duration) -> Pause + 'static
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let waits = self.clone();
        move |d| match &waits.0 {
            None => Box::pin(real(d)),
            Some(_) => {
                waits.with(|r| {
                    r.asked.push(d);
                    r.passed = r.passed.saturating_add(d);
                });
                Box::pin(std::future::ready(()))
            }
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Recorded) -> T) -> Option<T> {
        let recorded = self.0.as_ref()?;
        Some(f(&mut recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        base: Duration::from_millis(500),
        max: Duration::from_secs(3),
    };

    #[test]
    fn waits_double_with_jitter_up_to_the_cap_for_the_tries_allowed() {
        let waits: Vec<Duration> = backon::BackoffBuilder::build(POLICY.backoff()).collect();
        assert_eq!(waits.len(), 4, "five tries: four waits");
        let ms = |d: &Duration| d.as_millis() as u64;
        for (i, (w, whole)) in waits.iter().zip([500, 1000, 2000, 3000]).enumerate() {
            assert!(
                (whole / 2..=whole).contains(&ms(w)),
                "wait {i}: {w:?} not within {}..={whole} ms",
                whole / 2
            );
        }
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap_and_not_beyond() {
        let own = Some(Duration::from_millis(400));
        assert_eq!(POLICY.wait(own, None), own);
        assert_eq!(
            POLICY.wait(own, Some(Duration::from_secs(2))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            POLICY.wait(own, Some(Duration::ZERO)),
            own,
            "no retry storm"
        );
        assert_eq!(POLICY.wait(own, Some(Duration::from_secs(4))), None);
        assert_eq!(POLICY.wait(None, None), None, "tries used up");
        assert!(POLICY.too_long(Some(Duration::from_secs(60))));
        assert!(!POLICY.too_long(None));
    }

    #[test]
    fn recorded_waits_are_noted_skipped_and_move_the_virtual_clock() {
        let waits = Waits::recording();
        // A real sleep here would never end: a recorded wait is not slept.
        let sleep = waits.sleeper(|_| std::future::pending::<()>());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        for d in [Duration::from_secs(2), Duration::from_millis(300)] {
            assert!(
                sleep(d).as_mut().poll(&mut cx).is_ready(),
                "returns at once"
            );
        }
        waits.pass(Duration::from_secs(1));
        assert_eq!(
            waits.asked(),
            [Duration::from_secs(2), Duration::from_millis(300)]
        );
        assert_eq!(waits.skipped(), Duration::from_millis(3_300));
        let real = Waits::default();
        assert!(!real.is_recording());
        real.pass(Duration::from_secs(1));
        assert_eq!(
            real.skipped(),
            Duration::ZERO,
            "slept waits pass on the clock"
        );
        assert!(real.asked().is_empty());
    }
}
