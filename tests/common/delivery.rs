//! What every crash and failover test checks at the end: each acknowledged document in its
//! recipient's inbox exactly once with the right body, and one verified "delivered" receipt
//! for it at its sender.

use super::{recipient_states, wait_until, Net};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How long the network has to deliver everything after the last fault.
pub const RECOVERY: Duration = Duration::from_secs(120);

/// Acknowledged documents: ID → (sender, recipient, body SHA-256 hex).
pub type Sent = BTreeMap<String, (String, String, String)>;

/// Every acknowledged document is in its recipient's inbox exactly once with the right body,
/// and every sender holds exactly one verified "delivered" receipt for each.
pub fn check_all_delivered(net: &Net, sent: &Sent) {
    let recipients: BTreeSet<&str> = sent.values().map(|(_, to, _)| to.as_str()).collect();
    let senders: BTreeSet<&str> = sent.values().map(|(from, _, _)| from.as_str()).collect();
    for r in recipients {
        let want: BTreeSet<&str> = sent
            .iter()
            .filter(|(_, (_, to, _))| to == r)
            .map(|(id, _)| id.as_str())
            .collect();
        let mut have = 0;
        wait_until(
            &format!("{} documents in {r}'s inbox", want.len()),
            RECOVERY,
            || {
                let Some(m) = net.inbox_counts(r) else {
                    return false;
                };
                have = m.len();
                want.iter().all(|id| m.contains_key(*id))
            },
        );
        let inbox = net.api_list(r, "/v1/inbox");
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for d in inbox.as_array().unwrap() {
            let id = d["id"].as_str().unwrap().to_string();
            let (from, to, sha) = sent
                .get(&id)
                .unwrap_or_else(|| panic!("{r}'s inbox holds {id}, which was never acknowledged"));
            assert_eq!(to, r);
            assert_eq!(d["sender"].as_str().unwrap(), from);
            assert_eq!(
                d["body_sha256"].as_str().unwrap(),
                sha,
                "body of {id} at {r}"
            );
            *counts.entry(id).or_default() += 1;
        }
        let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        assert!(dups.is_empty(), "duplicates in {r}'s inbox: {dups:?}");
        assert_eq!(counts.len(), want.len(), "{r}'s inbox size");
        let q = net.api_list(r, "/v1/quarantine");
        assert_eq!(q.as_array().unwrap().len(), 0, "{r}'s quarantine: {q}");
    }
    for from in senders {
        let mine: BTreeSet<&str> = sent
            .iter()
            .filter(|(_, (f, _, _))| f == from)
            .map(|(id, _)| id.as_str())
            .collect();
        let mut not_yet: Vec<String> = Vec::new();
        wait_until(
            &format!("{} receipts at {from}", mine.len()),
            RECOVERY,
            || {
                let Some(v) = net.api_list_get(from, "/v1/documents") else {
                    return false;
                };
                let docs = v.as_array().unwrap();
                let listed = docs
                    .iter()
                    .filter(|d| mine.contains(d["id"].as_str().unwrap_or("")))
                    .count();
                not_yet = docs
                    .iter()
                    .filter(|d| mine.contains(d["id"].as_str().unwrap_or("")))
                    .filter(|d| recipient_states(d).values().any(|s| s != "delivered"))
                    .map(|d| d["id"].as_str().unwrap().to_string())
                    .collect();
                listed == mine.len() && not_yet.is_empty()
            },
        );
        let receipts = net.api_list(from, "/v1/receipts");
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for r in receipts.as_array().unwrap() {
            let id = r["id"].as_str().unwrap();
            let Some(id) = mine.get(id) else { continue };
            assert_eq!(r["outcome"], "delivered", "{r}");
            assert_eq!(r["signature_verified"], true, "{r}");
            assert_eq!(r["body_sha256"].as_str().unwrap(), sent[*id].2, "{r}");
            *seen.entry(id).or_default() += 1;
        }
        assert_eq!(seen.len(), mine.len(), "receipts at {from}");
        assert!(
            seen.values().all(|n| *n == 1),
            "one receipt per document at {from}"
        );
    }
}
