//! `poros-hub demo`: a complete local exchange on loopback in a fresh directory — a new
//! deployment, the hub and four agencies as real processes, signed documents between them
//! (one agency starts only later), receipts back, and a per-document, per-recipient report.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const AGENCIES: [(&str, &str); 4] = [
    ("000.00.00.G01", "Ministry of Finance"),
    ("000.00.00.G02", "Ministry of Home Affairs"),
    ("000.00.00.H01", "Provincial People's Committee H01"),
    (
        "000.00.00.H29",
        "Provincial People's Committee H29 (starts later)",
    ),
];

struct Procs(Vec<(String, Child)>);

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, c) in self.0.iter_mut().rev() {
            // SIGTERM for a clean shutdown; the child exits on its own.
            let _ = Command::new("kill").arg(c.id().to_string()).status();
        }
        for (_, c) in self.0.iter_mut() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> Result<u16> {
    // Reserve an ephemeral port for the hub's fixed configuration (the user may restart it).
    let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let t = std::net::TcpListener::bind(("127.0.0.1", s.local_addr()?.port()));
    match t {
        Ok(_) => Ok(s.local_addr()?.port()),
        Err(_) => free_port(),
    }
}

fn sibling(name: &str) -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let p = me.with_file_name(name);
    if !p.exists() {
        bail!(
            "{} not found next to {}; build both binaries with `cargo build --release`",
            name,
            me.display()
        );
    }
    Ok(p)
}

