//! `poros-hub` command line: init a deployment, run the hub, administer nodes, show statistics,
//! and the one-command local demo.

use crate::deployment::{self, HubPaths, InitOptions};
use crate::hub::Hub;
use crate::server;
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use poros_config::HubConfig;
use poros_i18n::{t, Collation, Lang};
use poros_protocol::AgencyId;
use poros_transport::backup_text::Service;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// Poros hub: routes signed official documents between agency nodes.
#[derive(Parser, Debug)]
#[command(name = "poros-hub", version)]
pub struct Cli {
    /// Show the full cause chain of errors.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Log format on stderr: `human` (one readable line per event) or `json` (one JSON object
    /// per line, the document and agency IDs as fields, for log shippers). Also applies to
    /// the processes this one starts, and to the final error line.
    #[arg(long, global = true, env = poros_transport::LOG_FORMAT_ENV, default_value_t, value_name = "human|json")]
    pub log_format: poros_transport::LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a new deployment: CAs, hub identity, admin credential and a commented hub.toml.
    Init {
        /// Deployment directory (created; must not already hold a deployment). The default is
        /// the Debian package's (docs/install.md): run as root, init gives the files it creates
        /// there to the directory's owner, the poros-hub user.
        #[arg(long, default_value = deployment::PACKAGED_DIR)]
        dir: PathBuf,
        /// Write hub.toml here, and make DIR/hub.toml a symbolic link to it [default:
        /// /etc/poros-hub/hub.toml for the package's directory, else DIR/hub.toml].
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// QUIC listen address for agents.
        #[arg(long, default_value = "127.0.0.1:7443")]
        listen: SocketAddr,
        /// Operations HTTP listener.
        #[arg(long, default_value = "127.0.0.1:7080")]
        ops_listen: SocketAddr,
        /// Enrolment endpoint (QUIC, token-authorised); port 0 = any free port.
        #[arg(long, default_value = "127.0.0.1:0")]
        enroll_listen: SocketAddr,
        /// DNS name(s) in the hub certificate.
        #[arg(long = "dns", default_value = "localhost")]
        dns: Vec<String>,
        /// IP address(es) in the hub certificate.
        #[arg(long = "ip", default_value = "127.0.0.1")]
        ip: Vec<IpAddr>,
    },
    /// Run the hub.
    Run {
        /// Deployment directory (the default is the Debian package's; its systemd unit runs
        /// `poros-hub run --dir /var/lib/poros-hub` as the poros-hub user).
        #[arg(long, default_value = deployment::PACKAGED_DIR)]
        dir: PathBuf,
    },
    /// Administer nodes.
    Node {
        #[command(subcommand)]
        cmd: NodeCmd,
    },
    /// Show exchange counters.
    Stats {
        /// Deployment directory.
        #[arg(long)]
        dir: PathBuf,
        /// Print JSON.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print CSV.
        #[arg(long)]
        csv: bool,
        /// A month, YYYY-MM.
        #[arg(long, conflicts_with_all = ["from", "to", "year"])]
        month: Option<String>,
        /// A year, YYYY.
        #[arg(long, conflicts_with_all = ["from", "to"])]
        year: Option<String>,
        /// First day, YYYY-MM-DD (default: first of this month).
        #[arg(long)]
        from: Option<String>,
        /// Last day, YYYY-MM-DD (default: today).
        #[arg(long)]
        to: Option<String>,
        /// Only this agency.
        #[arg(long)]
        agency: Option<String>,
    },
    /// Read-only monitor credentials for the dashboard and statistics API.
    Monitor {
        #[command(subcommand)]
        cmd: MonitorCmd,
    },
    /// List recorded admin actions (who, what, when).
    Audit {
        /// Deployment directory.
        #[arg(long)]
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one document's deliveries as the hub sees them.
    Doc {
        /// Deployment directory.
        #[arg(long)]
        dir: PathBuf,
        /// Document ID.
        id: String,
        /// Print JSON (the output is JSON either way; accepted for symmetry with other verbs).
        #[arg(long)]
        json: bool,
    },
    /// Re-read every stored body on the running hub and check it against its SHA-256; damaged
    /// or missing bodies are asked again from their senders. Prints the report.
    Scrub {
        /// Deployment directory.
        #[arg(long)]
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Back up the deployment into a new file while the hub runs (or while it is stopped).
    ///
    /// The file holds a consistent snapshot of the store (every document, delivery, receipt,
    /// statement and counter as they stood at one instant; the exchange goes on meanwhile),
    /// the body files it references, hub.toml and the public certificates and CRLs. Private
    /// keys and the admin credential only with --include-keys (the file must then be kept
    /// like the keys themselves). The file is mode 0600 and appears only when complete and
    /// durable. What happens to documents accepted after the backup: docs/backup.md.
    Backup {
        /// Deployment directory.
        #[arg(long)]
        dir: PathBuf,
        /// The backup file to create (must not exist).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        /// Also carry the private keys (pki/*.key) and admin.token.
        #[arg(long)]
        include_keys: bool,
        /// Print the report as JSON (and no progress bar).
        #[arg(long)]
        json: bool,
    },
    /// Restore a backup into a new deployment directory, verified before it appears.
    ///
    /// Every member is checked against the backup's manifest, every body file against its
    /// SHA-256 and the store's rows against the snapshot's. The restored store remembers the
    /// backup's time: when the hub runs, each agent that connects submits again the
    /// documents the hub accepted since (docs/backup.md).
    Restore {
        /// The backup file.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The deployment directory to create (must not exist, or be empty).
        #[arg(long)]
        dir: PathBuf,
        /// Print the report as JSON (and no progress bar).
        #[arg(long)]
        json: bool,
    },
    /// After the hub's state was brought back to an earlier time by other means than
    /// `restore` (PostgreSQL recovered to a point in time or from a dump, a store file copied
    /// back): every agent, at its next connection, submits again the documents and statements
    /// the hub accepted since then. Run it with every hub stopped, then start them.
    Resync {
        /// Deployment directory (its hub.toml names the store).
        #[arg(long)]
        dir: PathBuf,
        /// The time the state was brought back to, RFC 3339 (e.g. 2026-12-02T09:30:00Z). When
        /// unsure, give an earlier time: it costs only documents submitted twice, which the
        /// hub takes once.
        #[arg(long, value_name = "TIME")]
        since: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The hub's store: move a deployment between backends.
    Store {
        #[command(subcommand)]
        cmd: StoreCmd,
    },
    /// Bring up a complete local exchange on loopback and print a report.
    Demo {
        /// Directory for the demo deployment (default: a new directory under ./poros-demo).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Documents each agency sends in the bulk round.
        #[arg(long, default_value_t = 5)]
        docs: usize,
    },
}

#[derive(Subcommand, Debug)]
enum StoreCmd {
    /// Copy a stopped redb deployment into an empty PostgreSQL database and verify the copy.
    ///
    /// Stop the hub first: the command refuses while the hub holds its store. It refuses a
    /// database that already holds Poros data, and one whose schema is newer than this hub.
    /// Everything is copied in one transaction (a failed run leaves the database empty):
    /// nodes, tokens, the audit log, revocations, documents and their deliveries in every
    /// state, relays, retention, statements and their queues, repairs, counters and
    /// statistics, and the large body files (streamed into the database in chunks). Then both
    /// stores are read again independently and compared: rows and a SHA-256 per table, body
    /// contents re-read from the database, statistics recounted. Exit status 0 only if
    /// everything is equal; otherwise what differs is named.
    ///
    /// Afterwards, switch the deployment to the database in hub.toml and start the hub:
    ///
    ///   [store]
    ///   backend = "postgres"
    ///   url = "postgres://poros@db1:5432,db2:5432/poros?target_session_attrs=read-write"
    ///   password_file = "secrets/db.password"   # if the server asks for one (mode 0600)
    ///
    /// The redb file and body files are left as they were (keep them until the hub runs on
    /// PostgreSQL). See docs/store-migrate.md.
    #[command(verbatim_doc_comment)]
    Migrate {
        /// Deployment directory (its hub stopped).
        #[arg(long)]
        dir: PathBuf,
        /// Target database: a libpq connection string (postgres://…), every host listed.
        #[arg(long, value_name = "URL")]
        to: String,
        /// File holding the database password (mode 0600), if the server asks for one;
        /// relative paths are under the deployment directory.
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// Copy nothing: only compare the deployment with the database (e.g. before the
        /// first start on PostgreSQL).
        #[arg(long)]
        verify_only: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum MonitorCmd {
    /// Issue a monitor credential; prints the token and the dashboard address.
    Add {
        /// Deployment directory.
        #[arg(long)]
        dir: PathBuf,
        /// A name for the credential (e.g. the monitoring office).
        name: String,
    },
    /// Revoke a monitor credential.
    Revoke {
        /// Deployment directory.
        #[arg(long)]
        dir: PathBuf,
        /// Its name.
        name: String,
    },
    /// List monitor credentials.
    List {
        /// Deployment directory.
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum NodeCmd {
    /// Register an agency. Without --requests: prints a one-time enrolment token for
    /// `poros-agent enroll`. With --requests/--out: the offline flow (air-gapped agencies).
    Add {
        /// Deployment directory.
        #[arg(long)]
        dir: PathBuf,
        /// Agency code (DDD.DD.DD.XDD); also accepted as `--agency CODE`.
        #[arg(value_name = "CODE", required_unless_present = "agency")]
        code: Option<String>,
        /// Agency code (DDD.DD.DD.XDD).
        #[arg(long, conflicts_with = "code")]
        agency: Option<String>,
        /// Agency name.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        details: Details,
        /// Directory holding the agent's tls.csr and sign.csr (offline flow).
        #[arg(long, requires = "out")]
        requests: Option<PathBuf>,
        /// Directory to write the certificates and trust roots into (offline flow).
        #[arg(long, requires = "requests")]
        out: Option<PathBuf>,
    },
    /// Change an agency's name or directory fields (parent, e-mail, address, phone); the
    /// change is recorded in the audit log.
    Edit {
        /// Deployment directory.
        #[arg(long)]
        dir: PathBuf,
        /// Agency code.
        agency: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        details: Details,
        /// Remove the parent.
        #[arg(long, conflicts_with = "parent")]
        no_parent: bool,
        /// Remove the e-mail address.
        #[arg(long, conflicts_with = "email")]
        no_email: bool,
        /// Remove the postal address.
        #[arg(long, conflicts_with = "address")]
        no_address: bool,
        /// Remove the phone number.
        #[arg(long, conflicts_with = "phone")]
        no_phone: bool,
    },
    /// List registered nodes (by agency code).
    List {
        /// Deployment directory.
        #[arg(long)]
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// List by agency name instead, in the alphabetical order of the locale's language
        /// (Vietnamese: "Đ" after "D", "Ư" after "U"); `--json` keeps the code order.
        #[arg(long)]
        by_name: bool,
    },
    /// Show one node with its admin history.
    Show {
        /// Deployment directory.
        #[arg(long)]
        dir: PathBuf,
        /// Agency code.
        agency: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Close the node's connection and refuse new ones; documents to it are held.
    Suspend {
        /// Deployment directory.
        #[arg(long)]
        dir: PathBuf,
        /// Agency code.
        agency: String,
    },
    /// Let a suspended node connect again; held documents flow.
    Resume {
        /// Deployment directory.
        #[arg(long)]
        dir: PathBuf,
        /// Agency code.
        agency: String,
    },
    /// Revoke the node's certificates (CRL), cut its connection and tell every agent.
    Revoke {
        /// Deployment directory.
        #[arg(long)]
        dir: PathBuf,
        /// Agency code.
        agency: String,
    },
}

/// An agency's directory fields, as `node add` and `node edit` take them.
#[derive(clap::Args, Debug)]
struct Details {
    /// Code of the agency it belongs to (registered, not itself, no cycle).
    #[arg(long, value_name = "CODE")]
    parent: Option<String>,
    /// E-mail address.
    #[arg(long)]
    email: Option<String>,
    /// Postal address (one line).
    #[arg(long)]
    address: Option<String>,
    /// Phone number(s).
    #[arg(long)]
    phone: Option<String>,
}

impl Details {
    /// The fields given, as the admin API's JSON object (`parent` checked here first).
    fn json(&self) -> Result<serde_json::Map<String, serde_json::Value>> {
        let mut m = serde_json::Map::new();
        if let Some(p) = &self.parent {
            AgencyId::parse(p).context("--parent")?;
        }
        for (k, v) in [
            ("parent", &self.parent),
            ("email", &self.email),
            ("address", &self.address),
            ("phone", &self.phone),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), v.clone().into());
            }
        }
        Ok(m)
    }
}

fn backup(dir: &Path, to: &Path, include_keys: bool, json: bool) -> Result<()> {
    let paths = HubPaths::new(dir);
    let estimate = poros_transport::progress::tree_bytes(&paths.at("data"));
    let bar = poros_transport::progress::Progress::bytes("backup", Some(estimate), json);
    let report = crate::backup::backup(&paths, to, include_keys, &|n| bar.set(n));
    bar.finish();
    let report = report?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
        return Ok(());
    }
    let lines = poros_transport::backup_text::backup_lines(lang(), Service::Hub, &report, &|ms| {
        fmt_ms(Some(ms))
    });
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

/// `resync`: mark the state as brought back to `since`.
fn resync(dir: &Path, since: &str, json: bool) -> Result<()> {
    let at = time::OffsetDateTime::parse(since, &time::format_description::well_known::Rfc3339)
        .with_context(|| {
            format!("--since {since:?} is not an RFC 3339 time (2026-12-02T09:30:00Z)")
        })?;
    let since_ms =
        u64::try_from(at.unix_timestamp_nanos() / 1_000_000).context("--since is before 1970")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (point, backend) = rt.block_on(crate::backup::recovery::mark(dir, since_ms))?;
    if json {
        let v = serde_json::json!({
            "epoch": point.epoch,
            "since_ms": since_ms,
            "asked_from_ms": point.since_ms(),
            "backend": backend,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{}",
        t!(
            lang(),
            "hub-resync-marked",
            dir = dir.display().to_string(),
            since = fmt_ms(Some(since_ms)),
            from = fmt_ms(Some(point.since_ms()))
        )
    );
    Ok(())
}

fn restore(from: &Path, dir: &Path, json: bool) -> Result<()> {
    let total = std::fs::metadata(from).map(|m| m.len()).ok();
    let bar = poros_transport::progress::Progress::bytes("restore", total, json);
    let report = crate::backup::restore::restore(from, dir, &|n| bar.set(n));
    bar.finish();
    let report = report?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
        return Ok(());
    }
    let lines =
        poros_transport::backup_text::restore_lines(lang(), Service::Hub, from, &report, &|ms| {
            fmt_ms(Some(ms))
        });
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

/// The language of this command line's human-readable output and messages: the locale's
/// (`POROS_LANG`, else `LC_ALL`, `LC_MESSAGES`, `LANG`), English unless it is Vietnamese.
/// `--json` and `--csv` output and log lines are English whatever it is.
pub fn lang() -> Lang {
    static LANG: std::sync::OnceLock<Lang> = std::sync::OnceLock::new();
    *LANG.get_or_init(Lang::from_env)
}

/// Entry point used by the `poros-hub` binary.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let verbose = cli.verbose;
    let log_format = cli.log_format;
    // Read back by init_tracing, and inherited by the processes the demo starts.
    log_format.export();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let text = if verbose {
                format!("{e:?}")
            } else {
                format!("{e:#}")
            };
            poros_transport::report_error(log_format, "poros-hub", &text);
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Init {
            dir,
            config,
            listen,
            ops_listen,
            enroll_listen,
            dns,
            ip,
        } => {
            let config = config.or_else(|| deployment::default_config(&dir));
            deployment::init_with_config(
                &dir,
                config.as_deref(),
                &InitOptions {
                    listen,
                    ops_listen,
                    dns_names: dns,
                    ips: ip,
                    enroll_listen,
                },
            )?;
            let (l, d) = (lang(), dir.display().to_string());
            println!("{}", t!(l, "hub-init-created", dir = &d));
            println!("  {}", t!(l, "hub-init-files"));
            if let Some(c) = &config {
                let file = c.display().to_string();
                println!("  {}", t!(l, "hub-init-config-linked", file = file));
            }
            println!("{}", t!(l, "hub-init-next", dir = &d));
            Ok(())
        }
        Cmd::Run { dir } => run_hub(&dir),
        Cmd::Node { cmd } => node_cmd(cmd),
        Cmd::Audit { dir, json } => {
            let c = AdminClient::require(&HubPaths::new(&dir))?;
            let v = c.get_all("/admin/v1/audit")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_audit(&v);
            }
            Ok(())
        }
        Cmd::Stats {
            dir,
            json,
            csv,
            month,
            year,
            from,
            to,
            agency,
        } => {
            let c = AdminClient::require(&HubPaths::new(&dir))?;
            let mut q = Vec::new();
            for (k, v) in [
                ("month", &month),
                ("year", &year),
                ("from", &from),
                ("to", &to),
                ("agency", &agency),
            ] {
                if let Some(v) = v {
                    q.push(format!("{k}={v}"));
                }
            }
            if csv {
                q.push("format=csv".into());
                print!("{}", c.get_text(&format!("/api/v1/stats?{}", q.join("&")))?);
                return Ok(());
            }
            let v = c.get(&format!("/api/v1/stats?{}", q.join("&")))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_stats(&v);
            }
            Ok(())
        }
        Cmd::Monitor { cmd } => match cmd {
            MonitorCmd::Add { dir, name } => {
                let paths = HubPaths::new(&dir);
                let c = AdminClient::require(&paths)?;
                let v = c.post("/admin/v1/monitors", &serde_json::json!({"name": name}))?;
                let token = v["token"].as_str().context("hub answer has no token")?;
                eprintln!(
                    "{}",
                    t!(
                        lang(),
                        "hub-monitor-issued",
                        name = format!("{name:?}"),
                        url = format!("{}/dashboard?token=<token>", c.base)
                    )
                );
                println!("{token}");
                Ok(())
            }
            MonitorCmd::Revoke { dir, name } => {
                let c = AdminClient::require(&HubPaths::new(&dir))?;
                c.post(
                    &format!("/admin/v1/monitors/{name}/revoke"),
                    &serde_json::json!({}),
                )?;
                println!(
                    "{}",
                    t!(lang(), "hub-monitor-revoked", name = format!("{name:?}"))
                );
                Ok(())
            }
            MonitorCmd::List { dir } => {
                let c = AdminClient::require(&HubPaths::new(&dir))?;
                let l = lang();
                let mut monitors: Vec<serde_json::Value> = c
                    .get("/admin/v1/monitors")?
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                // By name, in the reader's alphabetical order.
                Collation::of(l).sort_by_key(&mut monitors, |m| m["name"].as_str().unwrap_or(""));
                for m in &monitors {
                    let state = match m["revoked_ms"].as_u64() {
                        Some(t) => t!(l, "hub-monitor-revoked-at", time = fmt_ms(Some(t))),
                        None => t!(l, "hub-monitor-live"),
                    };
                    println!(
                        "{:<30} {}  {state}",
                        esc(m["name"].as_str().unwrap_or("?")),
                        t!(
                            l,
                            "hub-monitor-created",
                            time = fmt_ms(m["created_ms"].as_u64())
                        )
                    );
                }
                Ok(())
            }
        },
        Cmd::Doc { dir, id, json: _ } => {
            let paths = HubPaths::new(&dir);
            let c = AdminClient::connect(&paths)?
                .with_context(|| t!(lang(), "hub-not-running-short"))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&c.get(&format!("/admin/v1/documents/{id}"))?)?
            );
            Ok(())
        }
        Cmd::Scrub { dir, json } => scrub(&dir, json),
        Cmd::Backup {
            dir,
            to,
            include_keys,
            json,
        } => backup(&dir, &to, include_keys, json),
        Cmd::Restore { from, dir, json } => restore(&from, &dir, json),
        Cmd::Resync { dir, since, json } => resync(&dir, &since, json),
        Cmd::Store {
            cmd:
                StoreCmd::Migrate {
                    dir,
                    to,
                    password_file,
                    verify_only,
                    json,
                },
        } => store_migrate(
            crate::migrate::Options {
                dir,
                to,
                password_file,
                verify_only,
                progress: !json,
            },
            json,
        ),
        Cmd::Demo { dir, docs } => crate::demo::run(dir, docs),
    }
}

/// `store migrate`: run it, print the report, fail unless it verified.
fn store_migrate(opts: crate::migrate::Options, json: bool) -> Result<()> {
    // Logs only when asked for (RUST_LOG): the report is the output.
    if std::env::var_os("RUST_LOG").is_some() {
        crate::init_tracing();
    }
    let target = redact_url(&opts.to);
    let verify_only = opts.verify_only;
    if !json {
        let what = if verify_only { "comparing" } else { "copying" };
        eprintln!("{what} {} with {target}", opts.dir.display());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(crate::migrate::run(opts))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_migration(&report, &target);
    }
    let diffs = report.differences();
    if !diffs.is_empty() {
        bail!(
            "the copy in {target} does not match the deployment: {}",
            diffs.join("; ")
        );
    }
    Ok(())
}

/// A connection string without its password, for messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn print_migration(r: &crate::migrate::Report, target: &str) {
    let verb = if r.copied { "copied" } else { "compared" };
    println!("store migrate: {verb} into {target}");
    println!(
        "  {:<22} {:<11} {:>10} {:>10}  {:<16}  equal",
        "table", "area", "source", "target", "sha256 (source)"
    );
    for t in &r.tables {
        println!(
            "  {:<22} {:<11} {:>10} {:>10}  {:<16}  {}",
            t.table,
            t.area,
            t.source_rows,
            t.target_rows,
            &t.source_sha256[..16],
            if t.equal { "yes" } else { "NO" }
        );
    }
    let b = &r.bodies;
    println!(
        "  large bodies: {} intact, {:.1} MiB; {} missing and {} damaged on the source (not copied)",
        b.intact,
        b.bytes as f64 / (1024.0 * 1024.0),
        b.missing.len(),
        b.damaged.len()
    );
    for d in &b.missing {
        println!("    missing {d}");
    }
    for d in &b.damaged {
        println!("    damaged {d}");
    }
    println!(
        "  time: {:.1} s {verb} ({} documents, {:.0} docs/s, {:.1} MiB/s of body files), {:.1} s verifying; peak memory {} MiB ({} MiB after the copy; store file {} MiB)",
        r.copy_secs,
        r.documents,
        r.docs_per_sec,
        r.body_mib_per_sec,
        r.verify_secs,
        r.peak_rss_kib / 1024,
        r.peak_rss_copy_kib / 1024,
        r.source_db_bytes / (1024 * 1024)
    );
    if r.verified {
        println!(
            "  verified: every table equal, the database consistent, statistics equal to a recount"
        );
        if r.copied {
            println!(
                "next: set [store] backend = \"postgres\" and url in hub.toml, then start the hub"
            );
        }
    } else {
        println!("  NOT verified:");
        for d in r.differences() {
            println!("    {d}");
        }
    }
}

