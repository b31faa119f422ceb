//! Tests of the registry's directory fields: records stored before them still decode, the
//! fields are validated, and parent changes are checked in the commit that stores them.

use super::*;
use poros_protocol::directory::{FieldError, ParentError};

fn a(s: &str) -> AgencyId {
    AgencyId::parse(s).unwrap()
}

fn open() -> (tempfile::TempDir, HubStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = HubStore::open(Db::open(&dir.path().join("h.redb")).unwrap()).unwrap();
    (dir, store)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn audit(action: &str, agency: &AgencyId) -> AuditRecord {
    AuditRecord {
        time_ms: 1,
        actor: "admin@test".into(),
        action: action.into(),
        agency: Some(agency.clone()),
        detail: String::new(),
    }
}

/// The layout written before the directory fields (with renewal and conflicts).
#[derive(Serialize)]
struct V2<'a> {
    agency: &'a AgencyId,
    name: &'a str,
    state: NodeState,
    tls_serial: &'a str,
    sign_serial: &'a str,
    tls_not_after: i64,
    registered_ms: u64,
    tls_not_before: i64,
    last_seen_ms: Option<u64>,
    superseded: Option<Superseded>,
    conflicts: u64,
    last_conflict: Option<Conflict>,
}

fn v2_bytes(agency: &AgencyId) -> Vec<u8> {
    postcard::to_allocvec(&V2 {
        agency,
        name: "Bộ Tài chính",
        state: NodeState::Suspended,
        tls_serial: "aa02",
        sign_serial: "bb02",
        tls_not_after: 99,
        registered_ms: 7,
        tls_not_before: 9,
        last_seen_ms: Some(8),
        superseded: Some(Superseded {
            tls_serial: "aa01".into(),
            sign_serial: "bb01".into(),
            at_ms: 5,
        }),
        conflicts: 2,
        last_conflict: Some(Conflict {
            at_ms: 6,
            kept: "127.0.0.1:1".into(),
            refused: "127.0.0.1:2".into(),
        }),
    })
    .unwrap()
}

#[test]
fn node_records_before_the_directory_fields_still_decode() {
    let g = a("000.00.00.G01");
    let n = dec_node(&v2_bytes(&g)).unwrap();
    assert_eq!(
        (n.name.as_str(), n.state, n.tls_serial.as_str(), n.conflicts),
        ("Bộ Tài chính", NodeState::Suspended, "aa02", 2)
    );
    assert_eq!(n.superseded.as_ref().map(|s| s.at_ms), Some(5));
    assert_eq!(n.last_conflict.as_ref().map(|c| c.at_ms), Some(6));
    assert_eq!(
        (&n.parent, &n.email, &n.address, &n.phone),
        (&None, &None, &None, &None)
    );
    // A current record keeps its directory fields through the store's encoding.
    let mut cur = n.clone();
    cur.parent = Some(a("000.00.00.G02"));
    cur.email = Some("vanthu@mof.gov.vn".into());
    cur.address = Some("28 Trần Hưng Đạo, Hà Nội".into());
    cur.phone = Some("024.2220.2828".into());
    assert_eq!(dec_node(&enc(&cur).unwrap()).unwrap(), cur);
    // Cutting the newest fields off leaves a record that fails to decode as the current
    // layout (so the fallback is taken, not a misread).
    assert!(postcard::from_bytes::<NodeRecord>(&v2_bytes(&g)).is_err());
}

/// A store written by the previous version: its node is listed, edited and read back.
#[test]
fn an_old_store_is_read_and_its_nodes_edited() {
    let (_dir, store) = open();
    let g = a("000.00.00.G01");
    let old = v2_bytes(&g);
    store
        .db
        .write_blocking(move |txn| {
            txn.open_table(NODES)?
                .insert("000.00.00.G01", old.as_slice())?;
            Ok(())
        })
        .unwrap();
    assert_eq!(store.nodes().unwrap()[0].name, "Bộ Tài chính");
    let edit = NodeEdit {
        email: Some(Some("vanthu@mof.gov.vn".into())),
        ..Default::default()
    };
    let rec = rt()
        .block_on(store.edit_node(g.clone(), edit, audit("node edit", &g)))
        .unwrap()
        .unwrap();
    assert_eq!(rec.email.as_deref(), Some("vanthu@mof.gov.vn"));
    assert_eq!((rec.conflicts, rec.tls_serial.as_str()), (2, "aa02"));
    assert_eq!(store.nodes().unwrap(), vec![rec]);
}

