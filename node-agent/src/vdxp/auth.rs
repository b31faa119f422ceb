//! Who may call the SDK facade: the checks every request passes before its operation runs,
//! IO-free. The national platform's SDK signs a request by listing header names in
//! `XroadVnpt-sign-header-key` (joined by `;`), putting those headers as a JSON object in
//! `XroadVnpt-sign-header`, and sending the hex HMAC-SHA256 of that JSON text under the shared
//! secret as `XroadVnpt-hash-header`. A request passes when:
//! - the HMAC holds (compared in constant time);
//! - every signed header says what the request's own header says, and the system id and the
//!   timestamp are among them (with `hash-file` for an upload);
//! - the system id is this agency's code;
//! - the timestamp (`ddMMyyyy'T'HHmmss+SSS`, the DMS's local time) is within the window of the
//!   agent's clock, and not before the listener started (a request captured before a restart
//!   cannot come back after it);
//! - the same signature was not seen within the window (a replay).
//!
//! Headers the operation does not use are ignored: the SDK sends again headers left over from
//! its earlier calls.

use ring::hmac;
use serde_json::Value;
use std::collections::HashMap;

/// The prefix of every SDK header.
pub const PREFIX: &str = "xroadvnpt-";

/// Why a request was refused before its operation ran. Each has its own `ErrorCode` and text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A header the check needs is absent.
    #[error("missing header XroadVnpt-{0}")]
    Missing(&'static str),
    /// `sign-header` is not a JSON object of strings.
    #[error("XroadVnpt-sign-header is not a JSON object of header values: {0}")]
    SignHeaderMalformed(String),
    /// The HMAC does not match.
    #[error("XroadVnpt-hash-header does not match the HMAC-SHA256 of XroadVnpt-sign-header under this system's secret")]
    BadHmac,
    /// A header that must be signed is not.
    #[error("header XroadVnpt-{0} must be signed (listed in XroadVnpt-sign-header-key and XroadVnpt-sign-header)")]
    Unsigned(&'static str),
    /// A signed value differs from the request's header.
    #[error("signed value of XroadVnpt-{0} differs from the request's header")]
    SignedMismatch(String),
    /// The system id is another agency's.
    #[error("XroadVnpt-systemid {got:?} is not this agency ({want})")]
    WrongSystem {
        /// As sent.
        got: String,
        /// This agency.
        want: String,
    },
    /// The timestamp does not parse.
    #[error("XroadVnpt-timestamp {0:?} is not written ddMMyyyy'T'HHmmss+SSS")]
    BadTimestamp(String),
    /// The timestamp is outside the window.
    #[error("XroadVnpt-timestamp {ts:?} is {skew_secs} s from the agent's clock; at most {window_secs} s is accepted (check the DMS's clock and time zone)")]
    Stale {
        /// As sent.
        ts: String,
        /// Distance from the agent's clock.
        skew_secs: i64,
        /// The configured window.
        window_secs: u64,
    },
    /// Signed before this listener started.
    #[error("XroadVnpt-timestamp {0:?} is before this agent started; a request is not accepted across a restart, send it again")]
    BeforeStart(String),
    /// Seen before.
    #[error("replayed request: the same signed headers were already accepted")]
    Replay,
    /// More signed requests within the window than the replay guard holds.
    #[error("too many requests within the timestamp window; retry later")]
    Busy,
}

impl AuthError {
    /// The `ErrorCode` answered for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing(_) | AuthError::SignHeaderMalformed(_) => "10",
            AuthError::BadHmac => "11",
            AuthError::Unsigned(_) | AuthError::SignedMismatch(_) => "12",
            AuthError::WrongSystem { .. } => "13",
            AuthError::BadTimestamp(_) | AuthError::Stale { .. } | AuthError::BeforeStart(_) => {
                "14"
            }
            AuthError::Replay => "15",
            AuthError::Busy => "16",
        }
    }

    /// Stable word for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            AuthError::Missing(_) => "missing_header",
            AuthError::SignHeaderMalformed(_) => "sign_header_malformed",
            AuthError::BadHmac => "bad_hmac",
            AuthError::Unsigned(_) => "unsigned_header",
            AuthError::SignedMismatch(_) => "signed_mismatch",
            AuthError::WrongSystem { .. } => "wrong_systemid",
            AuthError::BadTimestamp(_) => "bad_timestamp",
            AuthError::Stale { .. } => "stale_timestamp",
            AuthError::BeforeStart(_) => "before_start",
            AuthError::Replay => "replay",
            AuthError::Busy => "busy",
        }
    }
}

/// The request's `XroadVnpt-*` headers by lower-case name without the prefix.
#[derive(Clone, Debug, Default)]
pub struct SdkHeaders(HashMap<String, String>);

