//! Backup and restore of an agent, end to end with real processes: a backup taken while
//! documents flow both ways, the agent lost (kill -9, its directory gone) and restored from the
//! backup into a fresh directory; every document and receipt it had acknowledged before the
//! backup is back with an intact body, and the exchange goes on. Damaged archives and the
//! other kind's archives are refused leaving nothing; keys travel only when asked for.

mod common;

use common::{assert_ok, pseudo_random, s, sha256_hex, wait_until, Net, DEADLINE};
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// The agent backed up and restored.
const G1: &str = "000.00.00.G01";
/// Its correspondent.
const G2: &str = "000.00.00.G02";

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// What a command writes when its output is not a terminal: no progress bar (no carriage
/// return, no escape sequence, no bar).
fn assert_no_bar(out: &Output, what: &str) {
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text.contains('\r') && !text.contains('\x1b') && !text.contains("=>"),
            "{what} drew a progress display on its {name} when it is not a terminal: {text:?}"
        );
    }
}

fn json_of(out: &Output, what: &str) -> Value {
    assert_ok(out, what);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what} printed non-JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Whether the raw archive holds a member of this name (tar headers carry the names).
fn holds_member(archive: &[u8], name: &str) -> bool {
    archive.windows(name.len()).any(|w| w == name.as_bytes())
}

/// A restore that must fail, naming `why`, and leave no directory.
fn assert_refused(out: &Output, dir: &Path, why: &str, what: &str) {
    assert!(!out.status.success(), "{what} was accepted");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(why), "{what}: expected {why:?} in {err}");
    assert!(!dir.exists(), "{what} left {}", dir.display());
}

