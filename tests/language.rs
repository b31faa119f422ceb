//! The users' language end to end: `poros-hub` and `poros-agent` print their human-readable
//! output and errors in the locale's language (Vietnamese under `vi_VN.UTF-8`, English under
//! `en_US.UTF-8` and `C`) from the catalogue, `--json` output is the same whatever the locale,
//! names with Vietnamese diacritics are listed in Vietnamese alphabetical order and printed
//! unchanged, and the agent's API answers an error in the `Accept-Language` asked for, with the
//! same `code` in every language.

mod common;
use common::*;
use poros_i18n::{t, Lang};
use serde_json::Value;
use std::process::{Command, Output, Stdio};

const G01: &str = "000.00.00.G01";
const G02: &str = "000.00.00.G02";

/// The locales a user may run the command lines under, with the language each must print.
const LOCALES: [(&str, Lang); 3] = [
    ("vi_VN.UTF-8", Lang::Vi),
    ("en_US.UTF-8", Lang::En),
    ("C", Lang::En),
];

/// Agencies whose names byte order would put last ("Đ" is U+0110, "Ủ" U+1EE6).
const NAMED: [(&str, &str); 4] = [
    ("000.00.00.H11", "Ủy ban nhân dân tỉnh Lào Cai"),
    ("000.00.00.H12", "Đài Truyền hình Việt Nam"),
    ("000.00.00.H13", "Bộ Tài chính"),
    ("000.00.00.H14", "Văn phòng Chính phủ"),
];

/// `exe args` under the locale `lang` only (no `POROS_LANG`, which the harness sets, nor any
/// other locale variable of the test's own environment).
fn run_in(locale: &str, exe: &str, args: &[&str]) -> Output {
    Command::new(exe)
        .args(args)
        .env_remove("POROS_LANG")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env_remove("LANGUAGE")
        .env("LANG", locale)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {exe}: {e}"))
}

fn ok_in(locale: &str, exe: &str, args: &[&str]) -> (String, String) {
    let out = run_in(locale, exe, args);
    assert_ok(&out, &format!("LANG={locale} {exe} {}", args.join(" ")));
    (
        String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    )
}

fn failed_in(locale: &str, exe: &str, args: &[&str]) -> String {
    let out = run_in(locale, exe, args);
    assert!(
        !out.status.success(),
        "LANG={locale} {exe} {} unexpectedly succeeded",
        args.join(" ")
    );
    String::from_utf8(out.stderr).expect("stderr is UTF-8")
}

