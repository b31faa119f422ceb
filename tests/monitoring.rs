//! Monitoring statistics end to end: a known mix of on-time, late, rejected and pending
//! deliveries plus paper-only reports, driven through real processes, must give exactly the
//! hand-computed figures on the statistics API (admin and monitor credentials), in
//! `poros-hub stats --json/--csv`; the live counters must equal a recount of the stored records
//! after a kill -9 of the hub; and `/metrics` must carry the per-agency series.

mod common;
use common::*;
use poros_i18n::{tr, Lang};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Helpers (local to this file: tests/common/mod.rs is shared and edited elsewhere).

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The current UTC month, `YYYY-MM`.
fn current_month() -> String {
    let d = time::OffsetDateTime::now_utc().date();
    format!("{:04}-{:02}", d.year(), d.month() as u8)
}

/// The current UTC year, `YYYY`.
fn current_year() -> String {
    format!("{:04}", time::OffsetDateTime::now_utc().year())
}

/// GET on the hub's operations listener with an optional bearer token: (status, body text).
fn ops_get(net: &Net, path_and_query: &str, token: Option<&str>) -> (u16, String) {
    let mut rq = net
        .http()
        .get(format!("http://127.0.0.1:{}{path_and_query}", net.ops_port));
    if let Some(t) = token {
        rq = rq.bearer_auth(t);
    }
    let r = rq
        .send()
        .unwrap_or_else(|e| panic!("GET {path_and_query}: {e}"));
    let status = r.status().as_u16();
    (status, r.text().unwrap_or_default())
}

/// `/api/v1/stats?<query>` with `token`; must answer 200 with JSON.
fn api_stats(net: &Net, query: &str, token: &str) -> Value {
    let (st, body) = ops_get(net, &format!("/api/v1/stats?{query}"), Some(token));
    assert_eq!(st, 200, "GET /api/v1/stats?{query}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("stats JSON ({e}): {body}"))
}

/// `poros-hub monitor add --dir HUB NAME`; returns the printed token.
fn monitor_add(net: &Net, name: &str) -> String {
    let out = net.hub_cli(&["monitor", "add", "--dir", &s(&net.hub_dir), name]);
    assert_ok(&out, "poros-hub monitor add");
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        token.starts_with("pmon_") && token.len() > 20,
        "monitor add printed {token:?}"
    );
    token
}

fn monitor_revoke(net: &Net, name: &str) {
    let out = net.hub_cli(&["monitor", "revoke", "--dir", &s(&net.hub_dir), name]);
    assert_ok(&out, "poros-hub monitor revoke");
}

/// `poros-hub stats --dir HUB <extra>`; stdout (must succeed).
fn hub_stats_cli(net: &Net, extra: &[&str]) -> String {
    let d = s(&net.hub_dir);
    let mut args = vec!["stats", "--dir", d.as_str()];
    args.extend_from_slice(extra);
    let out = net.hub_cli(&args);
    assert_ok(&out, &format!("poros-hub stats {}", extra.join(" ")));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Hub-side acceptance time of every recipient of `id` (from the sender's status).
fn accepted_ms(net: &Net, from: &str, id: &str) -> u64 {
    net.status(from, id)["accepted_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("{id} has no accepted_ms at {from}"))
}

/// Numbers compare by value (an integer 75 equals a float 75.0); everything else exactly.
fn same(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Number(g), Value::Number(w)) => {
            (g.as_f64().unwrap() - w.as_f64().unwrap()).abs() < 1e-9
        }
        _ => got == want,
    }
}

/// Every key of `want` has that value in `got`; one message listing all differences.
fn assert_fields(what: &str, got: &Value, want: &Value) {
    let mut diffs = Vec::new();
    for (k, w) in want.as_object().unwrap() {
        if !same(&got[k], w) {
            diffs.push(format!("  {k}: got {} want {w}", got[k]));
        }
    }
    assert!(
        diffs.is_empty(),
        "{what} differs from the hand computation:\n{}\nfull: {got}",
        diffs.join("\n")
    );
}

fn agency_row<'a>(report: &'a Value, code: &str) -> &'a Value {
    report["agencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["scope"] == code)
        .unwrap_or_else(|| panic!("no agency {code} in {}", report["agencies"]))
}

fn group_row<'a>(report: &'a Value, g: &str) -> &'a Value {
    report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["group"] == g)
        .unwrap_or_else(|| panic!("no group {g} in {}", report["groups"]))
}

