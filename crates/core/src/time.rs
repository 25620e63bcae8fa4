//! A timestamp without a clock: the caller supplies `now`, the core only carries and prints it.
//!
//! One time format everywhere a time is shown or exported (tables, JSON, JSON lines, CSV, the
//! web view): RFC 3339 in UTC with millisecond precision and a `Z`,
//! `2026-11-22T10:00:00.000Z`. The calendar arithmetic is chrono's (its clock stays off).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Milliseconds since the Unix epoch, UTC. Serialized as its RFC 3339 text; read back from
/// that text or from a number of milliseconds (what earlier versions wrote).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
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

    /// Parses an RFC 3339 instant (`2026-11-22T10:00:00Z`, fractional seconds optional; an
    /// offset other than `Z` is converted to UTC). Precision beyond milliseconds is dropped.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let parsed = DateTime::parse_from_rfc3339(text.trim()).ok()?;
        Some(Self(parsed.timestamp_millis()))
    }

    /// The instant as chrono's UTC time (`None` beyond chrono's range, some 262,000 years).
    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_millis(self.0)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with millisecond precision: `2026-11-22T10:00:00.000Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_datetime() {
            Some(t) => f.write_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true)),
            // Out of any calendar's range: the raw milliseconds, plainly not a date.
            None => write!(f, "{}ms", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Millis(i64),
            Text(String),
        }
        match Either::deserialize(deserializer)? {
            Either::Millis(ms) => Ok(Self(ms)),
            Either::Text(text) => Self::parse_rfc3339(&text).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{text:?} is not an RFC 3339 time such as 2026-11-22T10:00:00Z"
                ))
            }),
        }
    }
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
        assert_eq!(
            Timestamp::parse_rfc3339("2024-03-01T01:59:59+02:00"),
            Some(Timestamp(1_709_251_199_000))
        );
        assert_eq!(Timestamp::parse_rfc3339("2024-13-01T00:00:00Z"), None);
        assert_eq!(Timestamp::parse_rfc3339("2024-02-30T00:00:00Z"), None);
    }

    #[test]
    fn serialized_as_rfc3339_text_and_read_from_text_or_millis() {
        let t = Timestamp(1_709_251_199_000);
        let json = serde_json::to_string(&t).unwrap_or_default();
        assert_eq!(json, "\"2024-02-29T23:59:59.000Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).ok(), Some(t));
        assert_eq!(
            serde_json::from_str::<Timestamp>("1709251199000").ok(),
            Some(t)
        );
        let bad = serde_json::from_str::<Timestamp>("\"yesterday\"")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            bad.contains("\"yesterday\" is not an RFC 3339 time"),
            "{bad}"
        );
    }
}
