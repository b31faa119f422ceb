//! Bodies found damaged: the deliveries they hold, their repair or loss, and the scrub's reads.

use super::helpers::*;
use poros_hub::state::HeldDelivery;
use poros_protocol::{BodyLostReason, Digest, NoticeKind};
use poros_store::ReceivedBody;
use std::collections::{HashMap, HashSet};

/// Ported from `state/tests.rs`: a damaged body holds its deliveries until it is repaired, or
/// until it is lost for good and each held delivery ends with the hub's notice.
pub async fn damaged_body_holds_deliveries_until_repaired_or_lost(b: B) {
    let k = key();
    let (h1, h2) = (a(H1), a(H2));
    let d = doc(&k, 3, b"payload", &[H1, H2]);
    let (id, digest) = (d.id, d.digest());
    accept_new(&b, &d).await;
    let sender = a(G);

    // Found damaged twice (two recipients' attempts): one request, both deliveries held.
    let asked = b.hold_damaged(id, "missing".into(), 6_000).await.unwrap();
    assert_eq!(asked, Some(sender.clone()));
    assert_eq!(
        b.hold_damaged(id, "missing".into(), 6_001).await.unwrap(),
        None
    );
    assert!(b.pending_for(&h1, 10, &none()).await.unwrap().is_empty());
    assert_eq!(b.held_count(None).await.unwrap(), 2);
    assert_eq!(
        b.repairs_for(&sender, 10, &none()).await.unwrap(),
        vec![(id, digest)]
    );

    // Repaired: back in both queues, request gone.
    let wake = b
        .body_repaired(digest, Some(b"payload".to_vec()))
        .await
        .unwrap();
    assert_eq!(wake.len(), 2);
    assert_eq!(b.pending_for(&h2, 10, &none()).await.unwrap()[0].doc, id);
    assert!(b
        .repairs_for(&sender, 10, &none())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(b.held_count(None).await.unwrap(), 0);

    // Damaged again and lost: each held delivery ends with its notice, relayed like an
    // expiry and counted as one.
    b.hold_damaged(id, "missing".into(), 7_000).await.unwrap();
    let held = b.held_for(&digest).await.unwrap();
    assert_eq!(held.len(), 2);
    let notices = held
        .into_iter()
        .map(|h| {
            let n = notice(
                &d,
                h.recipient.as_str(),
                NoticeKind::BodyLost {
                    reason: BodyLostReason::SenderHasNoCopy,
                },
                8_000,
            );
            (h, said(&k, n))
        })
        .collect();
    let wake = b.body_lost(digest, notices, 8_000).await.unwrap();
    assert_eq!(wake, vec![sender.clone(), sender.clone()]);
    assert_eq!(b.held_count(None).await.unwrap(), 0);
    assert!(b.damage(&digest).await.unwrap().is_none());
    assert!(b.expired_before(u64::MAX, 10).await.unwrap().is_empty());
    assert_eq!(
        b.statement_relays_for(&sender, 10, &none())
            .await
            .unwrap()
            .len(),
        1,
        "two notices about one document: one relay at a time"
    );
    assert_eq!(b.statement_relay_docs(&sender).await.unwrap(), [id, id]);
    let c = counters(&b).await;
    assert_eq!(count(&c, "deliveries_lost"), 2);
    assert_eq!(count(&c, "bodies_lost"), 1);
    assert_eq!(count(&c, "bodies_repaired"), 1);
    assert_eq!(count(&c, "body_repairs_requested"), 2);
    assert_eq!(count(&c, "bodies_damaged"), 2);
    let recount = assert_live_equals_recount(&b).await;
    assert_eq!(fig(&recount, G, "out_expired"), 2);
}

/// The bookkeeping around repairs: damage records and attempts, held deliveries per
/// recipient, the senders asked, the scrub's reads of live bodies and their documents.
pub async fn repair_bookkeeping_and_the_scrubs_reads(b: B) {
    let k = key();
    let d1 = doc(&k, 1, b"p1", &[H1, H2]);
    let d2 = doc_from(&k, 2, G2, b"p2", &[H1], 5_000);
    let d3 = doc(&k, 3, b"p1", &[H3]); // the same body as d1
    let big = vec![3u8; 70_000];
    let df = doc(&k, 4, &big, &[H2]);
    for d in [&d1, &d2, &d3] {
        accept_new(&b, d).await;
    }
    let file = ReceivedBody::File {
        digest: df.digest(),
        len: big.len() as u64,
        guard: None,
    };
    b.accept(df.rec.clone(), file).await.unwrap();

    // Live bodies in digest order, with whether each is inline; paged by the last digest.
    let mut want: Vec<(Digest, bool)> = vec![
        (d1.digest(), true),
        (d2.digest(), true),
        (df.digest(), false),
    ];
    want.sort();
    assert_eq!(b.live_bodies(None, 10).await.unwrap(), want);
    assert_eq!(b.live_bodies(None, 1).await.unwrap(), want[..1]);
    assert_eq!(b.live_bodies(Some(want[0].0), 10).await.unwrap(), want[1..]);
    assert!(b.live_bodies(Some(want[2].0), 10).await.unwrap().is_empty());

    let unknown: Digest = [0xee; 32];
    let asked: HashSet<Digest> = [d1.digest(), df.digest(), unknown].into_iter().collect();
    let mut using = b.docs_using(&asked).await.unwrap();
    for v in using.values_mut() {
        v.sort();
    }
    let mut d1_users = vec![d1.id, d3.id];
    d1_users.sort();
    assert_eq!(
        using,
        HashMap::from([(d1.digest(), d1_users), (df.digest(), vec![df.id])])
    );

    // Damaged: d1's deliveries held, one request to its sender, found at the first report.
    assert_eq!(
        b.hold_damaged(d1.id, "wrong length".into(), 6_000)
            .await
            .unwrap(),
        Some(a(G))
    );
    assert_eq!(
        b.hold_damaged(d3.id, "wrong length".into(), 6_500)
            .await
            .unwrap(),
        None,
        "the same body: no second request"
    );
    let dmg = b.damage(&d1.digest()).await.unwrap().expect("damaged");
    assert_eq!(dmg.found_ms, 6_000);
    assert_eq!(dmg.what, "wrong length");
    assert_eq!(dmg.docs, vec![d1.id, d3.id]);
    assert_eq!(dmg.attempts, 0);
    assert_eq!(b.held_count(Some(&a(H1))).await.unwrap(), 1);
    assert_eq!(b.held_count(Some(&a(H3))).await.unwrap(), 1);
    assert_eq!(b.held_count(None).await.unwrap(), 3);
    assert_eq!(b.pending_count(&a(H1)).await.unwrap(), 1, "d2 only");
    assert_eq!(b.queue_depth().await.unwrap(), 2, "d2 to H1, df to H2");
    let mut held = b.held_for(&d1.digest()).await.unwrap();
    held.sort_by(|x, y| (x.doc, &x.recipient).cmp(&(y.doc, &y.recipient)));
    let mut want_held = vec![
        HeldDelivery {
            doc: d1.id,
            sender: a(G),
            recipient: a(H1),
        },
        HeldDelivery {
            doc: d1.id,
            sender: a(G),
            recipient: a(H2),
        },
        HeldDelivery {
            doc: d3.id,
            sender: a(G),
            recipient: a(H3),
        },
    ];
    want_held.sort_by(|x, y| (x.doc, &x.recipient).cmp(&(y.doc, &y.recipient)));
    assert_eq!(held, want_held);
    // Held deliveries are still pending: they still expire.
    assert!(b
        .expired_before(u64::MAX, 10)
        .await
        .unwrap()
        .contains(&(d1.id, a(H1))));

    // Re-uploads failing: attempts counted on the record.
    assert_eq!(b.repair_failed(d1.digest()).await.unwrap(), 1);
    assert_eq!(b.repair_failed(d1.digest()).await.unwrap(), 2);
    assert_eq!(b.damage(&d1.digest()).await.unwrap().unwrap().attempts, 2);
    assert_eq!(b.repair_failed(unknown).await.unwrap(), 0);
    assert!(b.damage(&unknown).await.unwrap().is_none());

    // A second sender's body: the senders asked, in order.
    assert_eq!(
        b.hold_damaged(d2.id, "missing".into(), 6_600)
            .await
            .unwrap(),
        Some(a(G2))
    );
    assert_eq!(b.repair_senders().await.unwrap(), vec![a(G), a(G2)]);
    assert_eq!(
        b.repairs_for(&a(G2), 10, &none()).await.unwrap(),
        vec![(d2.id, d2.digest())]
    );
    let skip: HashSet<_> = [d1.id].into_iter().collect();
    assert!(b.repairs_for(&a(G), 10, &skip).await.unwrap().is_empty());
    assert!(b
        .hold_damaged(doc(&k, 9, b"x", &[H1]).id, "missing".into(), 6_700)
        .await
        .unwrap()
        .is_none());

    // Repaired without bytes (a file already rewritten): the held deliveries go back.
    let mut woken = b.body_repaired(d2.digest(), None).await.unwrap();
    woken.sort();
    assert_eq!(woken, vec![a(H1)]);
    assert_eq!(b.repair_senders().await.unwrap(), vec![a(G)]);
    assert_eq!(b.pending_count(&a(H1)).await.unwrap(), 1);
    assert!(b.body_repaired(unknown, None).await.unwrap().is_empty());
    let mut woken = b
        .body_repaired(d1.digest(), Some(b"p1".to_vec()))
        .await
        .unwrap();
    woken.sort();
    assert_eq!(woken, vec![a(H1), a(H2), a(H3)]);
    assert!(b.repair_senders().await.unwrap().is_empty());
    assert_eq!(b.held_count(None).await.unwrap(), 0);
    assert_eq!(b.queue_depth().await.unwrap(), 5);

    // The scrub's count.
    b.count_checked(5).await.unwrap();
    b.count_checked(2).await.unwrap();
    let c = counters(&b).await;
    assert_eq!(count(&c, "bodies_checked"), 7);
    assert_eq!(count(&c, "bodies_damaged"), 2);
    assert_eq!(count(&c, "body_repairs_requested"), 2);
    assert_eq!(count(&c, "bodies_repaired"), 2);

    // A removed body is no longer live, nor used.
    b.record_answer(d2.id, a(H1), delivered(&k, &d2, H1, 7_000), 7_000)
        .await
        .unwrap();
    b.release_bodies(u64::MAX, 10).await.unwrap();
    let live: Vec<Digest> = b
        .live_bodies(None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.0)
        .collect();
    assert!(!live.contains(&d2.digest()), "{live:?}");
    let asked: HashSet<Digest> = [d2.digest()].into_iter().collect();
    assert!(b.docs_using(&asked).await.unwrap().is_empty());
}