#[test]
fn directory_fields_are_validated() {
    let ok = NodeEdit {
        name: Some("Sở Nội vụ tỉnh Lào Cai".into()),
        parent: Some(Some(a("000.00.00.H01"))),
        email: Some(Some("snv@laocai.gov.vn".into())),
        address: Some(Some("Đường Hoàng Liên, phường Cốc Lếu".into())),
        phone: Some(Some("(0214) 3840 123".into())),
    };
    assert_eq!(ok.validate(), Ok(()));
    let with = |f: fn(&mut NodeEdit)| {
        let mut e = ok.clone();
        f(&mut e);
        e.validate()
    };
    assert!(matches!(
        with(|e| e.name = Some("  ".into())),
        Err(FieldError::Text(_))
    ));
    assert!(matches!(
        with(|e| e.email = Some(Some("snv.laocai.gov.vn".into()))),
        Err(FieldError::Email { .. })
    ));
    assert!(matches!(
        with(|e| e.address = Some(Some("line one\nline two".into()))),
        Err(FieldError::Text(_))
    ));
    assert!(matches!(
        with(|e| e.phone = Some(Some("ask the front desk".into()))),
        Err(FieldError::Phone { .. })
    ));
    // Clearing a field needs no value to check.
    let clear = NodeEdit {
        email: Some(None),
        phone: Some(None),
        ..Default::default()
    };
    assert_eq!(clear.validate(), Ok(()));
    assert!(!clear.is_empty());
    assert!(NodeEdit::default().is_empty());
}

/// G01 ← G02 ← H01: a parent must be registered, not the agency itself and not below it;
/// a refused change stores nothing and records nothing; an accepted one records what
/// changed.
#[test]
fn parents_are_checked_in_the_commit_and_edits_audited() {
    let (_dir, store) = open();
    let rt = rt();
    let (g1, g2, h1) = (a("000.00.00.G01"), a("000.00.00.G02"), a("000.00.00.H01"));
    let add = |agency: &AgencyId, parent: Option<&AgencyId>| {
        let mut rec = NodeRecord::pending(agency, &format!("Agency {agency}"), 1);
        rec.parent = parent.cloned();
        rt.block_on(store.add_node(rec, None, audit("node add", agency)))
            .unwrap()
    };
    assert_eq!(add(&g1, None), Ok(()));
    assert_eq!(add(&g2, Some(&g1)), Ok(()));
    assert_eq!(add(&h1, Some(&g2)), Ok(()));
    let unknown = a("000.00.00.H09");
    assert!(matches!(
        add(&a("000.00.00.H02"), Some(&unknown)),
        Err(RegistryRefusal::Parent(ParentError::Unknown { .. }))
    ));
    let edit = |agency: &AgencyId, e: NodeEdit| {
        rt.block_on(store.edit_node(agency.clone(), e, audit("node edit", agency)))
            .unwrap()
    };
    let parent = |p: &AgencyId| NodeEdit {
        parent: Some(Some(p.clone())),
        ..Default::default()
    };
    let before = (store.nodes().unwrap(), store.audit_log(None).unwrap().len());
    let cycle = edit(&g1, parent(&h1)).unwrap_err();
    assert!(
        cycle
            .to_string()
            .contains("000.00.00.H01 -> 000.00.00.G02 -> 000.00.00.G01"),
        "{cycle}"
    );
    assert!(matches!(
        edit(&g1, parent(&g1)),
        Err(RegistryRefusal::Parent(ParentError::Itself(_)))
    ));
    assert!(matches!(
        edit(&g1, parent(&unknown)),
        Err(RegistryRefusal::Parent(ParentError::Unknown { .. }))
    ));
    assert_eq!(
        edit(&unknown, NodeEdit::default()),
        Err(RegistryRefusal::UnknownAgency(unknown.clone()))
    );
    assert_eq!(
        (store.nodes().unwrap(), store.audit_log(None).unwrap().len()),
        before,
        "refused changes store and record nothing"
    );

    // H01 moves up to G01, gets an e-mail and a new name.
    let rec = edit(
        &h1,
        NodeEdit {
            name: Some("UBND tỉnh".into()),
            parent: Some(Some(g1.clone())),
            email: Some(Some("vp@tinh.gov.vn".into())),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(rec.parent.as_ref(), Some(&g1));
    let log = store.audit_log(Some(&h1)).unwrap();
    let last = log.last().unwrap();
    assert_eq!(last.action, "node edit");
    for part in [
        "name: \"Agency 000.00.00.H01\" -> \"UBND tỉnh\"",
        "parent: \"000.00.00.G02\" -> \"000.00.00.G01\"",
        "email: none -> \"vp@tinh.gov.vn\"",
    ] {
        assert!(
            last.detail.contains(part),
            "{part:?} not in {:?}",
            last.detail
        );
    }
    // Now G02 may go under H01 (no longer below G02), and clearing works.
    assert!(edit(&g2, parent(&h1)).is_ok());
    let cleared = edit(
        &h1,
        NodeEdit {
            email: Some(None),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(cleared.email, None);
    assert_eq!(
        store.audit_log(Some(&h1)).unwrap().last().unwrap().detail,
        "email: \"vp@tinh.gov.vn\" -> none"
    );
}

#[test]
fn directory_entries_are_active_unless_suspended_or_revoked() {
    let mut n = NodeRecord::pending(&a("000.00.00.G01"), "G01", 0);
    n.phone = Some("024 1234 5678".into());
    let e = n.directory_entry();
    assert!(e.active, "pending: documents to it are queued");
    assert_eq!(e.phone.as_deref(), Some("024 1234 5678"));
    for (state, active) in [
        (NodeState::Active, true),
        (NodeState::Suspended, false),
        (NodeState::Revoked, false),
    ] {
        n.state = state;
        assert_eq!(n.directory_entry().active, active, "{state:?}");
    }
}