fn run_cmd(exe: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(exe)
        .args(args)
        .output()
        .with_context(|| format!("running {}", exe.display()))?;
    if !out.status.success() {
        bail!(
            "`{} {}` failed: {}",
            exe.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("timed out after {timeout:?} waiting for {what}")
}

fn spawn(procs: &mut Procs, name: &str, exe: &Path, args: &[&str], log: &Path) -> Result<()> {
    let f = std::fs::File::create(log)?;
    let child = Command::new(exe)
        .args(args)
        .stdout(Stdio::null())
        .stderr(f)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    procs.0.push((name.to_string(), child));
    Ok(())
}

fn api(dir: &Path, path: &str) -> Option<Value> {
    let addr = std::fs::read_to_string(dir.join("run/api.addr")).ok()?;
    reqwest::blocking::get(format!("http://{}{path}", addr.trim()))
        .ok()?
        .json()
        .ok()
}

/// How many items a listing of an agent's API holds, counted page by page.
fn count_listing(dir: &Path, path: &str) -> Option<usize> {
    let addr = std::fs::read_to_string(dir.join("run/api.addr")).ok()?;
    let (mut n, mut after) = (0, String::new());
    loop {
        let r = reqwest::blocking::get(format!("http://{}{path}?limit=1000{after}", addr.trim()))
            .ok()?;
        let next = r
            .headers()
            .get(poros_protocol::page::NEXT_CURSOR_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        n += r.json::<Value>().ok()?.as_array()?.len();
        match next {
            Some(c) => after = format!("&after={c}"),
            None => return Some(n),
        }
    }
}

/// Run the demo.
pub fn run(dir: Option<PathBuf>, bulk: usize) -> Result<()> {
    let started = Instant::now();
    let root = match dir {
        Some(d) => d,
        None => {
            let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
            PathBuf::from(format!("poros-demo/{stamp}"))
        }
    };
    if root.exists() && std::fs::read_dir(&root)?.next().is_some() {
        bail!(
            "{} is not empty; the demo needs a fresh directory",
            root.display()
        );
    }
    std::fs::create_dir_all(root.join("logs"))?;
    std::fs::create_dir_all(root.join("files"))?;
    let root = root.canonicalize()?;
    let hub_exe = std::env::current_exe()?;
    let agent_exe = sibling("poros-agent")?;
    let hub_dir = root.join("hub");
    let hub_s = hub_dir.to_string_lossy().to_string();
    let port = free_port()?;
    let ops = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    println!("== Poros demo in {}", root.display());
    run_cmd(
        &hub_exe,
        &[
            "init",
            "--dir",
            &hub_s,
            "--listen",
            &listen,
            "--ops-listen",
            &format!("127.0.0.1:{ops}"),
        ],
    )?;
    println!("   deployment created: network CA, signing CA, hub identity (hub/)");

    let mut procs = Procs(Vec::new());
    spawn(
        &mut procs,
        "hub",
        &hub_exe,
        &["run", "--dir", &hub_s],
        &root.join("logs/hub.log"),
    )?;
    wait_for("the hub to listen", Duration::from_secs(20), || {
        hub_dir.join("run/ops.addr").exists()
    })?;
    println!("   hub running on {listen} (QUIC, mutual TLS 1.3); logs in logs/hub.log");
    let mut agent_dirs = Vec::new();
    let mut late_token = String::new();
    for (i, (code, name)) in AGENCIES.iter().enumerate() {
        let d = root.join("agents").join(code);
        let ds = d.to_string_lossy().to_string();
        if i == 3 {
            // The late agency enrols by one-time token, as a new agency would.
            late_token = run_cmd(
                &hub_exe,
                &[
                    "node", "add", "--dir", &hub_s, "--agency", code, "--name", name,
                ],
            )?;
            println!("   agency {code} ({name}): registered; enrolment token issued");
            agent_dirs.push(d);
            continue;
        }
        run_cmd(
            &agent_exe,
            &["init", "--dir", &ds, "--agency", code, "--hub", &listen],
        )?;
        run_cmd(
            &hub_exe,
            &[
                "node",
                "add",
                "--dir",
                &hub_s,
                "--agency",
                code,
                "--name",
                name,
                "--requests",
                &format!("{ds}/requests"),
                "--out",
                &format!("{ds}/certs"),
            ],
        )?;
        println!("   agency {code} ({name}): keys generated locally, certificates issued from its requests");
        agent_dirs.push(d);
    }

    for d in &agent_dirs[..3] {
        start_agent(&mut procs, &agent_exe, d, &root)?;
    }

    let files = root.join("files");
    let mut sent: Vec<(String, String)> = Vec::new(); // (agency dir index as code, doc id)
    let send =
        |from: usize, to: &[usize], subject: &str, number: &str, file: &Path| -> Result<String> {
            let to: Vec<&str> = to.iter().map(|i| AGENCIES[*i].0).collect();
            run_cmd(
                &agent_exe,
                &[
                    "send",
                    "--dir",
                    &agent_dirs[from].to_string_lossy(),
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
                ],
            )
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
    println!(
        "   {} more routine notices sent, each also to the offline H29",
        bulk * 3
    );

    let dir_of =
        |code: &str| agent_dirs[AGENCIES.iter().position(|a| a.0 == code).unwrap_or(0)].clone();
    type Row = (String, String, Vec<(String, String)>);
    let states = |sent: &[(String, String)]| -> Vec<Row> {
        sent.iter()
            .map(|(from, id)| {
                let v = api(&dir_of(from), &format!("/v1/documents/{id}")).unwrap_or(Value::Null);
                let rs = v["recipients"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|r| {
                        (
                            r["agency"].as_str().unwrap_or("?").to_string(),
                            r["state"].as_str().unwrap_or("?").to_string(),
                        )
                    })
                    .collect();
                (from.clone(), id.clone(), rs)
            })
            .collect()
    };
    wait_for(
        "receipts from the online agencies",
        Duration::from_secs(60),
        || {
            states(&sent).iter().all(|(_, _, rs)| {
                rs.iter()
                    .all(|(a, s)| s == "delivered" || (a == AGENCIES[3].0 && s == "accepted"))
            })
        },
    )?;
    println!("   online recipients answered with signed receipts; H29 deliveries held at the hub");
    run_cmd(
        &agent_exe,
        &[
            "enroll",
            "--dir",
            &agent_dirs[3].to_string_lossy(),
            "--token",
            &late_token,
        ],
    )?;
    start_agent(&mut procs, &agent_exe, &agent_dirs[3], &root)?;
    println!("   H29 enrolled with its token (keys generated on its side) and started");
    wait_for("every receipt", Duration::from_secs(60), || {
        states(&sent)
            .iter()
            .all(|(_, _, rs)| !rs.is_empty() && rs.iter().all(|(_, s)| s == "delivered"))
    })?;

    println!();
    println!("== Report: every document, every recipient (as the sender's agent holds it)");
    let mut delivered = 0;
    for (from, id) in &sent {
        let v = api(&dir_of(from), &format!("/v1/documents/{id}")).unwrap_or(Value::Null);
        println!("{from} -> {id}  {}", v["subject"].as_str().unwrap_or(""));
        for r in v["recipients"].as_array().into_iter().flatten() {
            if r["state"] == "delivered" {
                delivered += 1;
            }
            println!(
                "     {}  {}  receipt signed at {} ms",
                r["agency"].as_str().unwrap_or("?"),
                r["state"].as_str().unwrap_or("?"),
                r["time_ms"]
            );
        }
    }
    let inboxes: Vec<String> = agent_dirs
        .iter()
        .zip(AGENCIES)
        .map(|(d, (code, _))| format!("{code}: {}", count_listing(d, "/v1/inbox").unwrap_or(0)))
        .collect();
    println!();
    println!(
        "{} documents, {delivered} deliveries, all with verified signed receipts, in {:.1} s",
        sent.len(),
        started.elapsed().as_secs_f64()
    );
    println!("inbox sizes: {}", inboxes.join(", "));
    println!();
    println!("== Exchange figures (poros-hub stats)");
    if let Ok(stats) = run_cmd(&hub_exe, &["stats", "--dir", &hub_s]) {
        for line in stats.lines().take(5) {
            println!("{line}");
        }
    }
    drop(procs);
    println!();
    println!(
        "Processes stopped; everything stays in {}. To go on:",
        root.display()
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

fn start_agent(procs: &mut Procs, exe: &Path, dir: &Path, root: &Path) -> Result<()> {
    let code = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("agent")
        .to_string();
    spawn(
        procs,
        &code,
        exe,
        &["run", "--dir", &dir.to_string_lossy()],
        &root.join(format!("logs/{code}.log")),
    )?;
    wait_for(
        &format!("agent {code} to connect"),
        Duration::from_secs(20),
        || api(dir, "/v1/health").is_some_and(|v| v["connected"] == Value::Bool(true)),
    )
}