#[test]
fn command_lines_speak_the_locale_language_and_json_does_not_change() {
    let net = Net::running(&[G01, G02]);
    let hub = s(&net.hub_dir);
    let (g01, g02) = (s(&net.agent_dir(G01)), s(&net.agent_dir(G02)));
    let (hub, g01, g02) = (hub.as_str(), g01.as_str(), g02.as_str());

    // Registering agencies: the hub's message in the registering user's language.
    for (i, (code, name)) in NAMED.iter().enumerate() {
        let (locale, lang) = LOCALES[i % LOCALES.len()];
        let args = ["node", "add", "--dir", hub, code, "--name", name];
        let (token, stderr) = ok_in(locale, HUB_EXE, &args);
        assert!(!token.trim().is_empty(), "no token on stdout");
        let said = t!(lang, "hub-node-registered-token", agency = *code);
        assert!(
            stderr.contains(&said),
            "LANG={locale}: {said:?} not in {stderr}"
        );
    }

    // `node list --by-name`: headers in the language, names in its alphabetical order.
    let vi_order = [
        "Agency 000.00.00.G01",
        "Agency 000.00.00.G02",
        "Bộ Tài chính",
        "Đài Truyền hình Việt Nam",
        "Ủy ban nhân dân tỉnh Lào Cai",
        "Văn phòng Chính phủ",
    ];
    let mut bytes = vi_order.to_vec();
    bytes.sort();
    assert_ne!(
        bytes, vi_order,
        "byte order must differ for the test to mean anything"
    );
    for (locale, lang) in LOCALES {
        let (list, _) = ok_in(
            locale,
            HUB_EXE,
            &["node", "list", "--dir", hub, "--by-name"],
        );
        let mut lines = list.lines();
        let header = lines.next().unwrap_or_default();
        for word in [
            t!(lang, "hub-col-agency"),
            t!(lang, "hub-col-state"),
            t!(lang, "hub-col-name"),
        ] {
            assert!(
                header.contains(&word),
                "LANG={locale}: {word} not in {header:?}"
            );
        }
        let names: Vec<&str> = list
            .lines()
            .filter_map(|l| vi_order.iter().find(|n| l.ends_with(*n)).copied())
            .collect();
        // Both languages' orders agree on these names (the root order puts "Đ" with "D" and
        // "Ủ" with "U" too); what matters is that they are not in byte order.
        assert_eq!(names, vi_order, "LANG={locale}: order of {list}");
        let pending = t!(lang, "common-no");
        assert!(
            list.lines()
                .any(|l| l.contains("000.00.00.H11") && l.contains(&pending)),
            "LANG={locale}: H11 not shown as not connected ({pending:?}): {list}"
        );
    }

    // A document with a Vietnamese subject: the agent's listing prints it as it is.
    let subject = "Về việc triển khai Nghị định số 30/2020/NĐ-CP về công tác văn thư";
    let id = net.send_cli(G01, &[G02], subject, b"noi dung");
    wait_until("the receipt", DEADLINE, || {
        recipient_states(&net.api(G01, &format!("/v1/documents/{id}")))
            .get(G02)
            .is_some_and(|s| s == "delivered")
    });
    for (locale, lang) in LOCALES {
        let (inbox, _) = ok_in(locale, AGENT_EXE, &["inbox", "--dir", g02]);
        let header = inbox.lines().next().unwrap_or_default();
        assert!(
            header.contains(&t!(lang, "agent-col-subject")),
            "LANG={locale}: {header:?}"
        );
        assert!(
            inbox.contains(subject),
            "LANG={locale}: subject changed: {inbox}"
        );
        let (status, _) = ok_in(locale, AGENT_EXE, &["status", "--dir", g01, &id]);
        let delivered = t!(lang, "agent-recipient-delivered", time = "");
        assert!(
            status.contains(delivered.trim_end()),
            "LANG={locale}: {delivered:?} not in {status}"
        );
    }

    // Errors: the agent's API answers in the command line's language, the hub CLI's own too.
    for (locale, lang) in LOCALES {
        let stderr = failed_in(locale, AGENT_EXE, &["status", "--dir", g01, "not-an-id"]);
        let said = t!(lang, "agent-err-bad-document-id", id = "\"not-an-id\"");
        assert!(
            stderr.contains(&said),
            "LANG={locale}: {said:?} not in {stderr}"
        );
        let missing = net.root.join("no-such-deployment");
        let stderr = failed_in(locale, HUB_EXE, &["node", "list", "--dir", &s(&missing)]);
        let said = t!(lang, "hub-not-a-deployment", dir = s(&missing));
        assert!(
            stderr.contains(&said),
            "LANG={locale}: {said:?} not in {stderr}"
        );
    }

    // `--json` is for programs: the same bytes whatever the locale.
    for (exe, args) in [
        (AGENT_EXE, vec!["inbox", "--dir", g02, "--json"]),
        (AGENT_EXE, vec!["receipts", "--dir", g01, "--json"]),
        (HUB_EXE, vec!["audit", "--dir", hub, "--json"]),
    ] {
        let outs: Vec<String> = LOCALES
            .iter()
            .map(|(locale, _)| ok_in(locale, exe, &args).0)
            .collect();
        serde_json::from_str::<Value>(&outs[0]).expect("--json prints JSON");
        assert!(
            outs.iter().all(|o| o == &outs[0]),
            "{}: --json differs between locales: {outs:?}",
            args.join(" ")
        );
    }

    // No deployment needed: `poros-agent init` speaks the locale's language too.
    for (i, (locale, lang)) in LOCALES.into_iter().enumerate() {
        let dir = net.root.join(format!("init-{i}"));
        let (out, _) = ok_in(
            locale,
            AGENT_EXE,
            &["init", "--dir", &s(&dir), "--agency", "000.00.00.H20"],
        );
        let said = t!(
            lang,
            "agent-init-created",
            dir = s(&dir),
            agency = "000.00.00.H20"
        );
        assert!(out.contains(&said), "LANG={locale}: {said:?} not in {out}");
    }
}

