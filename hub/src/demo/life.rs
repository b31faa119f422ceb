//! The demo's second act: the life of documents after delivery. Recipients register, assign,
//! process and complete; a document sent in error is taken back (one recipient accepts, one
//! refuses); another is replaced by a corrected version. Then the timelines, as each sender's
//! agent holds them (every statement signed by its maker and re-verified), are printed.

use anyhow::{Context, Result};
use poros_harness::{wait_until, Deployment};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// (code, department, name) of the staff member acting for each agency.
const STAFF: [(&str, &str, &str); 4] = [
    ("000.00.00.G01", "Văn phòng Bộ", "Trần Văn Bình"),
    ("000.00.00.G02", "Văn thư", "Nguyễn Thị Lan"),
    ("000.00.00.H01", "Văn thư UBND", "Lê Minh Châu"),
    ("000.00.00.H29", "Văn thư UBND", "Phạm Thu Hà"),
];

fn staff(code: &str) -> (&'static str, &'static str) {
    STAFF
        .iter()
        .find(|s| s.0 == code)
        .map(|s| (s.1, s.2))
        .unwrap_or(("Văn thư", "Cán bộ"))
}

/// Run a statement verb at `code` (`verb ID args…`), as its staff member; the JSON answer.
fn say(dep: &Deployment, code: &str, verb: &str, id: &str, args: &[&str]) -> Result<Value> {
    let dir = dep.agent_dir(code).to_string_lossy().to_string();
    let (dept, name) = staff(code);
    let mut all = vec![verb, "--dir", &dir, id];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--staff", name, "--department", dept, "--json"]);
    let out = dep
        .agent(&all)
        .with_context(|| format!("{code}: poros-agent {verb} {id}"))?;
    Ok(serde_json::from_str(&out)?)
}

fn status(dep: &Deployment, code: &str, id: &str) -> Value {
    dep.api_get(code, &format!("/v1/documents/{id}"))
        .unwrap_or(Value::Null)
}

/// Timeline entries of every recipient of `id` at its sender `from`.
fn timeline_len(dep: &Deployment, from: &str, id: &str) -> usize {
    status(dep, from, id)["recipients"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["timeline"].as_array().map_or(0, Vec::len))
        .sum()
}

/// Send a document with the CLI; its ID.
fn send(dep: &Deployment, from: &str, to: &[&str], subject: &str, file: &Path) -> Result<String> {
    Ok(dep.agent(&[
        "send",
        "--dir",
        &dep.agent_dir(from).to_string_lossy(),
        &file.to_string_lossy(),
        "--to",
        &to.join(","),
        "--subject",
        subject,
        "--type",
        "official-letter",
    ])?)
}

