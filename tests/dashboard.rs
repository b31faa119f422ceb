//! The monitoring dashboard in a real browser, in both of its languages: a hub, six agencies
//! with Vietnamese names and a small mixed exchange (delivered, pending for a stopped or
//! never-connected agency, paper-only reports), then headless Chromium renders
//! `/dashboard?token=<monitor token>` and the figures it shows must be those of
//! `/api/v1/stats` for the same range.
//!
//! Language: a browser whose language is Vietnamese (`--accept-lang=vi`, which sets both
//! `navigator.languages` and `Accept-Language`; `--lang` has no effect headless) gets every text
//! of the page in the catalogue's Vietnamese, numbers with a decimal comma, and names sorted in
//! the Vietnamese alphabet (Báo Dân… before Báo Đại…, Ủy… among the U's), compared with the
//! hub's own collation; an English browser gets English and the root order. Clicking the
//! page's EN switch turns the Vietnamese page English and the choice survives a reload. Names
//! render exactly as registered (no mojibake) and the search finds "Ủy ban" when typed "uy ban".
//! The CSV export declares UTF-8, starts with a byte-order mark, has its headers in the
//! language asked and carries each name byte for byte. Without a credential the page shows the
//! refusal page (in the browser's language) and none of the figures.
//!
//! Chromium is driven over the DevTools protocol (headless_chrome): clicks, typing, and reading
//! the DOM by script. The test fails, saying what to install, when no Chromium is found
//! (`POROS_CHROMIUM` names another browser binary). With `POROS_SAVE_SCREENSHOT=1` the English
//! page's screenshot is copied to `docs/dashboard.png`.

mod common;
use common::*;
use headless_chrome::browser::tab::point::Point;
use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::types::Bounds;
use headless_chrome::{Browser, LaunchOptions, Tab};
use poros_i18n::{tr, Collation, Lang};
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const G01: &str = "000.00.00.G01";
const G02: &str = "000.00.00.G02";
const G03: &str = "000.00.00.G03";
const H01: &str = "000.00.00.H01";
const H02: &str = "000.00.00.H02";
const K01: &str = "000.00.00.K01";
const ALL: [&str; 6] = [G01, G02, G03, H01, H02, K01];

/// The agencies' registered names. Byte order (and JavaScript's `<`) puts "Văn" before "Đài"
/// and "Ủy" last; Vietnamese puts "Dân" before "Đại" (Đ is a letter after D) where the root
/// order puts "Đại" first (đ is a variant of d there, and "i" < "n").
const NAMES: [(&str, &str); 6] = [
    (G01, "Văn phòng Chính phủ"),
    (G02, "Bộ Tài chính"),
    (G03, "Ủy ban nhân dân tỉnh Lào Cai"),
    (H01, "Đài Truyền hình Việt Nam"),
    (H02, "Báo Đại Đoàn Kết"),
    (K01, "Báo Dân trí"),
];

/// How long the browser may take for one DevTools call or page load.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

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

/// Headless Chromium whose language is `accept_lang`, with a fresh profile under `root` (left
/// there, so it goes with the test's directory and never under a running browser).
fn browser(exe: &Path, root: &Path, accept_lang: &str) -> Browser {
    let profile = tempfile::Builder::new()
        .prefix("chromium-profile-")
        .tempdir_in(root)
        .expect("profile dir")
        .keep();
    let lang_flag = format!("--accept-lang={accept_lang}");
    let args: Vec<&OsStr> = [
        "--disable-quic",
        "--disable-component-update",
        "--hide-scrollbars",
        lang_flag.as_str(),
    ]
    .into_iter()
    .map(OsStr::new)
    .collect();
    let options = LaunchOptions {
        headless: true,
        sandbox: false,
        path: Some(exe.to_path_buf()),
        user_data_dir: Some(profile),
        window_size: Some((1400, 900)),
        idle_browser_timeout: Duration::from_secs(300),
        args,
        ..LaunchOptions::default()
    };
    Browser::new(options).unwrap_or_else(|e| panic!("starting {} (headless): {e:#}", exe.display()))
}

