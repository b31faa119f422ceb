//! `poros-hub` command line: init a deployment, run the hub, administer nodes, show statistics,
//! and the one-command local demo.

use crate::deployment::{self, HubPaths, InitOptions};
use crate::server::{self, now_ms, Hub};
use crate::state::{HubStore, NodeRecord, NodeState};
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use poros_config::HubConfig;
use poros_protocol::AgencyId;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// Poros hub: routes signed official documents between agency nodes.
#[derive(Parser, Debug)]
#[command(name = "poros-hub", version)]
pub struct Cli {
    /// Show the full cause chain of errors.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a new deployment: CAs, hub identity, admin credential and a commented hub.toml.
    Init {
        /// Deployment directory (created; must not already hold a deployment).
        #[arg(long)]
        dir: PathBuf,
        /// QUIC listen address for agents.
        #[arg(long, default_value = "127.0.0.1:7443")]
        listen: SocketAddr,
        /// Operations HTTP listener.
        #[arg(long, default_value = "127.0.0.1:7080")]
        ops_listen: SocketAddr,
        /// DNS name(s) in the hub certificate.
        #[arg(long = "dns", default_value = "localhost")]
        dns: Vec<String>,
        /// IP address(es) in the hub certificate.
        #[arg(long = "ip", default_value = "127.0.0.1")]
        ip: Vec<IpAddr>,
    },
    /// Run the hub.
    Run {
        /// Deployment directory.
        #[arg(long)]
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
enum NodeCmd {
    /// Register an agency and issue its certificates from its requests (offline flow).
    Add {
        /// Deployment directory.
        #[arg(long)]
        dir: PathBuf,
        /// Agency code (DDD.DD.DD.XDD).
        #[arg(long)]
        agency: String,
        /// Agency name.
        #[arg(long)]
        name: String,
        /// Directory holding the agent's tls.csr and sign.csr.
        #[arg(long)]
        requests: PathBuf,
        /// Directory to write the certificates and trust roots into.
        #[arg(long)]
        out: PathBuf,
        /// Certificate lifetime in days.
        #[arg(long, default_value_t = 365)]
        days: i64,
    },
    /// List registered nodes.
    List {
        /// Deployment directory.
        #[arg(long)]
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Entry point used by the `poros-hub` binary.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let verbose = cli.verbose;
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if verbose {
                eprintln!("poros-hub: error: {e:?}");
            } else {
                eprintln!("poros-hub: error: {e:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Init {
            dir,
            listen,
            ops_listen,
            dns,
            ip,
        } => {
            deployment::init(
                &dir,
                &InitOptions {
                    listen,
                    ops_listen,
                    dns_names: dns,
                    ips: ip,
                },
            )?;
            println!("created deployment in {}", dir.display());
            println!("  hub.toml, pki/ (network and signing CAs, hub identity), admin.token");
            println!("next: poros-hub node add --dir {} --agency ID --name NAME --requests AGENT/requests --out AGENT/certs", dir.display());
            Ok(())
        }
        Cmd::Run { dir } => run_hub(&dir),
        Cmd::Node {
            cmd:
                NodeCmd::Add {
                    dir,
                    agency,
                    name,
                    requests,
                    out,
                    days,
                },
        } => {
            let agency = AgencyId::parse(&agency)?;
            if name.trim().is_empty() {
                bail!("--name must not be empty");
            }
            let paths = HubPaths::new(&dir);
            let issued = deployment::issue_node(&paths, &agency, &requests, &out, days)?;
            let rec = NodeRecord {
                agency: agency.clone(),
                name,
                state: NodeState::Active,
                tls_serial: issued.tls_serial,
                sign_serial: issued.sign_serial,
                tls_not_after: issued.tls_not_after,
                registered_ms: now_ms(),
            };
            match AdminClient::connect(&paths)? {
                Some(c) => c.put_node(&rec)?,
                None => {
                    let store = open_store(&paths)?;
                    store.put_node_blocking(rec)?;
                }
            }
            println!(
                "registered {agency}; certificates written to {}",
                out.display()
            );
            Ok(())
        }
        Cmd::Node {
            cmd: NodeCmd::List { dir, json },
        } => {
            let paths = HubPaths::new(&dir);
            let nodes: Vec<serde_json::Value> = match AdminClient::connect(&paths)? {
                Some(c) => c
                    .get("/admin/v1/nodes")?
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
                None => open_store(&paths)?
                    .nodes()?
                    .into_iter()
                    .map(|n| {
                        serde_json::json!({"agency": n.agency, "name": n.name, "state": n.state,
                        "tls_serial": n.tls_serial, "sign_serial": n.sign_serial,
                        "tls_not_after": n.tls_not_after, "connected": false})
                    })
                    .collect(),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&nodes)?);
            } else {
                println!("{:<15} {:<10} {:<9} NAME", "AGENCY", "STATE", "CONNECTED");
                for n in nodes {
                    println!(
                        "{:<15} {:<10} {:<9} {}",
                        n["agency"].as_str().unwrap_or("?"),
                        n["state"].as_str().unwrap_or("?"),
                        if n["connected"].as_bool().unwrap_or(false) {
                            "yes"
                        } else {
                            "no"
                        },
                        n["name"].as_str().unwrap_or("")
                    );
                }
            }
            Ok(())
        }
        Cmd::Stats { dir, json } => {
            let paths = HubPaths::new(&dir);
            let v = match AdminClient::connect(&paths)? {
                Some(c) => c.get("/admin/v1/stats")?,
                None => {
                    let store = open_store(&paths)?;
                    let counters: serde_json::Map<String, serde_json::Value> = store
                        .counters()?
                        .into_iter()
                        .map(|(k, v)| (k, v.into()))
                        .collect();
                    serde_json::json!({"counters": counters, "queue_depth": store.queue_depth()?})
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                if let Some(c) = v["counters"].as_object() {
                    for (k, val) in c {
                        println!("{k:<24} {val}");
                    }
                }
                println!("{:<24} {}", "queue_depth", v["queue_depth"]);
            }
            Ok(())
        }
        Cmd::Doc { dir, id } => {
            let paths = HubPaths::new(&dir);
            let c = AdminClient::connect(&paths)?
                .context("the hub is not running (run/ops.addr missing or not answering)")?;
            println!(
                "{}",
                serde_json::to_string_pretty(&c.get(&format!("/admin/v1/documents/{id}"))?)?
            );
            Ok(())
        }
        Cmd::Demo { dir, docs } => crate::demo::run(dir, docs),
    }
}

fn open_store(paths: &HubPaths) -> Result<HubStore> {
    if !paths.config().exists() {
        bail!(
            "{} is not a Poros deployment (no hub.toml); create one with `poros-hub init`",
            paths.root.display()
        );
    }
    let db = poros_store::Db::open(&paths.db())?;
    Ok(HubStore::open(db)?)
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
            "{} is not a Poros deployment (no hub.toml); create one with `poros-hub init --dir {}`",
            dir.display(),
            dir.display()
        );
    }
    let cfg = HubConfig::load(&paths.config())?;
    let token = std::fs::read_to_string(paths.at("admin.token"))
        .with_context(|| format!("reading {}", paths.at("admin.token").display()))?
        .trim()
        .to_string();
    // Opened before the runtime starts: store setup uses blocking commits.
    let hub = Hub::open(&paths, cfg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let endpoint = server::bind(&hub, server::server_tls(&hub))?;
        let quic_addr = endpoint.local_addr()?;
        let ops = tokio::net::TcpListener::bind(hub.cfg.network.ops_listen)
            .await
            .with_context(|| {
                format!("binding operations listener {}", hub.cfg.network.ops_listen)
            })?;
        let ops_addr = ops.local_addr()?;
        std::fs::create_dir_all(paths.at("run"))?;
        write_atomic(&paths.at("run/quic.addr"), &quic_addr.to_string())?;
        write_atomic(&paths.at("run/ops.addr"), &ops_addr.to_string())?;
        tracing::info!(%quic_addr, %ops_addr, "hub listening");
        let app = crate::ops::router(hub.clone(), token);
        tokio::spawn(async move {
            if let Err(e) = axum::serve(ops, app).await {
                tracing::error!(error = %e, "operations listener failed");
            }
        });
        server::serve(hub, endpoint, shutdown_signal()).await?;
        let _ = std::fs::remove_file(paths.at("run/ops.addr"));
        let _ = std::fs::remove_file(paths.at("run/quic.addr"));
        Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Client for the running hub's admin API (address from `run/ops.addr`, token from `admin.token`).
pub struct AdminClient {
    base: String,
    token: String,
    http: reqwest::blocking::Client,
}

impl AdminClient {
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

    /// GET a JSON document.
    pub fn get(&self, path: &str) -> Result<serde_json::Value> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .with_context(|| format!("contacting the hub at {}", self.base))?;
        Self::json(r)
    }

    fn put_node(&self, rec: &NodeRecord) -> Result<()> {
        let r = self
            .http
            .post(format!("{}/admin/v1/nodes", self.base))
            .bearer_auth(&self.token)
            .json(rec)
            .send()
            .with_context(|| format!("contacting the hub at {}", self.base))?;
        Self::json(r).map(|_| ())
    }

    fn json(r: reqwest::blocking::Response) -> Result<serde_json::Value> {
        let status = r.status();
        let v: serde_json::Value = r.json().unwrap_or(serde_json::Value::Null);
        if !status.is_success() {
            bail!(
                "hub answered {status}: {}",
                v["error"].as_str().unwrap_or("no detail")
            );
        }
        Ok(v)
    }
}
