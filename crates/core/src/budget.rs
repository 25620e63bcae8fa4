//! The API budget: how many calls to the target scimsync allows itself in a rolling 24 hours
//! (`api_budget` of a connection), counted by scimsync per hour and kept with the target's
//! facts ([`crate::links::TargetFacts::api_calls`]).

use crate::links::{HourlyCalls, TargetFacts};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// One hour, in milliseconds.
pub const HOUR_MS: i64 = 60 * 60 * 1000;
/// The rolling window the budget covers (Salesforce's daily allocation is a rolling 24 h).
pub const WINDOW_MS: i64 = 24 * HOUR_MS;

/// The most calls to the target scimsync makes in a rolling 24 hours.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiBudget {
    /// This percentage (0–100] of the daily allocation the target reports (Salesforce's
    /// `Sforce-Limit-Info`); not enforced while the target has not reported one.
    Percent(f64),
    /// This many calls.
    Calls(u64),
}

impl ApiBudget {
    /// Parses `25%` or `5000`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if let Some(p) = t.strip_suffix('%') {
            match p.trim().parse::<f64>() {
                Ok(v) if v > 0.0 && v <= 100.0 => Ok(Self::Percent(v)),
                _ => Err(format!(
                    "{text:?}: a percentage of the daily allocation must be above 0% and at most 100%"
                )),
            }
        } else {
            match t.parse::<u64>() {
                Ok(v) if v > 0 => Ok(Self::Calls(v)),
                _ => Err(format!(
                    "{text:?}: use a percentage of the target's daily allocation (\"25%\") or a number of calls (\"5000\")"
                )),
            }
        }
    }

    /// The calls allowed in the window, given the daily allocation the target reported (if it
    /// did); `None` when a percentage cannot be computed without it.
    pub fn calls(self, allocation: Option<u64>) -> Option<u64> {
        match self {
            Self::Calls(n) => Some(n),
            Self::Percent(p) => allocation.map(|a| {
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    clippy::cast_precision_loss
                )]
                let n = (a as f64 * p / 100.0).floor() as u64;
                n
            }),
        }
    }
}

impl std::fmt::Display for ApiBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Percent(p) => write!(f, "{p}% of the daily allocation"),
            Self::Calls(n) => write!(f, "{n} calls"),
        }
    }
}

fn hour_of(at: Timestamp) -> i64 {
    at.millis().div_euclid(HOUR_MS) * HOUR_MS
}

/// Whether an hour's calls still count at `now`: its hour ended less than 24 h ago (counted by
/// the hour, the window errs on the side of counting a call for up to an hour longer).
fn in_window(hour: i64, now: Timestamp) -> bool {
    hour + HOUR_MS > now.millis() - WINDOW_MS
}

/// The calls scimsync made in the 24 hours before `now`.
pub fn used(facts: &TargetFacts, now: Timestamp) -> u64 {
    facts
        .api_calls
        .iter()
        .filter(|h| in_window(h.hour, now))
        .map(|h| h.calls)
        .sum()
}

/// Counts `calls` made at `now`, and forgets the hours out of the window.
pub fn record(facts: &mut TargetFacts, now: Timestamp, calls: u64) {
    facts.api_calls.retain(|h| in_window(h.hour, now));
    if calls == 0 {
        return;
    }
    let hour = hour_of(now);
    match facts.api_calls.iter_mut().find(|h| h.hour == hour) {
        Some(h) => h.calls += calls,
        None => facts.api_calls.push(HourlyCalls { hour, calls }),
    }
    facts.api_calls.sort_by_key(|h| h.hour);
}

/// When at least one call is free again under a budget of `cap` calls: the end of the window of
/// the oldest hours whose calls must drop out first.
pub fn resumes_at(facts: &TargetFacts, now: Timestamp, cap: u64) -> Timestamp {
    let mut hours: Vec<&HourlyCalls> = facts
        .api_calls
        .iter()
        .filter(|h| in_window(h.hour, now))
        .collect();
    hours.sort_by_key(|h| h.hour);
    let mut used: u64 = hours.iter().map(|h| h.calls).sum();
    for h in hours {
        if used < cap {
            break;
        }
        used -= h.calls;
        if used < cap {
            return Timestamp::from_millis(h.hour + HOUR_MS + WINDOW_MS);
        }
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::from_millis(1_764_000_000_000);

    #[test]
    fn budgets_parse_as_percentages_or_calls_and_bad_ones_say_why() {
        assert_eq!(ApiBudget::parse("25%"), Ok(ApiBudget::Percent(25.0)));
        assert_eq!(ApiBudget::parse(" 5000 "), Ok(ApiBudget::Calls(5000)));
        for bad in ["0%", "150%", "-3", "0", "lots", "%"] {
            let err = ApiBudget::parse(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        assert_eq!(ApiBudget::Percent(25.0).calls(Some(15_000)), Some(3_750));
        assert_eq!(ApiBudget::Percent(25.0).calls(None), None);
        assert_eq!(ApiBudget::Calls(10).calls(None), Some(10));
    }

    #[test]
    fn calls_count_for_a_rolling_day_and_the_resume_time_is_when_enough_drop_out() {
        let mut facts = TargetFacts::default();
        record(&mut facts, T0, 60);
        record(&mut facts, T0.plus_millis(30 * 60 * 1000), 10);
        record(&mut facts, T0.plus_millis(5 * HOUR_MS), 40);
        let now = T0.plus_millis(6 * HOUR_MS);
        assert_eq!(used(&facts, now), 110);
        // A cap of 100: the first hour (70 calls) must drop out, 24 h after it ended.
        let first_hour = hour_of(T0);
        assert_eq!(
            resumes_at(&facts, now, 100),
            Timestamp::from_millis(first_hour + HOUR_MS + WINDOW_MS)
        );
        // A day and two hours later only the later hour counts; recording forgets the rest.
        let later = T0.plus_millis(WINDOW_MS + 2 * HOUR_MS);
        assert_eq!(used(&facts, later), 40);
        record(&mut facts, later, 0);
        assert_eq!(facts.api_calls.len(), 1);
        assert_eq!(resumes_at(&facts, later, 100), later);
    }
}
