//! Reading a running agent's local API (found through its `run/api.addr` file) and the
//! hub's Prometheus text, the way the tests, the benchmarks and the demo all need to.

use poros_protocol::page::NEXT_CURSOR_HEADER;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The `HOST:PORT` an address file holds, if it exists.
pub fn addr(file: &Path) -> Option<String> {
    Some(std::fs::read_to_string(file).ok()?.trim().to_string())
}

/// GET `path` on the API whose address is in `addr_file`; `None` unless it answers 2xx JSON.
pub fn get(http: &reqwest::blocking::Client, addr_file: &Path, path: &str) -> Option<Value> {
    let r = http
        .get(format!("http://{}{path}", addr(addr_file)?))
        .send()
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().ok()
}

/// Every item of a paged listing at `addr` (1,000 a page, following the next-page cursor);
/// `None` if a page fails.
pub fn list(http: &reqwest::blocking::Client, addr: &str, path: &str) -> Option<Vec<Value>> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut q = vec![("limit", "1000".to_string())];
        if let Some(a) = after.take() {
            q.push(("after", a));
        }
        let r = http
            .get(format!("http://{addr}{path}"))
            .query(&q)
            .send()
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        let next = r
            .headers()
            .get(NEXT_CURSOR_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let page: Value = r.json().ok()?;
        all.extend(page.as_array()?.iter().cloned());
        match next {
            Some(n) => after = Some(n),
            None => return Some(all),
        }
    }
}

/// Per-recipient states (`agency -> state`) of a `GET /v1/documents/ID` answer.
pub fn recipient_states(v: &Value) -> BTreeMap<String, String> {
    v["recipients"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["agency"].as_str().unwrap_or("?").to_string(),
                r["state"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

/// The value text of metric `name` (with its labels, if any) in Prometheus text.
pub fn metric_value<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| Some(l.strip_prefix(name)?.strip_prefix(' ')?.trim()))
}
