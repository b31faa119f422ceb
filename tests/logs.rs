//! Log formats: with `POROS_LOG_FORMAT=json` (or `--log-format json`) every line a hub or an
//! agent writes on stderr is one JSON object, and the events about a document carry its ID and
//! the agencies' IDs as fields a log shipper can index; the default stays readable text.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};

/// The line the harness writes into a log file before each start of a process: not the
/// process's own output.
const HARNESS_MARK: &str = "===== start ";

/// Every line of `name`'s log parsed as a JSON object; any other line fails the test.
fn json_lines(net: &Net, name: &str) -> Vec<Value> {
    let text = net.log_text(name);
    let mut events = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with(HARNESS_MARK)) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{name}'s log has a line that is not JSON ({e}): {line}"));
        assert!(v.is_object(), "{name}'s log line is not an object: {line}");
        check_event_shape(name, &v, line);
        events.push(v);
    }
    assert!(!events.is_empty(), "{name} logged nothing");
    events
}

/// Timestamp in RFC 3339 UTC, a level and a message on every event.
fn check_event_shape(name: &str, v: &Value, line: &str) {
    let ts = v["timestamp"]
        .as_str()
        .unwrap_or_else(|| panic!("{name}: no timestamp: {line}"));
    let parsed = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{name}: timestamp {ts:?} is not RFC 3339 ({e}): {line}"));
    assert!(
        parsed.offset().is_utc() && ts.ends_with('Z'),
        "{name}: timestamp {ts:?} is not UTC"
    );
    let level = v["level"]
        .as_str()
        .unwrap_or_else(|| panic!("{name}: no level: {line}"));
    assert!(
        ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level),
        "{name}: level {level:?}: {line}"
    );
    assert!(v["message"].is_string(), "{name}: no message: {line}");
}

/// A field of an event: its own, or one of an enclosing span's (innermost first).
fn field<'a>(event: &'a Value, key: &str) -> Option<&'a str> {
    if let Some(s) = event.get(key).and_then(Value::as_str) {
        return Some(s);
    }
    event
        .get("spans")
        .and_then(Value::as_array)?
        .iter()
        .rev()
        .find_map(|span| span.get(key).and_then(Value::as_str))
}

/// The first event that carries every (field, value) in `want`; panics quoting the log.
fn find<'a>(events: &'a [Value], name: &str, want: &[(&str, &str)]) -> &'a Value {
    events
        .iter()
        .find(|e| want.iter().all(|(k, v)| field(e, k) == Some(v)))
        .unwrap_or_else(|| {
            let all: Vec<String> = events.iter().map(Value::to_string).collect();
            panic!(
                "no event in {name}'s log carries {want:?}; the log:\n{}",
                all.join("\n")
            )
        })
}

#[test]
fn json_logs_carry_document_and_agency_ids_on_every_line() {
    // The harness starts the hub and agents with this process's environment; no other test in
    // this file starts a process that inherits it (they set the variable on their command).
    std::env::set_var("POROS_LOG_FORMAT", "json");
    let net = Net::running(&[A, B]);
    let id = net.send(A, &[B], "json logs", b"a document whose log lines are JSON");
    net.wait_state(A, &id, "delivered");

    let hub = json_lines(&net, "hub");
    // Accepted from A: the document's own field, the sender's connection span's agency.
    let accepted = find(&hub, "hub", &[("doc", &id), ("agency", A)]);
    assert!(
        accepted["spans"].as_array().is_some_and(|s| !s.is_empty()),
        "span fields are missing from the event: {accepted}"
    );
    // Delivered to B: logged inside B's connection span.
    find(&hub, "hub", &[("doc", &id), ("agency", B)]);

    let sender = json_lines(&net, A);
    find(&sender, A, &[("doc", &id), ("agency", A)]);
    let recipient = json_lines(&net, B);
    let received = find(&recipient, B, &[("doc", &id), ("agency", B)]);
    assert_eq!(field(received, "sender"), Some(A), "{received}");
}

/// `poros-hub run` on a directory that is not a deployment, with this log format setting.
fn failing_run(dir: &Path, flag: Option<&str>, env: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(HUB_EXE);
    if let Some(f) = flag {
        cmd.args(["--log-format", f]);
    }
    cmd.args(["run", "--dir"]).arg(dir);
    match env {
        Some(v) => cmd.env("POROS_LOG_FORMAT", v),
        None => cmd.env_remove("POROS_LOG_FORMAT"),
    };
    cmd.stdin(Stdio::null())
        .output()
        .expect("starting poros-hub")
}

#[test]
fn the_final_error_line_follows_the_format() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-deployment");

    // Default: the readable line, which is not JSON.
    let out = failing_run(&missing, None, None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("poros-hub: error: "), "{err}");
    assert!(err.contains("not a Poros deployment"), "{err}");
    assert!(serde_json::from_str::<Value>(err.trim()).is_err(), "{err}");

    // JSON by option or by environment (the option wins): one object, level ERROR.
    for (flag, env) in [
        (Some("json"), None),
        (None, Some("json")),
        (Some("json"), Some("human")),
    ] {
        let out = failing_run(&missing, flag, env);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{flag:?}/{env:?}: {err}");
        let v: Value = serde_json::from_str(lines[0])
            .unwrap_or_else(|e| panic!("{flag:?}/{env:?}: not JSON ({e}): {err}"));
        check_event_shape("poros-hub", &v, lines[0]);
        assert_eq!(v["level"], "ERROR", "{v}");
        assert_eq!(v["program"], "poros-hub", "{v}");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("not a Poros deployment"),
            "{v}"
        );
    }
    // The human option overrides a JSON environment.
    let out = failing_run(&missing, Some("human"), Some("json"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("poros-hub: error: "), "{err}");

    // An unknown format is refused by name, before anything runs.
    let out = failing_run(&missing, None, Some("xml"));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("xml") && err.contains("human or json"),
        "{err}"
    );

    // The agent's error line follows the same setting.
    let out = Command::new(AGENT_EXE)
        .args(["--log-format", "json", "status", "--dir"])
        .arg(&missing)
        .arg("00000000-0000-0000-0000-000000000000")
        .env_remove("POROS_LOG_FORMAT")
        .stdin(Stdio::null())
        .output()
        .expect("starting poros-agent");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let v: Value = serde_json::from_str(err.trim())
        .unwrap_or_else(|e| panic!("poros-agent's error is not JSON ({e}): {err}"));
    assert_eq!(v["program"], "poros-agent", "{v}");
}

/// Kills the hub this test started by hand, however the test ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_running_hub_logs_readable_text_by_default() {
    let net = Net::new();
    let log = net.root.join("logs/hub-human.log");
    let file = std::fs::File::create(&log).unwrap();
    // Started by hand, not through the harness: the JSON test above sets the variable in
    // this process's environment, and this one must not inherit it.
    let _hub = Child(
        Command::new(HUB_EXE)
            .args(["run", "--dir"])
            .arg(&net.hub_dir)
            .env_remove("POROS_LOG_FORMAT")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("starting poros-hub"),
    );
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until("the hub to log that it listens", DEADLINE, || {
        read().contains("hub listening")
    });
    let text = read();
    let line = text
        .lines()
        .find(|l| l.contains("hub listening"))
        .expect("line seen above");
    assert!(
        serde_json::from_str::<Value>(line).is_err(),
        "JSON by default: {line}"
    );
    assert!(line.contains(" INFO "), "no level in {line:?}");
    assert!(line.contains("quic_addr="), "no fields in {line:?}");
}