/// Start a scrub on the running hub, wait for its report and print it.
fn scrub(dir: &Path, json: bool) -> Result<()> {
    let c = AdminClient::require(&HubPaths::new(dir))?;
    let run = c.post("/admin/v1/scrub", &serde_json::json!({}))?["run"]
        .as_u64()
        .context("hub answer has no run number")?;
    let report = loop {
        let v = c.get("/admin/v1/scrub")?;
        if v["last"]["run"].as_u64().is_some_and(|r| r >= run) {
            break v["last"].clone();
        }
        // Polling the hub's job; a scrub of a large store takes minutes.
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let l = lang();
        let list = |k: &str| report[k].as_array().map(Vec::len).unwrap_or(0);
        println!(
            "{}",
            t!(
                l,
                "hub-scrub-report",
                run = report["run"].to_string(),
                checked = report["bodies_checked"].to_string(),
                bytes = report["bytes_checked"].to_string(),
                missing = list("missing"),
                damaged = list("damaged"),
                repairs = report["repairs_requested"].to_string()
            )
        );
        for (k, label) in [
            ("missing", t!(l, "hub-scrub-missing")),
            ("damaged", t!(l, "hub-scrub-damaged")),
        ] {
            for d in report[k].as_array().into_iter().flatten() {
                println!("  {label:<8} {}", d.as_str().unwrap_or("?"));
            }
        }
        if let Some(e) = report["error"].as_str() {
            bail!("{}", t!(l, "hub-scrub-stopped", error = e));
        }
    }
    Ok(())
}

