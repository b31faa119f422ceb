//! Listing benchmark: memory of the real `poros-agent` while its whole inbox of a million
//! documents is paged through its HTTP API (see benches/README.md).
//!
//! 1. A hub deployment registers one agency (G01); the hub is then stopped (the agent's API
//!    serves without it).
//! 2. The agent's store is filled directly through its state API (`AgentStore::put_received`,
//!    group-committed in batches) with N received documents (default 1,000,000;
//!    `POROS_BENCH_DOCS=n` to change, `POROS_BENCH_QUICK=1` for 20,000).
//! 3. `poros-agent run` is started on that store. Reference: its VmHWM once it answers, and
//!    after one default page. Then every page of `GET /v1/inbox?limit=1000` is fetched
//!    through the cursor; VmRSS is sampled during the walk and VmHWM read after it.
//!
//! Writes a JSON summary to `<target>/bench-listing.json`.

mod common;
use common::*;
use poros_agent::state::{AgentStore, BodyAt, InRecord, OwnReceipt};
use poros_protocol::{
    AgencyId, DocumentId, Envelope, Metadata, Outcome, Receipt, SignedBlob, SignedEnvelope,
    SignedStatement,
};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ME: &str = "000.00.00.G01";
const SENDER: &str = "000.00.00.H01";
const PAGE: usize = poros_protocol::page::MAX_PAGE;
const MIB: f64 = 1024.0;

/// Hub deployment plus one registered agent directory; the hub is stopped again.
fn setup(root: &Path) -> Res<Deployment> {
    let mut d = deployment(root, &[ME])?;
    d.stop_hub()?;
    Ok(d)
}

/// A received document as the agent stores it, with a real certificate's size for the signer
/// (signatures are not checked by listings, so they are placeholders).
fn record(i: u64, cert: &[u8]) -> Res<(DocumentId, InRecord)> {
    let ms = 1_780_000_000_000 + i;
    let mut rand = [0u8; 10];
    rand[..8].copy_from_slice(&i.to_be_bytes());
    let id = DocumentId::new_v7(ms, rand);
    let body = format!("body {i}");
    let digest = poros_protocol::sha256(body.as_bytes());
    let env = Envelope {
        id,
        sender: AgencyId::parse(SENDER)?,
        recipients: vec![AgencyId::parse(ME)?],
        meta: Metadata {
            subject: format!("Official letter number {i} on the annual budget review"),
            number: Some(format!("{i}/CV-BTC")),
            ..Metadata::default()
        },
        created_ms: ms,
        body_len: body.len() as u64,
        body_sha256: digest,
        ext: Default::default(),
    };
    let receipt = Receipt {
        doc_id: id,
        sender: env.sender.clone(),
        recipient: AgencyId::parse(ME)?,
        body_sha256: digest,
        outcome: Outcome::Delivered,
        time_ms: ms + 5,
    };
    let blob = |payload: Vec<u8>| SignedBlob {
        payload,
        signature: vec![0x30; 71],
        signer_cert: cert.to_vec(),
    };
    Ok((
        id,
        InRecord {
            envelope: SignedEnvelope::from_blob(blob(postcard::to_allocvec(&env)?)),
            receipt: OwnReceipt::Statement(SignedStatement::from_blob(blob(
                postcard::to_allocvec(&receipt.as_statement())?,
            ))),
            received_ms: ms + 5,
            body_at: BodyAt::Inline,
            body_sha256: digest,
            body_len: body.len() as u64,
            reason: None,
        },
    ))
}