/// A tab of `browser` to load pages in.
fn new_tab(browser: &Browser) -> std::sync::Arc<Tab> {
    let tab = browser.new_tab().expect("a new tab");
    tab.set_default_timeout(BROWSER_TIMEOUT);
    tab
}

/// Start loading `url` in `tab`. The page it leaves is marked first, so a snapshot can tell
/// the new page from the old one (readiness is polled, see [`rendered`] and [`loaded_html`]).
fn goto(tab: &Tab, url: &str) {
    tab.evaluate("window.__porosTestLeft = true", false)
        .and_then(|_| tab.navigate_to(url).map(|_| ()))
        .unwrap_or_else(|e| panic!("loading {url}: {e:#}"));
}

/// The HTML of the page `tab` loaded last, once it has loaded.
fn loaded_html(tab: &Tab, what: &str) -> String {
    const READ: &str = r#"JSON.stringify({ready: !window.__porosTestLeft && document.readyState === "complete",
        html: document.documentElement.outerHTML})"#;
    let mut html = None;
    poros_harness::wait_until(what, DEADLINE, || {
        let v = tab
            .evaluate(READ, false)
            .ok()
            .and_then(|r| r.value)
            .and_then(|v| serde_json::from_str::<Value>(v.as_str()?).ok());
        html = v
            .filter(|v| v["ready"] == true)
            .and_then(|v| v["html"].as_str().map(str::to_owned));
        html.is_some()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    html.unwrap()
}

/// What the page shows, read by script: its language, every catalogue-backed text by message
/// ID, the figures by element ID, the range's ISO days, and the agency rows in display order.
const SNAPSHOT: &str = r##"JSON.stringify({
  fresh: !window.__porosTestLeft,
  lang: document.documentElement.lang,
  languages: navigator.languages,
  title: document.title,
  error: document.getElementById("error").hidden ? "" : document.getElementById("error").textContent,
  i18n: Object.fromEntries([...document.querySelectorAll("[data-i18n]")].map((e) => [e.dataset.i18n, e.textContent])),
  text: Object.fromEntries([...document.querySelectorAll("[id]")].map((e) => [e.id, e.textContent])),
  range: [...document.querySelectorAll("#n-sent-sub time")].map((t) => t.dateTime),
  placeholder: document.getElementById("search").placeholder,
  csv: document.getElementById("csv").href,
  rows: [...document.querySelectorAll("tr[data-agency]")].map((tr) => Object.fromEntries(
    [["agency", tr.dataset.agency], ...[...tr.querySelectorAll("[data-k]")].map((td) => [td.dataset.k, td.textContent])])),
})"##;

/// What the page shows now; `None` while it is loading (or a page without the dashboard).
fn try_snapshot(tab: &Tab) -> Option<Value> {
    let r = tab.evaluate(SNAPSHOT, false).ok()?;
    let v: Value = serde_json::from_str(r.value.as_ref()?.as_str()?).ok()?;
    (v["fresh"] == true).then_some(v)
}

fn snapshot(tab: &Tab) -> Value {
    try_snapshot(tab).expect("the dashboard page, loaded")
}

/// Wait until the page shows its figures and all agency rows, and `cond` holds; the snapshot.
fn rendered(tab: &Tab, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let mut last = None;
    let started = Instant::now();
    poros_harness::wait_until(what, DEADLINE, || {
        last = try_snapshot(tab);
        last.as_ref().is_some_and(|p| {
            p["text"]["n-delivery"] != "–"
                && p["rows"].as_array().map(Vec::len) == Some(ALL.len())
                && cond(p)
        })
    })
    .unwrap_or_else(|e| panic!("{e}; the page showed:\n{last:#?}"));
    eprintln!("{what}: {:?}", started.elapsed());
    last.unwrap()
}