fn print_stats(v: &serde_json::Value) {
    let p = |x: &serde_json::Value| {
        x.as_f64()
            .map(|f| format!("{f:.2} %"))
            .unwrap_or_else(|| "-".into())
    };
    let t = |x: &serde_json::Value| match x {
        serde_json::Value::String(s) => esc(s),
        serde_json::Value::Null => "-".into(),
        o => o.to_string(),
    };
    let l = lang();
    // A label padded to the widest one, so the figures line up in either language.
    let label = |text: String| format!("{text:<26}");
    let n = &v["national"];
    println!(
        "{}",
        t!(
            l,
            "hub-stats-title",
            from = t(&v["from"]),
            to = t(&v["to"]),
            secs = t(&v["on_time_secs"])
        )
    );
    println!(
        "  {} {}  ({})",
        label(t!(l, "hub-stats-delivery-rate")),
        p(&n["delivery_rate"]),
        t!(
            l,
            "hub-stats-delivered",
            delivered = t(&n["delivered"]),
            due = t(&n["due"])
        )
    );
    println!(
        "  {} {}",
        label(t!(l, "hub-stats-on-time-late")),
        t!(
            l,
            "hub-stats-on-time",
            on_time = t(&n["on_time"]),
            rate = p(&n["on_time_rate"]),
            late = t(&n["late"]),
            rejected = t(&n["rejected"]),
            expired = t(&n["expired"]),
            pending = t(&n["pending"]),
            overdue = t(&n["overdue"])
        )
    );
    println!(
        "  {} {}  ({})",
        label(t!(l, "hub-stats-electronic-rate")),
        p(&n["electronic_rate"]),
        t!(
            l,
            "hub-stats-paper",
            sent = t(&n["paper_sent"]),
            received = t(&n["paper_received"])
        )
    );
    println!(
        "  {} {}/{} ({})",
        label(t!(l, "hub-stats-connected")),
        t(&n["connected"]),
        t(&n["registered"]),
        p(&n["connected_rate"])
    );
    let median = n["median_completion_secs"]
        .as_u64()
        .map(|s| match s {
            s if s < 3600 => format!("{} min", s / 60),
            s if s < 172_800 => format!("{:.1} h", s as f64 / 3600.0),
            s => format!("{:.1} d", s as f64 / 86_400.0),
        })
        .unwrap_or_else(|| "–".into());
    println!(
        "  {} {}  {}",
        label(t!(l, "hub-stats-registered-in-time")),
        p(&n["registered_in_time_rate"]),
        t!(
            l,
            "hub-stats-registered",
            registered = t(&n["registered_in_time"]),
            delivered = t(&n["business_delivered"]),
            days = t(&v["registration_working_days"]),
            median = median,
            completed = t(&n["completed"]),
            outstanding = t(&n["outstanding"])
        )
    );
    println!();
    println!(
        "{:<8} {:>9} {:>10} {:>11}",
        t!(l, "hub-col-group"),
        t!(l, "hub-col-due"),
        t!(l, "hub-col-delivery"),
        t!(l, "hub-col-electronic")
    );
    for g in v["groups"].as_array().into_iter().flatten() {
        println!(
            "{:<8} {:>9} {:>10} {:>11}",
            t(&g["group"]),
            t(&g["due"]),
            p(&g["delivery_rate"]),
            p(&g["electronic_rate"])
        );
    }
    println!();
    println!(
        "{:<14} {:>6} {:>6} {:>10} {:>10} {:>8} {:>8} {:>11}  {}",
        t!(l, "hub-col-agency"),
        t!(l, "hub-col-sent"),
        t!(l, "hub-col-received"),
        t!(l, "hub-col-delivery"),
        t!(l, "hub-col-on-time"),
        t!(l, "hub-col-rejected"),
        t!(l, "hub-col-pending"),
        t!(l, "hub-col-electronic"),
        t!(l, "hub-col-name")
    );
    for a in v["agencies"].as_array().into_iter().flatten() {
        println!(
            "{:<14} {:>6} {:>6} {:>10} {:>10} {:>8} {:>8} {:>11}  {}",
            t(&a["scope"]),
            t(&a["sent"]),
            t(&a["due"]),
            p(&a["delivery_rate"]),
            p(&a["on_time_rate"]),
            t(&a["rejected"]),
            t(&a["pending"]),
            p(&a["electronic_rate"]),
            t(&a["name"])
        );
    }
}