// ---------------------------------------------------------------------------------------------
// 1. A known mix against a hand computation.

/// Hand-computed expected figures of the mix driven in `known_mix_matches_hand_computation`.
///
/// Documents (sender → recipients: outcome):
/// - G01→G02 ×3, G01→H01 ×2, G01→{G02,H01} ×1, H01→G01 ×1: delivered at once (on time);
/// - H01→H02 ×1 and G01→H02 ×2: never delivered (H02 never runs) → pending, and overdue
///   (older than on_time_secs = 2);
/// - G01→H01 ×2 while H01 is down, delivered ≥ 2.5 s after acceptance → late;
/// - G01→G02 ×1 (100 KiB, over G02's own body limit) → rejected, counted under the code G02
///   signed, `too_large` (not under the body-hash mismatch its wording used to be sorted into).
///
/// Paper-only reports for the month: G01 sent 3 / received 1, H01 sent 2 / received 5.
///
/// Electronic-exchange rate as defined in hub/src/report.rs and the README: documents sent
/// (accepted by the hub) plus documents received with a verified receipt, over those plus the
/// paper-only counts; none (null) when both are 0. `received` in the report is `due`.
///
/// | scope | sent | due | on time | late | rej | pending | paper | electronic = (sent+delivered)/(+paper) |
/// |-------|------|-----|---------|------|-----|---------|-------|----------------------------------------|
/// | G01   | 11   | 1   | 1       | 0    | 0   | 0       | 3+1   | 12/16 = 75.00                          |
/// | G02   | 0    | 5   | 4       | 0    | 1   | 0       | 0     | 4/4 = 100.00                           |
/// | H01   | 2    | 5   | 3       | 2    | 0   | 0       | 2+5   | 7/14 = 50.00                           |
/// | H02   | 0    | 3   | 0       | 0    | 0   | 3       | 0     | 0/0 = none (null)                      |
/// | G     | 11   | 6   | 5       | 0    | 1   | 0       | 3+1   | 16/20 = 80.00                          |
/// | H     | 2    | 8   | 3       | 2    | 0   | 3       | 2+5   | 7/14 = 50.00                           |
/// | nat.  | 13   | 14  | 8       | 2    | 1   | 3       | 5+6   | 23/34 = 67.65                          |
fn expected() -> BTreeMap<&'static str, Value> {
    let mut m = BTreeMap::new();
    m.insert(
        A,
        json!({"sent": 11, "received": 1, "due": 1, "delivered": 1, "on_time": 1, "late": 0,
               "rejected": 0, "expired": 0, "pending": 0, "overdue": 0,
               "delivery_rate": 100.0, "on_time_rate": 100.0,
               "paper_sent": 3, "paper_received": 1, "electronic_rate": 75.0,
               "rejected_by_reason": {}, "group": "G", "state": "active",
               "connected": true, "seen_in_period": true}),
    );
    m.insert(
        B,
        json!({"sent": 0, "received": 4, "due": 5, "delivered": 4, "on_time": 4, "late": 0,
               "rejected": 1, "expired": 0, "pending": 0, "overdue": 0,
               "delivery_rate": 80.0, "on_time_rate": 80.0,
               "paper_sent": 0, "paper_received": 0, "electronic_rate": 100.0,
               "rejected_by_reason": {"too_large": 1}, "group": "G", "state": "active",
               "connected": true, "seen_in_period": true}),
    );
    m.insert(
        C,
        json!({"sent": 2, "received": 5, "due": 5, "delivered": 5, "on_time": 3, "late": 2,
               "rejected": 0, "expired": 0, "pending": 0, "overdue": 0,
               "delivery_rate": 100.0, "on_time_rate": 60.0,
               "paper_sent": 2, "paper_received": 5, "electronic_rate": 50.0,
               "rejected_by_reason": {}, "group": "H", "state": "active",
               "connected": true, "seen_in_period": true}),
    );
    m.insert(
        D,
        json!({"sent": 0, "received": 0, "due": 3, "delivered": 0, "on_time": 0, "late": 0,
               "rejected": 0, "expired": 0, "pending": 3, "overdue": 3,
               "delivery_rate": 0.0, "on_time_rate": 0.0,
               "paper_sent": 0, "paper_received": 0, "electronic_rate": null,
               "rejected_by_reason": {}, "group": "H", "state": "active",
               "connected": false, "seen_in_period": false,
               "avg_latency_ms": null}),
    );
    m.insert(
        "G",
        json!({"scope": "group:G", "sent": 11, "due": 6, "delivered": 5, "on_time": 5,
               "late": 0, "rejected": 1, "expired": 0, "pending": 0, "overdue": 0,
               "delivery_rate": 83.33, "on_time_rate": 83.33,
               "paper_sent": 3, "paper_received": 1, "electronic_rate": 80.0,
               "rejected_by_reason": {"too_large": 1},
               "registered": 2, "connected": 2}),
    );
    m.insert(
        "H",
        json!({"scope": "group:H", "sent": 2, "due": 8, "delivered": 5, "on_time": 3,
               "late": 2, "rejected": 0, "expired": 0, "pending": 3, "overdue": 3,
               "delivery_rate": 62.5, "on_time_rate": 37.5,
               "paper_sent": 2, "paper_received": 5, "electronic_rate": 50.0,
               "rejected_by_reason": {},
               "registered": 2, "connected": 1}),
    );
    m.insert(
        "national",
        json!({"scope": "national", "sent": 13, "received": 10, "due": 14, "delivered": 10,
               "on_time": 8, "late": 2, "rejected": 1, "expired": 0, "pending": 3,
               "overdue": 3, "delivery_rate": 71.43, "on_time_rate": 57.14,
               "paper_sent": 5, "paper_received": 6, "electronic_rate": 67.65,
               "rejected_by_reason": {"too_large": 1},
               "registered": 4, "connected": 3, "connected_rate": 75.0,
               "connected_now": 3}),
    );
    m
}

