//! A deployment on loopback: the hub directory (`<root>/hub`), one directory per agency
//! (`<root>/agents/<code>`), their logs (`<root>/logs`), and the processes running on them.
//!
//! There is one way to set up: `poros-hub init` on two free loopback ports; an agency is
//! registered by `poros-agent init` (keys generated on its side) then `poros-hub node add`
//! with its certificate requests, or by a one-time token (`node add` without requests, then
//! `poros-agent enroll`). Both `node add` forms go through the running hub's admin API.

use crate::{free_port, output, run_cmd, Binaries, Error, ProcessGroup};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

mod instances;
pub use instances::HubInstance;

/// The hub's name in the process group and its log file (`logs/hub.log`).
pub const HUB: &str = "hub";

/// Default deadline for a process to come up.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A hub deployment and agent directories under one root, with the processes started on them.
/// Dropping it stops every process (SIGTERM, then SIGKILL); the files stay.
pub struct Deployment {
    pub root: PathBuf,
    pub hub_dir: PathBuf,
    pub quic_port: u16,
    pub ops_port: u16,
    /// How long [`Deployment::start_hub`] and [`Deployment::start_agent`] wait for readiness.
    pub start_timeout: Duration,
    bins: Binaries,
    procs: ProcessGroup,
    http: reqwest::blocking::Client,
    /// Hub instances beyond the first (see [`Deployment::share_store`]).
    extra: Vec<HubInstance>,
}