fn print_audit(v: &serde_json::Value) {
    for a in v.as_array().into_iter().flatten() {
        println!(
            "{}  {:<28} {:<14} {:<13} {}",
            fmt_ms(a["time_ms"].as_u64()),
            esc(a["actor"].as_str().unwrap_or("?")),
            esc(a["action"].as_str().unwrap_or("?")),
            esc(a["agency"].as_str().unwrap_or("-")),
            esc(a["detail"].as_str().unwrap_or(""))
        );
    }
}

/// Text from the store or the network, made safe for a terminal (names and details may have
/// been written by an earlier version that did not refuse control characters).
fn esc(s: &str) -> String {
    poros_protocol::text::escape_for_terminal(s).into_owned()
}

fn fmt_ms(ms: Option<u64>) -> String {
    ms.and_then(|ms| time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".into())
}

fn node_cmd(cmd: NodeCmd) -> Result<()> {
    match cmd {
        NodeCmd::Add {
            dir,
            code,
            agency,
            name,
            details,
            requests,
            out,
        } => {
            let agency = AgencyId::parse(code.or(agency).as_deref().unwrap_or_default())?;
            if name.trim().is_empty() {
                bail!("{}", t!(lang(), "hub-node-name-empty"));
            }
            let mut body = details.json()?;
            body.insert("agency".into(), agency.as_str().into());
            body.insert("name".into(), name.into());
            let c = AdminClient::require(&HubPaths::new(&dir))?;
            match (requests, out) {
                (Some(req), Some(out)) => {
                    let read = |f: &str| {
                        std::fs::read_to_string(req.join(f))
                            .with_context(|| format!("reading {}", req.join(f).display()))
                    };
                    body.insert("tls_csr".into(), read("tls.csr")?.into());
                    body.insert("sign_csr".into(), read("sign.csr")?.into());
                    let v = c.post("/admin/v1/nodes", &body.into())?;
                    let creds: poros_protocol::Credentials =
                        serde_json::from_value(v["credentials"].clone()).context("hub answer")?;
                    write_credentials(&out, &creds)?;
                    println!(
                        "{}",
                        t!(
                            lang(),
                            "hub-node-registered-offline",
                            agency = agency.to_string(),
                            dir = out.display().to_string()
                        )
                    );
                }
                _ => {
                    let v = c.post("/admin/v1/nodes", &body.into())?;
                    let token = v["token"].as_str().context("hub answer has no token")?;
                    eprintln!(
                        "{}",
                        t!(
                            lang(),
                            "hub-node-registered-token",
                            agency = agency.to_string()
                        )
                    );
                    eprintln!("  {}", t!(lang(), "hub-node-enroll-command"));
                    println!("{token}");
                }
            }
            Ok(())
        }
        NodeCmd::Edit {
            dir,
            agency,
            name,
            details,
            no_parent,
            no_email,
            no_address,
            no_phone,
        } => {
            let agency = AgencyId::parse(&agency)?;
            let mut body = details.json()?;
            if let Some(n) = name {
                body.insert("name".into(), n.into());
            }
            for (k, clear) in [
                ("parent", no_parent),
                ("email", no_email),
                ("address", no_address),
                ("phone", no_phone),
            ] {
                if clear {
                    body.insert(k.into(), serde_json::Value::Null);
                }
            }
            if body.is_empty() {
                bail!("{}", t!(lang(), "hub-node-nothing-to-change"));
            }
            let c = AdminClient::require(&HubPaths::new(&dir))?;
            let v = c.patch(&format!("/admin/v1/nodes/{agency}"), &body.into())?;
            println!(
                "{}",
                t!(lang(), "hub-node-edited", agency = agency.to_string())
            );
            print_directory_fields(&v);
            Ok(())
        }
        NodeCmd::List { dir, json, by_name } => {
            let c = AdminClient::require(&HubPaths::new(&dir))?;
            let v = c.get("/admin/v1/nodes")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            let l = lang();
            let mut nodes: Vec<serde_json::Value> = v.as_array().cloned().unwrap_or_default();
            if by_name {
                Collation::of(l).sort_by_key(&mut nodes, |n| n["name"].as_str().unwrap_or(""));
            }
            println!(
                "{:<15} {:<10} {:<9} {:<26} {:<26} {:<15} {}",
                t!(l, "hub-col-agency"),
                t!(l, "hub-col-state"),
                t!(l, "hub-col-connected"),
                t!(l, "hub-col-cert-expires"),
                t!(l, "hub-col-last-seen"),
                t!(l, "hub-col-parent"),
                t!(l, "hub-col-name")
            );
            for n in &nodes {
                let exp = n["tls_not_after"]
                    .as_i64()
                    .filter(|t| *t > 0)
                    .map(|t| fmt_ms(Some(t as u64 * 1000)));
                println!(
                    "{:<15} {:<10} {:<9} {:<26} {:<26} {:<15} {}{}",
                    n["agency"].as_str().unwrap_or("?"),
                    n["state"].as_str().unwrap_or("?"),
                    if n["connected"].as_bool().unwrap_or(false) {
                        t!(l, "common-yes")
                    } else {
                        t!(l, "common-no")
                    },
                    exp.unwrap_or_else(|| "-".into()),
                    fmt_ms(n["last_seen_ms"].as_u64()),
                    n["parent"].as_str().unwrap_or("-"),
                    esc(n["name"].as_str().unwrap_or("")),
                    if n["expiring_soon"].as_bool() == Some(true) {
                        format!("  {}", t!(l, "hub-node-expiring-warning"))
                    } else {
                        String::new()
                    }
                );
                // Contact details, when set, on a line of their own under the agency.
                let contact: Vec<String> = [
                    (t!(l, "hub-contact-email"), "email"),
                    (t!(l, "hub-contact-phone"), "phone"),
                    (t!(l, "hub-contact-address"), "address"),
                ]
                .iter()
                .filter_map(|(label, k)| n[*k].as_str().map(|v| format!("{label} {}", esc(v))))
                .collect();
                if !contact.is_empty() {
                    println!("{:<15} {}", "", contact.join("  |  "));
                }
            }
            Ok(())
        }
        NodeCmd::Show { dir, agency, json } => {
            let agency = AgencyId::parse(&agency)?;
            let c = AdminClient::require(&HubPaths::new(&dir))?;
            let v = c.get(&format!("/admin/v1/nodes/{agency}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            for k in [
                "agency",
                "name",
                "parent",
                "email",
                "address",
                "phone",
                "state",
                "connected",
                "tls_serial",
                "sign_serial",
                "tls_not_after",
                "last_seen_ms",
                "pending_deliveries",
                "held_for_repair",
                "expiring_soon",
                "identity_conflicts",
            ] {
                println!("{k:<20} {}", v[k]);
            }
            if let Some(c) = v["last_conflict"].as_object() {
                println!(
                    "{:<20} {} kept {} refused {}",
                    "last_conflict",
                    fmt_ms(c.get("at_ms").and_then(|x| x.as_u64())),
                    c.get("kept").and_then(|x| x.as_str()).unwrap_or("?"),
                    c.get("refused").and_then(|x| x.as_str()).unwrap_or("?"),
                );
            }
            if let Some(o) = v["superseded"].as_object() {
                println!(
                    "{:<20} tls {} sign {} (until retired)",
                    "superseded",
                    o.get("tls_serial").and_then(|x| x.as_str()).unwrap_or("?"),
                    o.get("sign_serial").and_then(|x| x.as_str()).unwrap_or("?"),
                );
            }
            println!("{}", t!(lang(), "hub-node-history"));
            print_audit(&v["history"]);
            Ok(())
        }
        NodeCmd::Suspend { dir, agency } => node_action(&dir, &agency, "suspend"),
        NodeCmd::Resume { dir, agency } => node_action(&dir, &agency, "resume"),
        NodeCmd::Revoke { dir, agency } => node_action(&dir, &agency, "revoke"),
    }
}

/// An agency's name and directory fields from the admin API's node JSON, one per line.
fn print_directory_fields(v: &serde_json::Value) {
    for k in ["name", "parent", "email", "address", "phone"] {
        println!("  {k:<8} {}", esc(v[k].as_str().unwrap_or("-")));
    }
}

fn node_action(dir: &Path, agency: &str, action: &str) -> Result<()> {
    let agency = AgencyId::parse(agency)?;
    let c = AdminClient::require(&HubPaths::new(dir))?;
    c.post(
        &format!("/admin/v1/nodes/{agency}/{action}"),
        &serde_json::json!({}),
    )?;
    let (l, a) = (lang(), agency.to_string());
    let done = match action {
        "suspend" => t!(l, "hub-node-suspended", agency = a),
        "resume" => t!(l, "hub-node-resumed", agency = a),
        _ => t!(l, "hub-node-revoked", agency = a),
    };
    println!("{done}");
    Ok(())
}

/// Write issued certificates and trust roots into an agent's `certs/` directory.
pub fn write_credentials(out: &Path, c: &poros_protocol::Credentials) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for (name, data) in [
        ("tls.crt", c.tls_cert.as_bytes()),
        ("sign.crt", c.sign_cert.as_bytes()),
        ("network-ca.crt", c.network_ca.as_bytes()),
        ("signing-ca.crt", c.signing_ca.as_bytes()),
        ("signing.crl", c.signing_crl.as_slice()),
    ] {
        let p = out.join(name);
        let _ = std::fs::remove_file(&p);
        poros_certs::write_public_file(&p, data)?;
    }
    Ok(())
}

fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn run_hub(dir: &Path) -> Result<()> {
    crate::init_tracing();
    let paths = HubPaths::new(dir);
    if !paths.config().exists() {
        bail!(
            "{}",
            t!(
                lang(),
                "hub-not-a-deployment-init",
                dir = dir.display().to_string()
            )
        );
    }
    let cfg = HubConfig::load(&paths.config())?;
    let token = std::fs::read_to_string(paths.at("admin.token"))
        .with_context(|| format!("reading {}", paths.at("admin.token").display()))?
        .trim()
        .to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let hub = Hub::open(&paths, cfg).await?;
        crate::coordination::listen(&hub);
        let endpoint = server::bind(&hub, server::server_tls(&hub))?;
        let quic_addr = endpoint.local_addr()?;
        let enrol = crate::enrolment::bind(&hub)?;
        let enroll_addr = enrol.local_addr()?;
        tokio::spawn(crate::enrolment::serve(hub.clone(), enrol));
        let ops = tokio::net::TcpListener::bind(hub.cfg.network.ops_listen)
            .await
            .with_context(|| {
                format!("binding operations listener {}", hub.cfg.network.ops_listen)
            })?;
        let ops_addr = ops.local_addr()?;
        std::fs::create_dir_all(paths.at("run"))?;
        write_atomic(&paths.at("run/quic.addr"), &quic_addr.to_string())?;
        write_atomic(&paths.at("run/enroll.addr"), &enroll_addr.to_string())?;
        write_atomic(&paths.at("run/ops.addr"), &ops_addr.to_string())?;
        tracing::info!(%quic_addr, %ops_addr, %enroll_addr, "hub listening");
        let app = crate::ops::router(hub.clone(), token);
        tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
            if let Err(e) = axum::serve(ops, app).await {
                tracing::error!(error = %e, "operations listener failed");
            }
        });
        server::serve(hub, endpoint, poros_transport::shutdown_signal()).await?;
        let _ = std::fs::remove_file(paths.at("run/ops.addr"));
        let _ = std::fs::remove_file(paths.at("run/quic.addr"));
        Ok(())
    })
}