impl SdkHeaders {
    /// Collect from (name, value) pairs; other headers are ignored, names compared without
    /// regard to case.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut m = HashMap::new();
        for (k, v) in pairs {
            let k = k.to_ascii_lowercase();
            if let Some(name) = k.strip_prefix(PREFIX) {
                m.insert(name.to_string(), v.to_string());
            }
        }
        SdkHeaders(m)
    }

    /// A header by its name without the prefix (any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// A header the operation needs.
    pub fn need(&self, name: &'static str) -> Result<&str, AuthError> {
        self.get(name).ok_or(AuthError::Missing(name))
    }
}

/// What the check needs besides the request.
pub struct Policy<'a> {
    /// The shared secret.
    pub secret: &'a [u8],
    /// This agency's code: the only system id accepted.
    pub system_id: &'a str,
    /// Accepted distance from the agent's clock, seconds.
    pub window_secs: u64,
    /// The DMS's time zone, seconds east of UTC.
    pub utc_offset_secs: i64,
    /// When the listener started, Unix ms.
    pub started_ms: u64,
}

/// A request that passed: its signature (the replay key) and its time, Unix ms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Passed {
    /// The HMAC as sent (it verified, so it is 32 bytes).
    pub signature: [u8; 32],
    /// The request's timestamp, Unix ms.
    pub at_ms: u64,
}

/// Check a request's signature, signed headers, system id and timestamp at `now_ms`.
/// `must_sign` names the operation's headers that must be covered by the signature besides
/// the system id and timestamp. Replays are the caller's ([`ReplayGuard`]).
pub fn check(
    h: &SdkHeaders,
    must_sign: &[&'static str],
    policy: &Policy<'_>,
    now_ms: u64,
) -> Result<Passed, AuthError> {
    let sign_header = h.need("sign-header")?;
    let given = h.need("hash-header")?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, policy.secret);
    let given_bytes = hex::decode(given.trim()).map_err(|_| AuthError::BadHmac)?;
    hmac::verify(&key, sign_header.as_bytes(), &given_bytes).map_err(|_| AuthError::BadHmac)?;
    // Only now, with the signature known to be this system's, is its content read.
    let signed: serde_json::Map<String, Value> = match serde_json::from_str(sign_header) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(AuthError::SignHeaderMalformed("not an object".into())),
        Err(e) => return Err(AuthError::SignHeaderMalformed(e.to_string())),
    };
    let listed: Vec<String> = h
        .get("sign-header-key")
        .unwrap_or_default()
        .split(';')
        .map(|s| normalize(s.trim()))
        .filter(|s| !s.is_empty())
        .collect();
    let mut covered = HashMap::new();
    for (k, v) in &signed {
        let name = normalize(k);
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => other.to_string(),
        };
        if let Some(actual) = h.get(&name) {
            if actual != text {
                return Err(AuthError::SignedMismatch(name));
            }
        }
        covered.insert(name, text);
    }
    let is_signed = |name: &str| covered.contains_key(name) && listed.iter().any(|l| l == name);
    for name in ["systemid", "timestamp"].iter().chain(must_sign) {
        if h.get(name).is_some() && !is_signed(name) {
            return Err(AuthError::Unsigned(name));
        }
    }
    let system = h.need("systemid")?;
    if system != policy.system_id {
        return Err(AuthError::WrongSystem {
            got: system.to_string(),
            want: policy.system_id.to_string(),
        });
    }
    let ts = h.need("timestamp")?;
    let at_ms = parse_timestamp(ts, policy.utc_offset_secs)
        .ok_or_else(|| AuthError::BadTimestamp(ts.to_string()))?;
    let skew_ms = at_ms as i64 - now_ms as i64;
    if skew_ms.unsigned_abs() > policy.window_secs * 1000 {
        return Err(AuthError::Stale {
            ts: ts.to_string(),
            skew_secs: skew_ms / 1000,
            window_secs: policy.window_secs,
        });
    }
    if at_ms < policy.started_ms {
        return Err(AuthError::BeforeStart(ts.to_string()));
    }
    let signature = given_bytes.try_into().map_err(|_| AuthError::BadHmac)?;
    Ok(Passed { signature, at_ms })
}

/// A signed header's name as compared: lower case, without the `XroadVnpt-` prefix.
fn normalize(name: &str) -> String {
    let l = name.to_ascii_lowercase();
    l.strip_prefix(PREFIX).map(str::to_string).unwrap_or(l)
}