/// Play the second act on documents already delivered: `budget` (G01 → G02, H01, H29) and
/// `report` (H01 → G01, G02). Returns the documents whose timelines to print, with senders.
pub fn play(
    dep: &Deployment,
    files: &Path,
    budget: &str,
    report: &str,
) -> Result<Vec<(String, String)>> {
    let [g01, g02, h01, h29] = STAFF.map(|s| s.0);
    println!();
    println!("== The life of documents after delivery (statuses 01–06, take-back, replace)");
    // Statuses on the budget guidance at its three recipients, and on H01's report.
    for (code, steps) in [
        (
            g02,
            &[
                "arrived",
                "registered",
                "assigned",
                "processing",
                "completed",
            ][..],
        ),
        (h01, &["registered", "assigned", "processing"][..]),
        (h29, &["registered"][..]),
    ] {
        for st in steps {
            let note: &[&str] = if *st == "processing" {
                &["--note", "dự thảo báo cáo thẩm định"]
            } else {
                &[]
            };
            let mut args = vec!["--code", st];
            args.extend_from_slice(note);
            say(dep, code, "progress", budget, &args)?;
        }
    }
    for (code, steps) in [
        (g01, &["registered", "completed"][..]),
        (g02, &["registered"][..]),
    ] {
        for st in steps {
            say(dep, code, "progress", report, &["--code", st])?;
        }
    }
    println!("   G02 took the budget guidance from arrival to completion; H01 is processing it, H29 registered it");

    // A circular sent in error, taken back: G02 accepts, H01 refuses (it already acted on it).
    let f = files.join("circular-error.txt");
    std::fs::write(&f, "MINISTRY OF FINANCE\nCircular draft sent in error.\n")?;
    let circular = send(dep, g01, &[g02, h01], "Circular on fees (draft)", &f)?;
    wait_until(
        "the circular to be delivered",
        Duration::from_secs(60),
        || {
            super::states(dep, g01, &circular)
                .values()
                .all(|s| s == "delivered")
        },
    )?;
    say(dep, h01, "progress", &circular, &["--code", "registered"])?;
    let tb = say(
        dep,
        g01,
        "takeback",
        &circular,
        &["--reason", "sent in error; the final text follows"],
    )?;
    println!(
        "   G01 asked to take back {circular} (code {})",
        tb["code"].as_str().unwrap_or("13")
    );
    for code in [g02, h01] {
        wait_until(
            "the take-back request to arrive",
            Duration::from_secs(60),
            || {
                dep.agent(&[
                    "status",
                    "--dir",
                    &dep.agent_dir(code).to_string_lossy(),
                    &circular,
                    "--json",
                ])
                .ok()
                .and_then(|o| serde_json::from_str::<Value>(&o).ok())
                .is_some_and(|v| !v["pending_change"].is_null())
            },
        )?;
    }
    say(dep, g02, "answer", &circular, &["accept"])?;
    say(
        dep,
        h01,
        "answer",
        &circular,
        &["refuse", "--reason", "already registered and assigned"],
    )?;
    println!(
        "   G02 accepted (15): withdrawn from its inbox, kept; H01 refused (16) with its reason"
    );

    // An invitation replaced by a corrected one; both recipients accept.
    let f = files.join("invitation-v1.txt");
    std::fs::write(&f, "Invitation to the budget conference, 10 December.\n")?;
    let invitation = send(dep, g01, &[g02, h01], "Invitation: budget conference", &f)?;
    wait_until(
        "the invitation to be delivered",
        Duration::from_secs(60),
        || {
            super::states(dep, g01, &invitation)
                .values()
                .all(|s| s == "delivered")
        },
    )?;
    let f = files.join("invitation-v2.txt");
    std::fs::write(
        &f,
        "Invitation to the budget conference, 12 December (date corrected).\n",
    )?;
    let r = say(
        dep,
        g01,
        "replace",
        &invitation,
        &[
            &f.to_string_lossy(),
            "--subject",
            "Invitation: budget conference (corrected date)",
            "--reason",
            "date corrected",
        ],
    )?;
    let successor = r["successor"].as_str().unwrap_or("?").to_string();
    for code in [g02, h01] {
        wait_until("the replace request", Duration::from_secs(60), || {
            dep.agent(&[
                "status",
                "--dir",
                &dep.agent_dir(code).to_string_lossy(),
                &invitation,
                "--json",
            ])
            .ok()
            .and_then(|o| serde_json::from_str::<Value>(&o).ok())
            .is_some_and(|v| !v["pending_change"].is_null())
        })?;
        say(dep, code, "answer", &invitation, &["accept"])?;
    }
    println!("   G01 replaced {invitation} by {successor}; G02 and H01 accepted (15)");

    // Every statement reaches its sender: wait for the expected timeline lengths.
    let expect = [
        (g01, budget, 3 + 5 + 3 + 1),
        (h01, report, 2 + 2 + 1),
        (g01, &circular, 2 + 1 + 1 + 1),
        (g01, &invitation, 2 + 2),
    ];
    wait_until(
        "every statement at its sender",
        Duration::from_secs(60),
        || {
            expect
                .iter()
                .all(|(from, id, n)| timeline_len(dep, from, id) >= *n)
        },
    )?;
    Ok(vec![
        (g01.to_string(), budget.to_string()),
        (h01.to_string(), report.to_string()),
        (g01.to_string(), circular),
        (g01.to_string(), invitation),
        (g01.to_string(), successor),
    ])
}

/// Print each document's timeline per recipient, as its sender's agent holds it.
pub fn print_timelines(dep: &Deployment, docs: &[(String, String)]) {
    println!();
    println!(
        "== Timelines (each statement signed by its maker, re-verified by the sender's agent)"
    );
    for (from, id) in docs {
        let v = status(dep, from, id);
        let mut head = format!("{from} -> {id}  {}", v["subject"].as_str().unwrap_or(""));
        if let Some(s) = v["replaced_by"].as_str() {
            head.push_str(&format!("  [replaced by {s}]"));
        }
        if let Some(s) = v["replaces"].as_str() {
            head.push_str(&format!("  [replaces {s}]"));
        }
        println!("{head}");
        for r in v["recipients"].as_array().into_iter().flatten() {
            let steps: Vec<String> = r["timeline"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    let mut s = match e["code"].as_str() {
                        Some(c) => format!("{c} {}", e["label"].as_str().unwrap_or("?")),
                        None => e["label"].as_str().unwrap_or("?").to_string(),
                    };
                    // Statements software makes (acceptance, receipt) name no staff.
                    if let Some(n) = e["staff"]["name"].as_str().filter(|n| !n.is_empty()) {
                        s.push_str(&format!(" ({n})"));
                    }
                    if let Some(t) = e["reason"]["text"].as_str() {
                        s.push_str(&format!(" \"{t}\""));
                    }
                    if e["signature_verified"] == false {
                        s.push_str(" [SIGNATURE NOT VERIFIED]");
                    }
                    s
                })
                .collect();
            let mut tail = String::new();
            if r["withdrawn"] == true {
                tail.push_str("  — withdrawn");
            }
            println!(
                "     {}  {}{tail}",
                r["agency"].as_str().unwrap_or("?"),
                steps.join(" → ")
            );
        }
    }
}