/// Client for the running hub's admin API (address from `run/ops.addr`, token from `admin.token`).
pub struct AdminClient {
    base: String,
    token: String,
    http: reqwest::blocking::Client,
}

impl AdminClient {
    /// The running hub's admin API, or a clear error when the hub is not running.
    pub fn require(paths: &HubPaths) -> Result<AdminClient> {
        if !paths.config().exists() {
            bail!(
                "{}",
                t!(
                    lang(),
                    "hub-not-a-deployment",
                    dir = paths.root.display().to_string()
                )
            );
        }
        Self::connect(paths)?.with_context(|| {
            t!(
                lang(),
                "hub-not-running",
                dir = paths.root.display().to_string()
            )
        })
    }

    /// POST JSON.
    pub fn post(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .with_context(|| t!(lang(), "hub-contacting", url = &self.base))?;
        Self::json(r)
    }

    /// PATCH JSON.
    pub fn patch(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value> {
        let r = self
            .http
            .patch(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .with_context(|| t!(lang(), "hub-contacting", url = &self.base))?;
        Self::json(r)
    }

    /// GET a long response as a stream (a backup): no overall time limit, only on connecting;
    /// an error answer is read as the hub's JSON error.
    pub fn stream(&self, path: &str) -> Result<reqwest::blocking::Response> {
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(None)
            .build()?;
        let r = http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .with_context(|| t!(lang(), "hub-contacting", url = &self.base))?;
        if r.status().is_success() {
            Ok(r)
        } else {
            Self::json(r).map(|_| unreachable!("an error status"))
        }
    }

    /// `Ok(None)` when no hub is running for this deployment.
    pub fn connect(paths: &HubPaths) -> Result<Option<AdminClient>> {
        let Ok(addr) = std::fs::read_to_string(paths.at("run/ops.addr")) else {
            return Ok(None);
        };
        let token = std::fs::read_to_string(paths.at("admin.token"))
            .with_context(|| format!("reading {}", paths.at("admin.token").display()))?
            .trim()
            .to_string();
        let http = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        let base = format!("http://{}", addr.trim());
        if http.get(format!("{base}/healthz")).send().is_err() {
            // A stale address file from a hub that was killed.
            return Ok(None);
        }
        Ok(Some(AdminClient { base, token, http }))
    }

    /// GET a text document.
    pub fn get_text(&self, path: &str) -> Result<String> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .with_context(|| t!(lang(), "hub-contacting", url = &self.base))?;
        if !r.status().is_success() {
            return Self::json(r).map(|_| String::new());
        }
        Ok(r.text()?)
    }

    /// GET a JSON document.
    pub fn get(&self, path: &str) -> Result<serde_json::Value> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .with_context(|| t!(lang(), "hub-contacting", url = &self.base))?;
        Self::json(r)
    }