fn fill(agent: &Path, n: u64) -> Res<f64> {
    let pem = std::fs::read_to_string(agent.join("certs/sign.crt"))?;
    let cert = poros_certs::pem_to_der_certs(&pem)?
        .into_iter()
        .next()
        .ok_or("no certificate")?;
    let db = poros_store::Db::open(&agent.join("data/agent.redb"))?;
    let store = AgentStore::open(db)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let started = Instant::now();
    rt.block_on(async {
        let mut i = 0;
        while i < n {
            let mut set = tokio::task::JoinSet::new();
            for j in i..(i + 4096).min(n) {
                let (id, rec) = record(j, &cert)?;
                let s = store.clone();
                set.spawn(async move { s.put_received(id, rec, Some(b"x".to_vec())).await });
            }
            while let Some(r) = set.join_next().await {
                r??;
            }
            i = (i + 4096).min(n);
            if i % 100_000 == 0 {
                eprintln!(
                    "  filled {i} documents ({:.0} s)",
                    started.elapsed().as_secs_f64()
                );
            }
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    })?;
    Ok(started.elapsed().as_secs_f64())
}

fn main() -> Res<()> {
    let quick = std::env::var("POROS_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let n: u64 = match std::env::var("POROS_BENCH_DOCS") {
        Ok(v) => v.parse()?,
        Err(_) if quick => 20_000,
        Err(_) => 1_000_000,
    };
    let tmp = tempfile::Builder::new()
        .prefix("poros-bench-listing-")
        .tempdir()?;
    let root = tmp.path();
    let mut d = setup(root)?;
    let agent = d.agent_dir(ME);
    println!("listing benchmark: {n} documents in one agent's inbox, paged {PAGE} at a time");
    let fill_s = fill(&agent, n)?;
    let db_bytes = std::fs::metadata(agent.join("data/agent.redb"))?.len();
    println!(
        "  filled in {fill_s:.1} s ({:.0} docs/s); store {:.0} MiB",
        n as f64 / fill_s,
        db_bytes as f64 / MIB / MIB
    );

    d.start_agent(ME, false)?;
    let pid = d.procs().pid(ME).ok_or("agent not running")?;
    let api = d.api_addr(ME).ok_or("agent without API address")?;
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()?;
    let idle_hwm = proc_status_kib(pid, "VmHWM:").unwrap_or(0);
    let one: Vec<Value> = http.get(format!("http://{api}/v1/inbox")).send()?.json()?;
    let one_page_hwm = proc_status_kib(pid, "VmHWM:").unwrap_or(0);

    // Sample VmRSS while paging (VmHWM gives the true peak; the samples show its shape).
    let stop = Arc::new(AtomicBool::new(false));
    let max_rss = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, max_rss) = (stop.clone(), max_rss.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if let Some(r) = proc_status_kib(pid, "VmRSS:") {
                    max_rss.fetch_max(r, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let started = Instant::now();
    let (mut items, mut pages, mut bytes) = (0u64, 0u64, 0u64);
    let mut lat = Vec::new();
    let mut after: Option<String> = None;
    let mut last_id = String::new();
    loop {
        let mut url = format!("http://{api}/v1/inbox?limit={PAGE}");
        if let Some(a) = after.take() {
            url.push_str(&format!("&after={a}"));
        }
        let t = Instant::now();
        let r = http.get(url).send()?;
        if !r.status().is_success() {
            return Err(format!("page {pages}: {}", r.status()).into());
        }
        let next = r
            .headers()
            .get(poros_protocol::page::NEXT_CURSOR_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = r.bytes()?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        bytes += body.len() as u64;
        let page: Vec<Value> = serde_json::from_slice(&body)?;
        for v in &page {
            let id = v["id"].as_str().unwrap_or_default().to_string();
            if id <= last_id {
                return Err(format!("listing out of order at {id}").into());
            }
            last_id = id;
        }
        items += page.len() as u64;
        pages += 1;
        match next {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    let walk_s = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let _ = sampler.join();
    let hwm = proc_status_kib(pid, "VmHWM:").unwrap_or(0);
    let rss_now = proc_status_kib(pid, "VmRSS:").unwrap_or(0);
    d.kill_agent(ME);
    if items != n {
        return Err(format!("listed {items} documents, stored {n}").into());
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
    println!(
        "  walked {items} documents in {pages} pages in {walk_s:.1} s: {:.0} pages/s, {:.0} docs/s, {:.1} MiB/s of JSON; page p50 {:.1} ms, p99 {:.1} ms",
        pages as f64 / walk_s,
        items as f64 / walk_s,
        bytes as f64 / MIB / MIB / walk_s,
        pct(0.5),
        pct(0.99)
    );
    println!("  agent peak RSS (VmHWM):");
    println!(
        "    reference, idle on this store after start:     {:6.1} MiB",
        idle_hwm as f64 / MIB
    );
    println!(
        "    after one default page ({} items):            {:6.1} MiB",
        one.len(),
        one_page_hwm as f64 / MIB
    );
    println!(
        "    after paging through all {items}:        {:6.1} MiB (VmRSS sampled max {:.1} MiB, now {:.1} MiB)",
        hwm as f64 / MIB,
        max_rss.load(Ordering::SeqCst) as f64 / MIB,
        rss_now as f64 / MIB
    );
    let summary = json!({
        "documents": n,
        "fill_s": fill_s,
        "store_mib": db_bytes as f64 / MIB / MIB,
        "page_size": PAGE,
        "pages": pages,
        "walk_s": walk_s,
        "pages_per_s": pages as f64 / walk_s,
        "docs_per_s": items as f64 / walk_s,
        "page_ms_p50": pct(0.5),
        "page_ms_p99": pct(0.99),
        "vmhwm_idle_mib": idle_hwm as f64 / MIB,
        "vmhwm_one_page_mib": one_page_hwm as f64 / MIB,
        "vmhwm_after_walk_mib": hwm as f64 / MIB,
        "vmrss_sampled_max_mib": max_rss.load(Ordering::SeqCst) as f64 / MIB,
    });
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    std::fs::write(
        Path::new(&target).join("bench-listing.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    Ok(())
}