/// The whole report of `month` equals the hand computation.
fn check_report(what: &str, r: &Value, month: &str) {
    let want = expected();
    assert_eq!(r["from"], format!("{month}-01"), "{what}: from");
    assert!(
        r["to"].as_str().unwrap_or("").starts_with(month),
        "{what}: to = {}",
        r["to"]
    );
    assert_eq!(r["on_time_secs"], 2, "{what}: on_time_secs");
    assert_fields(
        &format!("{what} national"),
        &r["national"],
        &want["national"],
    );
    assert_eq!(r["groups"].as_array().unwrap().len(), 2, "{what}: groups");
    for g in ["G", "H"] {
        assert_fields(&format!("{what} group {g}"), group_row(r, g), &want[g]);
    }
    assert_eq!(
        r["agencies"].as_array().unwrap().len(),
        4,
        "{what}: agencies"
    );
    for a in [A, B, C, D] {
        assert_fields(&format!("{what} agency {a}"), agency_row(r, a), &want[a]);
    }
    // Latency: H01's two late deliveries waited ≥ 2.5 s each, so its mean over 5 is ≥ 1 s;
    // everything else was delivered at once.
    let lat = |a: &str| agency_row(r, a)["avg_latency_ms"].as_u64();
    assert!(
        lat(C).is_some_and(|l| l >= 1000),
        "{what}: H01 latency {:?}",
        lat(C)
    );
    assert!(
        lat(B).is_some_and(|l| l < 2000),
        "{what}: G02 latency {:?}",
        lat(B)
    );
}

