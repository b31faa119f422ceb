//! Alerts with the tools operators use (`config/monitoring/`), checked by those tools:
//! - every alerting rule in `poros-rules.yml` is driven by series written here through
//!   `promtool test rules`, and must be seen firing (with the labels and rendered annotations
//!   an operator will read) and then resolved; `promtool check rules` passes on the file; each
//!   alert has a severity and a runbook section in `docs/alerts.md`;
//! - the example Alertmanager configuration passes `amtool check-config`;
//! - the Grafana dashboard matches `grafana-dashboard.schema.json` and its queries parse;
//! - a real hub with agents, after a few exchanges, serves on `/metrics` every metric the rules
//!   and the dashboard name, in a form `promtool check metrics` accepts.
//!
//! promtool and amtool come from Debian's `prometheus` and `prometheus-alertmanager` packages
//! (scripts/test.sh installs them); without them these tests fail saying so.

mod common;
use common::raw::*;
use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn monitoring(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config/monitoring")
        .join(file)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Run one of the Prometheus tools; a missing tool fails the test naming the package.
fn tool(exe: &str, package: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot run {exe} ({e}): install the Debian package {package} (scripts/test.sh does)"
        )
    });
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn promtool(args: &[&str], stdin: Option<&str>) -> Output {
    tool("promtool", "prometheus", args, stdin)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The shipped rules file, parsed.
fn rules_yaml() -> yaml_rust2::Yaml {
    let p = monitoring("poros-rules.yml");
    let mut docs = yaml_rust2::YamlLoader::load_from_str(&read(&p))
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert_eq!(docs.len(), 1, "{} holds one YAML document", p.display());
    docs.remove(0)
}

/// Every alerting rule: name → (labels, annotations).
type Rule = (BTreeMap<String, String>, BTreeMap<String, String>);

fn alerting_rules() -> BTreeMap<String, Rule> {
    let doc = rules_yaml();
    let strings = |y: &yaml_rust2::Yaml| -> BTreeMap<String, String> {
        y.as_hash()
            .map(|h| {
                h.iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().unwrap().to_string(),
                            v.as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = BTreeMap::new();
    for group in doc["groups"].as_vec().expect("groups") {
        for rule in group["rules"].as_vec().expect("rules") {
            if let Some(name) = rule["alert"].as_str() {
                let dup = out.insert(
                    name.to_string(),
                    (strings(&rule["labels"]), strings(&rule["annotations"])),
                );
                assert!(dup.is_none(), "alert {name} defined twice");
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The rules under promtool.

const JOB: &str = "job=\"poros-hub\"";
const HUB1: &str = "instance=\"hub1:7080\"";
const HUB2: &str = "instance=\"hub2:7080\"";
const G02: &str = "agency=\"000.00.00.G02\"";
const G03: &str = "agency=\"000.00.00.G03\"";

/// One alert's unit test: input series (promtool's expanding notation, one sample per
/// `interval`), a time at which it must be firing with exactly these labels and annotations,
/// and a later time at which it must be gone.
struct Case {
    alert: &'static str,
    series: Vec<(String, &'static str)>,
    firing_at: &'static str,
    labels: &'static [(&'static str, &'static str)],
    summary: &'static str,
    description: &'static str,
    resolved_at: &'static str,
}

/// A series name with the hub's job and the given labels.
fn s(name: &str, labels: &[&str]) -> String {
    let mut all = vec![JOB];
    all.extend_from_slice(labels);
    format!("{name}{{{}}}", all.join(","))
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            alert: "PorosHubDown",
            // Another job's target being down is not the hub's business.
            series: vec![
                (s("up", &[HUB1]), "1 1 0x10 1x10"),
                ("up{job=\"node\",instance=\"hub1:9100\"}".into(), "0x22"),
            ],
            firing_at: "6m",
            labels: &[("job", "poros-hub"), ("instance", "hub1:7080"), ("severity", "critical")],
            summary: "Poros hub instance hub1:7080 is down",
            description: "Prometheus has not been able to scrape the hub at hub1:7080 for 2 minutes. Agencies connected to it cannot exchange documents until it is back or they reconnect to another instance.",
            resolved_at: "20m",
        },
        Case {
            alert: "PorosHubAbsent",
            series: vec![(s("up", &[HUB1]), "_x10 1x10")],
            firing_at: "8m",
            labels: &[("job", "poros-hub"), ("severity", "critical")],
            summary: "No Poros hub instance is being scraped",
            description: "Prometheus has no target for job poros-hub: the hub is not monitored at all (scrape configuration or service discovery lost it).",
            resolved_at: "15m",
        },
        Case {
            alert: "PorosStoreNotWritable",
            series: vec![
                (s("poros_store_writable", &[HUB1]), "1 0x5 1x10"),
                (s("poros_store_writable", &[HUB2]), "1x16"),
            ],
            firing_at: "4m",
            labels: &[("job", "poros-hub"), ("instance", "hub1:7080"), ("severity", "critical")],
            summary: "The hub store at hub1:7080 refuses writes",
            description: "The store cannot write (disk full, failing disk or lost database): the hub refuses new documents and answers /readyz with 503 and the cause.",
            resolved_at: "12m",
        },
        Case {
            alert: "PorosStoreDiskAlmostFull",
            // 20% free, then 5% for 20 minutes, then 20% again.
            series: vec![
                (
                    s("poros_store_filesystem_avail_bytes", &[HUB1, "path=\"/var/lib/poros-hub/data\""]),
                    "20000000000x5 5000000000x20 20000000000x10",
                ),
                (
                    s("poros_store_filesystem_size_bytes", &[HUB1, "path=\"/var/lib/poros-hub/data\""]),
                    "100000000000x40",
                ),
            ],
            firing_at: "20m",
            labels: &[
                ("job", "poros-hub"),
                ("instance", "hub1:7080"),
                ("path", "/var/lib/poros-hub/data"),
                ("severity", "critical"),
            ],
            summary: "The hub store's disk at hub1:7080 is almost full",
            description: "Only 5% of the filesystem holding /var/lib/poros-hub/data is free. When it is full the hub stops accepting documents.",
            resolved_at: "35m",
        },
        Case {
            alert: "PorosNodeCertificateExpiring",
            // promtool's clock starts at the Unix epoch: G02's certificate expires on day 6
            // until it is renewed (to day 96) at minute 91; G03's is far away. Both instances
            // report G02, and it must alert once.
            series: vec![
                (
                    s("poros_node_certificate_expiry_timestamp_seconds", &[HUB1, G02, "kind=\"tls\""]),
                    "518400x90 8294400x30",
                ),
                (
                    s("poros_node_certificate_expiry_timestamp_seconds", &[HUB2, G02, "kind=\"tls\""]),
                    "518400x90 8294400x30",
                ),
                (
                    s("poros_node_certificate_expiry_timestamp_seconds", &[HUB1, G03, "kind=\"tls\""]),
                    "8294400x120",
                ),
            ],
            firing_at: "70m",
            labels: &[
                ("job", "poros-hub"),
                ("agency", "000.00.00.G02"),
                ("kind", "tls"),
                ("severity", "warning"),
            ],
            summary: "The tls certificate of agency 000.00.00.G02 expires within 7 days",
            description: "The newest tls certificate of 000.00.00.G02 expires in 5d 22h 50m 0s and its agent has not renewed it. Once it expires the agency cannot connect.",
            resolved_at: "100m",
        },
        Case {
            alert: "PorosAgencyNotSeen",
            // Last seen at the epoch; it reconnects at 28 h through hub1 while hub2 still
            // holds the old time: the newest wins.
            series: vec![
                (s("poros_agency_last_seen_timestamp_seconds", &[HUB1, G02]), "0x1680 100800x120"),
                (s("poros_agency_last_seen_timestamp_seconds", &[HUB2, G02]), "0x1800"),
            ],
            firing_at: "26h",
            labels: &[("job", "poros-hub"), ("agency", "000.00.00.G02"), ("severity", "warning")],
            summary: "Agency 000.00.00.G02 has not connected for over 24 hours",
            description: "The agent of 000.00.00.G02 was last connected 1d 2h 0m 0s ago. Documents to it wait in the queue and will expire if it stays away.",
            resolved_at: "30h",
        },
        Case {
            alert: "PorosDeliveriesOverdue",
            series: vec![
                (s("poros_agency_deliveries_overdue", &[HUB1, G02]), "0 3x90 0x10"),
                (s("poros_agency_deliveries_overdue", &[HUB2, G02]), "0 3x90 0x10"),
                (s("poros_agency_deliveries_overdue", &[HUB1, G03]), "0x100"),
            ],
            firing_at: "70m",
            labels: &[("job", "poros-hub"), ("agency", "000.00.00.G02"), ("severity", "warning")],
            summary: "Deliveries to agency 000.00.00.G02 are overdue",
            description: "3 deliveries to 000.00.00.G02 are still pending past the on-time target ([monitoring] on_time_secs) and have been for an hour.",
            resolved_at: "100m",
        },
        Case {
            alert: "PorosQueueGrowing",
            // +5 a minute for two hours, then flat; both instances read the same store.
            series: vec![
                (s("poros_queue_depth", &[HUB1]), "0+5x120 600x80"),
                (s("poros_queue_depth", &[HUB2]), "0+5x120 600x80"),
            ],
            firing_at: "80m",
            labels: &[("job", "poros-hub"), ("severity", "warning")],
            summary: "The hub's delivery queue keeps growing",
            description: "Pending deliveries grow by about 300 an hour and have for 30 minutes: recipients are not fetching as fast as documents arrive.",
            resolved_at: "190m",
        },
        Case {
            alert: "PorosRefusalSpike",
            // 10 a minute at each of two instances (1/6 s each, 1/3 s together); another
            // reason at 1 a minute stays quiet.
            series: vec![
                (s("poros_refusals_total", &[HUB1, "reason=\"unknown_agency\""]), "0+10x60 600x40"),
                (s("poros_refusals_total", &[HUB2, "reason=\"unknown_agency\""]), "0+10x60 600x40"),
                (s("poros_refusals_total", &[HUB1, "reason=\"malformed\""]), "0+1x100"),
            ],
            firing_at: "30m",
            labels: &[("job", "poros-hub"), ("reason", "unknown_agency"), ("severity", "warning")],
            summary: "The hub refuses many requests with reason unknown_agency",
            description: "333.3m refusals a second with reason unknown_agency over the last 10 minutes, for 10 minutes.",
            resolved_at: "90m",
        },
        Case {
            alert: "PorosHandshakeFailureSpike",
            series: vec![
                (s("poros_handshake_failures_total", &[HUB1, "reason=\"unknown_issuer\""]), "0+15x60 900x40"),
                (s("poros_handshake_failures_total", &[HUB1, "reason=\"timeout\""]), "0+2x100"),
            ],
            firing_at: "30m",
            labels: &[("job", "poros-hub"), ("reason", "unknown_issuer"), ("severity", "warning")],
            summary: "Many TLS handshakes fail at the hub with reason unknown_issuer",
            description: "250m failed handshakes a second with reason unknown_issuer over the last 10 minutes, for 10 minutes.",
            resolved_at: "90m",
        },
        Case {
            alert: "PorosRejectionSpike",
            // too_large: 60 an hour at G02 (a durable counter both instances report: counted
            // once) and 30 at G03 make 90; signer_revoked at 6 an hour stays quiet.
            series: vec![
                (s("poros_agency_rejections_total", &[HUB1, G02, "reason=\"too_large\""]), "0+1x120 120x120"),
                (s("poros_agency_rejections_total", &[HUB2, G02, "reason=\"too_large\""]), "0+1x120 120x120"),
                (s("poros_agency_rejections_total", &[HUB1, G03, "reason=\"too_large\""]), "0+0.5x120 60x120"),
                (s("poros_agency_rejections_total", &[HUB1, G03, "reason=\"signer_revoked\""]), "0+0.1x240"),
            ],
            firing_at: "90m",
            labels: &[("job", "poros-hub"), ("reason", "too_large"), ("severity", "warning")],
            summary: "Recipients reject many documents with reason code too_large",
            description: "90 deliveries were rejected with reason code too_large in the last hour.",
            resolved_at: "200m",
        },
        Case {
            alert: "PorosElectronicExchangeBelowThreshold",
            series: vec![
                (s("poros_national_electronic_exchange_ratio", &[HUB1]), "0.95x10 0.5x400 0.95x50"),
                (s("poros_monitoring_alert_below_ratio", &[HUB1]), "0.9x500"),
            ],
            firing_at: "380m",
            labels: &[("job", "poros-hub"), ("severity", "warning")],
            summary: "The national electronic-exchange rate is below the configured threshold",
            description: "Year to date, 50% of documents were exchanged electronically, below [monitoring] alert_below_percent.",
            resolved_at: "420m",
        },
        Case {
            alert: "PorosAgencyElectronicExchangeBelowThreshold",
            // The threshold is the hub's configured one: G03 at 95% is above it.
            series: vec![
                (s("poros_agency_electronic_exchange_ratio", &[HUB1, G02]), "0.95x10 0.5x400 0.95x50"),
                (s("poros_agency_electronic_exchange_ratio", &[HUB1, G03]), "0.95x500"),
                (s("poros_monitoring_alert_below_ratio", &[HUB1]), "0.9x500"),
            ],
            firing_at: "380m",
            labels: &[("job", "poros-hub"), ("agency", "000.00.00.G02"), ("severity", "info")],
            summary: "Agency 000.00.00.G02 exchanges too much on paper",
            description: "Year to date, 50% of the documents of 000.00.00.G02 were exchanged electronically, below [monitoring] alert_below_percent.",
            resolved_at: "420m",
        },
    ]
}

/// The runbook address of an alert: its section of docs/alerts.md.
fn runbook(alert: &str) -> String {
    format!("docs/alerts.md#{}", alert.to_lowercase())
}

/// A `promtool test rules` file (JSON is YAML) for `cases` against the shipped rules.
fn unit_tests(cases: &[Case]) -> Value {
    let tests: Vec<Value> = cases
        .iter()
        .map(|c| {
            let labels: BTreeMap<_, _> = c.labels.iter().copied().collect();
            json!({
                "name": c.alert,
                "interval": "1m",
                "input_series": c.series.iter()
                    .map(|(series, values)| json!({"series": series, "values": values}))
                    .collect::<Vec<_>>(),
                "alert_rule_test": [
                    {"eval_time": c.firing_at, "alertname": c.alert, "exp_alerts": [{
                        "exp_labels": labels,
                        "exp_annotations": {
                            "summary": c.summary,
                            "description": c.description,
                            "runbook_url": runbook(c.alert),
                        },
                    }]},
                    {"eval_time": c.resolved_at, "alertname": c.alert, "exp_alerts": []},
                ],
            })
        })
        .collect();
    json!({
        "rule_files": [monitoring("poros-rules.yml")],
        "evaluation_interval": "1m",
        "tests": tests,
    })
}

fn run_unit_tests(dir: &Path, name: &str, tests: &Value) -> Output {
    let file = dir.join(name);
    std::fs::write(&file, serde_json::to_string_pretty(tests).unwrap()).unwrap();
    promtool(&["test", "rules", file.to_str().unwrap()], None)
}

#[test]
fn shipped_rules_pass_promtool_check() {
    let p = monitoring("poros-rules.yml");
    let out = promtool(&["check", "rules", p.to_str().unwrap()], None);
    assert!(
        out.status.success(),
        "promtool check rules:\n{}",
        text(&out)
    );
}

#[test]
fn every_alert_fires_and_resolves_under_promtool() {
    let rules = alerting_rules();
    let all = cases();
    let tested: BTreeSet<_> = all.iter().map(|c| c.alert.to_string()).collect();
    let shipped: BTreeSet<_> = rules.keys().cloned().collect();
    assert_eq!(
        shipped, tested,
        "every alert in poros-rules.yml needs a case here, and every case an alert"
    );
    // The list, by name: none may disappear from the file unnoticed.
    for a in [
        "PorosNodeCertificateExpiring",
        "PorosAgencyNotSeen",
        "PorosDeliveriesOverdue",
        "PorosQueueGrowing",
        "PorosRefusalSpike",
        "PorosHandshakeFailureSpike",
        "PorosRejectionSpike",
        "PorosStoreDiskAlmostFull",
        "PorosElectronicExchangeBelowThreshold",
        "PorosHubDown",
        "PorosHubAbsent",
    ] {
        assert!(shipped.contains(a), "{a} is missing from poros-rules.yml");
    }
    // What an operator needs on every alert, and a runbook section for each.
    let docs = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/alerts.md"));
    for (name, (labels, annotations)) in &rules {
        let sev = labels.get("severity").map(String::as_str);
        assert!(
            matches!(sev, Some("critical" | "warning" | "info")),
            "{name}: severity {sev:?} is not critical, warning or info"
        );
        for a in ["summary", "description", "runbook_url"] {
            assert!(
                annotations.get(a).is_some_and(|v| !v.is_empty()),
                "{name} has no {a} annotation"
            );
        }
        assert_eq!(annotations["runbook_url"], runbook(name), "{name}");
        assert!(
            docs.lines().any(|l| l == format!("## {name}")),
            "docs/alerts.md has no section \"## {name}\""
        );
        let c = all.iter().find(|c| c.alert == name).unwrap();
        assert_eq!(
            c.labels
                .iter()
                .find(|(k, _)| *k == "severity")
                .map(|(_, v)| *v),
            sev,
            "{name}: the case expects another severity than the rule has"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let out = run_unit_tests(dir.path(), "poros-rules.test.yml", &unit_tests(&all));
    assert!(out.status.success(), "promtool test rules:\n{}", text(&out));
    assert!(text(&out).contains("SUCCESS"), "{}", text(&out));

    // The harness itself can fail: an alert expected before its `for:` has run out, or still
    // firing after its cause went, must be reported by promtool.
    let mut early = cases();
    early.retain(|c| c.alert == "PorosHubDown");
    early[0].firing_at = "3m";
    let out = run_unit_tests(dir.path(), "early.test.yml", &unit_tests(&early));
    assert!(
        !out.status.success(),
        "a premature expectation passed:\n{}",
        text(&out)
    );
    let mut stuck = cases();
    stuck.retain(|c| c.alert == "PorosQueueGrowing");
    stuck[0].resolved_at = "130m";
    let out = run_unit_tests(dir.path(), "stuck.test.yml", &unit_tests(&stuck));
    assert!(
        !out.status.success(),
        "an alert still firing passed as resolved:\n{}",
        text(&out)
    );
}

// ---------------------------------------------------------------------------------------------
// Alertmanager and Grafana.

#[test]
fn alertmanager_example_passes_amtool() {
    let p = monitoring("alertmanager.yml");
    let out = tool(
        "amtool",
        "prometheus-alertmanager",
        &["check-config", p.to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "amtool check-config:\n{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("SUCCESS") && t.contains("2 inhibit rules"),
        "{t}"
    );
    // A config that is wrong must fail the same check (the tool really checks).
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        read(&p).replace("receiver: ops-email\n", "receiver: nobody\n"),
    )
    .unwrap();
    let out = tool(
        "amtool",
        "prometheus-alertmanager",
        &["check-config", bad.to_str().unwrap()],
        None,
    );
    assert!(
        !out.status.success(),
        "an undefined receiver passed:\n{}",
        text(&out)
    );
}

fn dashboard() -> Value {
    let p = monitoring("grafana-dashboard.json");
    serde_json::from_str(&read(&p)).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every Prometheus query of the dashboard.
fn dashboard_exprs(d: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    out
}

#[test]
fn dashboard_matches_its_schema_and_its_queries_parse() {
    let schema: Value =
        serde_json::from_str(&read(&monitoring("grafana-dashboard.schema.json"))).unwrap();
    let validator = jsonschema::draft202012::new(&schema).expect("the schema is a valid schema");
    let d = dashboard();
    let errors: Vec<String> = validator
        .iter_errors(&d)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "dashboard against its schema:\n{}",
        errors.join("\n")
    );
    // The schema is not a formality: a panel without a grid position is refused.
    let mut broken = d.clone();
    broken["panels"][1]
        .as_object_mut()
        .unwrap()
        .remove("gridPos");
    assert!(
        !validator.is_valid(&broken),
        "a panel without gridPos passed the schema"
    );

    let titles: Vec<&str> = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for t in [
        "Electronic-exchange rate",
        "Delivery rate",
        "Documents accepted / s",
        "Queue",
        "Completion time quantiles (year to date)",
        "Handshake failures by reason",
        "Refusals by reason",
        "Per agency (year to date)",
    ] {
        assert!(titles.contains(&t), "no panel {t:?} in {titles:?}");
    }

    // Each query parses as PromQL: promtool checks them as recording rules.
    let exprs = dashboard_exprs(&d);
    let rules = json!({"groups": [{"name": "dashboard", "rules": exprs.iter().enumerate()
        .map(|(i, e)| json!({"record": format!("dashboard:query:{i}"), "expr": e}))
        .collect::<Vec<_>>()}]});
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("dashboard-queries.yml");
    std::fs::write(&f, rules.to_string()).unwrap();
    let out = promtool(&["check", "rules", f.to_str().unwrap()], None);
    assert!(
        out.status.success(),
        "a dashboard query does not parse:\n{}",
        text(&out)
    );
}

// ---------------------------------------------------------------------------------------------
// The metrics exist.

/// Every `poros_…` metric name in `text` (recording rules are `poros:…` and are not metrics).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let mut i = 0;
    while let Some(at) = text[i..].find("poros_") {
        let start = i + at;
        let mut end = start + "poros_".len();
        while end < b.len()
            && (b[end].is_ascii_lowercase() || b[end].is_ascii_digit() || b[end] == b'_')
        {
            end += 1;
        }
        if start == 0 || !ident(b[start - 1]) {
            out.insert(text[start..end].to_string());
        }
        i = end;
    }
    out
}

/// Sample name → value (labels included in the key) of a text exposition.
fn samples(scrape: &str) -> BTreeMap<String, f64> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (
                k.to_string(),
                v.parse::<f64>().unwrap_or_else(|e| panic!("{l:?}: {e}")),
            )
        })
        .collect()
}

fn sample_names(scrape: &str) -> BTreeSet<String> {
    samples(scrape)
        .keys()
        .map(|k| k.split('{').next().unwrap().to_string())
        .collect()
}

fn value(scrape: &str, key: &str) -> f64 {
    *samples(scrape)
        .get(key)
        .unwrap_or_else(|| panic!("no sample {key} on /metrics:\n{scrape}"))
}

/// Every metric name the rules and the dashboard use.
fn wanted_metrics() -> BTreeSet<String> {
    let mut wanted = metric_names(&read(&monitoring("poros-rules.yml")));
    let from_rules = wanted.len();
    for e in dashboard_exprs(&dashboard()) {
        wanted.extend(metric_names(&e));
    }
    assert!(from_rules >= 10 && wanted.len() > from_rules, "{wanted:?}");
    wanted
}

#[test]
fn every_metric_the_rules_and_dashboard_use_is_on_metrics_with_redb() {
    metrics_after_a_few_exchanges(Net::new());
}

#[test]
fn every_metric_the_rules_and_dashboard_use_is_on_metrics_with_postgres() {
    let tmp = tempfile::Builder::new()
        .prefix("poros-alerts-pg-")
        .tempdir()
        .unwrap();
    // Declared before the hub, dropped after it.
    let pg = ok(poros_harness::pg::PgServer::start(tmp.path(), "pg"));
    let mut net = Net::new();
    ok(net.deployment().share_store(&pg.url(), 1));
    metrics_after_a_few_exchanges(net);
}

/// Drive a hub (whatever its store) through a few exchanges, a refusal and a refused
/// handshake, then check its `/metrics` against what the rules and the dashboard use, the
/// values behind the alerts, and `promtool check metrics`.
fn metrics_after_a_few_exchanges(mut net: Net) {
    let wanted = wanted_metrics();
    for c in [A, B, C] {
        net.add_agent(c);
    }
    net.set_hub_config("on_time_secs", "1");
    set_toml_key(
        &net.agent_dir(B).join("agent.toml"),
        "max_body_bytes",
        "51200",
    );
    net.start_hub();
    // A refused request (a malformed frame, on G01's connection before its agent runs) and a
    // refused handshake (no client certificate).
    let addr = net.quic_addr();
    rt().block_on(async {
        let conn = connect(agent_tls(&net.agent_dir(A)), addr).await.unwrap();
        let _ = request(&conn, &[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).await;
        conn.close(0u32.into(), b"done");
        let mut anon = client_tls_without_certificate(&net);
        anon.alpn_protocols = vec![poros_protocol::ALPN.to_vec()];
        if let Ok(conn) = connect(anon, addr).await {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), conn.closed()).await;
        }
    });
    net.start_agent(A);
    net.start_agent(B);
    let delivered = net.send(A, &[B], "delivered", b"a small document");
    let rejected = net.send(A, &[B], "too large for G02", &pseudo_random(100 * 1024, 5));
    let waiting = net.send(B, &[C], "for an agency that never connects", b"waiting");
    net.wait_state(A, &delivered, "delivered");
    net.wait_state(A, &rejected, "rejected");
    net.wait_state(B, &waiting, "accepted");

    let mut m = String::new();
    wait_until(
        "the exchange, refusals and the overdue delivery on /metrics",
        DEADLINE,
        || {
            m = net.metrics();
            let v = samples(&m);
            let get = |k: &str| v.get(k).copied().unwrap_or(0.0);
            get(&format!(
                "poros_agency_deliveries_overdue{{agency=\"{C}\"}}"
            )) == 1.0
                && get(&format!(
                    "poros_agency_rejections_total{{agency=\"{B}\",reason=\"too_large\"}}"
                )) == 1.0
                && get("poros_refusals_total{reason=\"malformed\"}") >= 1.0
                && get("poros_handshake_failures_total{reason=\"no_certificate\"}") >= 1.0
        },
    );

    let present = sample_names(&m);
    let missing: Vec<_> = wanted.difference(&present).collect();
    assert!(
        missing.is_empty(),
        "named by the rules or the dashboard but not on /metrics: {missing:?}\n{m}"
    );

    // The values behind the alerts are the hub's own figures.
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as f64;
    let node = |code: &str| {
        net.node_entry(code)
            .unwrap_or_else(|| panic!("{code} not listed"))
    };
    for code in [A, B, C] {
        let expiry = value(
            &m,
            &format!(
                "poros_node_certificate_expiry_timestamp_seconds{{agency=\"{code}\",kind=\"tls\"}}"
            ),
        );
        assert_eq!(
            expiry,
            node(code)["tls_not_after"].as_f64().unwrap(),
            "{code}"
        );
        assert!(expiry > now_s, "{code}'s certificate already expired?");
        let seen = value(
            &m,
            &format!("poros_agency_last_seen_timestamp_seconds{{agency=\"{code}\"}}"),
        );
        assert!(
            seen <= now_s + 1.0 && seen > now_s - 600.0,
            "{code} last seen at {seen}, now {now_s}"
        );
    }
    assert_eq!(
        value(&m, &format!("poros_agency_connected{{agency=\"{A}\"}}")),
        1.0
    );
    assert_eq!(
        value(&m, &format!("poros_agency_connected{{agency=\"{C}\"}}")),
        0.0
    );
    assert_eq!(
        value(
            &m,
            &format!("poros_agency_deliveries_overdue{{agency=\"{B}\"}}")
        ),
        0.0
    );
    assert_eq!(value(&m, "poros_monitoring_alert_below_ratio"), 0.9);
    // Year to date: G01 sent 2, G02 sent 1 and received 1 with a receipt; nothing on paper.
    assert_eq!(value(&m, "poros_national_electronic_exchange_ratio"), 1.0);
    assert_eq!(
        value(
            &m,
            &format!("poros_agency_electronic_exchange_ratio{{agency=\"{B}\"}}")
        ),
        1.0
    );
    let avail = m
        .lines()
        .find(|l| l.starts_with("poros_store_filesystem_avail_bytes{path="))
        .unwrap_or_else(|| panic!("no filesystem figures:\n{m}"));
    let size = m
        .lines()
        .find(|l| l.starts_with("poros_store_filesystem_size_bytes{path="))
        .unwrap();
    let num = |l: &str| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap();
    assert!(
        num(avail) > 0.0 && num(avail) <= num(size),
        "{avail} / {size}"
    );
    assert!(
        avail.contains(&net.hub_dir.join("data").display().to_string()),
        "{avail} is not the store directory"
    );
    assert_eq!(
        value(
            &m,
            &format!(
                "poros_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        1.0
    );

    // The exposition as Prometheus's own linter reads it: every family described, counters
    // named `_total`, units in base units, families kept together.
    for l in m.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = l.split(' ').nth(2).unwrap();
        assert!(
            m.contains(&format!("# HELP {name} ")),
            "{name} has no HELP line"
        );
    }
    let out = promtool(&["check", "metrics"], Some(&m));
    assert!(
        out.status.success() && text(&out).trim().is_empty(),
        "promtool check metrics:\n{}",
        text(&out)
    );
}

/// A TLS client that trusts the hub but presents no certificate.
fn client_tls_without_certificate(net: &Net) -> rustls::ClientConfig {
    let ca = read(&net.hub_dir.join("pki/network-ca.crt"));
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(poros_certs::pem_to_der_certs(&ca).unwrap().remove(0).into())
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}
