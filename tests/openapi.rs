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

/// The refusals the document promises are what a client gets: JSON errors with the documented
/// codes, for an empty document, an array where an object is expected, an unknown query key, a
/// JSON body over 2 MiB and a path ID that is not UTF-8; nothing is stored.
#[test]
fn refusals_are_the_documented_json_errors() {
    let net = Net::running(&[A, B]);
    let addr = std::fs::read_to_string(net.agent_dir(A).join("run/api.addr")).unwrap();
    let base = format!("http://{}", addr.trim());
    let http = net.http();
    let id = "0190f5d2-3c4a-7b2e-9f10-6a7b8c9d0e1f";
    let staff = r#"{"department": "Văn thư", "name": "An"}"#;
    let big = format!(r#"{{"reason": "{}"}}"#, "x".repeat(3 << 20));
    let cases: Vec<(reqwest::Method, String, Vec<u8>, u16, &str)> = vec![
        (
            reqwest::Method::POST,
            format!("/v1/documents?to={B}&subject=s"),
            vec![],
            400,
            "the document is empty",
        ),
        (
            reqwest::Method::POST,
            format!("/v1/documents?to={B}&subject=s&colour=red"),
            b"body".to_vec(),
            400,
            "unknown field `colour`",
        ),
        (
            reqwest::Method::POST,
            format!("/v1/documents/{id}/update"),
            format!(r#"{{"reason": "r", "meta": [null], "staff": {staff}}}"#).into_bytes(),
            400,
            "expected a map",
        ),
        (
            reqwest::Method::POST,
            format!("/v1/documents/{id}/progress"),
            br#"["registered"]"#.to_vec(),
            400,
            "expected a map",
        ),
        (
            reqwest::Method::POST,
            format!("/v1/documents/{id}/takeback"),
            big.into_bytes(),
            413,
            "length limit exceeded",
        ),
        (
            reqwest::Method::POST,
            "/v1/reports/paper".into(),
            br#"{"month": "2026-13", "sent": 1, "received": 2}"#.to_vec(),
            400,
            "is not YYYY-MM",
        ),
        (
            reqwest::Method::GET,
            "/v1/events?after=-1".into(),
            vec![],
            400,
            "at least 0",
        ),
        (
            reqwest::Method::GET,
            "/v1/documents/%FF%FE".into(),
            vec![],
            400,
            "UTF-8",
        ),
    ];
    for (method, path, body, status, needle) in cases {
        let r = http
            .request(method.clone(), format!("{base}{path}"))
            .body(body)
            .send()
            .unwrap();
        let got = r.status().as_u16();
        let v: Value = r
            .json()
            .unwrap_or_else(|e| panic!("{method} {path}: the {got} answer is not JSON: {e}"));
        assert_eq!(got, status, "{method} {path}: {v}");
        let msg = v["error"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{method} {path}: {v}");
    }
    assert_eq!(
        net.api_list(A, "/v1/documents"),
        serde_json::json!([]),
        "a refused document was kept"
    );
}