impl Deployment {
    /// `poros-hub init` a new deployment in `<root>/hub` on two free loopback ports; also
    /// creates `<root>/logs` and `<root>/files` (inputs for `send`). Nothing is started.
    pub fn create(bins: Binaries, root: &Path) -> Result<Deployment, Error> {
        let files = root.join("files");
        std::fs::create_dir_all(&files).map_err(|source| Error::Io {
            what: format!("creating {}", files.display()),
            source,
        })?;
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::Io {
                what: "building the HTTP client".into(),
                source: std::io::Error::other(e),
            })?;
        let d = Deployment {
            root: root.to_path_buf(),
            hub_dir: root.join("hub"),
            quic_port: free_port()?,
            ops_port: free_port()?,
            start_timeout: START_TIMEOUT,
            procs: ProcessGroup::new(&root.join("logs"))?,
            bins,
            http,
            extra: Vec::new(),
        };
        let ops = format!("127.0.0.1:{}", d.ops_port);
        d.hub(&[
            "init",
            "--dir",
            &s(&d.hub_dir),
            "--listen",
            &d.quic_listen(),
            "--ops-listen",
            &ops,
        ])?;
        Ok(d)
    }

    pub fn bins(&self) -> &Binaries {
        &self.bins
    }

    /// The shared HTTP client (30 s timeout).
    pub fn http(&self) -> &reqwest::blocking::Client {
        &self.http
    }

    pub fn procs(&self) -> &ProcessGroup {
        &self.procs
    }

    pub fn procs_mut(&mut self) -> &mut ProcessGroup {
        &mut self.procs
    }

    /// `RUST_LOG` for the hub and agents started from now on (default: inherited).
    pub fn set_rust_log(&mut self, filter: &str) {
        self.procs.set_rust_log(Some(filter));
    }

    /// The hub's QUIC address, as agents are told it (`127.0.0.1:PORT`).
    pub fn quic_listen(&self) -> String {
        format!("127.0.0.1:{}", self.quic_port)
    }

    /// `http://127.0.0.1:OPS`: the hub's operations listener (health, metrics, admin API).
    pub fn ops_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.ops_port)
    }

    /// Run `poros-hub args`; trimmed stdout.
    pub fn hub(&self, args: &[&str]) -> Result<String, Error> {
        run_cmd(&self.bins.hub, args)
    }

    /// Run `poros-agent args`; trimmed stdout.
    pub fn agent(&self, args: &[&str]) -> Result<String, Error> {
        run_cmd(&self.bins.agent, args)
    }

    pub fn agent_dir(&self, code: &str) -> PathBuf {
        self.root.join("agents").join(code)
    }

    /// `poros-agent init`: the agent directory with its keys and certificate requests.
    pub fn init_agent(&self, code: &str) -> Result<(), Error> {
        let d = s(&self.agent_dir(code));
        let hub = self.quic_listen();
        self.agent(&["init", "--dir", &d, "--agency", code, "--hub", &hub])?;
        Ok(())
    }

    /// [`Deployment::init_agent`], then `poros-hub node add` from its requests, which writes
    /// its certificates into it (the offline request flow). The hub must be running.
    pub fn register_agent(&self, code: &str, name: &str) -> Result<(), Error> {
        self.init_agent(code)?;
        let d = self.agent_dir(code);
        self.hub(&[
            "node",
            "add",
            "--dir",
            &s(&self.hub_dir),
            "--agency",
            code,
            "--name",
            name,
            "--requests",
            &s(&d.join("requests")),
            "--out",
            &s(&d.join("certs")),
        ])?;
        Ok(())
    }

    /// `poros-hub node add` without requests: the raw output (the token is on stdout).
    pub fn try_issue_token(&self, code: &str, name: &str) -> Result<Output, Error> {
        let hub = s(&self.hub_dir);
        let args = [
            "node", "add", "--dir", &hub, "--agency", code, "--name", name,
        ];
        output(&self.bins.hub, &args)
    }

    /// Register `code` as pending on the running hub; its one-time enrolment token.
    pub fn issue_token(&self, code: &str, name: &str) -> Result<String, Error> {
        let hub = s(&self.hub_dir);
        self.hub(&[
            "node", "add", "--dir", &hub, "--agency", code, "--name", name,
        ])
    }

    /// `poros-agent enroll` of `code` into its agent directory with `token`.
    pub fn enroll_agent(&self, code: &str, token: &str) -> Result<(), Error> {
        let d = s(&self.agent_dir(code));
        self.agent(&["enroll", "--dir", &d, "--token", token])?;
        Ok(())
    }

    /// Start the hub and wait until both listeners are up and `/healthz` answers.
    pub fn start_hub(&mut self) -> Result<(), Error> {
        let dir = self.hub_dir.clone();
        self.start_hub_in(HUB, &dir)
    }

    /// Start a hub process `name` on deployment directory `dir` and wait for it.
    fn start_hub_in(&mut self, name: &str, dir: &Path) -> Result<(), Error> {
        // Stale address files from a killed hub must not be mistaken for a live one.
        let run = dir.join("run");
        let _ = std::fs::remove_file(run.join("ops.addr"));
        let _ = std::fs::remove_file(run.join("quic.addr"));
        self.procs
            .spawn(name, &self.bins.hub, &["run", "--dir", &s(dir)])?;
        let http = &self.http;
        self.procs.wait_ready(
            name,
            &format!("hub {name} to start"),
            self.start_timeout,
            || {
                run.join("quic.addr").exists()
                    && std::fs::read_to_string(run.join("ops.addr")).is_ok_and(|a| {
                        http.get(format!("http://{}/healthz", a.trim()))
                            .send()
                            .is_ok_and(|r| r.status().is_success())
                    })
            },
        )
    }

    /// SIGTERM the hub and wait for it to exit.
    pub fn stop_hub(&mut self) -> Result<(), Error> {
        self.procs.stop(HUB)
    }

    /// SIGKILL the hub (no clean shutdown).
    pub fn kill_hub(&mut self) {
        self.procs.kill(HUB);
    }

    /// Whether the hub was started and not stopped since (it may have exited on its own).
    pub fn hub_running(&self) -> bool {
        self.procs.is_running(HUB)
    }

    /// Whether the hub process started by [`Deployment::start_hub`] is still running.
    pub fn hub_alive(&mut self) -> bool {
        self.procs.alive(HUB)
    }

    /// Start agent `code` and wait until its API answers, and its hub connection if `connected`.
    pub fn start_agent(&mut self, code: &str, connected: bool) -> Result<(), Error> {
        self.start_agents(&[code], connected)
    }

    /// Start these agents together, then wait for each as [`Deployment::start_agent`] does.
    pub fn start_agents(&mut self, codes: &[&str], connected: bool) -> Result<(), Error> {
        for code in codes {
            let d = self.agent_dir(code);
            let _ = std::fs::remove_file(d.join("run/api.addr"));
            self.procs
                .spawn(code, &self.bins.agent, &["run", "--dir", &s(&d)])?;
        }
        for code in codes {
            let what = if connected {
                format!("agent {code} to connect to the hub")
            } else {
                format!("agent {code} to serve its API")
            };
            let api = self.agent_dir(code).join("run/api.addr");
            let http = &self.http;
            self.procs.wait_ready(code, &what, self.start_timeout, || {
                crate::api::get(http, &api, "/v1/health")
                    .is_some_and(|h| !connected || h["connected"] == Value::Bool(true))
            })?;
        }
        Ok(())
    }

    /// SIGTERM an agent and wait for it to exit.
    pub fn stop_agent(&mut self, code: &str) -> Result<(), Error> {
        self.procs.stop(code)
    }

    /// SIGKILL an agent.
    pub fn kill_agent(&mut self, code: &str) {
        self.procs.kill(code);
    }

    /// Whether agent `code` started here is still running (never restarted).
    pub fn agent_alive(&mut self, code: &str) -> bool {
        self.procs.alive(code)
    }

    /// Stop every process (SIGTERM, then SIGKILL after the grace period).
    pub fn stop_all(&mut self) {
        self.procs.stop_all();
    }

    /// SIGKILL every process.
    pub fn kill_all(&mut self) {
        self.procs.kill_all();
    }

    /// The address of agent `code`'s local API (`HOST:PORT`), if it has written it.
    pub fn api_addr(&self, code: &str) -> Option<String> {
        crate::api::addr(&self.agent_dir(code).join("run/api.addr"))
    }

    /// GET on an agent's local API; `None` if it is not answering or not 2xx.
    pub fn api_get(&self, code: &str, path: &str) -> Option<Value> {
        crate::api::get(&self.http, &self.agent_dir(code).join("run/api.addr"), path)
    }

    /// Every item of a listing (`/v1/documents`, `/v1/inbox`, ...), following its cursor
    /// page by page; `None` if the agent is not answering or a page fails.
    pub fn api_list(&self, code: &str, path: &str) -> Option<Vec<Value>> {
        crate::api::list(&self.http, &self.api_addr(code)?, path)
    }

    /// The hub's Prometheus text (`/metrics`).
    pub fn metrics(&self) -> Result<String, reqwest::Error> {
        self.http
            .get(format!("{}/metrics", self.ops_base()))
            .send()
            .and_then(|r| r.text())
    }

    /// The log file of a process (`hub` or an agency code).
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.procs.log_path(name)
    }
}

fn s(p: &Path) -> String {
    p.to_string_lossy().to_string()
}