#[test]
fn known_mix_matches_hand_computation() {
    let mut net = Net::new();
    net.set_hub_config("on_time_secs", "2");
    for a in [A, B, C, D] {
        net.add_agent(a);
    }
    net.start_hub();
    net.start_agent(A);
    net.start_agent(B);
    net.start_agent(C);
    let month_at_start = current_month();
    let day_at_start = format!("{}", time::OffsetDateTime::now_utc().date());

    // On time: everyone concerned is online.
    let mut on_time: Vec<(&str, String)> = Vec::new();
    for i in 0..3 {
        on_time.push((
            A,
            net.send(
                A,
                &[B],
                &format!("to G02 {i}"),
                format!("g02 {i}").as_bytes(),
            ),
        ));
    }
    for i in 0..2 {
        on_time.push((
            A,
            net.send(
                A,
                &[C],
                &format!("to H01 {i}"),
                format!("h01 {i}").as_bytes(),
            ),
        ));
    }
    on_time.push((A, net.send(A, &[B, C], "to both", b"to G02 and H01")));
    on_time.push((C, net.send(C, &[A], "back to G01", b"from H01")));
    for (from, id) in &on_time {
        net.wait_state(from, id, "delivered");
    }
    // Pending: H02 never runs.
    let mut pending = vec![(C, net.send(C, &[D], "to H02 from H01", b"never read 0"))];
    net.wait_state(C, &pending[0].1, "accepted");
    let h01_pending_accepted = accepted_ms(&net, C, &pending[0].1);

    // Late and rejected: the recipients go offline.
    net.stop_agent(B);
    net.stop_agent(C);
    let late: Vec<String> = (0..2)
        .map(|i| {
            net.send(
                A,
                &[C],
                &format!("late {i}"),
                format!("late {i}").as_bytes(),
            )
        })
        .collect();
    let big = pseudo_random(100 * 1024, 42);
    let rejected = net.send(A, &[B], "tamper target", &big);
    for i in 1..3 {
        pending.push((
            A,
            net.send(
                A,
                &[D],
                &format!("to H02 {i}"),
                format!("never read {i}").as_bytes(),
            ),
        ));
    }
    for id in late.iter().chain([&rejected]) {
        net.wait_state(A, id, "accepted");
    }
    for (_, id) in &pending[1..] {
        net.wait_state(A, id, "accepted");
    }

    // G02 now takes bodies of at most 50 KiB: it answers the 100 KiB document with a signed
    // rejection. (A body altered on the hub's disk no longer reaches a recipient: the hub
    // repairs it from the sender, see tests/bodyloss.rs.)
    set_toml_key(
        &net.agent_dir(B).join("agent.toml"),
        "max_body_bytes",
        "51200",
    );
    net.start_agent(B);
    net.wait_state(A, &rejected, "rejected");

    // H01 comes back only after the on-time target has passed for its documents, and the
    // H02 documents are overdue by then too.
    let newest = late
        .iter()
        .map(|id| accepted_ms(&net, A, id))
        .chain(pending[1..].iter().map(|(_, id)| accepted_ms(&net, A, id)))
        .chain([h01_pending_accepted])
        .max()
        .unwrap();
    wait_until("2.5 s past the newest acceptance", DEADLINE, || {
        now_ms() >= newest + 2500
    });
    net.start_agent(C);
    for id in &late {
        net.wait_state(A, id, "delivered");
    }

    // Paper-only counts; G01 first reports wrong figures and corrects them (replaced, not added).
    let month = current_month();
    let paper = |code: &str, sent: &str, received: &str| {
        let out = net.agent_cli(&[
            "report",
            "paper",
            "--dir",
            &s(&net.agent_dir(code)),
            "--month",
            &month,
            "--sent",
            sent,
            "--received",
            received,
        ]);
        assert_ok(&out, &format!("poros-agent report paper ({code})"));
    };
    paper(A, "10", "10");
    paper(A, "3", "1");
    paper(C, "2", "5");

    // Queries.
    let month = current_month();
    if month != month_at_start {
        eprintln!("the UTC month changed during the test ({month_at_start} → {month}); skipping");
        return;
    }
    let admin = net.admin_token();
    let q = format!("month={month}");
    check_report("API (admin token)", &api_stats(&net, &q, &admin), &month);

    let monitor = monitor_add(&net, "national-office");
    check_report(
        "API (monitor token)",
        &api_stats(&net, &q, &monitor),
        &month,
    );
    // The token may also be given as ?token= (the dashboard's way).
    let (st, _) = ops_get(&net, &format!("/api/v1/stats?{q}&token={monitor}"), None);
    assert_eq!(st, 200, "monitor token as ?token=");
    // Default range (first of this month to today) gives the same figures.
    check_report(
        "API (default range)",
        &api_stats(&net, "", &monitor),
        &month,
    );

    // Everything happened today and this year: a one-day range (which takes the month's
    // whole paper counts) and the year give the same figures.
    let today = time::OffsetDateTime::now_utc().date();
    let today = format!("{today}");
    if today.starts_with(&month) && today == day_at_start {
        let r = api_stats(&net, &format!("from={today}&to={today}"), &monitor);
        assert_eq!(r["from"], today.as_str());
        assert_fields(
            "API one day national",
            &r["national"],
            &expected()["national"],
        );
        for a in [A, C] {
            assert_fields(
                &format!("API one day {a}"),
                agency_row(&r, a),
                &expected()[a],
            );
        }
        let r = api_stats(&net, &format!("year={}", &month[..4]), &monitor);
        assert_fields("API year national", &r["national"], &expected()["national"]);
        for g in ["G", "H"] {
            assert_fields(
                &format!("API year group {g}"),
                group_row(&r, g),
                &expected()[g],
            );
        }
        // The 30-day trend ends today with today's national figures.
        let (st, body) = ops_get(&net, "/api/v1/trend", Some(&monitor));
        assert_eq!(st, 200, "trend: {body}");
        let trend: Value = serde_json::from_str(&body).unwrap();
        let days = trend.as_array().unwrap();
        assert_eq!(days.len(), 30, "{trend}");
        let last = days.last().unwrap();
        assert_eq!(last["day"], today.as_str(), "{trend}");
        assert_fields(
            "trend today",
            last,
            &json!({"due": 14, "delivered": 10, "delivery_rate": 71.43, "on_time_rate": 57.14}),
        );
        assert!(days[..29].iter().all(|d| d["due"] == 0), "{trend}");
    } else {
        eprintln!("the UTC day changed during the test; one-day and year checks skipped");
    }

    // One agency: only its row, same figures; national and its group unchanged, and no
    // other group shown with figures that are not its own.
    let one = api_stats(&net, &format!("{q}&agency={C}"), &monitor);
    let rows = one["agencies"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "agency filter: {one}");
    assert_fields("API agency=H01", &rows[0], &expected()[C]);
    assert_fields(
        "API agency=H01 national",
        &one["national"],
        &expected()["national"],
    );
    assert_fields(
        "API agency=H01 group H",
        group_row(&one, "H"),
        &expected()["H"],
    );
    for g in one["groups"].as_array().unwrap() {
        let name = g["group"].as_str().unwrap();
        assert_fields(
            &format!("API agency=H01 group {name}"),
            g,
            &expected()[name],
        );
    }

    // Bad parameters are a 400, not a 500.
    let (st, body) = ops_get(&net, "/api/v1/stats?month=2026-13", Some(&monitor));
    assert_eq!(st, 400, "bad month: {body}");

    // CLI JSON.
    let cli = hub_stats_cli(&net, &["--json", "--month", &month]);
    let cli: Value =
        serde_json::from_str(&cli).unwrap_or_else(|e| panic!("stats --json ({e}): {cli}"));
    check_report("poros-hub stats --json", &cli, &month);

    // CLI CSV: header, national row, then groups and agencies.
    let csv = hub_stats_cli(&net, &["--csv", "--month", &month]);
    let csv = csv
        .strip_prefix('\u{feff}')
        .unwrap_or_else(|| panic!("CSV without a byte-order mark:\n{csv}"));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 1 + 2 + 4, "CSV lines:\n{csv}");
    let header: Vec<&str> = lines[0].split(',').collect();
    let national: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(header.len(), national.len(), "CSV:\n{csv}");
    let row: BTreeMap<&str, &str> = header
        .iter()
        .copied()
        .zip(national.iter().copied())
        .collect();
    // Headers are the catalogue's (English unless asked otherwise); values are machine-readable.
    let col = |key: &str| {
        tr(
            Lang::En,
            &format!("dashboard-csv-{}", key.replace('_', "-")),
        )
    };
    let want_csv = [
        ("scope", "national"),
        ("sent", "13"),
        ("received", "10"),
        ("due", "14"),
        ("delivered", "10"),
        ("on_time", "8"),
        ("late", "2"),
        ("rejected", "1"),
        ("expired", "0"),
        ("pending", "3"),
        ("overdue", "3"),
        ("delivery_rate", "71.43"),
        ("on_time_rate", "57.14"),
        ("paper_sent", "5"),
        ("paper_received", "6"),
        ("electronic_rate", "67.65"),
    ];
    for (k, v) in want_csv {
        assert_eq!(
            row.get(col(k).as_str()).copied(),
            Some(v),
            "CSV national {k}:\n{csv}"
        );
    }
    let h02 = lines
        .iter()
        .find(|l| l.starts_with(D))
        .unwrap_or_else(|| panic!("no H02 row:\n{csv}"));
    let h02: BTreeMap<&str, &str> = header.iter().copied().zip(h02.split(',')).collect();
    assert_eq!(h02[col("pending").as_str()], "3", "CSV H02:\n{csv}");
    assert_eq!(
        h02[col("avg_latency_ms").as_str()],
        "",
        "no latency without deliveries:\n{csv}"
    );

    // The same CSV over the API.
    let (st, api_csv) = ops_get(
        &net,
        &format!("/api/v1/stats?{q}&format=csv"),
        Some(&monitor),
    );
    assert_eq!(st, 200);
    assert_eq!(
        api_csv.lines().nth(1),
        Some(lines[1]),
        "API CSV national row"
    );

    // Human-readable output.
    let text = hub_stats_cli(&net, &["--month", &month]);
    assert!(
        text.contains("71.43 %") && text.contains("3/4"),
        "stats text:\n{text}"
    );

    // Live counters equal a recount of the stored records.
    let chk = net.admin_get("/admin/v1/stats/check");
    assert_eq!(chk["equal"], true, "stats check: {chk}");

    // Credentials: none, wrong, monitor on an admin route, revoked.
    let (st, _) = ops_get(&net, &format!("/api/v1/stats?{q}"), None);
    assert_eq!(st, 401, "no credential");
    let (st, _) = ops_get(
        &net,
        &format!("/api/v1/stats?{q}"),
        Some("pmon_not-a-token"),
    );
    assert_eq!(st, 401, "wrong credential");
    let (st, _) = ops_get(&net, "/admin/v1/stats/check", Some(&monitor));
    assert_eq!(st, 401, "a monitor token must not open the admin API");
    monitor_revoke(&net, "national-office");
    let (st, _) = ops_get(&net, &format!("/api/v1/stats?{q}"), Some(&monitor));
    assert_eq!(st, 401, "revoked monitor credential");
    let (st, _) = ops_get(&net, &format!("/api/v1/stats?{q}&token={monitor}"), None);
    assert_eq!(st, 401, "revoked monitor credential as ?token=");
    // The admin token still works.
    api_stats(&net, &q, &admin);
}

