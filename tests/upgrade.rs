//! Store upgrades: the stores kept in `tests/fixtures/stores/v1/` (a hub's and an agent's,
//! written by the binaries of the version before format versions were recorded) are opened by
//! this code. Each is backed up byte for byte, upgraded once and keeps every document,
//! delivery, signed receipt and statement (re-verified as of its own time) and statistics
//! equal to a recount. A store recording a newer version, and another kind's store, are
//! refused with the file untouched. The hub binary run on the fixture says it upgraded and
//! serves the old documents.
//!
//! The fixture's generator is `tests/fixtures/stores/generate.rs` (compiled here, ignored;
//! run through `scripts/make-store-fixture.sh`).

mod common;
#[path = "fixtures/stores/generate.rs"]
mod generate;

use common::*;
use poros_agent::state::{AgentStore, RecipientStatus};
use poros_hub::state::{DeliveryEnd, HubStore};
use poros_protocol::{AgencyId, DocumentId, Party, SignedBlob, STATEMENT_CONTEXT};
use poros_store::format::{FORMAT_TABLE, RECORD_KEY};
use poros_store::{BodyAt, Db, FormatError, Opened, StoreError, Upgrade};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The fixture of format version 1.
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stores/v1")
}

fn manifest() -> Value {
    let p = fixture().join("manifest.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

/// The documents of the manifest by their name (`small`, `large`, `reply`, `pending`).
fn docs() -> BTreeMap<String, Value> {
    manifest()["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["name"].as_str().unwrap().to_string(), d.clone()))
        .collect()
}

fn id_of(doc: &Value) -> DocumentId {
    doc["id"].as_str().unwrap().parse().unwrap()
}

/// Copy a fixture tree into a fresh directory (the fixture itself is never opened).
fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            copy_tree(&e.path(), &to.join(e.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap();
    }
}

fn copied(part: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&fixture().join(part), &tmp.path().join(part));
    let dir = tmp.path().join(part).join("data");
    (tmp, dir)
}

fn backups(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".bak"))
        .collect();
    v.sort();
    v
}

/// The upgrade of a version-1 store: 1 → this binary's version, one backup equal to the file
/// as it was, and a message that says where it is and that body files are unchanged.
fn check_upgrade(opened: Opened, kind: &str, store: &Path, before: &[u8], current: u64) {
    let up: Upgrade = match opened {
        Opened::Upgraded(u) => u,
        other => panic!("the v1 {kind} store was not upgraded: {other:?}"),
    };
    assert_eq!((up.kind, up.from, up.to), (kind, 1, current));
    assert_eq!(up.path, store);
    assert_eq!(
        backups(store.parent().unwrap()),
        std::slice::from_ref(&up.backup)
    );
    assert!(
        std::fs::read(&up.backup).unwrap() == before,
        "the backup of the {kind} store differs from the file as it was"
    );
    let said = up.to_string();
    for part in [
        format!("upgraded {kind} store"),
        format!("from format version 1 to {current}"),
        up.backup.display().to_string(),
        "body files are not changed".into(),
    ] {
        assert!(said.contains(&part), "{said:?} does not say {part:?}");
    }
}

/// Rewrite the format record of a store (as a newer binary would have left it).
fn set_record(path: &Path, kind: &'static str, version: u64) {
    let db = Db::open(path).unwrap();
    db.write_blocking(move |txn| {
        txn.open_table(FORMAT_TABLE)?
            .insert(RECORD_KEY, (kind, version))?;
        Ok(())
    })
    .unwrap();
}

/// A store recording version 99 is refused naming the file and both versions, untouched.
fn check_newer_refused(path: &Path, kind: &'static str, open: impl Fn(&Path) -> StoreError) {
    set_record(path, kind, 99);
    let before = std::fs::read(path).unwrap();
    let e = open(path);
    let msg = e.to_string();
    assert!(
        matches!(&e, StoreError::Format(f) if matches!(**f, FormatError::Newer { found: 99, known: 2, .. })),
        "{msg}"
    );
    for part in [
        path.display().to_string(),
        "format version 99".into(),
        "(2)".into(),
        "newer poros binary".into(),
    ] {
        assert!(msg.contains(&part), "{msg:?} does not say {part:?}");
    }
    assert!(
        std::fs::read(path).unwrap() == before,
        "a refused store changed"
    );
    assert!(
        backups(path.parent().unwrap()).is_empty(),
        "a refused store was backed up"
    );
}