    /// Every item of a paged listing, following `poros-next-cursor` page by page.
    pub fn get_all(&self, path: &str) -> Result<serde_json::Value> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut q = vec![("limit", poros_protocol::page::MAX_PAGE.to_string())];
            if let Some(a) = after.take() {
                q.push(("after", a));
            }
            let r = self
                .http
                .get(format!("{}{path}", self.base))
                .query(&q)
                .bearer_auth(&self.token)
                .send()
                .with_context(|| t!(lang(), "hub-contacting", url = &self.base))?;
            let next = r
                .headers()
                .get(poros_protocol::page::NEXT_CURSOR_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            match Self::json(r)? {
                serde_json::Value::Array(page) => all.extend(page),
                _ => anyhow::bail!("the hub answered {path} with something other than a list"),
            }
            match next {
                Some(n) => after = Some(n),
                None => return Ok(serde_json::Value::Array(all)),
            }
        }
    }

    fn json(r: reqwest::blocking::Response) -> Result<serde_json::Value> {
        let status = r.status();
        let v: serde_json::Value = r.json().unwrap_or(serde_json::Value::Null);
        if status == reqwest::StatusCode::UNAUTHORIZED {
            bail!(
                "{}",
                t!(
                    lang(),
                    "hub-admin-refused",
                    error = v["error"].as_str().unwrap_or("unauthorized")
                )
            );
        }
        if !status.is_success() {
            match v["error"].as_str() {
                Some(e) => bail!("{e}"),
                None => bail!("{}", t!(lang(), "hub-request-refused")),
            }
        }
        Ok(v)
    }
}