/// A real mouse click (pressed and released) in the middle of the element `selector`, which
/// must be in view.
fn click(tab: &Tab, selector: &str) {
    let js = format!(
        "JSON.stringify((r => [r.x + r.width / 2, r.y + r.height / 2])\
         (document.querySelector({selector:?}).getBoundingClientRect()))"
    );
    let at: Option<[f64; 2]> = tab
        .evaluate(&js, false)
        .ok()
        .and_then(|r| r.value)
        .and_then(|v| serde_json::from_str(v.as_str()?).ok());
    let [x, y] = at.unwrap_or_else(|| panic!("no {selector} on the page"));
    tab.click_point(Point { x, y })
        .unwrap_or_else(|e| panic!("clicking {selector}: {e:#}"));
}

/// The agency names in the order the table shows them.
fn shown_names(page: &Value) -> Vec<String> {
    page["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn names_sorted(lang: Lang) -> Vec<String> {
    let mut names: Vec<String> = NAMES.iter().map(|(_, n)| n.to_string()).collect();
    Collation::of(lang).sort_by_key(&mut names, |s| s.as_str());
    names
}

/// Whether `shown` is the rate `v` as the page formats it in `lang` (`–` for null, otherwise
/// one decimal, the language's decimal separator and a percent sign). Compared numerically
/// within half a unit of the last digit, so the test does not depend on how JavaScript and
/// Rust round exact ties.
fn pct_matches(shown: &str, v: &Value, lang: Lang) -> bool {
    let sep = match lang {
        Lang::En => '.',
        Lang::Vi => ',',
    };
    match v.as_f64() {
        None => v.is_null() && shown == "–",
        Some(x) => shown
            .trim_end_matches('%')
            .trim_end_matches(['\u{a0}', ' '])
            .split_once(sep)
            .filter(|(i, d)| d.len() == 1 && !i.contains(['.', ',']))
            .and_then(|(i, d)| format!("{i}.{d}").parse::<f64>().ok())
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

/// The exchange the page reports on; returns a monitor token.
fn exchange(net: &mut Net) -> String {
    net.start_hub();
    for (code, name) in NAMES {
        ok(net.deployment().register_agent(code, name));
    }
    // H02 is registered but never connects: it counts as registered, not as connected.
    for code in [G01, G02, G03, H01, K01] {
        net.start_agent(code);
    }

    send_delivered(net, G01, &[G02], 3);
    send_delivered(net, G02, &[G01], 2);
    send_delivered(net, G03, &[G01, G02], 2);
    send_delivered(net, H01, &[G03], 1);
    send_delivered(net, K01, &[G01], 1);
    send_delivered(net, G03, &[K01], 1);
    send_accepted(net, G01, &[H02], 2);
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
    send_accepted(net, G03, &[K01], 2);
    send_accepted(net, G01, &[H01], 1);

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
    token
}

/// The page's figures in `lang` are the API's for the range it shows, formatted for `lang`.
fn check_figures(net: &Net, token: &str, page: &Value, lang: Lang) {
    assert_eq!(page["error"], "", "{lang}: the page shows an error");
    // The range the page asked for, as ISO days in its <time> elements; the JSON for exactly
    // that range with the same credential.
    let range: Vec<&str> = page["range"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let [from, to] = range[..] else {
        panic!("{lang}: range {range:?}")
    };
    assert!(
        to == utc_today() || to < utc_today().as_str(),
        "{lang}: the page's range ends on {to}, after today"
    );
    assert_eq!(
        from,
        format!("{}-01", &to[..7]),
        "the page's default range starts on the 1st of the month"
    );
    // The days themselves are written for the reader, not as ISO dates.
    let shown_range = page["text"]["n-sent-sub"].as_str().unwrap();
    assert!(!shown_range.contains(from), "{lang}: {shown_range:?}");
    let api = get_stats(net, token, from, to);
    let n = &api["national"];

    let shown = |id: &str| {
        page["text"][id]
            .as_str()
            .unwrap_or_else(|| panic!("no #{id} in the page"))
            .to_owned()
    };
    for (id, key) in [
        ("n-delivery", "delivery_rate"),
        ("n-ontime", "on_time_rate"),
        ("n-electronic", "electronic_rate"),
        ("n-registered", "registered_in_time_rate"),
    ] {
        assert!(
            pct_matches(&shown(id), &n[key], lang),
            "{lang}: #{id} shows {:?}, the API says {key} = {}",
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

    let rows: BTreeMap<&str, &Value> = page["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["agency"].as_str().unwrap(), r))
        .collect();
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
            let cell = row[key].as_str().unwrap_or("(missing)");
            assert!(
                pct_matches(cell, &a[key], lang),
                "{lang} {code}: {key} shows {cell:?}, the API says {}",
                a[key]
            );
        }
        // The name exactly as registered: no mojibake, no normalisation.
        let name = NAMES.iter().find(|(c, _)| *c == code).unwrap().1;
        assert_eq!(row["name"], name, "{lang} {code}: the name cell");
        assert_eq!(row["scope"], code);
    }
    // The rates differ between agencies, so the comparison above is not trivially satisfied.
    let distinct: std::collections::BTreeSet<&str> = rows
        .values()
        .filter_map(|r| r["delivery_rate"].as_str())
        .collect();
    assert!(distinct.len() >= 3, "delivery rates: {rows:?}");
}

/// Every catalogue-backed text of the page is its message in `lang`.
fn check_language(page: &Value, lang: Lang) {
    assert_eq!(page["lang"], lang.code(), "<html lang>");
    let texts = page["i18n"].as_object().unwrap();
    assert!(texts.len() >= 30, "data-i18n elements: {texts:?}");
    for (id, shown) in texts {
        assert_eq!(
            shown.as_str(),
            Some(tr(lang, id).as_str()),
            "{lang}: the element for {id}"
        );
    }
    assert_eq!(page["title"], tr(lang, "dashboard-title"));
    assert_eq!(
        page["placeholder"],
        tr(lang, "dashboard-search-placeholder")
    );
    let csv = page["csv"].as_str().unwrap();
    assert!(
        csv.contains(&format!("lang={lang}")),
        "{lang}: CSV link {csv}"
    );
    // The alert note and the updated time are filled from their patterns in this language.
    let note = page["text"]["alert-note"].as_str().unwrap();
    let pattern = tr(lang, "dashboard-alert-note");
    let before = pattern.split('{').next().unwrap();
    assert!(
        !before.is_empty() && note.starts_with(before),
        "{lang}: alert note {note:?}"
    );
}

fn csv_get(
    net: &Net,
    token: &str,
    query: &str,
    accept_language: Option<&str>,
) -> (String, String, Vec<u8>) {
    let mut rq = net
        .http()
        .get(format!(
            "http://127.0.0.1:{}/api/v1/stats?format=csv{query}",
            net.ops_port
        ))
        .bearer_auth(token);
    if let Some(l) = accept_language {
        rq = rq.header("accept-language", l);
    }
    let r = rq.send().expect("GET CSV");
    assert_eq!(r.status().as_u16(), 200, "CSV{query}");
    let header = |k: &str| {
        r.headers()
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (ct, cd) = (header("content-type"), header("content-disposition"));
    (ct, cd, r.bytes().unwrap().to_vec())
}

/// The CSV export: UTF-8 declared and marked, headers in the language asked, names intact.
fn check_csv(net: &Net, token: &str) {
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    for (query, accept, lang) in [
        ("", None, Lang::En),
        ("&lang=vi", None, Lang::Vi),
        ("", Some("vi-VN,vi;q=0.9,en;q=0.5"), Lang::Vi),
        ("&lang=en", Some("vi"), Lang::En),
    ] {
        let (ct, cd, body) = csv_get(net, token, query, accept);
        assert_eq!(ct, "text/csv; charset=utf-8", "CSV{query} {accept:?}");
        assert!(
            cd.starts_with("attachment; filename=\"poros-stats-") && cd.ends_with(".csv\""),
            "{cd}"
        );
        assert!(body.starts_with(BOM), "CSV{query} {accept:?}: no BOM");
        let text = std::str::from_utf8(&body[BOM.len()..]).expect("CSV is UTF-8");
        let header = text.lines().next().unwrap();
        assert!(
            header.starts_with(&format!(
                "{},{},",
                tr(lang, "dashboard-csv-scope"),
                tr(lang, "dashboard-csv-name")
            )),
            "CSV{query} {accept:?} ({lang}): {header}"
        );
        for (code, name) in NAMES {
            // Byte for byte: the row holds the UTF-8 of the name as registered.
            let row = format!("{code},{name},");
            assert!(
                body.windows(row.len()).any(|w| w == row.as_bytes()),
                "CSV{query}: no row {row:?} in\n{text}"
            );
        }
    }
    // A language Poros does not speak, asked for explicitly, is an error naming it.
    let r = net
        .http()
        .get(format!(
            "http://127.0.0.1:{}/api/v1/stats?format=csv&lang=fr",
            net.ops_port
        ))
        .bearer_auth(token)
        .send()
        .expect("GET CSV lang=fr");
    assert_eq!(r.status().as_u16(), 400);
    let error: Value = r.json().expect("a JSON error");
    let error = error["error"].as_str().unwrap_or_default();
    assert!(error.contains("\"fr\"") && error.contains("vi"), "{error}");
}

#[test]
fn dashboard_shows_the_api_figures_in_both_languages() {
    let chromium_exe = find_chromium().unwrap_or_else(|| {
        panic!(
            "the dashboard test needs Chromium and none was found (looked for POROS_CHROMIUM, \
             chromium, chromium-browser, google-chrome in PATH): install it with \
             `apt-get install chromium` (scripts/test.sh does)"
        )
    });

    let mut net = Net::new();
    let token = exchange(&mut net);

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

    check_csv(&net, &token);

    let base = format!("http://127.0.0.1:{}", net.ops_port);
    let url = format!("{base}/dashboard?token={token}");
    let started = Instant::now();

    // A Vietnamese browser: the page in Vietnamese, decimal commas, Vietnamese name order.
    {
        let vi = browser(&chromium_exe, &net.root, "vi");
        let tab = new_tab(&vi);
        goto(&tab, &url);
        let page = rendered(&tab, "the Vietnamese page", |_| true);
        assert_eq!(page["languages"][0], "vi", "the browser's language");
        check_language(&page, Lang::Vi);
        check_figures(&net, &token, &page, Lang::Vi);
        let k01 = page["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["agency"] == K01)
            .unwrap();
        assert_eq!(
            k01["delivery_rate"], "33,3%",
            "a decimal comma in Vietnamese"
        );

        click(&tab, "th[data-k=name]");
        let page = rendered(&tab, "sorted by name (vi)", |p| {
            shown_names(p) == names_sorted(Lang::Vi)
        });
        assert_eq!(
            shown_names(&page),
            [
                "Báo Dân trí",
                "Báo Đại Đoàn Kết",
                "Bộ Tài chính",
                "Đài Truyền hình Việt Nam",
                "Ủy ban nhân dân tỉnh Lào Cai",
                "Văn phòng Chính phủ",
            ],
            "the Vietnamese alphabet"
        );

        // The search ignores case and marks: "uy ban" finds "Ủy ban", "dai" both "Đ" names.
        click(&tab, "#search");
        tab.send_character("uy ban")
            .expect("typing in the search box");
        let mut last = Value::Null;
        poros_harness::wait_until("search 'uy ban'", DEADLINE, || {
            last = snapshot(&tab);
            shown_names(&last) == ["Ủy ban nhân dân tỉnh Lào Cai"]
        })
        .unwrap_or_else(|e| panic!("{e}: {:?}", shown_names(&last)));
        tab.evaluate(
            r#"(() => { const s = document.getElementById("search"); s.value = "DAI";
                 s.dispatchEvent(new Event("input")); })()"#,
            false,
        )
        .expect("search DAI");
        let found = shown_names(&snapshot(&tab));
        assert_eq!(
            found,
            ["Báo Đại Đoàn Kết", "Đài Truyền hình Việt Nam"],
            "search 'DAI'"
        );
        tab.evaluate(
            r#"(() => { const s = document.getElementById("search"); s.value = "";
                 s.dispatchEvent(new Event("input")); })()"#,
            false,
        )
        .expect("clear the search");

        // The switch: EN turns the page English at once, and the choice is remembered.
        click(&tab, "#lang-en");
        let page = rendered(&tab, "switched to English", |p| p["lang"] == "en");
        check_language(&page, Lang::En);
        check_figures(&net, &token, &page, Lang::En);
        goto(&tab, &url);
        let page = rendered(&tab, "English after a reload", |_| true);
        check_language(&page, Lang::En);
        click(&tab, "#lang-vi");
        let page = rendered(&tab, "switched back to Vietnamese", |p| p["lang"] == "vi");
        check_language(&page, Lang::Vi);

        // The refusal page, in the browser's language.
        goto(&tab, &format!("{base}/dashboard?token=pmon_wrong"));
        let refused = loaded_html(&tab, "the refusal page (vi)");
        assert!(
            refused.contains(&tr(Lang::Vi, "dashboard-refused-title")),
            "no Vietnamese refusal page:\n{refused}"
        );
    }

    // An English browser: the page in English, the root order.
    let en = browser(&chromium_exe, &net.root, "en-US,en");
    let tab = new_tab(&en);
    goto(&tab, &url);
    let page = rendered(&tab, "the English page", |_| true);
    check_language(&page, Lang::En);
    check_figures(&net, &token, &page, Lang::En);
    click(&tab, "th[data-k=name]");
    let page = rendered(&tab, "sorted by name (en)", |p| {
        shown_names(p) == names_sorted(Lang::En)
    });
    assert_eq!(
        shown_names(&page)[..2],
        ["Báo Đại Đoàn Kết", "Báo Dân trí"],
        "the root order"
    );
    eprintln!("both languages checked in {:?}", started.elapsed());

    // A screenshot of the rendered English page (sorted by name), 1400×900 CSS pixels of page:
    // the window is grown by whatever the headless window keeps for itself.
    let height = |js: &str| {
        tab.evaluate(js, false)
            .ok()
            .and_then(|r| r.value)
            .and_then(|v| v.as_f64())
            .unwrap_or_else(|| panic!("{js}"))
    };
    let extra = height("window.outerHeight - window.innerHeight");
    tab.set_bounds(Bounds::Normal {
        left: None,
        top: None,
        width: Some(1400.0),
        height: Some(900.0 + extra),
    })
    .expect("window size");
    wait_until("a 900-pixel viewport", DEADLINE, || {
        height("window.innerHeight") == 900.0
    });
    let png = tab
        .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
        .expect("screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "screenshot is not a plausible PNG ({} bytes)",
        png.len()
    );
    if std::env::var("POROS_SAVE_SCREENSHOT").as_deref() == Ok("1") {
        let dest = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/dashboard.png");
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(&dest, &png).unwrap();
        eprintln!("screenshot saved to {}", dest.display());
    }

    // Without a credential (or with a wrong one): the refusal page, no figures.
    for (what, u) in [
        ("no token", format!("{base}/dashboard")),
        ("wrong token", format!("{base}/dashboard?token=pmon_wrong")),
    ] {
        let status = net.http().get(&u).send().unwrap().status();
        assert_eq!(status.as_u16(), 401, "{what}: HTTP status");
        goto(&tab, &u);
        let dom = loaded_html(&tab, what);
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
        for (code, name) in NAMES {
            assert!(
                !dom.contains(code) && !dom.contains(name),
                "{what}: the refusal page names an agency"
            );
        }
    }
}