/// The trust of the fixture's deployment (its public signing CA).
fn trust() -> poros_certs::SigningTrust {
    let pem = std::fs::read_to_string(fixture().join("hub/pki/signing-ca.crt")).unwrap();
    let ca = poros_certs::pem_to_der_certs(&pem).unwrap().remove(0);
    poros_certs::SigningTrust::new(&[ca], &[]).unwrap()
}

/// Verify a signed statement as of its own time (as a receiver checks a stored one again);
/// who signed it.
fn verified_signer(trust: &poros_certs::SigningTrust, blob: &SignedBlob) -> Party {
    let st: poros_protocol::Statement = postcard::from_bytes(&blob.payload).unwrap();
    trust
        .verify(blob, STATEMENT_CONTEXT, st.time_ms / 1000)
        .unwrap_or_else(|e| panic!("a stored statement no longer verifies: {e}"))
}

fn agency(code: &str) -> Party {
    Party::Agency(AgencyId::parse(code).unwrap())
}

fn hub_open(path: &Path) -> Result<(HubStore, Opened), StoreError> {
    HubStore::open_file(path)
}

fn agent_open(path: &Path) -> Result<(AgentStore, Opened), StoreError> {
    AgentStore::open_file(path)
}

#[test]
fn v1_hub_store_is_backed_up_upgraded_once_and_keeps_everything() {
    let (_tmp, data) = copied("hub");
    let path = data.join("hub.redb");
    let before = std::fs::read(&path).unwrap();
    let (store, opened) = hub_open(&path).unwrap();
    let current = poros_hub::state::FORMAT.current();
    assert_eq!(current, 2);
    check_upgrade(opened, "hub", &path, &before, current);

    let docs = docs();
    let trust = trust();
    let bodies = poros_store::Blobs::open(&data.join("bodies")).unwrap();
    for (name, d) in &docs {
        let id = id_of(d);
        let rec = store
            .doc(&id)
            .unwrap()
            .unwrap_or_else(|| panic!("{name} lost"));
        assert_eq!(rec.sender.as_str(), d["from"]);
        let to: Vec<&str> = rec.recipients.iter().map(|a| a.as_str()).collect();
        assert_eq!(serde_json::json!(to), d["to"], "{name}");
        assert_eq!(hex::encode(rec.body_sha256), d["body_sha256"], "{name}");
        assert_eq!(rec.body_len, d["body_len"], "{name}");
        // The body, where the record says.
        let body = match rec.body_at {
            BodyAt::Inline => store.inline_body(&rec.body_sha256).unwrap().unwrap(),
            BodyAt::File => std::fs::read(bodies.path(&rec.body_sha256)).unwrap(),
            BodyAt::Gone => panic!("{name}'s body is gone"),
        };
        assert_eq!(sha256_hex(&body), d["body_sha256"], "{name}");
        // The hub's acceptance still verifies.
        assert_eq!(
            verified_signer(&trust, &rec.acceptance),
            Party::Hub,
            "{name}"
        );
        // Each delivery as the hub showed it then.
        let then: BTreeMap<String, String> = d["hub_view"]["deliveries"]
            .as_array()
            .unwrap_or_else(|| panic!("no deliveries in {}", d["hub_view"]))
            .iter()
            .map(|x| {
                (
                    x["recipient"].as_str().unwrap().to_string(),
                    x["state"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let now: BTreeMap<String, String> = store
            .deliveries(&id)
            .unwrap()
            .into_iter()
            .map(|(a, r)| {
                let state = match r.state.end() {
                    None => "pending",
                    Some(DeliveryEnd::Delivered) => "delivered",
                    Some(other) => panic!("{name}: unexpected end {other:?}"),
                };
                (a.as_str().to_string(), state.to_string())
            })
            .collect();
        assert_eq!(now, then, "deliveries of {name}");
        // The history as the hub showed it then: the acceptance, a receipt per delivered
        // recipient, B's statuses on `small`.
        let now: Vec<(String, Option<&str>)> = store
            .statement_history(&id)
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e.statement.kind.label().to_string(),
                    e.statement.kind.code(),
                )
            })
            .collect();
        let then: Vec<(String, Option<&str>)> = d["hub_view"]["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["label"].as_str().unwrap().to_string(), e["code"].as_str()))
            .collect();
        assert_eq!(now, then, "history of {name}");
        let codes: Vec<&str> = now.iter().filter_map(|(_, c)| *c).collect();
        let want: &[&str] = if name == "small" { &["01", "03"] } else { &[] };
        assert_eq!(codes, want, "{name}");
    }

    // The statistics equal a recount from the records.
    let rt = rt();
    let (_, differences) = rt
        .block_on(poros_hub::report::recount_differences(&store, 3_600_000))
        .unwrap();
    assert!(differences.is_empty(), "{differences:?}");
    drop(store);

    // A second open does not upgrade again.
    let (_, opened) = hub_open(&path).unwrap();
    assert_eq!(opened, Opened::Current(2));
    assert_eq!(backups(&data).len(), 1);

    // Another kind refuses it; a newer version is refused by this binary.
    let e = agent_open(&path)
        .err()
        .expect("an agent opened a hub store");
    assert!(
        matches!(&e, StoreError::Format(f) if matches!(**f, FormatError::WrongKind { expected: "agent", .. })),
        "{e}"
    );
    assert!(e.to_string().contains("kind \"hub\""), "{e}");
    for b in backups(&data) {
        std::fs::remove_file(b).unwrap();
    }
    check_newer_refused(&path, "hub", |p| hub_open(p).err().expect("opened"));
}

#[test]
fn v1_agent_store_is_backed_up_upgraded_once_and_keeps_everything() {
    let (_tmp, data) = copied("agent");
    let path = data.join("agent.redb");
    let before = std::fs::read(&path).unwrap();
    let (store, opened) = agent_open(&path).unwrap();
    let current = poros_agent::state::FORMAT.current();
    check_upgrade(opened, "agent", &path, &before, current);

    let docs = docs();
    let me = manifest()["agent"].as_str().unwrap().to_string();
    let trust = trust();
    let bodies = poros_store::Blobs::open(&data.join("bodies")).unwrap();
    let body_of = |at: BodyAt, digest: &[u8; 32]| match at {
        BodyAt::Inline => store.inline_body(digest).unwrap().unwrap(),
        BodyAt::File => std::fs::read(bodies.path(digest)).unwrap(),
        BodyAt::Gone => panic!("body gone"),
    };
    for (name, d) in &docs {
        let id = id_of(d);
        if d["from"] != me.as_str() {
            // Received: the record, its body and this agency's own receipt.
            let rec = store
                .received(&id)
                .unwrap()
                .unwrap_or_else(|| panic!("{name} lost"));
            assert_eq!(hex::encode(rec.body_sha256), d["body_sha256"]);
            assert_eq!(
                sha256_hex(&body_of(rec.body_at, &rec.body_sha256)),
                d["body_sha256"]
            );
            continue;
        }
        let rec = store
            .outgoing(&id)
            .unwrap()
            .unwrap_or_else(|| panic!("{name} lost"));
        assert_eq!(hex::encode(rec.body_sha256), d["body_sha256"], "{name}");
        assert_eq!(
            sha256_hex(&body_of(rec.body_at, &rec.body_sha256)),
            d["body_sha256"]
        );
        let accepted = rec.accepted.as_ref().expect("the hub's acceptance");
        assert_eq!(verified_signer(&trust, accepted.blob()), Party::Hub);
        // Each recipient's state as the agent showed it then; receipts re-verified.
        let then: BTreeMap<String, String> = d["agent_a_view"]["recipients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["agency"].as_str().unwrap().to_string(),
                    r["state"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let mut now = BTreeMap::new();
        for (agency, status) in store.statuses(&id).unwrap() {
            if status.is_delivered() {
                let signed = status
                    .signed_statement()
                    .expect("a receipt in statement form");
                let signer = verified_signer(&trust, signed.blob());
                assert_eq!(signer, Party::Agency(agency.clone()), "{name}");
            } else {
                assert!(matches!(status, RecipientStatus::Pending), "{status:?}");
            }
            // The API's word for a pending delivery the hub has accepted.
            let state = match status.state() {
                "pending" if rec.accepted.is_some() => "accepted",
                s => s,
            };
            now.insert(agency.as_str().to_string(), state.to_string());
        }
        assert_eq!(now, then, "recipients of {name}");
        // B's business statuses on `small`, signed by B.
        let mut statuses = Vec::new();
        for s in store.statements_of(&id).unwrap() {
            let st = s.statement().unwrap();
            if let Some(code) = st.kind.code() {
                assert_eq!(
                    verified_signer(&trust, s.signed.blob()),
                    agency(B),
                    "{name}"
                );
                statuses.push(code);
            }
        }
        let want: &[&str] = if name == "small" { &["01", "03"] } else { &[] };
        assert_eq!(statuses, want, "{name}");
    }
    drop(store);

    let (_, opened) = agent_open(&path).unwrap();
    assert_eq!(opened, Opened::Current(current));
    assert_eq!(backups(&data).len(), 1);

    let e = hub_open(&path).err().expect("a hub opened an agent store");
    assert!(
        matches!(&e, StoreError::Format(f) if matches!(**f, FormatError::WrongKind { expected: "hub", .. })),
        "{e}"
    );
    for b in backups(&data) {
        std::fs::remove_file(b).unwrap();
    }
    check_newer_refused(&path, "agent", |p| agent_open(p).err().expect("opened"));
}

/// A v1 store of one kind is refused by the other before any upgrade (no backup made).
#[test]
fn v1_stores_are_refused_by_the_other_kind_untouched() {
    for (part, file, other) in [("hub", "hub.redb", "agent"), ("agent", "agent.redb", "hub")] {
        let (_tmp, data) = copied(part);
        let path = data.join(file);
        let before = std::fs::read(&path).unwrap();
        let e = match other {
            "agent" => agent_open(&path).err(),
            _ => hub_open(&path).err(),
        }
        .unwrap_or_else(|| panic!("the {other} opened a v1 {part} store"));
        assert!(
            matches!(&e, StoreError::Format(f) if matches!(**f, FormatError::WrongKind { .. })),
            "{e}"
        );
        assert!(e.to_string().contains("without a format record"), "{e}");
        assert!(std::fs::read(&path).unwrap() == before);
        assert!(backups(&data).is_empty());
    }
}

/// `poros-hub run` on a deployment whose store is the v1 fixture: it logs the upgrade and
/// serves the old documents and statistics as the old binary did.
#[test]
fn hub_binary_upgrades_the_v1_store_and_serves_its_documents() {
    let mut net = Net::new();
    let data = net.hub_dir.join("data");
    if data.exists() {
        std::fs::remove_dir_all(&data).unwrap();
    }
    copy_tree(&fixture().join("hub/data"), &data);
    net.start_hub();
    let log = std::fs::read_to_string(net.root.join("logs/hub.log")).unwrap();
    assert!(
        log.contains("WARN") && log.contains("upgraded hub store") && log.contains(".bak"),
        "the hub's log does not report the upgrade:\n{log}"
    );
    assert_eq!(backups(&data).len(), 1);
    for (name, d) in docs() {
        let id = d["id"].as_str().unwrap();
        let now = net.admin_get(&format!("/admin/v1/documents/{id}"));
        assert_eq!(view(&now), view(&d["hub_view"]), "{name} after the upgrade");
    }
    let check = net.admin_get("/admin/v1/stats/check");
    assert_eq!(check["equal"], true, "{check}");
    assert_eq!(check["recount"], manifest()["hub_stats_check"]["recount"]);
}

/// What the admin API's document view says about a document's content and state (the fields a
/// later version keeps, whatever it adds).
fn view(v: &Value) -> Value {
    let pick = |v: &Value, keys: &[&str]| -> Value {
        keys.iter()
            .map(|k| (k.to_string(), v[*k].clone()))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let list = |key: &str, keys: &[&str]| -> Value {
        v[key]
            .as_array()
            .unwrap_or_else(|| panic!("no {key} in {v}"))
            .iter()
            .map(|x| pick(x, keys))
            .collect()
    };
    serde_json::json!({
        "doc": pick(v, &["id", "sender", "body_sha256", "body_len", "body_at", "accepted_ms"]),
        "deliveries": list("deliveries", &["recipient", "state", "answered_ms"]),
        "history": list("history", &["seq", "from", "label", "code", "statement"]),
    })
}
