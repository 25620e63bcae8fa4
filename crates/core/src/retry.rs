//! The one retry policy of every adapter (the SCIM transport and its token requests, the Duo
//! reader): exponential backoff with jitter (backon's), a bounded number of tries, and a
//! server's `Retry-After` honoured up to the longest wait, never beyond. Waiting is the
//! adapters' (they give backon tokio's sleep), so this stays free of any runtime.

use backon::ExponentialBuilder;
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
}
