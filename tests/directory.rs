//! The agency directory end to end: `poros-hub node add` and `node edit` set an agency's
//! parent, e-mail, address and phone (validated, audited, shown by `node list`), and agents
//! get the registry as directory pages over their authenticated QUIC connection: through
//! `Agent::directory` (cached; a stale copy while the hub is down) and as raw frames, paged
//! for a registry too large for one frame.

mod common;
use common::*;
use poros_agent::agent::{Agent, DirectoryError};
use poros_protocol::{AgencyId, DirectoryEntry, Frame};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// A province's department, registered below C (token flow, so it stays pending).
const P: &str = "000.00.00.H03";

fn id(s: &str) -> AgencyId {
    AgencyId::parse(s).unwrap()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// `poros-hub node ARGS --dir HUB` that must fail naming `needle`.
fn refused(net: &Net, args: &[&str], needle: &str) {
    let d = s(&net.hub_dir);
    let mut all = args.to_vec();
    all.extend_from_slice(&["--dir", &d]);
    let out = net.hub_cli(&all);
    assert!(
        !out.status.success(),
        "poros-hub {} unexpectedly succeeded: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr(&out).contains(needle),
        "poros-hub {}: stderr does not mention {needle:?}: {}",
        args.join(" "),
        stderr(&out)
    );
}

/// `poros-hub node ARGS --dir HUB` that must succeed; its stdout.
fn hub_ok(net: &Net, args: &[&str]) -> String {
    let d = s(&net.hub_dir);
    let mut all = args.to_vec();
    all.extend_from_slice(&["--dir", &d]);
    let out = net.hub_cli(&all);
    assert_ok(&out, &format!("poros-hub {}", args.join(" ")));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// An in-process agent on an enrolled agent directory, started on `rt`.
fn open_agent(net: &Net, code: &str, rt: &tokio::runtime::Runtime) -> Arc<Agent> {
    let paths = poros_agent::paths::AgentPaths::new(&net.agent_dir(code));
    let cfg = paths.load_config().unwrap();
    // Opened outside the runtime: store setup uses blocking commits.
    let agent = Agent::open(&paths, cfg).unwrap();
    let _in_rt = rt.enter();
    agent.start();
    agent
}

/// The directory as `node list --json` states it, in code order.
fn expected(net: &Net) -> Vec<DirectoryEntry> {
    let text = |n: &Value, k: &str| n[k].as_str().map(str::to_string);
    net.node_list()
        .as_array()
        .unwrap()
        .iter()
        .map(|n| DirectoryEntry {
            code: id(n["agency"].as_str().unwrap()),
            name: n["name"].as_str().unwrap().to_string(),
            parent: n["parent"].as_str().map(id),
            email: text(n, "email"),
            address: text(n, "address"),
            phone: text(n, "phone"),
            active: !matches!(n["state"].as_str(), Some("suspended" | "revoked")),
        })
        .collect()
}

#[test]
fn directory_fields_are_set_edited_listed_and_served_to_agents() {
    let mut net = Net::new();
    net.start_hub();
    // A: offline flow through the shared harness (no directory fields yet).
    net.add_agent(A);
    // B below A, with every field, registered from requests with the code as an argument.
    net.init_agent(B);
    let b_dir = net.agent_dir(B);
    let (req, out) = (s(&b_dir.join("requests")), s(&b_dir.join("certs")));
    hub_ok(
        &net,
        &[
            "node",
            "add",
            B,
            "--name",
            "Vụ Pháp chế",
            "--parent",
            A,
            "--email",
            "phapche@mof.gov.vn",
            "--address",
            "28 Trần Hưng Đạo, Hoàn Kiếm, Hà Nội",
            "--phone",
            "024.2220.2828",
            "--requests",
            &req,
            "--out",
            &out,
        ],
    );
    // C: registered then suspended (inactive in the directory). P: pending, below C.
    net.add_agent(C);
    assert_ok(&net.node_action("suspend", C), "node suspend");
    hub_ok(
        &net,
        &[
            "node",
            "add",
            "--agency",
            P,
            "--name",
            "Sở Nội vụ",
            "--parent",
            C,
            "--email",
            "snv@tinh.gov.vn",
        ],
    );

    // Refusals name what is wrong and change nothing.
    let before = (net.node_list(), net.audit().as_array().unwrap().len());
    refused(&net, &["node", "edit", D, "--name", "x"], "not registered");
    refused(
        &net,
        &["node", "add", D, "--name", "x", "--parent", "000.00.00.H77"],
        "000.00.00.H77 of 000.00.00.H02 is not a registered agency",
    );
    refused(
        &net,
        &["node", "edit", A, "--parent", B],
        "is below 000.00.00.G01",
    );
    refused(&net, &["node", "edit", A, "--parent", A], "its own parent");
    refused(
        &net,
        &["node", "edit", A, "--email", "not-an-address"],
        "e-mail",
    );
    refused(&net, &["node", "edit", A, "--phone", "ring twice"], "phone");
    refused(
        &net,
        &["node", "edit", A, "--address", "line\u{1b}[2J"],
        "control character",
    );
    refused(&net, &["node", "edit", A], "nothing to change");
    refused(&net, &["node", "edit", A, "--parent", "G01"], "--parent");
    assert_eq!(
        (net.node_list(), net.audit().as_array().unwrap().len()),
        before,
        "refused registry changes store and record nothing"
    );

    // An edit sets fields and is audited with what changed.
    let printed = hub_ok(
        &net,
        &[
            "node",
            "edit",
            A,
            "--name",
            "Bộ Tài chính",
            "--email",
            "vanthu@mof.gov.vn",
            "--phone",
            "024 2220 2828",
        ],
    );
    assert!(printed.contains("vanthu@mof.gov.vn"), "{printed}");
    let audit = net.audit();
    let edit = audit
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|r| r["action"] == "node edit" && r["agency"] == A)
        .expect("the edit is in the audit log");
    let detail = edit["detail"].as_str().unwrap();
    assert!(
        detail.contains("name: \"Agency 000.00.00.G01\" -> \"Bộ Tài chính\"")
            && detail.contains("email: none -> \"vanthu@mof.gov.vn\""),
        "{detail}"
    );
    assert!(edit["actor"].as_str().unwrap().starts_with("admin@"));

    // `node list` shows the fields (JSON and text).
    let b = net.node_entry(B).unwrap();
    assert_eq!(
        (&b["parent"], &b["email"], &b["phone"]),
        (
            &Value::from(A),
            &Value::from("phapche@mof.gov.vn"),
            &Value::from("024.2220.2828")
        )
    );
    assert_eq!(b["address"], "28 Trần Hưng Đạo, Hoàn Kiếm, Hà Nội");
    let table = hub_ok(&net, &["node", "list"]);
    assert!(table.contains("PARENT"), "{table}");
    let b_row = table.lines().position(|l| l.starts_with(B)).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[b_row].contains(A) && lines[b_row].contains("Vụ Pháp chế"));
    assert!(
        lines[b_row + 1].contains("e-mail phapche@mof.gov.vn")
            && lines[b_row + 1].contains("address 28 Trần Hưng Đạo"),
        "{table}"
    );
    let show = net.node_show(P);
    assert_eq!(
        (&show["parent"], &show["state"]),
        (&Value::from(C), &Value::from("pending"))
    );

    // An agent asks for the directory over its connection.
    let rt = rt();
    let agent = open_agent(&net, A, &rt);
    wait_until("in-process agent A connected", DEADLINE, || {
        agent.connected()
    });
    let want = expected(&net);
    let dir = rt
        .block_on(agent.directory(Duration::from_secs(600)))
        .unwrap();
    assert!(!dir.stale);
    assert_eq!(dir.entries, want);
    assert_eq!(dir.entries.len(), 4);
    let get = |code: &str| dir.get(&id(code)).unwrap().clone();
    assert_eq!(get(A).name, "Bộ Tài chính");
    assert_eq!(get(B).parent, Some(id(A)));
    assert!(!get(C).active, "suspended");
    assert!(get(P).active, "pending: documents to it are queued");
    assert_eq!(get(P).email.as_deref(), Some("snv@tinh.gov.vn"));
    assert!(dir.get(&id(D)).is_none());

    // A change shows once the cached copy is older than the caller allows.
    hub_ok(
        &net,
        &[
            "node",
            "edit",
            B,
            "--no-parent",
            "--no-phone",
            "--name",
            "Vụ Pháp chế (BTC)",
        ],
    );
    let cached = rt
        .block_on(agent.directory(Duration::from_secs(600)))
        .unwrap();
    assert_eq!(cached, dir, "within max_age the cached copy is returned");
    let fresh = rt.block_on(agent.directory(Duration::ZERO)).unwrap();
    assert_eq!(fresh.entries, expected(&net));
    let b = fresh.get(&id(B)).unwrap();
    assert_eq!((b.parent.as_ref(), b.phone.as_ref()), (None, None));
    assert_eq!(b.name, "Vụ Pháp chế (BTC)");
    assert!(fresh.fetched_ms >= dir.fetched_ms);

    // The hub goes away: the copy held is returned, marked stale.
    net.stop_hub();
    wait_until("agent A sees the hub gone", DEADLINE, || !agent.connected());
    let stale = rt.block_on(agent.directory(Duration::ZERO)).unwrap();
    assert!(stale.stale);
    assert_eq!(
        (stale.entries.clone(), stale.fetched_ms),
        (fresh.entries.clone(), fresh.fetched_ms)
    );
    // An agent that never fetched it has nothing to fall back on.
    let agent_b = open_agent(&net, B, &rt);
    let none = rt.block_on(agent_b.directory(Duration::ZERO));
    assert!(
        matches!(none, Err(DirectoryError::NotConnected)),
        "{none:?}"
    );
    // Back up: fresh again.
    net.start_hub();
    wait_until("agent A reconnected", DEADLINE, || agent.connected());
    let again = rt.block_on(agent.directory(Duration::ZERO)).unwrap();
    assert!(!again.stale);
    rt.block_on(async {
        agent.close().await;
        agent_b.close().await;
    });
}

