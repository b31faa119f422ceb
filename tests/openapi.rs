//! The agent's OpenAPI document, end to end with the real binaries: a running agent serves at
//! `GET /openapi.json` exactly the committed `docs/openapi.json`, every operation the document
//! lists is served at its path and method, and nothing else is: other methods on those paths
//! are 405, and other paths are the router's JSON 404.

mod common;
use common::*;
use serde_json::Value;

/// The methods an OpenAPI path item may hold that the probes below try.
const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

fn committed() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// `path` with each `{param}` filled in: a document ID nobody has.
fn concrete(path: &str) -> String {
    path.replace("{id}", "0190f5d2-3c4a-7b2e-9f10-6a7b8c9d0e1f")
}

#[test]
fn the_served_document_is_the_committed_one_and_lists_every_route() {
    let net = Net::running(&[A, B]);
    let addr = std::fs::read_to_string(net.agent_dir(A).join("run/api.addr")).unwrap();
    let base = format!("http://{}", addr.trim());
    let http = net.http();

    let r = http.get(format!("{base}/openapi.json")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/json",
        "the document's content type"
    );
    let served = r.text().unwrap();
    assert!(
        served == committed(),
        "GET /openapi.json differs from docs/openapi.json; regenerate it with \
         `POROS_WRITE_OPENAPI=1 cargo test -p poros-agent openapi`"
    );

    let doc: Value = serde_json::from_str(&served).unwrap();
    let paths = doc["paths"].as_object().expect("paths");
    let mut served_ops = 0;
    for (path, item) in paths {
        let url = format!("{base}{}", concrete(path));
        for m in METHODS {
            let method = reqwest::Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            let r = http.request(method, &url).send().unwrap();
            let status = r.status().as_u16();
            let body = r.text().unwrap_or_default();
            if item.get(m).is_some() {
                // Served: whatever the answer, it is the handler's, not the router's.
                served_ops += 1;
                assert!(
                    status != 405 && !body.contains("no route for"),
                    "{m} {path} is documented but not served: {status} {body}"
                );
                let documented = item[m]["responses"]
                    .as_object()
                    .is_some_and(|c| c.contains_key(&status.to_string()));
                assert!(
                    documented,
                    "{m} {path} answered {status}, which its documentation does not list: {body}"
                );
            } else {
                assert_eq!(
                    status, 405,
                    "{m} {path} is served ({status}) but not documented: {body}"
                );
            }
        }
    }
    assert!(served_ops >= 16, "only {served_ops} operations probed");

    // A path outside the document is the router's JSON 404.
    let r = http.get(format!("{base}/v1/nothing-here")).send().unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().expect("a JSON 404");
    assert_eq!(v["error"], "no route for GET /v1/nothing-here", "{v}");
}