// ---------------------------------------------------------------------------------------------
// 2. Counters survive kill -9 of the hub.

const PER_SENDER: usize = 100;

#[test]
fn counters_equal_recount_after_hub_kill9() {
    let mut net = Net::running(&[A, B]);

    let posted = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let handles: Vec<thread::JoinHandle<Vec<(String, String)>>> = [(A, B), (B, A)]
        .into_iter()
        .enumerate()
        .map(|(n, (from, to))| {
            let (agent, posted, errors) = (net.handle(from), posted.clone(), errors.clone());
            thread::spawn(move || {
                let mut sent = Vec::new();
                for i in 0..PER_SENDER {
                    let mut body = format!("stat doc {i} {from}→{to}\n").into_bytes();
                    body.extend(pseudo_random(200 + i, (n * 1000 + i + 1) as u64));
                    match agent.try_send(&[to], &format!("Bulk {i}"), &body) {
                        Ok(id) => sent.push((from.to_string(), id)),
                        Err(e) => {
                            errors.fetch_add(1, Ordering::SeqCst);
                            eprintln!("POST {i} at {from} not acknowledged: {e}");
                        }
                    }
                    posted.fetch_add(1, Ordering::SeqCst);
                }
                sent
            })
        })
        .collect();

    let wait_posted = |n: usize| {
        wait_until(&format!("{n} documents posted"), DEADLINE, || {
            posted.load(Ordering::SeqCst) >= n
        })
    };
    wait_posted(PER_SENDER * 2 / 3);
    net.kill_hub();
    let killed_at = posted.load(Ordering::SeqCst);
    wait_posted(killed_at + 10);
    net.start_hub();
    let t = Instant::now();
    let sent: Vec<(String, String)> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("sender thread panicked"))
        .collect();
    assert!(
        sent.len() >= 2 * PER_SENDER - 4,
        "only {} acknowledged",
        sent.len()
    );

    // Every acknowledged document delivered, as its sender sees it.
    for from in [A, B] {
        let mine: std::collections::BTreeSet<&str> = sent
            .iter()
            .filter(|(f, _)| f == from)
            .map(|(_, id)| id.as_str())
            .collect();
        wait_until(
            &format!("{} deliveries from {from}", mine.len()),
            Duration::from_secs(120),
            || {
                let Some(v) = net.api_list_get(from, "/v1/documents") else {
                    return false;
                };
                let done = v
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|d| mine.contains(d["id"].as_str().unwrap_or("")))
                    .filter(|d| {
                        let st = recipient_states(d);
                        !st.is_empty() && st.values().all(|s| s == "delivered")
                    })
                    .count();
                done == mine.len()
            },
        );
    }

    let admin = net.admin_token();
    let year = current_year();
    // Documents whose POST failed may still have been stored by the agent; all are delivered.
    let mut last = Value::Null;
    wait_until("national figures to settle", DEADLINE, || {
        last = api_stats(&net, &format!("year={year}"), &admin)["national"].clone();
        last["pending"] == 0 && last["due"].as_u64().unwrap_or(0) >= sent.len() as u64
    });
    let n = &last;
    let docs = n["sent"].as_u64().unwrap();
    assert_eq!(
        n["due"].as_u64().unwrap(),
        docs,
        "one recipient per document: {n}"
    );
    assert_eq!(
        n["delivered"].as_u64().unwrap(),
        docs,
        "every document × recipient delivered: {n}"
    );
    if errors.load(Ordering::SeqCst) == 0 {
        assert_eq!(
            docs,
            sent.len() as u64,
            "delivered = acknowledged documents: {n}"
        );
    }
    assert_eq!(n["rejected"], 0, "{n}");
    assert_eq!(n["delivery_rate"], 100.0, "{n}");
    for a in [A, B] {
        let r = api_stats(&net, &format!("year={year}"), &admin);
        let row = agency_row(&r, a);
        assert_eq!(row["pending"], 0, "{row}");
        assert_eq!(row["due"], row["delivered"], "{row}");
    }

    let chk = net.admin_get("/admin/v1/stats/check");
    assert_eq!(
        chk["equal"], true,
        "live counters differ from the recount: {}",
        chk["mismatches"]
    );
    assert_eq!(chk["mismatches"].as_array().map(Vec::len), Some(0), "{chk}");
    assert_eq!(
        chk["recount"]["national"]["in_due"].as_u64(),
        Some(docs),
        "{chk}"
    );
    eprintln!(
        "hub kill -9 after {killed_at} posts: {} acknowledged, {docs} counted, settled in {:?}",
        sent.len(),
        t.elapsed()
    );
}

