//! Verifying Duo request signatures (fact sheet §1): the canonical strings of v2 and v5, the
//! parameter canonicalisation, and the `Date` freshness check. Written from the spec, not
//! shared with the reader in `crates/directory`, so the two check each other.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha1::Sha1;
use sha2::{Digest, Sha512};

/// Bytes `quote(x, '~')` leaves alone: letters, digits, `-`, `.`, `_`, `~`.
const DUO_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What a signed request is made of, decoded from the wire.
#[derive(Debug)]
pub(crate) struct SignedRequest<'a> {
    pub(crate) method: &'a str,
    /// The host the client signed (the `Host` header unless configured otherwise).
    pub(crate) host: &'a str,
    pub(crate) path: &'a str,
    /// Decoded parameters: the query, plus a form body's for v2 POSTs.
    pub(crate) params: &'a [(String, String)],
    /// Raw request body (hashed by v5).
    pub(crate) body: &'a [u8],
    /// `x-duo-*` headers, names as sent.
    pub(crate) x_duo_headers: &'a [(String, String)],
    /// True when the body is JSON: v5 then signs an empty params line.
    pub(crate) json_body: bool,
}

/// Why a request's credentials were refused, with Duo's error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    /// No `Authorization: Basic` header, or not `ikey:hexsig` inside.
    MalformedAuthorization,
    UnknownIntegrationKey,
    BadSignature,
    MissingDate,
    StaleDate,
}

impl AuthFailure {
    /// Duo's five-digit code. Only 40103 is confirmed (fact sheet §4); the others are this
    /// emulator's choice.
    pub(crate) fn code(&self) -> u32 {
        match self {
            Self::UnknownIntegrationKey => 40101,
            Self::MalformedAuthorization => 40102,
            Self::BadSignature => 40103,
            Self::MissingDate => 40105,
            Self::StaleDate => 40106,
        }
    }

    pub(crate) fn message(&self) -> &'static str {
        match self {
            Self::UnknownIntegrationKey => "Invalid integration key in request credentials",
            Self::MalformedAuthorization => "Missing or malformed request credentials",
            Self::BadSignature => "Invalid signature in request credentials",
            Self::MissingDate => "Missing or unparsable Date header",
            Self::StaleDate => "Request date is stale",
        }
    }
}

/// Splits `Basic base64(ikey:hexsig)` into the ikey and the signature bytes.
pub(crate) fn parse_authorization(value: &str) -> Result<(String, Vec<u8>), AuthFailure> {
    let encoded = value
        .strip_prefix("Basic ")
        .ok_or(AuthFailure::MalformedAuthorization)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| AuthFailure::MalformedAuthorization)?;
    let text = String::from_utf8(decoded).map_err(|_| AuthFailure::MalformedAuthorization)?;
    let (ikey, sig) = text
        .split_once(':')
        .ok_or(AuthFailure::MalformedAuthorization)?;
    // Signatures are hex; a non-hex one can never match, which is a signature failure.
    let sig = hex::decode(sig).map_err(|_| AuthFailure::BadSignature)?;
    Ok((ikey.to_owned(), sig))
}

