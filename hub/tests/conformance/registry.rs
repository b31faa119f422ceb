//! The registry: nodes and their directory fields, enrolment tokens, revoked and superseded
//! serials, monitors and the audit log.

use super::helpers::*;
use poros_hub::state::{
    AuditRecord, MonitorRecord, NodeEdit, NodeRecord, NodeState, RegistryRefusal, Superseded,
};
use poros_protocol::directory::ParentError;
use poros_protocol::{AgencyId, EnrollToken};

pub fn audit(action: &str, agency: &AgencyId) -> AuditRecord {
    AuditRecord {
        time_ms: 1,
        actor: "admin@test".into(),
        action: action.into(),
        agency: Some(agency.clone()),
        detail: String::new(),
    }
}

/// Ported from `state/directory_tests.rs`: G01 ← G02 ← H01: a parent must be registered, not
/// the agency itself and not below it; a refused change stores nothing and records nothing;
/// an accepted one records what changed.
pub async fn parents_are_checked_in_the_commit_and_edits_audited(b: B) {
    let (g1, g2, h1) = (a(G), a(G2), a(H1));
    let add = |agency: &AgencyId, parent: Option<&AgencyId>| {
        let mut rec = NodeRecord::pending(agency, &format!("Agency {agency}"), 1);
        rec.parent = parent.cloned();
        let b = b.clone();
        let audit = audit("node add", agency);
        async move { b.add_node(rec, None, audit).await.unwrap() }
    };
    assert_eq!(add(&g1, None).await, Ok(()));
    assert_eq!(add(&g2, Some(&g1)).await, Ok(()));
    assert_eq!(add(&h1, Some(&g2)).await, Ok(()));
    let unknown = a(P);
    assert!(matches!(
        add(&a(H2), Some(&unknown)).await,
        Err(RegistryRefusal::Parent(ParentError::Unknown { .. }))
    ));
    let edit = |agency: &AgencyId, e: NodeEdit| {
        let b = b.clone();
        let agency = agency.clone();
        async move {
            let audit = audit("node edit", &agency);
            b.edit_node(agency, e, audit).await.unwrap()
        }
    };
    let parent = |p: &AgencyId| NodeEdit {
        parent: Some(Some(p.clone())),
        ..Default::default()
    };
    let before = (
        b.nodes().await.unwrap(),
        b.audit_log(None).await.unwrap().len(),
    );
    assert_eq!(before.1, 3, "three adds recorded, the refused one not");
    let cycle = edit(&g1, parent(&h1)).await.unwrap_err();
    assert!(
        cycle
            .to_string()
            .contains("000.00.00.H01 -> 000.00.00.G02 -> 000.00.00.G01"),
        "{cycle}"
    );
    assert!(matches!(
        edit(&g1, parent(&g1)).await,
        Err(RegistryRefusal::Parent(ParentError::Itself(_)))
    ));
    assert!(matches!(
        edit(&g1, parent(&unknown)).await,
        Err(RegistryRefusal::Parent(ParentError::Unknown { .. }))
    ));
    assert_eq!(
        edit(&unknown, NodeEdit::default()).await,
        Err(RegistryRefusal::UnknownAgency(unknown.clone()))
    );
    assert_eq!(
        (
            b.nodes().await.unwrap(),
            b.audit_log(None).await.unwrap().len()
        ),
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
    .await
    .unwrap();
    assert_eq!(rec.parent.as_ref(), Some(&g1));
    let stored = b.nodes().await.unwrap();
    assert_eq!(stored.iter().find(|n| n.agency == h1), Some(&rec));
    let log = b.audit_log(Some(&h1)).await.unwrap();
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
    assert!(edit(&g2, parent(&h1)).await.is_ok());
    let cleared = edit(
        &h1,
        NodeEdit {
            email: Some(None),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(cleared.email, None);
    assert_eq!(
        b.audit_log(Some(&h1)).await.unwrap().last().unwrap().detail,
        "email: \"vp@tinh.gov.vn\" -> none"
    );
    // An edit that changes nothing is still recorded, as such.
    edit(&h1, NodeEdit::default()).await.unwrap();
    assert_eq!(
        b.audit_log(Some(&h1)).await.unwrap().last().unwrap().detail,
        "no change"
    );
}

/// Ported from `state/tests.rs`: the audit log is read in pages from a cursor, oldest first.
pub async fn audit_is_paged_from_a_cursor(b: B) {
    for i in 0..25 {
        b.audit(AuditRecord {
            time_ms: i,
            actor: "admin@test".into(),
            action: format!("action {i}"),
            agency: None,
            detail: String::new(),
        })
        .await
        .unwrap();
    }
    let (mut seen, mut after, mut pages) = (Vec::new(), 0, 0);
    loop {
        let (page, next) = b.audit_page(after, 10).await.unwrap();
        assert!(page.len() <= 10);
        seen.extend(page.into_iter().map(|a| a.time_ms));
        pages += 1;
        match next {
            Some(n) => after = n,
            None => break,
        }
        assert!(pages < 10, "the cursor does not advance");
    }
    assert_eq!(seen, (0..25).collect::<Vec<_>>());
    assert_eq!(pages, 3);
    // A page that ends the log says so: 20 more (45 in all) read in pages of 15 take three,
    // the last one without a next cursor.
    for i in 25..45 {
        b.audit(AuditRecord {
            time_ms: i,
            actor: "admin@test".into(),
            action: format!("action {i}"),
            agency: None,
            detail: String::new(),
        })
        .await
        .unwrap();
    }
    let (p1, n1) = b.audit_page(0, 15).await.unwrap();
    let (p2, n2) = b.audit_page(n1.expect("more after 15"), 15).await.unwrap();
    let (p3, n3) = b.audit_page(n2.expect("more after 30"), 15).await.unwrap();
    assert_eq!(
        (p1.len(), p2.len(), p3.len(), n3),
        (15, 15, 15, None),
        "the third page ends the log"
    );
    assert_eq!(p3.last().unwrap().time_ms, 44);
    assert_eq!(
        b.audit_log(None)
            .await
            .unwrap()
            .iter()
            .map(|a| a.time_ms)
            .collect::<Vec<_>>(),
        (0..45).collect::<Vec<_>>()
    );
}

fn token(agency: &str, secret: &str) -> EnrollToken {
    EnrollToken {
        agency: a(agency),
        hub: "127.0.0.1:1".into(),
        server_name: "hub".into(),
        ca_pin: [1; 32],
        secret: secret.into(),
        expires_ms: 1_000_000,
    }
}

pub fn active(agency: &str) -> NodeRecord {
    let mut n = NodeRecord::pending(&a(agency), agency, 1);
    n.state = NodeState::Active;
    n.tls_serial = format!("{agency}-tls");
    n
}

/// A node added with a token; the token found by its secret.
pub async fn add_with_token(b: &B, agency: &str, secret: &str) {
    let rec = NodeRecord::pending(&a(agency), agency, 1);
    let out = b
        .add_node(
            rec,
            Some(token(agency, secret)),
            audit("node add", &a(agency)),
        )
        .await
        .unwrap();
    assert_eq!(out, Ok(()));
}

/// An enrolment token is redeemed once: the second redemption, or one of an unknown secret,
/// is refused and changes nothing.
pub async fn tokens_are_redeemed_once(b: B) {
    add_with_token(&b, H1, "secret-1").await;
    let t = b.token("secret-1").await.unwrap().expect("token stored");
    assert_eq!(t.token, token(H1, "secret-1"));
    assert_eq!(t.used_ms, None);
    assert!(b.token("secret-2").await.unwrap().is_none());
    assert!(
        !b.redeem_token("secret-2".into(), active(H1), 1_500, audit("enrol", &a(H1)))
            .await
            .unwrap(),
        "an unknown secret"
    );
    assert_eq!(b.nodes().await.unwrap()[0].state, NodeState::Pending);

    assert!(b
        .redeem_token("secret-1".into(), active(H1), 2_000, audit("enrol", &a(H1)))
        .await
        .unwrap());
    assert_eq!(
        b.token("secret-1").await.unwrap().unwrap().used_ms,
        Some(2_000)
    );
    assert_eq!(b.nodes().await.unwrap(), vec![active(H1)]);

    let mut other = active(H1);
    other.tls_serial = "someone-else".into();
    assert!(
        !b.redeem_token("secret-1".into(), other, 3_000, audit("enrol", &a(H1)))
            .await
            .unwrap(),
        "used already"
    );
    assert_eq!(
        b.token("secret-1").await.unwrap().unwrap().used_ms,
        Some(2_000)
    );
    assert_eq!(b.nodes().await.unwrap(), vec![active(H1)]);
    let actions: Vec<_> = b
        .audit_log(Some(&a(H1)))
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert_eq!(actions, ["node add", "enrol"], "refusals record nothing");
}

/// Node records, revocations, retired serials and monitors are stored and listed as given.
pub async fn registry_records_round_trip(b: B) {
    // Nodes, listed by agency code whatever the order stored.
    let mut h2 = active(H2);
    h2.email = Some("vt@h2.gov.vn".into());
    h2.address = Some("1 Tràng Tiền".into());
    h2.last_seen_ms = Some(77);
    b.put_node(h2.clone()).await.unwrap();
    let mut pending_g = active(G);
    pending_g.state = NodeState::Pending;
    b.put_node(pending_g.clone()).await.unwrap();
    b.put_node_audited(active(G), pending_g, audit("node add", &a(G)))
        .await
        .unwrap()
        .expect("unchanged since read");
    b.put_node(active(H1)).await.unwrap();
    assert_eq!(
        b.nodes().await.unwrap(),
        vec![active(G), active(H1), h2.clone()]
    );
    // Replaced, not added.
    h2.name = "Renamed".into();
    b.put_node(h2.clone()).await.unwrap();
    assert_eq!(b.nodes().await.unwrap()[2], h2);
    assert_eq!(b.nodes().await.unwrap().len(), 3);

    // A renewed node: serials current and superseded.
    let mut g = active(G);
    g.tls_serial = "aa02".into();
    g.sign_serial = "bb02".into();
    g.superseded = Some(Superseded {
        tls_serial: "aa01".into(),
        sign_serial: "bb01".into(),
        at_ms: 500,
    });
    b.put_node(g.clone()).await.unwrap();
    let retired = b
        .retire_superseded(a(G), 900, audit("retire", &a(G)))
        .await
        .unwrap()
        .expect("something to retire");
    assert_eq!(retired.superseded, None);
    assert_eq!(retired.tls_serial, "aa02");
    assert_eq!(b.nodes().await.unwrap()[0], retired);
    let sup = b.superseded().await.unwrap();
    let listed: Vec<_> = sup
        .iter()
        .map(|(s, r)| (s.as_str(), r.kind.as_str(), r.revoked_ms, r.agency.clone()))
        .collect();
    assert_eq!(
        listed,
        [("aa01", "tls", 900, a(G)), ("bb01", "sign", 900, a(G))]
    );
    assert!(b
        .retire_superseded(a(G), 950, audit("retire", &a(G)))
        .await
        .unwrap()
        .is_none());
    assert!(b
        .retire_superseded(a(P), 950, audit("retire", &a(P)))
        .await
        .unwrap()
        .is_none());

    // Revoked with a renewal still in its overlap: all four serials.
    let mut h1 = active(H1);
    h1.state = NodeState::Revoked;
    h1.tls_serial = "cc02".into();
    h1.sign_serial = "dd02".into();
    h1.superseded = Some(Superseded {
        tls_serial: "cc01".into(),
        sign_serial: "dd01".into(),
        at_ms: 600,
    });
    b.revoke(h1.clone(), active(H1), 1_000, audit("revoke", &a(H1)))
        .await
        .unwrap()
        .expect("unchanged since read");
    assert_eq!(b.nodes().await.unwrap()[1], h1);
    let rev = b.revoked().await.unwrap();
    let listed: Vec<_> = rev
        .iter()
        .map(|(s, r)| (s.as_str(), r.kind.as_str(), r.revoked_ms))
        .collect();
    assert_eq!(
        listed,
        [
            ("cc01", "tls", 1_000),
            ("cc02", "tls", 1_000),
            ("dd01", "sign", 1_000),
            ("dd02", "sign", 1_000)
        ]
    );
    assert!(rev.iter().all(|(_, r)| r.agency == a(H1)));
    assert_eq!(b.superseded().await.unwrap().len(), 2, "unchanged");

    // Monitors: replaced by name, listed by name.
    let mon = |name: &str, revoked| MonitorRecord {
        name: name.into(),
        token_sha256: poros_protocol::sha256(name.as_bytes()),
        created_ms: 5,
        revoked_ms: revoked,
    };
    b.put_monitor(mon("zeta", None), audit("monitor add", &a(G)))
        .await
        .unwrap();
    b.put_monitor(mon("alpha", None), audit("monitor add", &a(G)))
        .await
        .unwrap();
    b.put_monitor(mon("zeta", Some(9)), audit("monitor revoke", &a(G)))
        .await
        .unwrap();
    let m = b.monitors().await.unwrap();
    let listed: Vec<_> = m
        .iter()
        .map(|m| (m.name.as_str(), m.revoked_ms, m.token_sha256))
        .collect();
    assert_eq!(
        listed,
        [
            ("alpha", None, poros_protocol::sha256(b"alpha")),
            ("zeta", Some(9), poros_protocol::sha256(b"zeta"))
        ]
    );

    // Every audited change once, in order.
    let actions: Vec<_> = b
        .audit_log(None)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert_eq!(
        actions,
        [
            "node add",
            "retire",
            "revoke",
            "monitor add",
            "monitor add",
            "monitor revoke"
        ]
    );
    assert_eq!(b.audit_log(Some(&a(H1))).await.unwrap().len(), 1);
    assert!(b.audit_log(Some(&a(H3))).await.unwrap().is_empty());
}

/// A node change is written only over the record it was decided from: after a revocation, a
/// suspension decided from the record read before it is refused and stores nothing (the
/// node stays revoked, the audit log holds the revocation only); a change of when the node
/// was last seen in between is no conflict and is kept; an unknown agency is not created.
pub async fn a_write_from_a_stale_read_is_refused(b: B) {
    let g = a(G);
    let mut rec = active(G);
    rec.tls_serial = "0a01".into();
    rec.sign_serial = "0b01".into();
    b.put_node(rec).await.unwrap();
    let read = b.node(&g).await.unwrap().expect("stored");

    // Another admin revokes it from a fresh read.
    let fresh = b.node(&g).await.unwrap().expect("stored");
    let mut revoked = fresh.clone();
    revoked.state = NodeState::Revoked;
    let written = b
        .revoke(revoked.clone(), fresh, 10, audit("revoke", &g))
        .await
        .unwrap()
        .expect("nothing changed since the read");
    assert_eq!(written, revoked);

    // The suspension decided from the earlier read.
    let mut suspended = read.clone();
    suspended.state = NodeState::Suspended;
    let refused = b
        .put_node_audited(suspended.clone(), read.clone(), audit("suspend", &g))
        .await
        .unwrap()
        .expect_err("a suspension written over a revocation");
    assert_eq!(refused.agency, g);
    assert_eq!(refused.stored.as_deref(), Some(&revoked));
    assert!(
        refused.to_string().contains("revoked"),
        "the refusal says what the node is now: {refused}"
    );
    // A second revocation decided from the earlier read is refused the same way.
    let again = b
        .revoke(revoked.clone(), read, 20, audit("revoke", &g))
        .await
        .unwrap();
    assert!(again.is_err(), "{again:?}");
    assert_eq!(b.node(&g).await.unwrap(), Some(revoked));
    let listed: Vec<_> = b
        .revoked()
        .await
        .unwrap()
        .into_iter()
        .map(|(s, r)| (s, r.revoked_ms))
        .collect();
    assert_eq!(
        listed,
        [("0a01".to_string(), 10), ("0b01".to_string(), 10)],
        "revoked once, at the first revocation's time"
    );
    let actions: Vec<_> = b
        .audit_log(Some(&g))
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert_eq!(actions, ["revoke"], "refused writes record nothing");

    // Seen by a connection between the read and the write: not a conflict, and kept.
    let h = a(H1);
    b.put_node(active(H1)).await.unwrap();
    let read = b.node(&h).await.unwrap().expect("stored");
    b.modify_node(
        h.clone(),
        Box::new(|r: &mut NodeRecord| r.last_seen_ms = Some(42)),
    )
    .await
    .unwrap()
    .expect("stored");
    let mut suspended = read.clone();
    suspended.state = NodeState::Suspended;
    let written = b
        .put_node_audited(suspended, read, audit("suspend", &h))
        .await
        .unwrap()
        .expect("only the connection bookkeeping changed");
    assert_eq!(written.state, NodeState::Suspended);
    assert_eq!(
        written.last_seen_ms,
        Some(42),
        "the newer last-seen time kept"
    );
    assert_eq!(b.node(&h).await.unwrap(), Some(written));

    // Never registered: refused, not created.
    let unknown = active(H3);
    let refused = b
        .put_node_audited(unknown.clone(), unknown, audit("suspend", &a(H3)))
        .await
        .unwrap()
        .expect_err("an unknown agency");
    assert_eq!(refused.stored, None);
    assert_eq!(b.node(&a(H3)).await.unwrap(), None);
}

/// The mark a restore leaves (`poros-hub restore`, `poros-hub resync`): none on a store never
/// restored; once marked it reads back as written; a later restore replaces it, so agents
/// give back what the hub accepted since the latest one, once per restore.
pub async fn a_restore_mark_is_kept_and_a_later_one_replaces_it(b: B) {
    use poros_hub::state::RecoveryPoint;
    assert_eq!(b.recovery_point().await.unwrap(), None);
    let first = RecoveryPoint::new(1_700_000_000_000).unwrap();
    b.mark_restored(first).await.unwrap();
    assert_eq!(b.recovery_point().await.unwrap(), Some(first));
    let second = RecoveryPoint::new(1_700_000_600_000).unwrap();
    assert_ne!(first.epoch, second.epoch, "each restore has its own epoch");
    b.mark_restored(second).await.unwrap();
    assert_eq!(b.recovery_point().await.unwrap(), Some(second));
}