/// One delivered document G01→G02, then, with the hub stopped, `rows` written straight into
/// its statistics table (period `Y<this year>`); the hub restarted. Returns the check answer.
fn check_after_tampering(metric_rows: &[(&str, &str, u64)]) -> Value {
    let mut net = Net::running(&[A, B]);
    let id = net.send(A, &[B], "one", b"one document");
    net.wait_state(A, &id, "delivered");
    let chk = net.admin_get("/admin/v1/stats/check");
    assert_eq!(chk["equal"], true, "before tampering: {chk}");
    net.stop_hub();
    let year = format!("Y{}", current_year());
    {
        let db = poros_store::Db::open(&net.hub_dir.join("data/hub.redb")).expect("open hub db");
        let rows = metric_rows
            .iter()
            .map(|(scope, metric, v)| (year.clone(), scope.to_string(), metric.to_string(), *v))
            .collect();
        poros_hub::stats::bulk_load(&db, rows).expect("write counters");
    }
    net.start_hub();
    net.admin_get("/admin/v1/stats/check")
}

/// The check is not vacuous: a live counter that differs from the recount is reported.
#[test]
fn stats_check_reports_a_wrong_counter() {
    let chk = check_after_tampering(&[(B, "in_ontime", 2)]);
    assert_eq!(chk["equal"], false, "{chk}");
    let m = chk["mismatches"].as_array().unwrap();
    assert!(
        m.iter().any(|m| m["scope"] == B
            && m["metric"] == "in_ontime"
            && m["live"] == 2
            && m["recount"] == 1),
        "{chk}"
    );
}

