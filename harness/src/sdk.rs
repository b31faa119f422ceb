//! A document-management system's side of the national platform's SDK protocol, written from
//! the protocol's published facts and independently of the agent's facade: every call an
//! HTTP request to `{endpoint}/<operation>`, its parameters `XroadVnpt-*` headers, signed by
//! listing them in `XroadVnpt-sign-header-key`, putting them as a JSON object in
//! `XroadVnpt-sign-header` and sending the hex HMAC-SHA256 of that text under the shared
//! secret as `XroadVnpt-hash-header`; uploads carry the file's SHA-256 written without zero
//! padding in `XroadVnpt-hash-file`. Answers are JSON.
//!
//! Like the real SDK it sends again headers left over from its earlier calls, so the facade's
//! tolerance of them is exercised on every call.

use crate::Error;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

/// The DMS's time zone used for timestamps (Vietnam, +07:00, as the facade assumes unless
/// configured otherwise).
pub const VN_OFFSET_SECS: i64 = 7 * 3600;

/// A DMS client of one agency's facade.
pub struct SdkClient {
    http: reqwest::blocking::Client,
    endpoint: String,
    system_id: String,
    secret: Vec<u8>,
    /// Headers of earlier calls, sent again (as the real SDK does).
    leftover: BTreeMap<String, String>,
    /// Milliseconds added to the clock for timestamps (a DMS whose clock is off).
    pub skew_ms: i64,
    /// The last timestamp used: two calls of the same operation and parameters within one
    /// millisecond would be the same signed request, which the facade refuses as a replay;
    /// a real DMS waits and retries, this client waits for the next millisecond.
    last_ms: std::cell::Cell<i64>,
}

/// One call's parameters: `XroadVnpt-<name>` headers.
pub type Params<'a> = &'a [(&'a str, &'a str)];

/// What a call sends besides its parameters.
pub enum Payload {
    /// No body.
    None,
    /// A file body (sendEdoc) and its length.
    File(Box<dyn Read + Send + 'static>, u64),
}

impl SdkClient {
    /// A client of the facade at `endpoint` (e.g. `http://127.0.0.1:8088`).
    pub fn new(endpoint: &str, system_id: &str, secret: &[u8]) -> SdkClient {
        SdkClient {
            http: reqwest::blocking::Client::builder()
                .timeout(None)
                .build()
                .expect("http client"),
            endpoint: endpoint.trim_end_matches('/').to_string(),
            system_id: system_id.to_string(),
            secret: secret.to_vec(),
            leftover: BTreeMap::new(),
            skew_ms: 0,
            last_ms: std::cell::Cell::new(0),
        }
    }

