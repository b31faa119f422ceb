//! The monitoring dashboard in a real browser: a hub, six agencies and a small mixed exchange
//! (delivered, pending for a stopped or never-connected agency, paper-only reports), then
//! headless Chromium renders `/dashboard?token=<monitor token>` and the figures it shows must
//! be those of `/api/v1/stats` for the same range. Without a credential the page must show the
//! "Monitor credential required" page and none of the figures.
//!
//! Chromium runs as a subprocess (`--dump-dom` with a virtual-time budget, so the page's
//! fetches complete before the DOM is serialised). Without Chromium the test fails when `CI`
//! is set and is skipped (with a note) otherwise. `POROS_CHROMIUM` names another browser
//! binary. With `POROS_SAVE_SCREENSHOT=1` the screenshot is copied to `docs/dashboard.png`.

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const G01: &str = "000.00.00.G01";
const G02: &str = "000.00.00.G02";
const G03: &str = "000.00.00.G03";
const H01: &str = "000.00.00.H01";
const H02: &str = "000.00.00.H02";
const K01: &str = "000.00.00.K01";
const ALL: [&str; 6] = [G01, G02, G03, H01, H02, K01];

/// How long one browser run may take before it is killed.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("POROS_CHROMIUM").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for name in [
        "chromium",
        "chromium-browser",
        "google-chrome-stable",
        "google-chrome",
    ] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Headless Chromium with a fresh profile under `root`; its stderr goes to
/// `logs/chromium.log` (printed with the other logs if the test fails). Returns stdout.
fn chromium(exe: &Path, root: &Path, extra: &[String]) -> String {
    use std::os::unix::process::CommandExt;
    let profile = tempfile::Builder::new()
        .prefix("chromium-profile-")
        .tempdir_in(root)
        .expect("profile dir");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join("logs/chromium.log"))
        .unwrap();
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--virtual-time-budget=8000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("--user-data-dir={}", profile.path().display()));
    args.extend_from_slice(extra);
    let mut child = Command::new(exe)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        // Own process group, so a hung browser can be killed with all its helpers.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let deadline = Instant::now() + BROWSER_TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            panic!("chromium did not finish within {BROWSER_TIMEOUT:?}: {args:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = reader.join().unwrap();
    assert!(status.success(), "chromium {args:?} exited with {status}");
    stdout
}

/// Text content of the element with `id` (the first text node after its start tag).
fn text_by_id(dom: &str, id: &str) -> Option<String> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let start = at + dom[at..].find('>')? + 1;
    let end = start + dom[start..].find('<')?;
    Some(unescape(&dom[start..end]))
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// One rendered agency row: cell text by `data-k`.
fn agency_rows(dom: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut rest = dom;
    while let Some(at) = rest.find("data-agency=\"") {
        let tail = &rest[at + "data-agency=\"".len()..];
        let code = &tail[..tail.find('"').unwrap()];
        let row = &tail[..tail.find("</tr>").expect("unterminated row")];
        let mut cells = BTreeMap::new();
        let mut r = row;
        while let Some(k) = r.find("data-k=\"") {
            let t = &r[k + "data-k=\"".len()..];
            let key = &t[..t.find('"').unwrap()];
            let start = t.find('>').unwrap() + 1;
            let end = start + t[start..].find('<').unwrap();
            cells.insert(key.to_string(), unescape(&t[start..end]));
            r = &t[end..];
        }
        out.insert(code.to_string(), cells);
        rest = &tail[row.len()..];
    }
    out
}

/// Whether `shown` is what the page's `pct()` renders for the JSON rate `v` (`–` for null,
/// otherwise one decimal and " %"). Compared numerically within half a unit of the last digit,
/// so the test does not depend on how JavaScript and Rust round exact ties.
fn pct_matches(shown: &str, v: &Value) -> bool {
    match v.as_f64() {
        None => v.is_null() && shown == "–",
        Some(x) => shown
            .strip_suffix(" %")
            .filter(|n| n.split_once('.').is_some_and(|(_, d)| d.len() == 1))
            .and_then(|n| n.parse::<f64>().ok())
            .is_some_and(|n| (n - x).abs() <= 0.05 + 1e-9),
    }
}

/// Today (UTC) as `YYYY-MM-DD`, the day the hub and the page count in.
fn utc_today() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}",
        now.year(),
        now.month() as u8,
        now.day()
    )
}

fn get_stats(net: &Net, token: &str, from: &str, to: &str) -> Value {
    let r = net
        .http()
        .get(format!(
            "http://127.0.0.1:{}/api/v1/stats?from={from}&to={to}",
            net.ops_port
        ))
        .bearer_auth(token)
        .send()
        .expect("GET /api/v1/stats");
    assert!(r.status().is_success(), "/api/v1/stats: {}", r.status());
    r.json().unwrap()
}