/// `ddMMyyyy'T'HHmmss+SSS` in a zone `offset_secs` east of UTC, as Unix ms.
pub fn parse_timestamp(s: &str, offset_secs: i64) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 19 || b[8] != b'T' || b[15] != b'+' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = &s[r];
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (d, mo, y) = (num(0..2)?, num(2..4)?, num(4..8)?);
    let (hh, mm, ss, ms) = (num(9..11)?, num(11..13)?, num(13..15)?, num(16..19)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || hh > 23 || mm > 59 || ss > 59
    {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    let local = days * 86_400 + hh * 3600 + mm * 60 + ss;
    let utc_ms = (local - offset_secs) * 1000 + ms;
    u64::try_from(utc_ms).ok()
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Signatures accepted within the window, so a replay is refused. Entries older than the
/// window are dropped as new ones arrive; past `capacity` live entries every request is
/// refused as a possible flood rather than forgetting one that might come back.
pub struct ReplayGuard {
    window_ms: u64,
    capacity: usize,
    seen: HashMap<[u8; 32], u64>,
    by_time: std::collections::BTreeSet<(u64, [u8; 32])>,
}

impl ReplayGuard {
    /// A guard for `window_secs`, holding at most `capacity` signatures.
    pub fn new(window_secs: u64, capacity: usize) -> Self {
        ReplayGuard {
            window_ms: window_secs * 1000,
            capacity,
            seen: HashMap::new(),
            by_time: Default::default(),
        }
    }

    /// Record `p` at `now_ms`; a signature already held is a replay.
    pub fn admit(&mut self, p: &Passed, now_ms: u64) -> Result<(), AuthError> {
        // A signature can be replayed while its timestamp is within the window of the clock:
        // keep it until then.
        let horizon = now_ms.saturating_sub(self.window_ms);
        while let Some(&(t, sig)) = self.by_time.first() {
            if t + self.window_ms >= horizon {
                break;
            }
            self.by_time.pop_first();
            self.seen.remove(&sig);
        }
        if self.seen.contains_key(&p.signature) {
            return Err(AuthError::Replay);
        }
        if self.seen.len() >= self.capacity {
            return Err(AuthError::Busy);
        }
        self.seen.insert(p.signature, p.at_ms);
        self.by_time.insert((p.at_ms, p.signature));
        Ok(())
    }
}

/// The SDK's file hash: SHA-256, each byte written in hex without zero padding
/// (`0x0a` is `a`), so compared as that text.
pub fn unpadded_hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Write Unix ms as `ddMMyyyy'T'HHmmss+SSS` in a zone `offset_secs` east of UTC.
    fn format_timestamp(unix_ms: u64, offset_secs: i64) -> String {
        let local_ms = unix_ms as i64 + offset_secs * 1000;
        let (secs, ms) = (local_ms.div_euclid(1000), local_ms.rem_euclid(1000));
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        format!(
            "{d:02}{m:02}{y:04}T{:02}{:02}{:02}+{ms:03}",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }

    /// Sign `headers` (name without prefix, value) as the SDK does: the JSON object of them and
    /// its hex HMAC-SHA256.
    fn sign(secret: &[u8], headers: &[(&str, &str)]) -> (String, String, String) {
        let mut m = serde_json::Map::new();
        for (k, v) in headers {
            m.insert(format!("XroadVnpt-{k}"), Value::String(v.to_string()));
        }
        let json = Value::Object(m).to_string();
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let mac = hex::encode(hmac::sign(&key, json.as_bytes()).as_ref());
        let names = headers
            .iter()
            .map(|(k, _)| format!("XroadVnpt-{k}"))
            .collect::<Vec<_>>()
            .join(";");
        (names, json, mac)
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const ME: &str = "000.00.00.G22";
    const VN: i64 = 7 * 3600;

    fn policy(started_ms: u64) -> Policy<'static> {
        Policy {
            secret: SECRET,
            system_id: ME,
            window_secs: 300,
            utc_offset_secs: VN,
            started_ms,
        }
    }

    fn request(signed: &[(&str, &str)], extra: &[(&str, &str)]) -> SdkHeaders {
        let (names, json, mac) = sign(SECRET, signed);
        let mut pairs: Vec<(String, String)> = signed
            .iter()
            .chain(extra)
            .map(|(k, v)| (format!("XroadVnpt-{k}"), v.to_string()))
            .collect();
        pairs.push(("XroadVnpt-sign-header-key".into(), names));
        pairs.push(("XroadVnpt-sign-header".into(), json));
        pairs.push(("XroadVnpt-hash-header".into(), mac));
        SdkHeaders::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    // 2026-12-01 10:00:00.250 in Hanoi is 03:00:00.250 UTC.
    const NOW: u64 = 1_796_094_000_250;
    const TS: &str = "01122026T100000+250";

    #[test]
    fn timestamps_read_and_write_in_the_dms_zone() {
        assert_eq!(parse_timestamp(TS, VN), Some(NOW));
        assert_eq!(format_timestamp(NOW, VN), TS);
        assert_eq!(
            parse_timestamp("29022024T235959+999", 0).map(|t| format_timestamp(t, 0)),
            Some("29022024T235959+999".into())
        );
        for bad in [
            "30022026T100000+250",
            "01132026T100000+000",
            "01122026 100000+250",
            "0112202T100000+2500",
            "01122026T246000+000",
            "01122026T100000-250",
        ] {
            assert_eq!(parse_timestamp(bad, VN), None, "{bad}");
        }
    }

    #[test]
    fn a_well_signed_request_passes_with_leftover_headers() {
        let h = request(
            &[("systemid", ME), ("timestamp", TS), ("docId", "abc")],
            &[("from", "000.00.00.H01"), ("messagetype", "edoc")],
        );
        let p = check(&h, &["docid"], &policy(0), NOW + 1000).unwrap();
        assert_eq!(p.at_ms, NOW);
    }

    #[test]
    fn each_refusal_names_its_cause() {
        let good = [("systemid", ME), ("timestamp", TS)];
        // Wrong secret.
        let mut h = request(&good, &[]);
        let (_, json, _) = sign(SECRET, &good);
        let (_, _, other_mac) = sign(b"another secret", &good);
        h.0.insert("sign-header".into(), json);
        h.0.insert("hash-header".into(), other_mac);
        assert_eq!(check(&h, &[], &policy(0), NOW), Err(AuthError::BadHmac));
        // Not hex at all.
        let mut h = request(&good, &[]);
        h.0.insert("hash-header".into(), "zz".into());
        assert_eq!(check(&h, &[], &policy(0), NOW), Err(AuthError::BadHmac));
        // Signed values that differ from the request's header.
        let mut h = request(&good, &[]);
        h.0.insert("timestamp".into(), "01122026T100001+250".into());
        assert_eq!(
            check(&h, &[], &policy(0), NOW),
            Err(AuthError::SignedMismatch("timestamp".into()))
        );
        // An operation header left unsigned.
        let h = request(&good, &[("hash-file", "ab")]);
        assert_eq!(
            check(&h, &["hash-file"], &policy(0), NOW),
            Err(AuthError::Unsigned("hash-file"))
        );
        // Another agency's system id.
        let h = request(&[("systemid", "000.00.00.H01"), ("timestamp", TS)], &[]);
        assert!(matches!(
            check(&h, &[], &policy(0), NOW),
            Err(AuthError::WrongSystem { .. })
        ));
        // Stale, either way.
        let h = request(&good, &[]);
        let e = check(&h, &[], &policy(0), NOW + 301_000).unwrap_err();
        assert!(
            matches!(
                e,
                AuthError::Stale {
                    skew_secs: -301,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("time zone"));
        assert!(check(&h, &[], &policy(0), NOW - 301_000).is_err());
        // Before the listener started.
        assert_eq!(
            check(&h, &[], &policy(NOW + 1), NOW + 2),
            Err(AuthError::BeforeStart(TS.into()))
        );
        // No signature at all.
        let h = SdkHeaders::from_pairs([("XroadVnpt-systemid", ME)]);
        assert_eq!(
            check(&h, &[], &policy(0), NOW),
            Err(AuthError::Missing("sign-header"))
        );
        // Every refusal has its own text.
        let texts: std::collections::HashSet<String> = [
            AuthError::BadHmac,
            AuthError::Replay,
            AuthError::Unsigned("x"),
            AuthError::BadTimestamp("x".into()),
            AuthError::BeforeStart("x".into()),
        ]
        .iter()
        .map(|e| e.to_string())
        .collect();
        assert_eq!(texts.len(), 5);
    }

    #[test]
    fn a_replay_is_refused_within_the_window_and_forgotten_after() {
        let mut g = ReplayGuard::new(300, 10);
        let p = Passed {
            signature: [0xaa; 32],
            at_ms: NOW,
        };
        g.admit(&p, NOW).unwrap();
        assert_eq!(g.admit(&p, NOW + 299_000), Err(AuthError::Replay));
        // Once its timestamp is outside the window the check above refuses it as stale, and
        // the guard may forget it.
        g.admit(
            &Passed {
                signature: [0xbb; 32],
                at_ms: NOW + 700_000,
            },
            NOW + 700_000,
        )
        .unwrap();
        assert!(!g.seen.contains_key(&[0xaa; 32]));
        // A flood beyond capacity is refused, not forgotten.
        let mut g = ReplayGuard::new(300, 2);
        for s in [1u8, 2] {
            g.admit(
                &Passed {
                    signature: [s; 32],
                    at_ms: NOW,
                },
                NOW,
            )
            .unwrap();
        }
        assert_eq!(
            g.admit(
                &Passed {
                    signature: [3; 32],
                    at_ms: NOW
                },
                NOW
            ),
            Err(AuthError::Busy)
        );
    }

    #[test]
    fn the_file_hash_is_written_without_zero_padding() {
        assert_eq!(unpadded_hex(&[0x0a, 0xff, 0x00, 0x10]), "aff010");
    }
}