/// A live counter for which the recount has no entry at all (here a rejection that never
/// happened) must be reported too. Ignored: fails today — `stats_check` in hub/src/ops.rs only
/// walks the recount's keys, so counters present only in the live table are never compared.
#[test]
fn stats_check_reports_a_counter_the_recount_lacks() {
    let chk = check_after_tampering(&[(B, "in_rejected", 1), ("national", "in_rejected", 1)]);
    assert_eq!(chk["equal"], false, "phantom rejection not reported: {chk}");
}

// ---------------------------------------------------------------------------------------------
// 3. Prometheus metrics and probes.

#[test]
fn metrics_endpoint_has_per_agency_series() {
    let net = Net::running(&[A, B]);
    let id = net.send(A, &[B], "metrics", b"one document for the series");
    net.wait_state(A, &id, "delivered");

    for p in ["/healthz", "/readyz"] {
        let (st, body) = ops_get(&net, p, None);
        assert_eq!(st, 200, "{p}: {body}");
    }

    // No credential needed; the sweeper and the delivery commit may trail the receipt a little.
    let want = format!("poros_agency_deliveries_total{{agency=\"{B}\",outcome=\"ontime\"}} 1");
    let mut m = String::new();
    wait_until("the delivery in /metrics", DEADLINE, || {
        let (st, body) = ops_get(&net, "/metrics", None);
        m = body;
        st == 200 && m.lines().any(|l| l == want)
    });
    let has = |l: &str| m.lines().any(|x| x == l);
    let starts = |p: &str| m.lines().any(|x| x.starts_with(p));
    for l in [
        "# TYPE poros_agency_deliveries_total counter",
        "# TYPE poros_agency_documents_sent_total counter",
        "# TYPE poros_agency_deliveries_due_total counter",
        "# TYPE poros_handshake_failures_total counter",
        "# TYPE poros_queue_depth gauge",
        "# TYPE poros_connected_nodes gauge",
        "# TYPE poros_store_last_commit_seconds gauge",
        "poros_queue_depth 0",
        "poros_connected_nodes 2",
    ] {
        assert!(has(l), "no line {l:?} in /metrics:\n{m}");
    }
    for l in [
        format!("poros_agency_documents_sent_total{{agency=\"{A}\"}} 1"),
        format!("poros_agency_deliveries_due_total{{agency=\"{B}\"}} 1"),
        format!("poros_agency_deliveries_total{{agency=\"{B}\",outcome=\"late\"}} 0"),
        format!("poros_agency_deliveries_total{{agency=\"{B}\",outcome=\"rejected\"}} 0"),
        format!("poros_agency_deliveries_total{{agency=\"{A}\",outcome=\"ontime\"}} 0"),
    ] {
        assert!(has(&l), "no line {l:?} in /metrics:\n{m}");
    }
    assert!(starts("poros_store_last_commit_seconds "), "{m}");
    let last_commit: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("poros_store_last_commit_seconds "))
        .unwrap()
        .trim()
        .parse()
        .expect("a number");
    assert!(
        last_commit >= 0.0 && last_commit.is_finite(),
        "{last_commit}"
    );
    // The commit-duration histogram: cumulative buckets ending at the count, which holds at
    // least the commit that stored this delivery.
    assert!(has("# TYPE poros_store_commit_seconds histogram"), "{m}");
    let value = |name: &str| -> f64 {
        m.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name:?} in /metrics:\n{m}"))
            .trim()
            .parse()
            .expect("a number")
    };
    let buckets: Vec<f64> = m
        .lines()
        .filter_map(|l| l.strip_prefix("poros_store_commit_seconds_bucket{le=\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse().expect("a number"))
        .collect();
    assert_eq!(
        buckets.len(),
        poros_store::COMMIT_BUCKETS_MICROS.len() + 1,
        "{m}"
    );
    assert!(
        buckets.windows(2).all(|w| w[0] <= w[1]),
        "not cumulative:\n{m}"
    );
    let count = value("poros_store_commit_seconds_count ");
    assert!(count >= 1.0, "{m}");
    assert_eq!(
        value("poros_store_commit_seconds_bucket{le=\"+Inf\"} "),
        count
    );
    assert!(value("poros_store_commit_seconds_sum ") > 0.0, "{m}");
    // Per-agency series are per agency only: no group or national scopes.
    assert!(
        !m.contains("agency=\"group:") && !m.contains("agency=\"national\""),
        "aggregate scopes leaked into per-agency series:\n{m}"
    );
    // Every sample line is `name[{labels}] number`.
    for l in m.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let v = l.rsplit(' ').next().unwrap();
        assert!(v.parse::<f64>().is_ok(), "bad sample line {l:?}");
    }
}

/// A cleanly stopped agent (SIGTERM) must leave the hub's connected set at once (the close
/// must reach the hub before the agent exits), not after the hub's idle timeout (~30 s):
/// `poros_connected_nodes` and the report's `connected_now` depend on it.
#[test]
fn stopped_agent_leaves_connected_nodes_at_once() {
    let mut net = Net::running(&[A, B]);
    wait_until("2 connected nodes", DEADLINE, || {
        net.metric("poros_connected_nodes") == 2
    });
    let t = Instant::now();
    net.stop_agent(B);
    let mut n = 2;
    while t.elapsed() < Duration::from_secs(5) {
        n = net.metric("poros_connected_nodes");
        if n == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        n,
        1,
        "the hub still counts G02 as connected {:?} after it stopped",
        t.elapsed()
    );
}