/// Send and wait until the hub has accepted the document for every recipient.
fn send_accepted(net: &Net, from: &str, to: &[&str], n: usize) {
    for i in 0..n {
        let body = pseudo_random(2000 + i * 37, (i as u64) << 8 | to.len() as u64);
        let id = net.send(from, to, &format!("dashboard test {i}"), &body);
        wait_until(
            &format!("{id} from {from} accepted by the hub"),
            DEADLINE,
            || {
                let st = net.states(from, &id);
                st.len() == to.len() && st.values().all(|s| s != "pending")
            },
        );
    }
}

fn send_delivered(net: &Net, from: &str, to: &[&str], n: usize) {
    for i in 0..n {
        let body = pseudo_random(3000 + i * 41, (i as u64) << 16 | 7);
        let id = net.send(from, to, &format!("dashboard test {i}"), &body);
        net.wait_state(from, &id, "delivered");
    }
}

#[test]
fn dashboard_shows_the_api_figures_in_a_browser() {
    let Some(chromium_exe) = find_chromium() else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "Chromium is required for the dashboard test in CI but none was found \
                 (looked for POROS_CHROMIUM, chromium, chromium-browser, google-chrome in PATH); \
                 install it with `apt-get install chromium`"
            );
        }
        eprintln!(
            "NOTE: dashboard browser test skipped: no Chromium found (install the `chromium` \
             package or set POROS_CHROMIUM)"
        );
        return;
    };

    let mut net = Net::new();
    net.start_hub();
    for code in ALL {
        net.add_agent(code);
    }
    // H02 is registered but never connects: it counts as registered, not as connected.
    for code in [G01, G02, G03, H01, K01] {
        net.start_agent(code);
    }

    send_delivered(&net, G01, &[G02], 3);
    send_delivered(&net, G02, &[G01], 2);
    send_delivered(&net, G03, &[G01, G02], 2);
    send_delivered(&net, H01, &[G03], 1);
    send_delivered(&net, K01, &[G01], 1);
    send_delivered(&net, G03, &[K01], 1);
    send_accepted(&net, G01, &[H02], 2);
    // One document to H01 (delivered) and H02 (stays pending).
    {
        let id = net.send(G02, &[H01, H02], "to H01 and H02", b"mixed");
        wait_until("H01 delivered, H02 accepted", DEADLINE, || {
            let st = net.states(G02, &id);
            st.get(H01).map(String::as_str) == Some("delivered")
                && st.get(H02).map(String::as_str) == Some("accepted")
        });
    }
    // Paper-only counts for the current month lower G01's and H01's electronic-exchange rate.
    let now = time::OffsetDateTime::now_utc();
    let month = format!("{:04}-{:02}", now.year(), now.month() as u8);
    for (code, sent, received) in [(G01, "2", "1"), (H01, "12", "8")] {
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
        assert_ok(&out, "poros-agent report paper");
    }
    // K01 and H01 go offline: documents to them stay pending.
    net.stop_agent(K01);
    net.stop_agent(H01);
    send_accepted(&net, G03, &[K01], 2);
    send_accepted(&net, G01, &[H01], 1);

    let out = net.hub_cli(&[
        "monitor",
        "add",
        "--dir",
        &s(&net.hub_dir),
        "ministry-office",
    ]);
    assert_ok(&out, "poros-hub monitor add");
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(token.starts_with("pmon_"), "monitor add printed {token:?}");

    // What the hub says for the current month (the page's default range): 16 documents,
    // 19 deliveries of which 13 delivered; 5 of 6 registered agencies connected this month.
    let today = utc_today();
    let first = format!("{}-01", &today[..7]);
    let api = get_stats(&net, &token, &first, &today);
    let n = &api["national"];
    assert_eq!(n["sent"], 16, "{n}");
    assert_eq!(n["due"], 19, "{n}");
    assert_eq!(n["delivered"], 13, "{n}");
    assert_eq!(n["pending"], 6, "{n}");
    assert_eq!(n["registered"], 6, "{n}");
    assert_eq!(n["connected"], 5, "{n}");
    let rate = |code: &str| {
        api["agencies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["scope"] == code)
            .unwrap_or_else(|| panic!("{code} not in {api}"))["delivery_rate"]
            .clone()
    };
    assert_eq!(rate(G01), 100.0);
    assert_eq!(rate(H01), 50.0);
    assert_eq!(rate(H02), 0.0);
    assert_eq!(rate(K01), 33.33);

    // The page, rendered by the browser. Re-run if the budget ran out before the figures came.
    let base = format!("http://127.0.0.1:{}", net.ops_port);
    let url = format!("{base}/dashboard?token={token}");
    let started = Instant::now();
    let mut dom = String::new();
    for attempt in 1..=5 {
        dom = chromium(
            &chromium_exe,
            &net.root,
            &["--dump-dom".into(), url.clone()],
        );
        let rows = agency_rows(&dom).len();
        if text_by_id(&dom, "n-delivery").is_some_and(|t| t != "–") && rows == ALL.len() {
            break;
        }
        eprintln!("attempt {attempt}: figures not rendered yet ({rows} rows); retrying");
        assert!(
            attempt < 5,
            "the dashboard never showed its figures; DOM:\n{dom}"
        );
    }
    eprintln!("dashboard rendered in {:?}", started.elapsed());
    assert_eq!(
        text_by_id(&dom, "error").as_deref(),
        Some(""),
        "the page shows an error"
    );

    // The range the page asked for is printed under the document count; fetch the JSON for
    // exactly that range with the same credential.
    let range = text_by_id(&dom, "n-sent-sub").expect("n-sent-sub");
    let (from, to) = range
        .split_once(" – ")
        .unwrap_or_else(|| panic!("range {range:?}"));
    // (The UTC day may have changed since `today` was taken.)
    assert!(
        to == today || to == utc_today(),
        "the page's default range ends on {to}, not today ({today})"
    );
    assert_eq!(
        from,
        format!("{}-01", &to[..7]),
        "the page's default range starts on the 1st of the month"
    );
    let api = get_stats(&net, &token, from, to);
    let n = &api["national"];

    let shown = |id: &str| text_by_id(&dom, id).unwrap_or_else(|| panic!("no #{id} in the DOM"));
    for (id, key) in [
        ("n-delivery", "delivery_rate"),
        ("n-ontime", "on_time_rate"),
        ("n-electronic", "electronic_rate"),
        ("n-registered", "registered_in_time_rate"),
    ] {
        assert!(
            pct_matches(&shown(id), &n[key]),
            "#{id} shows {:?}, the API says {key} = {}",
            shown(id),
            n[key]
        );
    }
    assert_eq!(
        shown("n-connected"),
        format!("{}/{}", n["connected"], n["registered"]),
        "connected agencies"
    );
    assert_eq!(shown("n-sent"), n["sent"].to_string(), "documents sent");
    assert_eq!(
        shown("n-outstanding"),
        n["outstanding"].to_string(),
        "outstanding documents"
    );

    let rows = agency_rows(&dom);
    let agencies = api["agencies"].as_array().unwrap();
    assert_eq!(rows.len(), agencies.len(), "one row per agency: {rows:?}");
    for a in agencies {
        let code = a["scope"].as_str().unwrap();
        let row = rows
            .get(code)
            .unwrap_or_else(|| panic!("no row for {code}: {rows:?}"));
        for key in [
            "delivery_rate",
            "electronic_rate",
            "registered_in_time_rate",
        ] {
            let cell = row.get(key).map(String::as_str).unwrap_or("(missing)");
            assert!(
                pct_matches(cell, &a[key]),
                "{code}: {key} shows {cell:?}, the API says {}",
                a[key]
            );
        }
    }
    // The rates differ between agencies, so the comparison above is not trivially satisfied.
    let distinct: std::collections::BTreeSet<&str> = rows
        .values()
        .filter_map(|r| r.get("delivery_rate").map(String::as_str))
        .collect();
    assert!(distinct.len() >= 3, "delivery rates: {rows:?}");

    // Without a credential (or with a wrong one): the refusal page, no figures.
    for (what, u) in [
        ("no token", format!("{base}/dashboard")),
        ("wrong token", format!("{base}/dashboard?token=pmon_wrong")),
    ] {
        let status = net.http().get(&u).send().unwrap().status();
        assert_eq!(status.as_u16(), 401, "{what}: HTTP status");
        let dom = chromium(&chromium_exe, &net.root, &["--dump-dom".into(), u]);
        assert!(
            dom.contains("Monitor credential required"),
            "{what}: no refusal page:\n{dom}"
        );
        for needle in [
            "n-delivery",
            "n-connected",
            "data-agency",
            "/dashboard/app.js",
        ] {
            assert!(
                !dom.contains(needle),
                "{what}: the refusal page contains {needle:?}"
            );
        }
        for rate in [shown("n-delivery"), shown("n-electronic")] {
            assert!(
                !dom.contains(&rate),
                "{what}: the refusal page shows {rate:?}"
            );
        }
        assert!(
            !dom.contains(G01),
            "{what}: the refusal page names an agency"
        );
    }

    // A screenshot of the rendered page.
    let png = net.root.join("dashboard.png");
    chromium(
        &chromium_exe,
        &net.root,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1400,900".into(),
            "--hide-scrollbars".into(),
            url,
        ],
    );
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000,
        "screenshot is not a plausible PNG ({} bytes)",
        bytes.len()
    );
    if std::env::var("POROS_SAVE_SCREENSHOT").as_deref() == Ok("1") {
        let dest = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/dashboard.png");
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&png, &dest).unwrap();
        eprintln!("screenshot saved to {}", dest.display());
    }
}
