//! `poros-hub demo`: a complete local exchange on loopback in a fresh directory — a new
//! deployment, the hub and four agencies as real processes, signed documents between them
//! (one agency starts only later), receipts back, then the documents' life after delivery
//! (see [`life`]), and a per-document, per-recipient report with the timelines.

mod life;

use anyhow::{bail, Result};
use poros_harness::{wait_until, Binaries, Deployment};
use poros_i18n::t;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A sent document's per-recipient states (agency → state), as its sender's agent holds them.
fn states(dep: &Deployment, from: &str, id: &str) -> std::collections::BTreeMap<String, String> {
    dep.api_get(from, &format!("/v1/documents/{id}"))
        .map(|v| poros_harness::recipient_states(&v))
        .unwrap_or_default()
}

const AGENCIES: [(&str, &str); 4] = [
    ("000.00.00.G01", "Ministry of Finance"),
    ("000.00.00.G02", "Ministry of Home Affairs"),
    ("000.00.00.H01", "Provincial People's Committee H01"),
    (
        "000.00.00.H29",
        "Provincial People's Committee H29 (starts later)",
    ),
];

/// Run the demo.
pub fn run(dir: Option<PathBuf>, bulk: usize) -> Result<()> {
    let started = Instant::now();
    let l = crate::cli::lang();
    // The processes the demo starts speak its language (their output is quoted below).
    poros_harness::set_child_lang(l.code());
    let root = match dir {
        Some(d) => d,
        None => {
            let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
            PathBuf::from(format!("poros-demo/{stamp}"))
        }
    };
    if root.exists() && std::fs::read_dir(&root)?.next().is_some() {
        bail!(
            "{}",
            t!(l, "hub-demo-not-empty", dir = root.display().to_string())
        );
    }
    std::fs::create_dir_all(&root)?;
    let root = root.canonicalize()?;
    println!(
        "== {}",
        t!(l, "hub-demo-title", dir = root.display().to_string())
    );
    let mut dep = Deployment::create(Binaries::beside_current_exe()?, &root)?;
    let hub_s = dep.hub_dir.to_string_lossy().to_string();
    let listen = dep.quic_listen();
    println!("   {}", t!(l, "hub-demo-created"));

    dep.start_hub()?;
    println!(
        "   {}",
        t!(l, "hub-demo-hub-running", addr = listen.to_string())
    );
    let mut late_token = String::new();
    for (i, (code, name)) in AGENCIES.iter().enumerate() {
        if i == 3 {
            // The late agency enrols by one-time token, as a new agency would.
            late_token = dep.issue_token(code, name)?;
            println!(
                "   {}",
                t!(l, "hub-demo-agency-token", agency = *code, name = *name)
            );
            continue;
        }
        dep.register_agent(code, name)?;
        println!(
            "   {}",
            t!(l, "hub-demo-agency-offline", agency = *code, name = *name)
        );
    }

    let online: Vec<&str> = AGENCIES[..3].iter().map(|a| a.0).collect();
    dep.start_agents(&online, true)?;

    let files = root.join("files");
    let mut sent: Vec<(String, String)> = Vec::new(); // (agency dir index as code, doc id)
    let send =
        |from: usize, to: &[usize], subject: &str, number: &str, file: &Path| -> Result<String> {
            let to: Vec<&str> = to.iter().map(|i| AGENCIES[*i].0).collect();
            dep.agent(&[
                "send",
                "--dir",
                &dep.agent_dir(AGENCIES[from].0).to_string_lossy(),
                &file.to_string_lossy(),
                "--to",
                &to.join(","),
                "--subject",
                subject,
                "--number",
                number,
                "--type",
                "official-letter",
                "--priority",
                "normal",
            ])
            .map_err(anyhow::Error::from)
        };
    let letter = |name: &str, text: &str| -> Result<PathBuf> {
        let p = files.join(name);
        std::fs::write(&p, text)?;
        Ok(p)
    };
    let f1 = letter(
        "budget-2027.txt",
        "MINISTRY OF FINANCE\nNo. 101/BTC-NSNN\nRe: guidance on the 2027 budget estimates.\n",
    )?;
    let id = send(
        0,
        &[1, 2, 3],
        "Guidance on 2027 budget estimates",
        "101/BTC-NSNN",
        &f1,
    )?;
    println!("   G01 -> G02, H01, H29 (H29 offline): {id}");
    sent.push((AGENCIES[0].0.into(), id));
    let f2 = letter(
        "staffing.txt",
        "MINISTRY OF HOME AFFAIRS\nNo. 55/BNV-TCBC\nRe: staffing plan.\n",
    )?;
    let id = send(1, &[0], "Staffing plan 2027", "55/BNV-TCBC", &f2)?;
    println!("   G02 -> G01: {id}");
    sent.push((AGENCIES[1].0.into(), id));
    let f3 = letter(
        "report-h01.txt",
        &"PROVINCIAL PEOPLE'S COMMITTEE H01\nNo. 12/BC-UBND\nQuarterly socio-economic report.\n"
            .repeat(2000),
    )?;
    let id = send(
        2,
        &[0, 1],
        "Quarterly socio-economic report",
        "12/BC-UBND",
        &f3,
    )?;
    println!(
        "   H01 -> G01, G02 ({} KiB body, streamed to disk): {id}",
        std::fs::metadata(&f3)?.len() / 1024
    );
    sent.push((AGENCIES[2].0.into(), id));
    for i in 0..bulk {
        for (from, (code, _)) in AGENCIES.iter().enumerate().take(3) {
            let to = [(from + 1) % 3, 3];
            let f = letter(
                &format!("notice-{from}-{i}.txt"),
                &format!("Notice {i} from {code}\n"),
            )?;
            let id = send(
                from,
                &to,
                &format!("Routine notice {i}"),
                &format!("{i}/TB"),
                &f,
            )?;
            sent.push((code.to_string(), id));
        }
    }
    println!("   {}", t!(l, "hub-demo-bulk", count = bulk * 3));

    let all_states = |dep: &Deployment, sent: &[(String, String)]| -> Vec<_> {
        sent.iter()
            .map(|(from, id)| states(dep, from, id))
            .collect()
    };
    wait_until(
        "receipts from the online agencies",
        Duration::from_secs(60),
        || {
            all_states(&dep, &sent).iter().all(|rs| {
                rs.iter()
                    .all(|(a, s)| s == "delivered" || (a == AGENCIES[3].0 && s == "accepted"))
            })
        },
    )?;
    println!("   {}", t!(l, "hub-demo-receipts"));
    let late = AGENCIES[3].0;
    dep.enroll_agent(late, &late_token)?;
    dep.start_agent(late, true)?;
    println!("   {}", t!(l, "hub-demo-late-enrolled"));
    wait_until("every receipt", Duration::from_secs(60), || {
        all_states(&dep, &sent)
            .iter()
            .all(|rs| !rs.is_empty() && rs.values().all(|s| s == "delivered"))
    })?;
    let lives = life::play(&dep, &files, &sent[0].1, &sent[2].1)?;

    println!();
    println!("== {}", t!(l, "hub-demo-report"));
    let mut delivered = 0;
    for (from, id) in &sent {
        let v = dep
            .api_get(from, &format!("/v1/documents/{id}"))
            .unwrap_or(Value::Null);
        println!("{from} -> {id}  {}", v["subject"].as_str().unwrap_or(""));
        for r in v["recipients"].as_array().into_iter().flatten() {
            if r["state"] == "delivered" {
                delivered += 1;
            }
            println!(
                "     {}  {}  {}",
                r["agency"].as_str().unwrap_or("?"),
                r["state"].as_str().unwrap_or("?"),
                t!(l, "hub-demo-receipt-at", ms = r["time_ms"].to_string())
            );
        }
    }
    let inboxes: Vec<String> = AGENCIES
        .iter()
        .map(|(code, _)| {
            let n = dep.api_list(code, "/v1/inbox").map_or(0, |l| l.len());
            format!("{code}: {n}")
        })
        .collect();
    println!();
    println!(
        "{}",
        t!(
            l,
            "hub-demo-summary",
            documents = sent.len(),
            deliveries = delivered,
            secs = format!("{:.1}", started.elapsed().as_secs_f64())
        )
    );
    println!("{}", t!(l, "hub-demo-inboxes", list = inboxes.join(", ")));
    life::print_timelines(&dep, &lives);
    println!();
    println!("== {}", t!(l, "hub-demo-figures"));
    if let Ok(stats) = dep.hub(&["stats", "--dir", &hub_s]) {
        for line in stats.lines().take(6) {
            println!("{line}");
        }
    }
    dep.stop_all();
    println!();
    println!(
        "{}",
        t!(l, "hub-demo-stopped", dir = root.display().to_string())
    );
    println!(
        "  target/release/poros-hub run --dir {}/hub &",
        root.display()
    );
    println!(
        "  target/release/poros-agent run --dir {}/agents/000.00.00.G01 &",
        root.display()
    );
    println!(
        "  target/release/poros-agent status --dir {}/agents/000.00.00.G01",
        root.display()
    );
    println!(
        "  target/release/poros-agent inbox --dir {}/agents/000.00.00.G01",
        root.display()
    );
    Ok(())
}
