//! End-to-end exchange: real hub and agent processes on loopback.

mod common;
use common::*;
use std::collections::BTreeSet;

/// A → B: delivered, body byte-identical, signed receipt verified; everything survives restarts.
#[test]
fn exchange_delivered_and_survives_restarts() {
    let mut net = Net::running(&[A, B]);

    let body = pseudo_random(10_000, 1);
    let id = net.send_cli(A, &[B], "Budget 2027", &body);
    net.wait_state(A, &id, "delivered");

    // Body byte-identical through `poros-agent fetch`.
    let out = net.root.join("files/fetched.bin");
    let o = net.agent_cli(&[
        "fetch",
        "--dir",
        &s(&net.agent_dir(B)),
        &id,
        "--out",
        &s(&out),
    ]);
    assert_ok(&o, "poros-agent fetch");
    assert_eq!(std::fs::read(&out).unwrap(), body, "fetched body differs");

    let check = |net: &Net| {
        let inbox = net.agent_json(B, "inbox", &[]);
        let entry = inbox
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} not in B's inbox: {inbox}"));
        assert_eq!(entry["sender"], A);
        assert_eq!(entry["subject"], "Budget 2027");
        assert_eq!(entry["number"], "1/TEST");
        assert_eq!(entry["body_len"], body.len() as u64);
        assert_eq!(entry["body_sha256"], sha256_hex(&body));

        let st = net.agent_json(A, "status", &[&id]);
        assert_eq!(st["id"], id.as_str());
        let rs = st["recipients"].as_array().unwrap();
        assert_eq!(rs.len(), 1, "{st}");
        assert_eq!(rs[0]["agency"], B);
        assert_eq!(rs[0]["state"], "delivered", "{st}");

        let receipts = net.agent_json(A, "receipts", &[]);
        let r: Vec<_> = receipts
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["id"] == id.as_str())
            .collect();
        assert_eq!(r.len(), 1, "{receipts}");
        assert_eq!(r[0]["recipient"], B);
        assert_eq!(r[0]["outcome"], "delivered");
        assert_eq!(r[0]["signature_verified"], true, "{receipts}");
        assert_eq!(r[0]["body_sha256"], sha256_hex(&body));

        assert_eq!(net.fetch(B, &id), body);
    };
    check(&net);

    // Restart both agents (one cleanly, one with SIGKILL) and the hub.
    net.stop_agent(A);
    net.kill_agent(B);
    net.stop_hub();
    net.start_hub();
    net.start_agent(A);
    net.start_agent(B);
    check(&net);

    // Still exchanging after the restarts, in the other direction.
    let id2 = net.send(B, &[A], "Reply", b"reply body");
    net.wait_state(B, &id2, "delivered");
    assert_eq!(net.fetch(A, &id2), b"reply body");
}

/// The hub's QUIC packets are handled on its `poros-quic` thread
/// (`transport/src/quic_thread.rs`), not by the workers that run the hub's own tasks: the hub
/// has that thread, and it is the one that woke for the exchange's packets.
#[test]
fn the_hub_handles_its_packets_on_its_quic_thread() {
    let mut net = Net::running(&[A, B]);
    let id = net.send(A, &[B], "On its own thread", &pseudo_random(64 * 1024, 3));
    net.wait_state(A, &id, "delivered");
    let pid = net.deployment().procs().pid("hub").expect("the hub's pid");
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    // How often each thread named `poros-quic` waited (for a packet or a timer): every wait
    // is a voluntary context switch.
    let quic: Vec<u64> = threads
        .filter_map(|t| {
            let t = t.ok()?.path();
            let comm = std::fs::read_to_string(t.join("comm")).ok()?;
            (comm.trim() == poros_transport::quic_thread::THREAD_NAME).then(|| {
                std::fs::read_to_string(t.join("status"))
                    .unwrap()
                    .lines()
                    .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap()
            })
        })
        .collect();
    assert_eq!(quic.len(), 1, "one QUIC thread in the hub, found {quic:?}");
    assert!(
        quic[0] >= 10,
        "the hub's QUIC thread woke only {} times for two handshakes and a delivery",
        quic[0]
    );
}

/// A 3 MiB body (streamed through files at the agents and the hub) arrives byte-identical.
#[test]
fn large_body_round_trip() {
    let net = Net::running(&[A, B]);

    let body = pseudo_random(3 * 1024 * 1024 + 17, 2);
    let id = net.send_cli(A, &[B], "Large report", &body);
    net.wait_state(A, &id, "delivered");
    let out = net.root.join("files/large-out.bin");
    let o = net.agent_cli(&[
        "fetch",
        "--dir",
        &s(&net.agent_dir(B)),
        &id,
        "--out",
        &s(&out),
    ]);
    assert_ok(&o, "poros-agent fetch");
    let got = std::fs::read(&out).unwrap();
    assert_eq!(got.len(), body.len());
    assert!(got == body, "large body differs after the round trip");
    let doc = net.admin_get(&format!("/admin/v1/documents/{id}"));
    assert_eq!(doc["body_at"], "file", "{doc}");
    assert_eq!(doc["body_sha256"], sha256_hex(&body));
}