/// Register `n` pending agencies with long names and addresses through the admin API.
fn register_many(net: &Net, n: usize) {
    let url = format!("http://127.0.0.1:{}/admin/v1/nodes", net.ops_port);
    let token = net.admin_token();
    for i in 0..n {
        let code = format!("001.{:02}.{:02}.H{:02}", i / 100, i % 100, i % 89);
        let body = serde_json::json!({
            "agency": code,
            "name": format!("{i} {}", "Ủy ban nhân dân xã ").chars().cycle().take(200).collect::<String>(),
            "address": "Thôn Bản Phố, xã Bản Phố, huyện Bắc Hà, tỉnh Lào Cai, ".repeat(6).chars().take(300).collect::<String>(),
            "email": format!("ubnd{i}@laocai.gov.vn"),
            "phone": "0214 3880 123",
            "parent": A,
        });
        let r = net
            .http()
            .post(&url)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "adding {code}: {}", r.status());
    }
}

/// A registry too large for one frame comes as several pages, each within the frame limit,
/// in code order with a cursor, on the agency's own connection; `Agent::directory` follows
/// the cursor to the end.
#[test]
fn a_large_directory_is_paged_over_a_real_connection() {
    let mut net = Net::new();
    net.add_agent(A);
    net.start_hub();
    register_many(&net, 400);
    let want = expected(&net);
    assert_eq!(want.len(), 401);

    let rt = rt();
    let tls = agent_tls(&net.agent_dir(A));
    let addr = net.quic_addr();
    let (pages, got) = rt.block_on(async {
        let conn = common::raw::connect(tls, addr).await.unwrap();
        let mut after: Option<AgencyId> = None;
        let (mut pages, mut got) = (0, Vec::new());
        loop {
            let ask = Frame::DirectoryRequest {
                after: after.clone(),
            };
            let bytes = ask.encode().unwrap();
            let answer = common::raw::request(&conn, &bytes).await.unwrap();
            let Frame::DirectoryPage { entries, next } = answer else {
                panic!("answer {answer:?}")
            };
            pages += 1;
            assert!(!entries.is_empty());
            assert_eq!(
                next.as_ref(),
                next.as_ref().and(entries.last().map(|e| &e.code))
            );
            got.extend(entries);
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        conn.close(0u32.into(), b"done");
        (pages, got)
    });
    assert!(pages >= 2, "400 long entries took {pages} page(s)");
    assert_eq!(got, want);

    let agent = open_agent(&net, A, &rt);
    wait_until("in-process agent A connected", DEADLINE, || {
        agent.connected()
    });
    let dir = rt.block_on(agent.directory(Duration::ZERO)).unwrap();
    assert_eq!(dir.entries, want);
    rt.block_on(agent.close());
}

/// Only an agency on its own verified connection is answered; one the hub does not know
/// never gets as far as asking.
#[test]
fn only_registered_agencies_get_the_directory() {
    let mut net = Net::new();
    net.add_agent(A);
    net.add_agent(B);
    net.start_hub();
    assert_ok(&net.node_action("revoke", B), "node revoke");
    let rt = rt();
    let addr = net.quic_addr();
    let tls_b = agent_tls(&net.agent_dir(B));
    let asked = rt.block_on(async {
        let conn = common::raw::connect(tls_b, addr).await.ok()?;
        let bytes = Frame::DirectoryRequest { after: None }.encode().unwrap();
        common::raw::request(&conn, &bytes).await.ok()
    });
    assert!(
        !matches!(asked, Some(Frame::DirectoryPage { .. })),
        "a revoked agency was given the directory: {asked:?}"
    );
    // The active one is answered on the same hub.
    let tls_a = agent_tls(&net.agent_dir(A));
    let answer = rt.block_on(async {
        let conn = common::raw::connect(tls_a, addr).await.unwrap();
        let bytes = Frame::DirectoryRequest { after: None }.encode().unwrap();
        common::raw::request(&conn, &bytes).await.unwrap()
    });
    let Frame::DirectoryPage { entries, next } = answer else {
        panic!("answer {answer:?}")
    };
    assert_eq!(next, None);
    let b = entries.iter().find(|e| e.code == id(B)).unwrap();
    assert!(!b.active, "revoked");
}