/// A refusal's message as the catalogue renders it in a language, given the English answer.
type Message = Box<dyn Fn(Lang, &str) -> String>;

/// GET `path` on G01's API with `Accept-Language: accept` (none if empty): status and body.
fn api_error(base: &str, path: &str, accept: &str) -> (u16, Value) {
    let http = reqwest::blocking::Client::new();
    let mut req = http.get(format!("{base}{path}"));
    if !accept.is_empty() {
        req = req.header("accept-language", accept);
    }
    let r = req.send().expect("the agent answers");
    let status = r.status().as_u16();
    (status, r.json().expect("an error answer is JSON"))
}

#[test]
fn agent_api_errors_come_in_the_accept_language_with_one_code() {
    let net = Net::running(&[G01]);
    let addr = std::fs::read_to_string(net.agent_dir(G01).join("run/api.addr")).unwrap();
    let base = format!("http://{}", addr.trim());
    let doc = "0190f5d2-3c4a-7b2e-9f10-6a7b8c9d0e1f";
    let unknown = format!("/v1/inbox/{doc}/body");
    // (path, code, the message's catalogue rendering in a language)
    let cases: Vec<(String, &str, Message)> = vec![
        (
            "/v1/documents/not-an-id".into(),
            "invalid_document_id",
            Box::new(|l, _| t!(l, "agent-err-bad-document-id", id = "\"not-an-id\"")),
        ),
        (
            unknown.clone(),
            "unknown_document",
            Box::new(move |l, _| t!(l, "agent-err-not-in-inbox", id = doc)),
        ),
        (
            "/v1/inbox?limit=0".into(),
            "invalid_limit",
            Box::new(|l, _| t!(l, "agent-err-page-limit", max = "1000", got = "0")),
        ),
        // Refused by the query extractor (outside the agent's own refusals): English detail,
        // the Vietnamese sentence around it, and a code all the same.
        (
            "/v1/inbox?limit=many".into(),
            "invalid_request",
            Box::new(|l, english| t!(l, "agent-err-invalid", detail = english)),
        ),
    ];
    for (path, code, message) in &cases {
        let (status_en, en) = api_error(&base, path, "");
        assert!(status_en >= 400, "{path}: {status_en} {en}");
        let english = en["error"].as_str().unwrap_or_default().to_string();
        assert_eq!(en["code"], *code, "{path}: {en}");
        assert_eq!(english, message(Lang::En, &english), "{path}");
        for accept in ["en-US,en;q=0.9", "fr, de;q=0.5"] {
            assert_eq!(
                api_error(&base, path, accept),
                (status_en, en.clone()),
                "{accept}"
            );
        }
        for accept in ["vi", "vi-VN,vi;q=0.9,en;q=0.8", "en;q=0.3, vi"] {
            let (status, vi) = api_error(&base, path, accept);
            assert_eq!(status, status_en, "{path} {accept}");
            assert_eq!(vi["code"], *code, "{path} {accept}: {vi}");
            let said = vi["error"].as_str().unwrap_or_default();
            assert_eq!(said, message(Lang::Vi, &english), "{path} {accept}");
            assert_ne!(said, english, "{path} {accept}: not translated");
        }
    }

    // A refusal under the exchange rules: the rule's code and reason code in both languages.
    let http = reqwest::blocking::Client::new();
    let progress = |accept: &str| {
        let r = http
            .post(format!("{base}/v1/documents/{doc}/progress"))
            .header("accept-language", accept)
            .json(&serde_json::json!({
                "code": "registered",
                "staff": {"name": "Nguyễn Văn A", "department": "Văn thư"}
            }))
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    let (se, en) = progress("en");
    let (sv, vi) = progress("vi");
    assert_eq!((se, sv), (404, 404), "{en} {vi}");
    for v in [&en, &vi] {
        assert_eq!(v["code"], "unknown_document", "{v}");
        assert_eq!(v["reason_code"], "unknown_document", "{v}");
    }
    let detail = en["error"].as_str().unwrap();
    assert_eq!(
        vi["error"].as_str().unwrap(),
        t!(Lang::Vi, "agent-err-rule-unknown-document", detail = detail)
    );
}
