//! Statistics query benchmark (`cargo bench --bench stats`): a hub store holding a year of day
//! counters for 10,000 agencies, with the month, year, group and national aggregates the live
//! counting would have produced, then the query layer timed directly and through the running
//! hub's HTTP API.
//!
//! 1. `poros-hub init` a deployment in a temporary directory; open `data/hub.redb` with
//!    `poros_store::Db` and load the counters with `poros_hub::stats::bulk_load` in batches
//!    (generation runs on a second thread, overlapped with the commits).
//! 2. Reopen the store and time `stats::sums(read txn, cover(from, to), scope)` for a day, a
//!    month, the year, two 45-day ranges (one containing a whole month, one that does not, the
//!    worst case: 45 day scans) and one agency over the year / the 45-day range.
//! 3. Start `poros-hub run` on the deployment and time `GET /api/v1/stats` (admin token), the
//!    30-day trend and `/metrics`. The registry is empty, so the report has no agency rows; it
//!    still sums every scope of the range, so this is the query cost of the full report minus
//!    rendering 10,000 agency rows.
//!
//! Environment: `POROS_BENCH_AGENCIES` (default 10000), `POROS_BENCH_DAYS` (default: the whole
//! year), `POROS_BENCH_QUICK=1` (1,000 agencies), `POROS_BENCH_BATCH` (rows per
//! `bulk_load` call, default 2,000,000), `POROS_BENCH_NO_HTTP=1` (skip step 3).

mod common;
use common::*;
use poros_hub::stats::{self, Day};
use std::time::{Duration, Instant};

type Row = (String, String, String, u64);

/// The current UTC year: the counters fill all of it (Jan 1 – Dec 31, so days after today
/// too), so that `/metrics` and the dashboard's default range, which use the current year and
/// month, see the data.
fn the_year() -> i32 {
    static Y: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    *Y.get_or_init(|| time::OffsetDateTime::now_utc().year())
}
/// Day metrics, in key order.
const METRICS: [&str; 5] = ["in_due", "in_late", "in_ontime", "in_rejected", "sent"];
const GROUPS: u8 = 20;

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Agency `i`'s code: `000.AA.00.<group>BB`, unique for i < 10,000; 20 groups A..T.
fn agency(i: usize) -> String {
    let g = (b'A' + (i % GROUPS as usize) as u8) as char;
    format!("000.{:02}.00.{}{:02}", i / 100, g, i % 100)
}

