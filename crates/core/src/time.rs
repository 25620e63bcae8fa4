//! A timestamp without a clock: the caller supplies `now`, the core only carries and prints it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Milliseconds since the Unix epoch, UTC.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }
    pub const fn millis(self) -> i64 {
        self.0
    }
    pub const fn seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }
    /// The instant `ms` milliseconds later (or earlier when negative).
    pub const fn plus_millis(self, ms: i64) -> Self {
        Self(self.0 + ms)
    }

    /// Parses an RFC 3339 UTC instant (`2026-11-22T10:00:00Z`, fractional seconds optional).
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let text = text.trim();
        let text = text
            .strip_suffix('Z')
            .or_else(|| text.strip_suffix("+00:00"))?;
        let (date, time) = text.split_once(['T', ' '])?;
        let mut d = date.splitn(3, '-');
        let year: i64 = d.next()?.parse().ok()?;
        let month: u32 = d.next()?.parse().ok()?;
        let day: u32 = d.next()?.parse().ok()?;
        let (hms, frac) = match time.split_once('.') {
            Some((hms, frac)) => (hms, frac),
            None => (time, ""),
        };
        let mut t = hms.splitn(3, ':');
        let hour: i64 = t.next()?.parse().ok()?;
        let minute: i64 = t.next()?.parse().ok()?;
        let second: i64 = t.next()?.parse().ok()?;
        if !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return None;
        }
        let millis: i64 = if frac.is_empty() {
            0
        } else {
            let digits: String = frac.chars().take(3).collect();
            if !digits.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            format!("{digits:0<3}").parse().ok()?
        };
        let days = days_from_civil(year, month, day);
        Some(Self(
            ((days * 86_400 + hour * 3600 + minute * 60 + second) * 1000) + millis,
        ))
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with millisecond precision: `2026-11-22T10:00:00.000Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(1000);
        let ms = self.0.rem_euclid(1000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60
        )
    }
}

// Howard Hinnant's civil calendar algorithms (public domain description).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        let t = Timestamp(1_795_000_000_123);
        let text = t.to_string();
        assert_eq!(Timestamp::parse_rfc3339(&text), Some(t));
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Timestamp::parse_rfc3339("2024-02-29T23:59:59Z"),
            Some(Timestamp(1_709_251_199_000))
        );
        assert_eq!(Timestamp::parse_rfc3339("2024-13-01T00:00:00Z"), None);
    }
}
