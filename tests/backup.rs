//! Backup and restore of a hub, end to end with real processes: a backup taken while agents
//! send, the hub lost (kill -9, its directory gone) and restored from the backup into a fresh
//! directory; everything acknowledged before the backup is in the restored store, and the
//! documents the hub accepted after it come back from their senders (`Resync`), and so do the
//! statements made after it (registrations), from their makers.

mod common;

use common::delivery::{check_all_delivered, Sent};
use common::{pseudo_random, sha256_hex, wait_until, Net, DEADLINE};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

const G1: &str = "000.00.00.G01";
const G2: &str = "000.00.00.G02";
const H1: &str = "000.00.00.H01";
const H2: &str = "000.00.00.H02";

/// Send and wait until the hub accepted it (its signed acceptance is at the sender).
fn send_accepted(net: &Net, from: &str, to: &str, body: &[u8], sent: &mut Sent) -> String {
    let id = net.send(from, &[to], "Backup test", body);
    wait_accepted(net, from, &id);
    sent.insert(id.clone(), (from.into(), to.into(), sha256_hex(body)));
    id
}

fn wait_accepted(net: &Net, from: &str, id: &str) {
    wait_until(&format!("{id} accepted by the hub"), DEADLINE, || {
        net.status(from, id)["accepted_ms"].as_u64().is_some()
    });
}

fn hub_knows(net: &Net, id: &str) -> bool {
    let d = net.hub_dir.display().to_string();
    net.hub_cli(&["doc", "--dir", &d, id]).status.success()
}