/// Duo's `canon_params`: percent-encode keys and values, sort by encoded key then value,
/// join `k=v` with `&`.
pub(crate) fn canon_params(params: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| {
            (
                utf8_percent_encode(k, DUO_UNRESERVED).to_string(),
                utf8_percent_encode(v, DUO_UNRESERVED).to_string(),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn sha512_hex(bytes: &[u8]) -> String {
    hex::encode(Sha512::digest(bytes))
}

/// `sha512(name\0value\0...)` over the lower-cased, sorted `x-duo-*` headers.
fn x_duo_hash(headers: &[(String, String)]) -> String {
    let mut sorted: Vec<(String, &str)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
        .collect();
    sorted.sort();
    let joined = sorted
        .iter()
        .flat_map(|(k, v)| [k.as_str(), *v])
        .collect::<Vec<_>>()
        .join("\0");
    sha512_hex(joined.as_bytes())
}

/// The v2 canonical string.
pub(crate) fn canonical_v2(date: &str, request: &SignedRequest<'_>) -> String {
    [
        date,
        &request.method.to_ascii_uppercase(),
        &request.host.to_ascii_lowercase(),
        request.path,
        &canon_params(request.params),
    ]
    .join("\n")
}

/// The v5 canonical string.
pub(crate) fn canonical_v5(date: &str, request: &SignedRequest<'_>) -> String {
    let params = if request.json_body {
        String::new()
    } else {
        canon_params(request.params)
    };
    [
        date,
        &request.method.to_ascii_uppercase(),
        &request.host.to_ascii_lowercase(),
        request.path,
        &params,
        &sha512_hex(request.body),
        &x_duo_hash(request.x_duo_headers),
    ]
    .join("\n")
}

/// The signature schemes the emulator accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureScheme {
    /// v2 canonical string, HMAC-SHA1 (Duo's documented example).
    V2Sha1,
    /// v2 canonical string, HMAC-SHA512 (`duo_client` with `sig_version=2`).
    V2Sha512,
    /// v5 canonical string with body and `x-duo-*` header hashes (`duo_client`'s default).
    V5,
}

/// Which scheme `signature` is a valid signature of the request under `secret` for, if any.
/// Comparisons are constant-time.
pub(crate) fn matching_scheme(
    secret: &str,
    date: &str,
    request: &SignedRequest<'_>,
    signature: &[u8],
) -> Option<SignatureScheme> {
    let key = secret.as_bytes();
    match signature.len() {
        20 => verify::<Hmac<Sha1>>(key, &canonical_v2(date, request), signature)
            .then_some(SignatureScheme::V2Sha1),
        64 => {
            if verify::<Hmac<Sha512>>(key, &canonical_v5(date, request), signature) {
                Some(SignatureScheme::V5)
            } else {
                verify::<Hmac<Sha512>>(key, &canonical_v2(date, request), signature)
                    .then_some(SignatureScheme::V2Sha512)
            }
        }
        _ => None,
    }
}

fn verify<M: Mac + KeyInit>(key: &[u8], canonical: &str, signature: &[u8]) -> bool {
    let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
        return false;
    };
    mac.update(canonical.as_bytes());
    mac.verify_slice(signature).is_ok()
}

/// Checks `Date` is parseable and within `max_skew` of `now`.
pub(crate) fn check_date(
    date: Option<&str>,
    now: SystemTime,
    max_skew: Duration,
) -> Result<(), AuthFailure> {
    let sent = date
        .and_then(parse_rfc2822)
        .ok_or(AuthFailure::MissingDate)?;
    let now = now
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let skew = now.abs_diff(sent);
    if skew > max_skew.as_secs() {
        return Err(AuthFailure::StaleDate);
    }
    Ok(())
}

/// Parses an RFC 2822 date as Python's `formatdate` writes it
/// (`Tue, 21 Aug 2012 17:29:18 -0000`), also accepting `GMT`/`UTC`/`+HHMM` zones and a missing
/// weekday. Returns Unix seconds.
pub(crate) fn parse_rfc2822(text: &str) -> Option<i64> {
    let text = text.trim();
    let text = match text.split_once(',') {
        Some((_, rest)) => rest,
        None => text,
    };
    let mut parts = text.split_whitespace();
    let day: i64 = parts.next()?.parse().ok()?;
    let month = match parts.next()?.to_ascii_lowercase().as_str() {
        "jan" => 1,
        "feb" => 2,
        "mar" => 3,
        "apr" => 4,
        "may" => 5,
        "jun" => 6,
        "jul" => 7,
        "aug" => 8,
        "sep" => 9,
        "oct" => 10,
        "nov" => 11,
        "dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':');
    let hour: i64 = hms.next()?.parse().ok()?;
    let minute: i64 = hms.next()?.parse().ok()?;
    let second: i64 = hms.next().map_or(Some(0), |s| s.parse().ok())?;
    let zone = parts.next()?;
    if parts.next().is_some()
        || !(1..=31).contains(&day)
        || !(0..24).contains(&hour)
        || !(0..60).contains(&minute)
        || !(0..=60).contains(&second)
    {
        return None;
    }
    let offset = match zone {
        "GMT" | "UTC" | "UT" | "Z" => 0,
        _ => {
            let (sign, digits) = match zone.as_bytes().first()? {
                b'+' => (1, &zone[1..]),
                b'-' => (-1, &zone[1..]),
                _ => return None,
            };
            if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let hh: i64 = digits[..2].parse().ok()?;
            let mm: i64 = digits[2..].parse().ok()?;
            sign * (hh * 3600 + mm * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(params: &'a [(String, String)]) -> SignedRequest<'a> {
        SignedRequest {
            method: "POST",
            host: "api-XXXXXXXX.duosecurity.com",
            path: "/accounts/v1/account/list",
            params,
            body: b"",
            x_duo_headers: &[],
            json_body: false,
        }
    }

    #[test]
    fn duo_documented_v2_sha1_example_verifies() {
        // Fact sheet §9: Duo's documented example.
        let params = [
            ("realname".to_owned(), "First Last".to_owned()),
            ("username".to_owned(), "root".to_owned()),
        ];
        let date = "Tue, 21 Aug 2012 17:29:18 -0000";
        let canonical = canonical_v2(date, &request(&params));
        assert_eq!(
            canonical,
            "Tue, 21 Aug 2012 17:29:18 -0000\nPOST\napi-xxxxxxxx.duosecurity.com\n/accounts/v1/account/list\nrealname=First%20Last&username=root"
        );
        let sig = hex::decode("2d97d6166319781b5a3a07af39d366f491234edc").unwrap();
        assert_eq!(
            matching_scheme(
                "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep",
                date,
                &request(&params),
                &sig
            ),
            Some(SignatureScheme::V2Sha1)
        );
        assert_eq!(
            matching_scheme("wrong", date, &request(&params), &sig),
            None
        );
    }

    #[test]
    fn params_are_encoded_then_sorted() {
        let params: Vec<(String, String)> = [
            ("foo_bar", "2"),
            ("foo", "a b"),
            ("z", "~+/*@é"),
            ("foo", "1"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(
            canon_params(&params),
            "foo=1&foo=a%20b&foo_bar=2&z=~%2B%2F%2A%40%C3%A9"
        );
    }

    #[test]
    fn dates_parse_in_every_zone_form() {
        let base = parse_rfc2822("Tue, 21 Aug 2012 17:29:18 -0000");
        assert_eq!(base, Some(1_345_570_158));
        assert_eq!(parse_rfc2822("Tue, 21 Aug 2012 17:29:18 GMT"), base);
        assert_eq!(parse_rfc2822("Tue, 21 Aug 2012 19:29:18 +0200"), base);
        assert_eq!(parse_rfc2822("21 Aug 2012 12:29:18 -0500"), base);
        for bad in [
            "",
            "yesterday",
            "Tue, 21 Foo 2012 17:29:18 -0000",
            "Tue, 21 Aug 2012 25:00:00 GMT",
        ] {
            assert_eq!(parse_rfc2822(bad), None, "{bad}");
        }
    }
}
