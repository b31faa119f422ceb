//! Listings are paged: every listing of the agent's API answers a bounded page (default 100,
//! at most 1000) with a cursor to the next one, and the CLI still prints everything.

mod common;
use common::*;
use serde_json::Value;

const N: usize = 230;

/// One page: (items, next cursor), or the error status and message.
fn page(
    net: &Net,
    code: &str,
    path: &str,
    query: &str,
) -> Result<(Vec<Value>, Option<String>), String> {
    let addr = std::fs::read_to_string(net.agent_dir(code).join("run/api.addr")).unwrap();
    let r = net
        .http()
        .get(format!("http://{}{path}{query}", addr.trim()))
        .send()
        .unwrap();
    let status = r.status();
    let next = r
        .headers()
        .get("poros-next-cursor")
        .map(|v| v.to_str().unwrap().to_string());
    let v: Value = r.json().unwrap();
    if !status.is_success() {
        return Err(format!("{status}: {v}"));
    }
    Ok((v.as_array().expect("a page is a JSON array").clone(), next))
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn listings_are_paged_with_a_cursor_and_the_cli_prints_them_all() {
    let mut net = Net::new();
    net.start_hub();
    net.add_agent(A);
    net.add_agent(B);
    net.start_agent(A);
    net.start_agent(B);
    let sent: Vec<String> = (0..N)
        .map(|i| net.send(A, &[B], &format!("doc {i}"), format!("body {i}").as_bytes()))
        .collect();
    // Listings are in document-ID order: time order to the millisecond, then the ID's random
    // bits, so two documents sent in the same millisecond may list in either order.
    let mut sent = sent;
    sent.sort();
    wait_until("every receipt at the sender", DEADLINE, || {
        net.api_list_get(A, "/v1/receipts")
            .is_some_and(|v| v.as_array().unwrap().len() == N)
    });

    for (code, path) in [(A, "/v1/documents"), (B, "/v1/inbox"), (A, "/v1/receipts")] {
        // Without a limit: the default page, and a cursor.
        let (first, next) = page(&net, code, path, "").unwrap();
        assert_eq!(first.len(), 100, "{path}: default page size");
        assert!(next.is_some(), "{path}: no cursor after a full page");
        // Following the cursor visits every item once, in order, and ends without a cursor.
        let mut all = Vec::new();
        let mut query = "?limit=70".to_string();
        let mut pages = 0;
        loop {
            let (items, next) = page(&net, code, path, &query).unwrap();
            assert!(items.len() <= 70);
            all.extend(ids(&items));
            pages += 1;
            match next {
                Some(c) => query = format!("?limit=70&after={c}"),
                None => break,
            }
        }
        assert_eq!(all, sent, "{path}: paging lost, doubled or reordered items");
        assert_eq!(pages, N.div_ceil(70), "{path}: pages");
        // Over the maximum, a zero limit and a foreign cursor are refused, naming the rule.
        let e = page(&net, code, path, "?limit=1001").unwrap_err();
        assert!(e.starts_with("400") && e.contains("1000"), "{path}: {e}");
        assert!(page(&net, code, path, "?limit=0").is_err());
        let e = page(&net, code, path, "?after=not-a-cursor").unwrap_err();
        assert!(e.starts_with("400") && e.contains("cursor"), "{path}: {e}");
    }
    // The quarantine pages the same way (empty here).
    assert_eq!(page(&net, B, "/v1/quarantine", "").unwrap(), (vec![], None));

    // The CLI follows the pages: everything, or the first --limit.
    assert_eq!(
        ids(net.agent_json(B, "inbox", &[]).as_array().unwrap()),
        sent
    );
    assert_eq!(
        ids(net.agent_json(A, "status", &[]).as_array().unwrap()),
        sent
    );
    assert_eq!(
        ids(net.agent_json(A, "receipts", &[]).as_array().unwrap()),
        sent
    );
    let first = net.agent_json(B, "inbox", &["--limit", "7"]);
    assert_eq!(ids(first.as_array().unwrap()), sent[..7]);
    assert_eq!(net.agent_json(B, "quarantine", &[]), Value::Array(vec![]));
    let table = net.agent_cli(&["inbox", "--dir", &s(&net.agent_dir(B))]);
    assert_ok(&table, "poros-agent inbox");
    assert_eq!(
        String::from_utf8_lossy(&table.stdout).lines().count(),
        N + 1
    );
}