/// Store and forward: B is offline when A sends; A is offline when B's receipt comes back.
#[test]
fn offline_recipient_then_offline_sender() {
    let mut net = Net::new();
    net.add_agent(A);
    net.add_agent(B);
    net.start_hub();
    net.start_agent(A);

    let body = b"held at the hub until B comes online".to_vec();
    let id = net.send(A, &[B], "Held", &body);
    let st = net.wait_state(A, &id, "accepted");
    assert!(st["accepted_ms"].as_u64().is_some(), "{st}");
    let hub_doc = net.admin_get(&format!("/admin/v1/documents/{id}"));
    assert_eq!(hub_doc["deliveries"][0]["state"], "pending", "{hub_doc}");

    net.stop_agent(A);
    net.start_agent(B);
    wait_until("B to receive the held document", DEADLINE, || {
        net.inbox_counts(B).is_some_and(|m| m.contains_key(&id))
    });
    assert_eq!(net.fetch(B, &id), body);
    wait_until("the hub to record B's receipt", DEADLINE, || {
        net.admin_get(&format!("/admin/v1/documents/{id}"))["deliveries"][0]["state"] == "delivered"
    });

    // A comes back and gets the receipt relayed.
    net.start_agent(A);
    net.wait_state(A, &id, "delivered");
    let receipts = net.api_list(A, "/v1/receipts");
    assert!(
        receipts
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == id.as_str()
                && r["outcome"] == "delivered"
                && r["signature_verified"] == true),
        "{receipts}"
    );
}

/// One document to three agencies: three verified receipts, the body stored once at the hub.
#[test]
fn one_document_three_recipients_body_stored_once() {
    let mut net = Net::new();
    for c in [A, B, C, D] {
        net.add_agent(c);
    }
    net.start_hub();
    for c in [A, B, C, D] {
        net.start_agent(c);
    }
    let body = pseudo_random(200 * 1024, 3); // > 64 KiB: a body file at the hub
    let id = net.send(A, &[B, C, D], "Circular", &body);
    let st = net.wait_state(A, &id, "delivered");
    let got: BTreeSet<String> = recipient_states(&st).into_keys().collect();
    assert_eq!(got, [B, C, D].iter().map(|s| s.to_string()).collect());

    let receipts = net.api_list(A, "/v1/receipts");
    let mine: Vec<_> = receipts
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["id"] == id.as_str())
        .collect();
    assert_eq!(mine.len(), 3, "{receipts}");
    assert!(mine
        .iter()
        .all(|r| r["signature_verified"] == true && r["outcome"] == "delivered"));
    let who: BTreeSet<_> = mine
        .iter()
        .map(|r| r["recipient"].as_str().unwrap())
        .collect();
    assert_eq!(who, [B, C, D].into_iter().collect());

    for c in [B, C, D] {
        assert_eq!(net.fetch(c, &id), body, "body at {c}");
    }

    let files = net.hub_body_files();
    assert_eq!(files.len(), 1, "hub body files: {files:?}");
    assert!(files[0].ends_with(sha256_hex(&body)), "{files:?}");
    assert_eq!(std::fs::read(&files[0]).unwrap(), body);

    let doc = net.admin_get(&format!("/admin/v1/documents/{id}"));
    let dels = doc["deliveries"].as_array().unwrap();
    assert_eq!(dels.len(), 3, "{doc}");
    assert!(dels.iter().all(|d| d["state"] == "delivered"), "{doc}");
    assert_eq!(doc["sender"], A);
}

/// The hub sends no keep-alives of its own (its agents do, `Limits::hub`): an agent that dies
/// without a word is still dropped at the idle timeout, and shown offline. C asks for a short
/// one (QUIC takes the smaller side's), so the test does not wait out the default 30 s.
#[test]
fn an_agent_killed_without_a_word_is_dropped_at_the_idle_timeout() {
    let mut net = Net::new();
    for c in [A, B, C] {
        net.add_agent(c);
    }
    set_toml_key(
        &net.agent_dir(C).join("agent.toml"),
        "hub_idle_timeout_secs",
        "6",
    );
    net.start_hub();
    for c in [A, B, C] {
        net.start_agent(c);
    }
    assert_eq!(net.metric("poros_connected_nodes"), 3);
    net.kill_agent(C);
    wait_until("the hub to drop the silent agent", DEADLINE, || {
        net.metric("poros_connected_nodes") == 2
    });
    // Those left are still served.
    let id = net.send(A, &[B], "Still served", b"after a silent peer");
    net.wait_state(A, &id, "delivered");
}

/// A hub killed and started again answers its old connections' next packets with a
/// stateless reset (its reset key and connection-ID key survive restarts): idle agents come
/// back at their next keep-alive (every 10 s), not after their 30 s idle timeout.
#[test]
fn a_restarted_hub_resets_its_old_connections_and_idle_agents_come_back() {
    let mut net = Net::running(&[A, B]);
    net.kill_hub();
    net.start_hub();
    wait_until("both agents connected again", DEADLINE, || {
        net.metric("poros_connected_nodes") == 2
    });
    for code in [A, B] {
        let log = net.log_text(code);
        let closed: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("hub connection closed"))
            .collect();
        assert_eq!(closed.len(), 1, "{code}: {log}");
        assert!(closed[0].contains("reset by peer"), "{code}: {}", closed[0]);
    }
    let id = net.send(A, &[B], "After the restart", b"still exchanging");
    net.wait_state(A, &id, "delivered");
}
