//! Fault and state knobs: [`Knobs`], the handle tests turn them with, and [`KnobState`], what
//! the handlers read on every request.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::MonotonicClock;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use super::{Reading, Shared};

/// Fault knobs; a cheap handle.
#[derive(Debug, Clone)]
pub struct Knobs(pub(super) Arc<Shared>);

/// How a burst rejects requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BurstKind {
    /// HTTP 429 (generic SCIM services).
    TooManyRequests,
    /// HTTP 403 `REQUEST_LIMIT_EXCEEDED` (Salesforce).
    RequestLimitExceeded,
}

impl Knobs {
    /// Delay every SCIM response.
    pub fn set_latency(&self, latency: Duration) {
        self.0.lock().knobs.latency = latency;
    }
    /// Answer the next `n` SCIM requests with `status` (a SCIM error body), doing nothing.
    pub fn fail_next(&self, n: u32, status: u16) {
        self.0.lock().knobs.fail_next = Some((n, status));
    }
    /// Reject the next `n` SCIM requests for rate, with `Retry-After: retry_after_secs`.
    pub fn rate_limit_burst(&self, n: u32, retry_after_secs: u64, kind: BurstKind) {
        self.0.lock().knobs.burst = Some((n, retry_after_secs, kind));
    }
    /// Enforce at most `rps` SCIM requests per second (a token bucket of `rps`); `None` lifts it.
    pub fn enforce_rps(&self, rps: Option<u32>) {
        self.0.lock().knobs.rps = rps.map(RateLimit::new);
    }
    /// Drop the next `n` SCIM requests: the connection closes without a complete response.
    pub fn drop_next(&self, n: u32) {
        self.0.lock().knobs.drop_next = n;
    }
    /// Revoke every token issued so far.
    pub fn revoke_tokens(&self) {
        self.0.lock().revoke_tokens();
    }
    /// Expire every token issued so far (the session timeout passed).
    pub fn expire_tokens(&self) {
        self.0.lock().revoke_tokens();
    }
    pub fn set_allow_group_creation(&self, allow: bool) {
        self.0.lock().allow_group_creation = allow;
    }
    /// Plays another [`Reading`] from the next request on (users and groups are kept).
    pub fn set_reading(&self, reading: Reading) {
        self.0.lock().reading = reading;
    }
    /// A user of another org takes `user_name` (see [`Reading::taken_usernames`]).
    pub fn take_username(&self, user_name: &str) {
        self.0
            .lock()
            .reading
            .taken_usernames
            .insert(user_name.to_lowercase());
    }
    /// API calls already used today.
    pub fn set_api_usage(&self, used: u64) {
        self.0.lock().api_used = used;
    }
    /// The org's daily API allocation (`Sforce-Limit-Info`'s limit; past it every request is
    /// answered 403 `REQUEST_LIMIT_EXCEEDED`).
    pub fn set_daily_api_limit(&self, limit: u64) {
        self.0.lock().api_limit = limit;
    }
    /// An administrator changes a user in Salesforce's own setup, behind the provisioning's
    /// back (drift): `change` edits it in place (not its id). Returns whether the user exists.
    pub fn edit_user(&self, user_id: &str, change: impl FnOnce(&mut super::SimUser)) -> bool {
        let mut st = self.0.lock();
        st.update_user(user_id, |u| {
            change(u);
            u.version += 1;
        })
        .is_some()
    }
    /// The owner of the new address of `user_id` clicks the verification link.
    pub fn verify_email(&self, user_id: &str) -> bool {
        self.0.lock().verify_email(user_id)
    }
    /// Every pending email change is verified.
    pub fn verify_all_emails(&self) {
        let mut st = self.0.lock();
        let ids: Vec<String> = st.users().map(|u| u.id.clone()).collect();
        for id in ids {
            st.verify_email(&id);
        }
    }
}

/// The knobs' current settings.
#[derive(Debug, Default)]
pub struct KnobState {
    /// Delay before every SCIM response.
    pub latency: Duration,
    /// Requests still to fail, and their status.
    pub fail_next: Option<(u32, u16)>,
    /// Requests still to reject for rate, their `Retry-After` and how.
    pub burst: Option<(u32, u64, BurstKind)>,
    /// The enforced requests-per-second limit.
    pub rps: Option<RateLimit>,
    /// Requests still to drop.
    pub drop_next: u32,
}

/// The enforced requests-per-second limit: a `governor` limiter (GCRA) allowing bursts of `rps`
/// and one more request every `1/rps` s, which is a token bucket holding `rps` tokens,
/// starting full and refilled continuously at `rps` a second.
#[derive(Debug)]
pub struct RateLimit(RateLimiter<NotKeyed, InMemoryState, MonotonicClock>);

impl RateLimit {
    /// A full bucket of `rps` (0 counts as 1).
    pub fn new(rps: u32) -> Self {
        let rps = NonZeroU32::new(rps).unwrap_or(NonZeroU32::MIN);
        Self(RateLimiter::direct_with_clock(
            Quota::per_second(rps),
            MonotonicClock,
        ))
    }

    /// Takes one request's token; false when the bucket is empty (the request is over the rate).
    pub fn take(&self) -> bool {
        self.0.check().is_ok()
    }
}