#[test]
fn an_agent_backed_up_while_documents_flow_comes_back_whole_elsewhere() {
    let mut net = Net::running(&[G1, G2]);
    let dir = net.agent_dir(G1);
    let d = s(&dir);

    // Acknowledged before the backup, both ways: small documents and large ones (body files).
    let mut sent_by_g1 = BTreeMap::new();
    let mut received_by_g1 = BTreeMap::new();
    for i in 0..4usize {
        let len = if i == 0 { 300 * 1024 } else { 300 + i };
        let out = pseudo_random(len, i as u64 + 1);
        let id = net.send(G1, &[G2], "Before the backup", &out);
        sent_by_g1.insert(id, sha256_hex(&out));
        let inn = pseudo_random(len + 7, i as u64 + 100);
        let id = net.send(G2, &[G1], "Before the backup", &inn);
        received_by_g1.insert(id, sha256_hex(&inn));
    }
    // One sent and fetched with the command line: no progress display when piped.
    let large = pseudo_random(2 * 1024 * 1024, 9);
    let id = net.send_cli(G2, &[G1], "Large, by the command line", &large);
    received_by_g1.insert(id.clone(), sha256_hex(&large));
    for id in sent_by_g1.keys() {
        net.wait_state(G1, id, "delivered");
    }
    for id in received_by_g1.keys() {
        net.wait_state(G2, id, "delivered");
    }
    let fetched = net.root.join("fetched.bin");
    let out = net.agent_cli(&["fetch", "--dir", &d, &id, "--out", &s(&fetched)]);
    assert_ok(&out, "poros-agent fetch");
    assert_no_bar(&out, "poros-agent fetch");
    assert_eq!(
        sha256_hex(&std::fs::read(&fetched).unwrap()),
        sha256_hex(&large)
    );

    // The backups, taken while both agencies keep sending to each other.
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = [(G1, G2), (G2, G1)]
        .into_iter()
        .enumerate()
        .map(|(n, (from, to))| {
            let (agent, stop) = (net.handle(from), stop.clone());
            thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let body = pseudo_random(400 + i, (n * 10_000 + i) as u64 + 500);
                    let _ = agent.try_send(&[to], "During the backup", &body);
                    i += 1;
                    // Paces the load; nothing waits on it.
                    thread::sleep(Duration::from_millis(20));
                }
                i
            })
        })
        .collect();
    let plain = net.root.join("agent-backup.tar");
    let out = net.agent_cli(&["backup", "--dir", &d, "--to", &s(&plain), "--json"]);
    assert_no_bar(&out, "poros-agent backup --json");
    let report = json_of(&out, "poros-agent backup");
    assert_eq!(report["online"], true, "{report}");
    assert_eq!(report["contains_private_keys"], false, "{report}");
    assert!(report["body_files"].as_u64().unwrap() >= 3, "{report}");
    let keyed = net.root.join("agent-backup-keys.tar");
    let out = net.agent_cli(&["backup", "--dir", &d, "--to", &s(&keyed), "--include-keys"]);
    assert_ok(&out, "poros-agent backup --include-keys");
    assert_no_bar(&out, "poros-agent backup");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("WARNING") && text.contains("keys/sign.key"),
        "the command says the file holds keys: {text}"
    );
    stop.store(true, Ordering::SeqCst);
    for h in load {
        assert!(h.join().expect("sender thread") > 0, "documents flowed");
    }
    for f in [&plain, &keyed] {
        assert_eq!(mode(f), 0o600, "a backup holds every document");
        assert!(!Path::new(&format!("{}.partial", f.display())).exists());
    }
    let plain_bytes = std::fs::read(&plain).unwrap();
    let keyed_bytes = std::fs::read(&keyed).unwrap();
    for key in ["keys/tls.key", "keys/sign.key"] {
        assert!(
            !holds_member(&plain_bytes, key),
            "{key} without --include-keys"
        );
        assert!(holds_member(&keyed_bytes, key), "{key} with --include-keys");
    }
    assert!(holds_member(&plain_bytes, "certs/tls.crt"));
    // Acknowledged after the backup: not in it (docs/backup.md says what comes back).
    let after = net.send(G2, &[G1], "After the backup", b"after the backup");
    net.wait_state(G2, &after, "delivered");

    // A hub backup, for the refusals below.
    let hub_file = net.root.join("hub-backup.tar");
    let out = net.hub_cli(&["backup", "--dir", &s(&net.hub_dir), "--to", &s(&hub_file)]);
    assert_ok(&out, "poros-hub backup");

    // The agent and its directory are lost.
    net.kill_agent(G1);
    std::fs::remove_dir_all(&dir).unwrap();

    let restore = |from: &Path, into: &Path| {
        net.agent_cli(&["restore", "--from", &s(from), "--dir", &s(into), "--json"])
    };
    // Damaged or foreign archives are refused before anything is written.
    let truncated = net.root.join("truncated.tar");
    std::fs::write(&truncated, &keyed_bytes[..keyed_bytes.len() * 2 / 3]).unwrap();
    assert_refused(
        &restore(&truncated, &dir),
        &dir,
        "truncated.tar",
        "a truncated backup",
    );
    let mut flipped = keyed_bytes.clone();
    // A byte of the store snapshot, the second member (after one 512-byte header block of the
    // first member, its data block and the second member's header).
    flipped[3 * 512 + 4096] ^= 0x55;
    let corrupted = net.root.join("corrupted.tar");
    std::fs::write(&corrupted, &flipped).unwrap();
    assert_refused(
        &restore(&corrupted, &dir),
        &dir,
        "does not verify",
        "a corrupted backup",
    );
    assert_refused(
        &restore(&hub_file, &dir),
        &dir,
        "backup of kind \"hub\"",
        "a hub backup",
    );
    let hub_into = net.root.join("hub-from-agent");
    let out = net.hub_cli(&["restore", "--from", &s(&plain), "--dir", &s(&hub_into)]);
    assert_refused(
        &out,
        &hub_into,
        "backup of kind \"agent\"",
        "an agent backup given to the hub",
    );
    // A non-empty target is refused and left as it was.
    let busy = net.root.join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("precious"), b"x").unwrap();
    let out = restore(&keyed, &busy);
    assert!(!out.status.success(), "restored into a non-empty directory");
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);

    // Without keys: restored, and the command names the keys to bring back.
    let keyless = net.root.join("keyless");
    let r = json_of(&restore(&plain, &keyless), "poros-agent restore");
    assert_eq!(
        r["missing_private_files"],
        serde_json::json!(["keys/tls.key", "keys/sign.key"]),
        "{r}"
    );
    assert!(!keyless.join("keys/tls.key").exists());

    // With keys, into the agent's fresh directory: the agent starts on it.
    let r = json_of(&restore(&keyed, &dir), "poros-agent restore");
    assert_eq!(r["missing_private_files"], serde_json::json!([]), "{r}");
    assert!(r["documents"].as_u64().unwrap() >= 9, "{r}");
    for key in ["keys/tls.key", "keys/sign.key"] {
        assert_eq!(
            mode(&dir.join(key)),
            0o600,
            "{key} restored readable by others"
        );
    }
    net.start_agent(G1);

    // Everything acknowledged before the backup is back, bodies re-hashed, receipts verified.
    let receipts = net.api_list(G1, "/v1/receipts");
    for (id, sha) in &sent_by_g1 {
        let st = net.status(G1, id);
        assert_eq!(st["body_sha256"], sha.as_str(), "{st}");
        let r = receipts
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id.as_str())
            .unwrap_or_else(|| panic!("the receipt of {id} is not back: {receipts}"));
        assert_eq!(r["outcome"], "delivered");
        assert_eq!(r["signature_verified"], true, "{r}");
        assert_eq!(r["body_sha256"], sha.as_str());
    }
    for (id, sha) in &received_by_g1 {
        assert_eq!(&net.fetch_sha256(G1, id).unwrap(), sha, "body of {id}");
    }
    let inbox = net.api_list(G1, "/v1/inbox");
    assert!(
        !inbox
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["id"] == after.as_str()),
        "a document acknowledged after the backup is not in it"
    );

    // The exchange goes on, both ways.
    let next = net.send(G2, &[G1], "After the restore", b"after the restore");
    net.wait_state(G2, &next, "delivered");
    assert_eq!(
        net.fetch_sha256(G1, &next).unwrap(),
        sha256_hex(b"after the restore")
    );
    let back = net.send(G1, &[G2], "After the restore", b"from the restored agent");
    net.wait_state(G1, &back, "delivered");
    wait_until("the restored agent connected", DEADLINE, || {
        net.api(G1, "/v1/health")["connected"] == true
    });
}