fn mix(mut x: u64) -> u64 {
    // splitmix64 finaliser: a cheap deterministic hash.
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Uniform in [0, 1) from a hash.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// One agency-day's counters, in `METRICS` order. Sizes are heavy-tailed (most agencies send
/// a few documents a day, a few send hundreds); weekends are quiet; ~3 % of deliveries are
/// late and ~0.5 % rejected.
fn day_counts(a: usize, day_index: usize, weekday: u8) -> [u64; 5] {
    let size = 1.0 + 199.0 * unit(mix(a as u64)).powi(4); // mean ≈ 41, median ≈ 13
    let weekend = weekday >= 5;
    let f = if weekend { 0.08 } else { 1.0 };
    let h = mix(((a as u64) << 20) ^ day_index as u64 ^ 0x5EED);
    let jitter = |k: u32| 0.6 + 0.8 * unit(mix(h ^ k as u64));
    let sent = (size * f * jitter(1)).round() as u64;
    let due = (size * 1.1 * f * jitter(2)).round() as u64;
    let late = (due as f64 * 0.03 * jitter(3) + unit(mix(h ^ 4)) * 0.9).floor() as u64;
    let rejected = (due as f64 * 0.005 * jitter(5) + unit(mix(h ^ 6)) * 0.3).floor() as u64;
    let rejected = rejected.min(due - late.min(due));
    let late = late.min(due);
    // A small share of each day's deliveries is still pending.
    let ontime = (due - late - rejected).saturating_sub((due as f64 * 0.01).round() as u64);
    [due, late, ontime, rejected, sent]
}

fn push(rows: &mut Vec<Row>, period: &str, scope: &str, v: &[u64; 5]) {
    for (m, &x) in METRICS.iter().zip(v) {
        // Live counting never writes a zero counter.
        if x > 0 {
            rows.push((period.to_string(), scope.to_string(), m.to_string(), x));
        }
    }
}

fn add(acc: &mut [u64; 5], v: &[u64; 5]) {
    for (a, x) in acc.iter_mut().zip(v) {
        *a += x;
    }
}

struct Loaded {
    rows: u64,
    national_year: [u64; 5],
    gen_secs: f64,
}

/// Generate every row in key order (period, scope, metric) and hand batches to `sink`.
fn generate(
    agencies: usize,
    days: &[Day],
    batch: usize,
    mut sink: impl FnMut(Vec<Row>) -> Res<()>,
) -> Res<Loaded> {
    let year = the_year();
    let mut gen = Duration::ZERO;
    let mut rows: Vec<Row> = Vec::with_capacity(batch + 100_000);
    let mut total = 0u64;
    let mut months = vec![[[0u64; 5]; 12]; agencies];
    let mut g_months = vec![[[0u64; 5]; 12]; GROUPS as usize];
    let mut n_months = [[0u64; 5]; 12];
    let codes: Vec<String> = (0..agencies).map(agency).collect();
    // Write each period's scopes in key order (the group letter precedes the last two digits
    // in a code, so index order is not key order).
    let mut order: Vec<usize> = (0..agencies).collect();
    order.sort_by(|a, b| codes[*a].cmp(&codes[*b]));
    let t0 = Instant::now();
    let mut flush = |rows: &mut Vec<Row>, force: bool, gen: &mut Duration, t: &mut Instant| {
        if rows.len() >= batch || (force && !rows.is_empty()) {
            *gen += t.elapsed();
            total += rows.len() as u64;
            let r = std::mem::replace(rows, Vec::with_capacity(batch + 100_000));
            let res = sink(r);
            *t = Instant::now();
            res
        } else {
            Ok(())
        }
    };
    let mut t = t0;
    for (di, day) in days.iter().enumerate() {
        let key = day.key();
        let weekday =
            time::Date::from_calendar_date(day.y, time::Month::try_from(day.m).unwrap(), day.d)?
                .weekday()
                .number_days_from_monday();
        let mut groups = [[0u64; 5]; GROUPS as usize];
        let mut national = [0u64; 5];
        for &a in &order {
            let v = day_counts(a, di, weekday);
            push(&mut rows, &key, &codes[a], &v);
            add(&mut months[a][day.m as usize - 1], &v);
            add(&mut groups[a % GROUPS as usize], &v);
            add(&mut national, &v);
        }
        for (g, v) in groups.iter().enumerate() {
            push(
                &mut rows,
                &key,
                &format!("group:{}", (b'A' + g as u8) as char),
                v,
            );
            add(&mut g_months[g][day.m as usize - 1], v);
        }
        push(&mut rows, &key, stats::NATIONAL, &national);
        add(&mut n_months[day.m as usize - 1], &national);
        flush(&mut rows, false, &mut gen, &mut t)?;
    }
    // Month aggregates ("M..." sorts after every "D..."), then the year.
    let mut years = vec![[0u64; 5]; agencies];
    let mut g_years = vec![[0u64; 5]; GROUPS as usize];
    let mut n_year = [0u64; 5];
    for m in 0..12 {
        let key = format!("M{year:04}-{:02}", m + 1);
        for &a in &order {
            push(&mut rows, &key, &codes[a], &months[a][m]);
            add(&mut years[a], &months[a][m]);
        }
        for g in 0..GROUPS as usize {
            push(
                &mut rows,
                &key,
                &format!("group:{}", (b'A' + g as u8) as char),
                &g_months[g][m],
            );
            add(&mut g_years[g], &g_months[g][m]);
        }
        push(&mut rows, &key, stats::NATIONAL, &n_months[m]);
        add(&mut n_year, &n_months[m]);
        flush(&mut rows, false, &mut gen, &mut t)?;
    }
    let key = format!("Y{year:04}");
    for &a in &order {
        push(&mut rows, &key, &codes[a], &years[a]);
    }
    for (g, v) in g_years.iter().enumerate() {
        push(
            &mut rows,
            &key,
            &format!("group:{}", (b'A' + g as u8) as char),
            v,
        );
    }
    push(&mut rows, &key, stats::NATIONAL, &n_year);
    flush(&mut rows, true, &mut gen, &mut t)?;
    Ok(Loaded {
        rows: total,
        national_year: n_year,
        gen_secs: gen.as_secs_f64(),
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Time `f` (ms): 20 runs, or 200 when one run takes under 5 ms; after one warm-up run.
fn time_it(mut f: impl FnMut() -> Res<usize>) -> Res<(f64, f64, f64, usize, usize)> {
    let t = Instant::now();
    let n = f()?;
    let first = t.elapsed().as_secs_f64() * 1e3;
    let runs = if first < 5.0 { 200 } else { 20 };
    let mut v = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        v.push(t.elapsed().as_secs_f64() * 1e3);
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Ok((first, percentile(&v, 0.5), percentile(&v, 0.99), runs, n))
}

fn report_line(name: &str, periods: usize, r: (f64, f64, f64, usize, usize)) {
    let (first, p50, p99, runs, n) = r;
    println!(
        "  {name:<44} {periods:>3} period(s)  p50 {p50:>9.3} ms  p99 {p99:>9.3} ms  (first {first:>9.3} ms, {runs} runs, {n} counters summed)"
    );
}

fn d(s: &str) -> Day {
    Day::parse(s).unwrap()
}

fn main() -> Res<()> {
    let year = the_year();
    let quick = std::env::var("POROS_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let agencies = env_usize("POROS_BENCH_AGENCIES").unwrap_or(if quick { 1000 } else { 10_000 });
    let ndays = env_usize("POROS_BENCH_DAYS")
        .unwrap_or(366) // the whole year
        .clamp(1, 366);
    let batch = env_usize("POROS_BENCH_BATCH").unwrap_or(2_000_000).max(1);
    assert!(
        agencies <= 10_000,
        "agency codes are generated for up to 10,000 agencies"
    );

    let tmp = tempfile::Builder::new()
        .prefix("poros-bench-stats-")
        .tempdir()?;
    let mut dep = Deployment::create(Binaries::new(HUB_EXE, AGENT_EXE), tmp.path())?;
    dep.set_rust_log("warn");
    let db_path = dep.hub_dir.join("data/hub.redb");
    std::fs::create_dir_all(db_path.parent().unwrap())?;

    let mut days = Vec::new();
    let mut day = d(&format!("{year}-01-01"));
    while days.len() < ndays && day.y == year {
        days.push(day);
        day = day.next();
    }
    println!(
        "poros stats bench: {agencies} agencies × {} days of {year} ({}..{}), {GROUPS} groups, \
         metrics {METRICS:?}; batches of {batch} rows; store {}",
        days.len(),
        days[0],
        days[days.len() - 1],
        db_path.display()
    );

    // ---- 1. load --------------------------------------------------------------------------
    let db = poros_store::Db::open(&db_path)?;
    let t_load = Instant::now();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Row>>(1);
    let gen_days = days.clone();
    let generator = std::thread::spawn(move || {
        generate(agencies, &gen_days, batch, |rows| {
            tx.send(rows).map_err(|_| "loader stopped".into())
        })
    });
    let mut commit = Duration::ZERO;
    let mut batches = 0;
    for rows in rx {
        let t = Instant::now();
        stats::bulk_load(&db, rows)?;
        commit += t.elapsed();
        batches += 1;
        if batches % 5 == 0 {
            println!(
                "  … {batches} batches loaded, {:.0} s",
                t_load.elapsed().as_secs_f64()
            );
        }
    }
    let loaded = generator.join().map_err(|_| "generator panicked")??;
    drop(db); // waits for the committer, releases the file
    let load_secs = t_load.elapsed().as_secs_f64();
    let size = std::fs::metadata(&db_path)?.len();
    let agency_days = (agencies * days.len()) as f64;
    println!(
        "load: {} rows in {batches} bulk_load calls, {load_secs:.1} s wall ({:.0} rows/s; bulk_load \
         calls {:.1} s, generation {:.1} s on another thread)",
        loaded.rows,
        loaded.rows as f64 / load_secs,
        commit.as_secs_f64(),
        loaded.gen_secs
    );
    println!(
        "store: {:.1} MiB on disk ({:.1} bytes/row, {:.0} bytes per agency-day incl. aggregates)",
        size as f64 / (1u64 << 20) as f64,
        size as f64 / loaded.rows as f64,
        size as f64 / agency_days
    );
    if days.len() < 365 || agencies < 10_000 {
        let scale = (10_000.0 * 365.0) / agency_days;
        println!(
            "  extrapolated to 10,000 agencies × 365 days (linear in rows): ~{:.0} s load, ~{:.0} MiB",
            load_secs * scale,
            size as f64 * scale / (1u64 << 20) as f64
        );
    }

    // ---- 2. query layer --------------------------------------------------------------------
    let t_open = Instant::now();
    let db = poros_store::Db::open(&db_path)?;
    println!("reopen: {:.1} ms", t_open.elapsed().as_secs_f64() * 1e3);
    // Check the loaded aggregates against what the generator summed.
    {
        let r = db.read()?;
        let y = stats::sums(&r, &[format!("Y{year}")], Some(stats::NATIONAL))?;
        let n = &y[stats::NATIONAL];
        for (m, want) in METRICS.iter().zip(loaded.national_year) {
            let got = n.get(*m).copied().unwrap_or(0);
            assert_eq!(got, want, "national {m} for {year}");
        }
        let all_days = stats::sums(
            &r,
            &days.iter().map(|d| d.key()).collect::<Vec<_>>(),
            Some(stats::NATIONAL),
        )?;
        assert_eq!(
            all_days[stats::NATIONAL],
            *n,
            "day sums equal the year aggregate"
        );
        println!(
            "national {year}: sent {}, due {}, on time {}, late {}, rejected {} (checked)",
            n["sent"], n["in_due"], n["in_ontime"], n["in_late"], n["in_rejected"]
        );
    }
    let last = days[days.len() - 1];
    let pick = |s: &str| {
        let x = d(s);
        if x <= last {
            x
        } else {
            last
        }
    };
    let sample_agency = agency(agencies / 2);
    let cases: Vec<(String, Day, Day, Option<String>)> = vec![
        (
            "one day".into(),
            pick(&format!("{year}-06-17")),
            pick(&format!("{year}-06-17")),
            None,
        ),
        (
            "one month".into(),
            pick(&format!("{year}-06-01")),
            pick(&format!("{year}-06-30")),
            None,
        ),
        (
            "one year".into(),
            d(&format!("{year}-01-01")),
            d(&format!("{year}-12-31")),
            None,
        ),
        (
            "45 days incl. a whole month (05-20..07-03)".into(),
            pick(&format!("{year}-05-20")),
            pick(&format!("{year}-07-03")),
            None,
        ),
        (
            "45 days, no whole month (03-10..04-23)".into(),
            pick(&format!("{year}-03-10")),
            pick(&format!("{year}-04-23")),
            None,
        ),
        (
            format!("one agency ({sample_agency}), year"),
            d(&format!("{year}-01-01")),
            d(&format!("{year}-12-31")),
            Some(sample_agency.clone()),
        ),
        (
            "one agency, 45 days no whole month".into(),
            pick(&format!("{year}-03-10")),
            pick(&format!("{year}-04-23")),
            Some(sample_agency.clone()),
        ),
    ];
    println!(
        "stats::sums (fresh read transaction each run; OS page cache warm after the first run):"
    );
    for (name, from, to, only) in &cases {
        let periods = stats::cover(*from, *to);
        let r = time_it(|| {
            let r = db.read()?;
            let s = stats::sums(&r, &periods, only.as_deref())?;
            Ok(s.values().map(|m| m.len()).sum())
        })?;
        report_line(name, periods.len(), r);
    }
    drop(db);

    // ---- 3. through the hub ----------------------------------------------------------------
    if std::env::var("POROS_BENCH_NO_HTTP").is_ok_and(|v| !v.is_empty() && v != "0") {
        return Ok(());
    }
    http_phase(&mut dep, &sample_agency)
}

fn http_phase(dep: &mut Deployment, sample_agency: &str) -> Res<()> {
    let year = the_year();
    let t = Instant::now();
    dep.start_timeout = Duration::from_secs(120);
    dep.start_hub()?;
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let base = dep.ops_base();
    println!(
        "hub started in {:.2} s; HTTP through the ops listener (empty registry: national and \
         group figures computed, no agency rows):",
        t.elapsed().as_secs_f64()
    );
    let token = std::fs::read_to_string(dep.hub_dir.join("admin.token"))?
        .trim()
        .to_string();
    let cases = [
        ("/api/v1/stats", "stats, default (this month to date)"),
        ("/api/v1/stats?from=Y-06-17&to=Y-06-17", "stats, one day"),
        ("/api/v1/stats?month=Y-06", "stats, one month"),
        ("/api/v1/stats?year=Y", "stats, one year"),
        (
            "/api/v1/stats?from=Y-03-10&to=Y-04-23",
            "stats, 45 days no whole month",
        ),
        ("/api/v1/stats?year=Y&agency=A", "stats, year, agency=A"),
        ("/api/v1/trend?to=Y-06-30", "trend (30 day scans, national)"),
        ("/metrics", "/metrics (per-agency series, year)"),
    ];
    for (path, name) in cases {
        let path = path
            .replace("Y", &year.to_string())
            .replace("=A", &format!("={sample_agency}"));
        let url = format!("{base}{path}");
        let mut bytes = 0;
        let r = time_it(|| {
            let resp = http.get(&url).bearer_auth(&token).send()?;
            if !resp.status().is_success() {
                return Err(format!("GET {path}: {}", resp.status()).into());
            }
            bytes = resp.bytes()?.len();
            Ok(0)
        })?;
        let (first, p50, p99, runs, _) = r;
        println!(
            "  {name:<44} p50 {p50:>9.3} ms  p99 {p99:>9.3} ms  (first {first:>9.3} ms, {runs} runs, {bytes} bytes)  GET {path}"
        );
    }
    Ok(())
}