    /// The signed headers of a call with `params`, as the SDK builds them: (name, value)
    /// pairs including the three signature headers.
    pub fn signed_headers(&self, params: Params<'_>) -> Vec<(String, String)> {
        let clock = || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0)
                + self.skew_ms
        };
        let mut now = clock();
        while now <= self.last_ms.get() {
            std::thread::sleep(std::time::Duration::from_micros(200));
            now = clock();
        }
        self.last_ms.set(now);
        let mut signed: Vec<(String, String)> = vec![
            ("XroadVnpt-systemid".into(), self.system_id.clone()),
            (
                "XroadVnpt-timestamp".into(),
                sdk_timestamp(now, VN_OFFSET_SECS),
            ),
        ];
        for (k, v) in params {
            signed.push((format!("XroadVnpt-{k}"), v.to_string()));
        }
        let mut obj = serde_json::Map::new();
        for (k, v) in &signed {
            obj.insert(k.clone(), Value::String(v.clone()));
        }
        let text = Value::Object(obj).to_string();
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.secret);
        let mac = ring::hmac::sign(&key, text.as_bytes());
        let names: Vec<&str> = signed.iter().map(|(k, _)| k.as_str()).collect();
        let mut out = signed.clone();
        out.push(("XroadVnpt-sign-header-key".into(), names.join(";")));
        out.push(("XroadVnpt-sign-header".into(), text));
        out.push(("XroadVnpt-hash-header".into(), hex_lower(mac.as_ref())));
        out
    }

    /// Call `op` with `params` signed now; the answer's JSON.
    pub fn call(&mut self, op: &str, params: Params<'_>, payload: Payload) -> Result<Value, Error> {
        let headers = self.signed_headers(params);
        self.send(op, headers, payload)
    }

    /// Send `op` with exactly these headers (for tests that alter a signed request), plus
    /// the leftovers of earlier calls that these do not override.
    pub fn send(
        &mut self,
        op: &str,
        headers: Vec<(String, String)>,
        payload: Payload,
    ) -> Result<Value, Error> {
        let url = format!("{}/{op}", self.endpoint);
        let get = matches!(op, "countReceiveEdoc" | "countReceiveStatus");
        let mut req = if get {
            self.http.get(&url)
        } else {
            self.http.post(&url)
        };
        let own: std::collections::HashSet<String> = headers
            .iter()
            .map(|(k, _)| k.to_ascii_lowercase())
            .collect();
        for (k, v) in &self.leftover {
            if !own.contains(&k.to_ascii_lowercase()) {
                req = req.header(k, v);
            }
        }
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        if let Payload::File(r, len) = payload {
            req = req
                .header("content-type", "application/octet-stream")
                .body(reqwest::blocking::Body::sized(r, len));
        }
        let resp = req.send()?;
        let v: Value = resp.json()?;
        for (k, val) in headers {
            if !k.eq_ignore_ascii_case("XroadVnpt-hash-header") {
                self.leftover.insert(k, val);
            }
        }
        Ok(v)
    }

    /// `sendEdoc` of `file` (length `len`) with the given parameters and its hash.
    pub fn send_edoc(
        &mut self,
        params: Params<'_>,
        file: Box<dyn Read + Send + 'static>,
        len: u64,
        hash_file: &str,
    ) -> Result<Value, Error> {
        let mut all: Vec<(&str, &str)> = params.to_vec();
        all.push(("hash-file", hash_file));
        let headers = self.signed_headers(&all);
        self.send("sendEdoc", headers, Payload::File(file, len))
    }

    /// `getEdoc` of `id`, the file decoded from the answer's base64 as it streams in and
    /// written to `out` (never held whole); returns its length. A `FAIL` answer is an error
    /// naming its `ErrorDesc`.
    pub fn get_edoc_to(&mut self, id: &str, out: &mut dyn std::io::Write) -> Result<u64, Error> {
        use base64::Engine;
        let headers = self.signed_headers(&[("docId", id)]);
        let mut req = self.http.post(format!("{}/getEdoc", self.endpoint));
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        let mut resp = req.send()?;
        let io = |what: &str, e: std::io::Error| Error::Io {
            what: format!("getEdoc {id}: {what}"),
            source: e,
        };
        // The answer is {"status":"OK",...,"data":"<base64>"}: read up to the data's opening
        // quote, then decode the base64 in pieces until the closing quote.
        const KEY: &[u8] = b"\"data\":\"";
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(KEY) {
            let n = resp.read(&mut byte).map_err(|e| io("reading", e))?;
            if n == 0 || head.len() > 64 * 1024 {
                let text = String::from_utf8_lossy(&head).to_string();
                return Err(Error::Io {
                    what: format!("getEdoc {id} answered {text}"),
                    source: std::io::Error::other("no data"),
                });
            }
            head.push(byte[0]);
        }
        let mut buf = vec![0u8; 1 << 20];
        let mut carry: Vec<u8> = Vec::new();
        let mut total = 0u64;
        let mut done = false;
        while !done {
            let n = resp.read(&mut buf).map_err(|e| io("reading", e))?;
            if n == 0 {
                return Err(io(
                    "reading",
                    std::io::Error::other("answer ended inside data"),
                ));
            }
            let mut chunk = &buf[..n];
            if let Some(q) = chunk.iter().position(|&b| b == b'"') {
                chunk = &chunk[..q];
                done = true;
            }
            carry.extend_from_slice(chunk);
            let whole = if done {
                carry.len()
            } else {
                carry.len() / 4 * 4
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&carry[..whole])
                .map_err(|e| io("decoding", std::io::Error::other(e)))?;
            out.write_all(&bytes).map_err(|e| io("writing", e))?;
            total += bytes.len() as u64;
            carry.drain(..whole);
        }
        Ok(total)
    }

    /// `sendEdoc` of bytes in memory.
    pub fn send_bytes(&mut self, params: Params<'_>, file: &[u8]) -> Result<Value, Error> {
        let h = sdk_file_hash(file);
        self.send_edoc(
            params,
            Box::new(std::io::Cursor::new(file.to_vec())),
            file.len() as u64,
            &h,
        )
    }
}

/// `ddMMyyyy'T'HHmmss+SSS` of Unix ms in a zone `offset_secs` east of UTC.
pub fn sdk_timestamp(unix_ms: i64, offset_secs: i64) -> String {
    let local = unix_ms + offset_secs * 1000;
    let ms = local.rem_euclid(1000);
    let secs = local.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Walk the calendar from 1970: simple, and independent of the facade's arithmetic.
    let (mut y, mut d) = (1970i64, days);
    loop {
        let len = if leap(y) { 366 } else { 365 };
        if d < len {
            break;
        }
        d -= len;
        y += 1;
    }
    let months = [
        31,
        if leap(y) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let mut m = 0;
    while d >= months[m] {
        d -= months[m];
        m += 1;
    }
    format!(
        "{:02}{:02}{:04}T{:02}{:02}{:02}+{:03}",
        d + 1,
        m + 1,
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms
    )
}

fn leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The SDK's file hash: SHA-256 with each byte in hex without zero padding.
pub fn sdk_file_hash(data: &[u8]) -> String {
    unpadded(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// Bytes in hex without zero padding (`0x0a` → `a`).
pub fn unpadded(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:x}")).collect()
}

/// Whether an answer is `status: OK`.
pub fn is_ok(v: &Value) -> bool {
    v["status"] == "OK" && v["ErrorCode"] == "0"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_written_as_the_sdk_does() {
        // 2024-02-29 23:59:59.007 in Hanoi.
        let ms = 1_709_225_999_007;
        assert_eq!(sdk_timestamp(ms, VN_OFFSET_SECS), "29022024T235959+007");
    }
}
