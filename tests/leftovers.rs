//! Nothing is left behind: a refused send stages no body, and body files that no record
//! references are removed once older than the grace period, at start and periodically.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Larger than the inline limit, so an accepted body becomes a file.
const LARGE: usize = 100 * 1024;

fn age(path: &Path, by: Duration) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.set_modified(SystemTime::now() - by).expect("set mtime");
}

/// A file under a body store that no record references, named like a real body.
fn plant_orphan(owner_dir: &Path, seed: u64) -> PathBuf {
    let digest = sha256_hex(&pseudo_random(64, seed));
    let dir = owner_dir.join("data/bodies").join(&digest[..2]);
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(&digest);
    std::fs::write(&p, pseudo_random(LARGE, seed)).unwrap();
    p
}

#[test]
fn refused_sends_stage_no_body_file() {
    let mut net = Net::new();
    net.start_hub();
    net.add_agent(A);
    net.add_agent(B);
    net.start_agent(A);
    let body = pseudo_random(LARGE + 1, 5);
    for (to, why) in [
        (vec![B, B], "listed twice"),
        (vec![A], "cannot be a recipient"),
        (vec![], "at least one recipient"),
    ] {
        let e = net
            .try_send(A, &to, "bad recipients", &body)
            .expect_err("a bad recipient list must be refused");
        assert!(e.starts_with("400"), "{to:?}: {e}");
        assert!(e.contains(why), "{to:?}: {e}");
    }
    let e = net
        .try_send(A, &[B], " ", &body)
        .expect_err("an empty subject must be refused");
    assert!(e.contains("subject"), "{e}");
    assert_eq!(
        net.agent_body_files(A),
        Vec::<PathBuf>::new(),
        "refused sends left body files behind"
    );
    // The same body with a good recipient list is stored as a file and sent.
    let id = net.send(A, &[B], "good", &body);
    assert_eq!(net.agent_body_files(A).len(), 1);
    net.start_agent(B);
    net.wait_state(A, &id, "delivered");
}

#[test]
fn unreferenced_bodies_are_swept_and_referenced_ones_kept() {
    let mut net = Net::new();
    net.start_hub();
    net.add_agent(A);
    net.add_agent(B);
    net.start_agent(A);
    net.start_agent(B);
    let body = pseudo_random(LARGE, 9);
    let id = net.send(A, &[B], "kept", &body);
    net.wait_state(A, &id, "delivered");
    let sent = net.agent_body_files(A);
    let received = net.agent_body_files(B);
    let at_hub = net.hub_body_files();
    assert_eq!((sent.len(), received.len(), at_hub.len()), (1, 1, 1));
    net.stop_agent(A);
    net.stop_agent(B);
    net.stop_hub();

    // Referenced files far older than the grace period, an old orphan and a fresh one.
    let day = Duration::from_secs(24 * 3600);
    age(&sent[0], day);
    age(&received[0], day);
    let old_orphan = plant_orphan(&net.agent_dir(A), 1);
    age(&old_orphan, day);
    let fresh_orphan = plant_orphan(&net.agent_dir(A), 2);
    // The hub keeps the body until retention; an orphan beside it.
    age(&at_hub[0], day);
    let hub_orphan = plant_orphan(&net.hub_dir, 3);
    age(&hub_orphan, day);

    net.start_hub();
    net.start_agent(A);
    net.start_agent(B);
    wait_until("the old orphans to be removed at start", DEADLINE, || {
        !old_orphan.exists() && !hub_orphan.exists()
    });
    assert!(at_hub[0].exists(), "a referenced hub body file was removed");
    assert!(
        fresh_orphan.exists(),
        "an orphan younger than the grace went"
    );
    assert!(sent[0].exists() && received[0].exists());
    assert!(net.fetch(B, &id) == body);

    // Periodically: with a short grace, the fresh orphan goes while the agent runs.
    net.stop_agent(A);
    let toml = net.agent_dir(A).join("agent.toml");
    set_toml_key(&toml, "orphan_grace_secs", "2");
    set_toml_key(&toml, "body_sweep_interval_secs", "1");
    net.start_agent(A);
    wait_until(
        "the young orphan to be removed once older than the grace",
        DEADLINE,
        || !fresh_orphan.exists(),
    );
    assert!(sent[0].exists(), "a referenced body file was removed");
    // Sending again still works from the kept file (the hub has it; the agent re-reads its own).
    let again = net.send(A, &[B], "again", &body);
    net.wait_state(A, &again, "delivered");
    assert!(sent[0].exists());
}