/// The labels of a document's history at the hub (`hub_accepted`, `delivered`, `registered`…).
fn hub_history(net: &Net, id: &str) -> Vec<String> {
    let d = net.hub_dir.display().to_string();
    let out = net.hub_cli(&["doc", "--dir", &d, id, "--json"]);
    if !out.status.success() {
        return Vec::new();
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON document");
    v["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter_map(|s| s["label"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The recipient registers a document it holds (a statement made at the agent, sent to the hub).
fn register(net: &Net, recipient: &str, id: &str) {
    let d = net.agent_dir(recipient).display().to_string();
    let out = net.agent_cli(&[
        "progress",
        "--dir",
        &d,
        id,
        "--code",
        "registered",
        "--staff",
        "Nguyễn Văn A",
        "--department",
        "Văn thư",
    ]);
    assert!(
        out.status.success(),
        "registering {id} at {recipient}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait_registered_at_hub(net: &Net, id: &str) {
    wait_until(&format!("{id} registered at the hub"), DEADLINE, || {
        hub_history(net, id).iter().any(|l| l == "registered")
    });
}

#[test]
fn a_backup_under_load_restored_elsewhere_loses_nothing_the_network_holds() {
    let mut net = Net::running(&[G1, G2, H1, H2]);
    let mut sent = Sent::new();
    // Before the backup: small documents and one large enough to be a body file.
    let mut before = Vec::new();
    for i in 0..20 {
        let body = pseudo_random(200 + i, i as u64 + 1);
        before.push(send_accepted(&net, G1, H1, &body, &mut sent));
    }
    let large = pseudo_random(300 * 1024, 77);
    before.push(send_accepted(&net, G2, H2, &large, &mut sent));

    // The backup, taken while both senders keep sending.
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = [(G1, H1), (G2, H2)]
        .into_iter()
        .enumerate()
        .map(|(n, (from, to))| {
            let (agent, stop) = (net.handle(from), stop.clone());
            thread::spawn(move || {
                let mut mine = Sent::new();
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let body = pseudo_random(500 + i, (n * 10_000 + i) as u64 + 100);
                    if let Ok(id) = agent.try_send(&[to], "During the backup", &body) {
                        mine.insert(id, (from.to_owned(), to.to_owned(), sha256_hex(&body)));
                    }
                    i += 1;
                    thread::sleep(Duration::from_millis(20));
                }
                mine
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    let file = net.root.join("hub-backup.tar");
    let d = net.hub_dir.display().to_string();
    let f = file.display().to_string();
    let out = net.hub_cli(&[
        "backup",
        "--dir",
        &d,
        "--to",
        &f,
        "--include-keys",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["online"], true, "{report}");
    assert_eq!(report["contains_private_keys"], true, "{report}");
    assert!(report["body_files"].as_u64().unwrap() >= 1, "{report}");
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let mut during = Sent::new();
    for h in load {
        during.extend(h.join().expect("sender thread"));
    }
    assert!(!during.is_empty());
    for (id, (from, _, _)) in &during {
        wait_accepted(&net, from, id);
    }
    sent.extend(during);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the backup file holds every document");
    }

    // After the backup, statements: H1 registers a document the backup holds, and one sent
    // (and delivered) after the backup, which the backup lacks altogether.
    let delivered_after = send_accepted(&net, G1, H1, b"sent after the backup", &mut sent);
    net.wait_state(G1, &delivered_after, "delivered");
    let registered_after = [before[0].clone(), delivered_after];
    for id in &registered_after {
        register(&net, H1, id);
        wait_registered_at_hub(&net, id);
    }

    // After the backup: H2 is offline, so these wait at the hub when it is lost.
    net.stop_agent(H2);
    let mut after = Vec::new();
    for i in 0..10 {
        let body = pseudo_random(700 + i, i as u64 + 5000);
        after.push(send_accepted(&net, G2, H2, &body, &mut sent));
    }

    // The hub and its directory are lost.
    net.kill_hub();
    for c in [G1, G2, H1] {
        net.stop_agent(c);
    }
    let lost = net.hub_dir.with_file_name("hub-lost");
    std::fs::rename(&net.hub_dir, &lost).unwrap();

    // A truncated copy of the backup is refused, and nothing is created.
    let bytes = std::fs::read(&file).unwrap();
    let bad = net.root.join("truncated.tar");
    std::fs::write(&bad, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let b = bad.display().to_string();
    let out = net.hub_cli(&["restore", "--from", &b, "--dir", &d]);
    assert!(!out.status.success());
    assert!(
        !net.hub_dir.exists(),
        "a failed restore leaves no directory"
    );

    let out = net.hub_cli(&["restore", "--from", &f, "--dir", &d, "--json"]);
    assert!(
        out.status.success(),
        "restore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restored: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(restored["missing_private_files"], serde_json::json!([]));

    // The restored hub holds every document acknowledged before the backup, with its body
    // intact (scrub re-hashes every stored body), and lacks those accepted after it.
    net.start_hub();
    for id in &before {
        assert!(
            hub_knows(&net, id),
            "{id} was acknowledged before the backup"
        );
    }
    let missing_after = after.iter().filter(|id| !hub_knows(&net, id)).count();
    assert_eq!(
        missing_after,
        after.len(),
        "documents accepted after the backup are not in it"
    );
    assert!(
        !hub_history(&net, &registered_after[0]).contains(&"registered".to_owned()),
        "a registration made after the backup is not in it"
    );
    assert!(!hub_knows(&net, &registered_after[1]));
    let scrub = net.hub_json(&["scrub"], &[]);
    assert!(scrub["bodies_checked"].as_u64().unwrap() >= 1, "{scrub}");
    for k in ["missing", "damaged"] {
        assert_eq!(
            scrub[k],
            serde_json::json!([]),
            "{k} after the restore: {scrub}"
        );
    }

    // The senders give back what the backup lacks: every document is delivered once.
    for c in [G1, G2, H1, H2] {
        net.start_agent(c);
    }
    check_all_delivered(&net, &sent);
    for id in &after {
        assert!(hub_knows(&net, id), "{id} came back from its sender");
    }
    // The registrations come back from the agency that made them, the second one once its
    // document is back from its sender; each is in the history once.
    for id in &registered_after {
        wait_registered_at_hub(&net, id);
        let h = hub_history(&net, id);
        assert_eq!(
            h.iter().filter(|l| *l == "registered").count(),
            1,
            "{id}: {h:?}"
        );
    }
    let check = net.admin_get("/admin/v1/stats/check");
    assert_eq!(check["equal"], true, "statistics after recovery: {check}");
}

/// A hub restored from a backup taken before a recipient received a document delivers it
/// again; the recipient holds it, so it answers at once with its original receipt and stops
/// reading the body. The body is larger than a stream's flow-control window (4 MiB), so the
/// hub is still writing it when that answer comes: the hub records the answer all the same
/// (it read it while writing), and the recipient holds the document once.
#[test]
fn a_restored_hub_takes_the_early_answer_of_a_recipient_that_holds_the_document() {
    let mut net = Net::running(&[G1, H1]);
    net.stop_agent(H1);
    let body = pseudo_random(6 * 1024 * 1024, 4242);
    let id = net.send(G1, &[H1], "Held before the backup", &body);
    wait_accepted(&net, G1, &id);

    let file = net.root.join("hub-backup.tar");
    let (d, f) = (
        net.hub_dir.display().to_string(),
        file.display().to_string(),
    );
    let out = net.hub_cli(&["backup", "--dir", &d, "--to", &f, "--include-keys"]);
    assert!(
        out.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Delivered after the backup: the backup still has it waiting for H1.
    net.start_agent(H1);
    net.wait_state(G1, &id, "delivered");
    assert!(hub_history(&net, &id).contains(&"delivered".to_owned()));

    net.kill_hub();
    std::fs::rename(&net.hub_dir, net.hub_dir.with_file_name("hub-lost")).unwrap();
    let out = net.hub_cli(&["restore", "--from", &f, "--dir", &d]);
    assert!(
        out.status.success(),
        "restore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    net.start_hub();
    wait_until(
        &format!("the restored hub to record H1's answer for {id}"),
        DEADLINE,
        || hub_history(&net, &id).contains(&"delivered".to_owned()),
    );
    assert_eq!(
        net.inbox_counts(H1).unwrap().get(&id),
        Some(&1),
        "H1 holds the document once"
    );
    assert_eq!(net.fetch_sha256(H1, &id).unwrap(), sha256_hex(&body));
    net.wait_state(G1, &id, "delivered");
}

/// `pg_dump`/`pg_restore` of the newest PostgreSQL installed: `args`, failing with stderr.
fn pg_tool(tool: &str, args: &[&str]) {
    let exe = poros_harness::pg::bin_dir()
        .unwrap_or_else(|e| panic!("{e}"))
        .join(tool);
    let out = std::process::Command::new(&exe)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Point the deployment at the PostgreSQL database `url`.
fn use_postgres(net: &Net, url: &str) {
    let mut toml = std::fs::read_to_string(net.hub_toml()).unwrap();
    if let Some(at) = toml.find("\n[store]\n") {
        toml.truncate(at);
    }
    toml.push_str(&format!(
        "\n[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n"
    ));
    std::fs::write(net.hub_toml(), toml).unwrap();
}

/// A hub on PostgreSQL whose database is brought back to an earlier time with PostgreSQL's
/// own tools (here a dump taken at T, restored into a new database): `poros-hub resync --since
/// T` makes the agents give back what the hub accepted after T, as after `poros-hub restore`.
#[test]
fn a_postgres_hub_brought_back_to_an_earlier_time_gets_back_what_came_after() {
    let url = poros_harness::fresh_database("resync").unwrap_or_else(|e| panic!("{e}"));
    let mut net = Net::new();
    use_postgres(&net, &url);
    net.start_hub();
    for c in [G1, H1] {
        net.add_agent(c);
    }
    for c in [G1, H1] {
        net.start_agent(c);
    }
    let mut sent = Sent::new();
    let mut before = Vec::new();
    for i in 0..5 {
        let body = pseudo_random(300 + i, i as u64 + 9000);
        before.push(send_accepted(&net, G1, H1, &body, &mut sent));
    }
    for id in &before {
        net.wait_state(G1, id, "delivered");
    }

    // T: the database as it is now, in a dump (the hub keeps running).
    let since = time::OffsetDateTime::now_utc();
    let dump = net.root.join("hub.dump");
    let d = dump.display().to_string();
    pg_tool("pg_dump", &["-Fc", "-f", &d, &url]);

    // After T: documents delivered (H1 online) and documents waiting (H1 offline).
    let mut after = Vec::new();
    for i in 0..3 {
        let body = pseudo_random(400 + i, i as u64 + 9100);
        let id = send_accepted(&net, G1, H1, &body, &mut sent);
        net.wait_state(G1, &id, "delivered");
        after.push(id);
    }
    net.stop_agent(H1);
    for i in 0..3 {
        let body = pseudo_random(500 + i, i as u64 + 9200);
        after.push(send_accepted(&net, G1, H1, &body, &mut sent));
    }

    // The database is lost; the dump is restored into a new one.
    net.kill_hub();
    net.stop_agent(G1);
    let restored =
        poros_harness::fresh_database("resync_restored").unwrap_or_else(|e| panic!("{e}"));
    pg_tool(
        "pg_restore",
        &[
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "-d",
            &restored,
            &d,
        ],
    );
    use_postgres(&net, &restored);
    let hd = net.hub_dir.display().to_string();
    let at = since
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let out = net.hub_cli(&["resync", "--dir", &hd, "--since", &at, "--json"]);
    assert!(
        out.status.success(),
        "resync: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mark: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(mark["backend"], "postgres", "{mark}");
    // A time in the future is refused.
    let out = net.hub_cli(&["resync", "--dir", &hd, "--since", "2999-01-01T00:00:00Z"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("future"));

    net.start_hub();
    for id in &before {
        assert!(hub_knows(&net, id), "{id} was in the dump");
    }
    assert!(
        after.iter().all(|id| !hub_knows(&net, id)),
        "documents accepted after T are not in the dump"
    );
    for c in [G1, H1] {
        net.start_agent(c);
    }
    check_all_delivered(&net, &sent);
    for id in &after {
        assert!(hub_knows(&net, id), "{id} came back from its sender");
    }
    let check = net.admin_get("/admin/v1/stats/check");
    assert_eq!(check["equal"], true, "statistics after recovery: {check}");
}
