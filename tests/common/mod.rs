//! End-to-end test layer over `poros-harness`: a hub deployment and node agents as real
//! processes (the `poros-hub` and `poros-agent` binaries of this package) in a fresh temporary
//! directory with their own ports, driven through panicking helpers that read well in tests.
//!
//! The harness owns the processes, their logs (`logs/<name>.log`) and the waits; this layer adds
//! what only tests want: a temporary directory kept on request, the tail of every log printed
//! when a test panics, tmpfs mounts, and assertions. Synchronisation is always by polling a
//! condition with a deadline ([`wait_until`]), never by fixed sleeps. Dropping a [`Net`] kills
//! every process it started.
#![allow(dead_code)]

pub mod delivery;
pub mod raw;

use poros_harness::{Binaries, Deployment};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// Generous deadline for anything that normally takes well under a second or two.
pub const DEADLINE: Duration = Duration::from_secs(60);

pub const HUB_EXE: &str = env!("CARGO_BIN_EXE_poros-hub");
pub const AGENT_EXE: &str = env!("CARGO_BIN_EXE_poros-agent");

/// Agency codes used by the tests.
pub const A: &str = "000.00.00.G01";
pub const B: &str = "000.00.00.G02";
pub const C: &str = "000.00.00.H01";
pub const D: &str = "000.00.00.H02";

/// Poll `f` every 50 ms until it holds; panic naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, f: impl FnMut() -> bool) {
    poros_harness::wait_until(what, timeout, f).unwrap_or_else(|e| panic!("{e}"));
}

/// A UDP+TCP port that is free on 127.0.0.1 right now (so the hub can be given fixed addresses
/// and be restarted on the same ones).
pub fn free_port() -> u16 {
    poros_harness::free_port().unwrap_or_else(|e| panic!("{e}"))
}

/// The binaries under test.
pub fn bins() -> Binaries {
    Binaries::new(HUB_EXE, AGENT_EXE)
}

/// Unwrap a harness result, panicking with its message.
pub fn ok<T>(r: Result<T, poros_harness::Error>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// Deterministic pseudo-random bytes (xorshift), so bodies are not trivially compressible.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(poros_protocol::sha256(data))
}

/// One test network: a hub deployment and agents, all under one temporary directory.
pub struct Net {
    tmp: Option<tempfile::TempDir>,
    pub root: PathBuf,
    pub hub_dir: PathBuf,
    pub quic_port: u16,
    pub ops_port: u16,
    /// The deployment and its processes (hub named `hub`, agents by agency code).
    d: Deployment,
    /// Filesystems mounted by [`Net::mount_tmpfs`], unmounted after the processes are gone.
    mounts: Vec<PathBuf>,
}

impl Net {
    /// A new network with an initialised (not running) hub deployment.
    pub fn new() -> Net {
        let tmp = tempfile::Builder::new()
            .prefix("poros-e2e-")
            .tempdir()
            .expect("tempdir");
        let mut d = ok(Deployment::create(bins(), tmp.path()));
        d.set_rust_log("info");
        d.start_timeout = DEADLINE;
        Net {
            root: d.root.clone(),
            hub_dir: d.hub_dir.clone(),
            quic_port: d.quic_port,
            ops_port: d.ops_port,
            tmp: Some(tmp),
            d,
            mounts: Vec::new(),
        }
    }

    /// The deployment under the network (for what `Net` does not wrap, e.g. hub instances).
    pub fn deployment(&mut self) -> &mut Deployment {
        &mut self.d
    }

    /// A network with a running hub and these agencies registered and their agents running.
    pub fn running(codes: &[&str]) -> Net {
        let mut net = Net::new();
        for c in codes {
            net.add_agent(c);
        }
        net.start_hub();
        ok(net.d.start_agents(codes, true));
        net
    }

    pub fn quic_addr(&self) -> std::net::SocketAddr {
        format!("127.0.0.1:{}", self.quic_port).parse().unwrap()
    }

    pub fn hub_toml(&self) -> PathBuf {
        self.hub_dir.join("hub.toml")
    }

    /// Replace `key = ...` (the first line starting with `key =`) in `hub.toml`.
    pub fn set_hub_config(&self, key: &str, value: &str) {
        set_toml_key(&self.hub_toml(), key, value);
    }

    /// Start the hub and wait until its operations listener answers.
    pub fn start_hub(&mut self) {
        ok(self.d.start_hub());
    }

    /// SIGKILL the hub (no clean shutdown).
    pub fn kill_hub(&mut self) {
        self.d.kill_hub();
    }

    /// SIGTERM the hub and wait for it to exit.
    pub fn stop_hub(&mut self) {
        ok(self.d.stop_hub());
    }

    pub fn hub_running(&self) -> bool {
        self.d.hub_running()
    }

    /// Whether the hub process started by [`Net::start_hub`] is still the one running.
    pub fn hub_alive(&mut self) -> bool {
        self.d.hub_alive()
    }

    /// Whether agent `code` started by this net is still running (never restarted).
    pub fn agent_alive(&mut self, code: &str) -> bool {
        self.d.agent_alive(code)
    }

    /// Puts `dir` (which must exist, with its contents) on a fresh tmpfs of `mib` MiB, so a
    /// test can fill it. Needs root; fails the test with a clear message otherwise. Unmounted
    /// when the net is dropped, after its processes are killed.
    pub fn mount_tmpfs(&mut self, dir: &Path, mib: u32) {
        let old = dir.with_extension("before-tmpfs");
        std::fs::rename(dir, &old).unwrap_or_else(|e| panic!("moving {}: {e}", dir.display()));
        std::fs::create_dir(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap_or_else(|e| panic!("running mount(8): {e}"));
        assert!(
            out.status.success(),
            "cannot mount a {mib} MiB tmpfs at {} (this test needs root and mount(8)): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        self.mounts.push(dir.to_path_buf());
        let mut src = old.clone().into_os_string();
        src.push("/.");
        let cp = Command::new("cp")
            .arg("-a")
            .arg(&src)
            .arg(dir)
            .output()
            .unwrap();
        assert!(cp.status.success(), "copying into the tmpfs: {cp:?}");
        std::fs::remove_dir_all(&old).unwrap();
    }

    pub fn agent_dir(&self, code: &str) -> PathBuf {
        self.d.agent_dir(code)
    }

    /// Create an agent directory (keys, requests) without registering it.
    pub fn init_agent(&self, code: &str) {
        ok(self.d.init_agent(code));
    }

    /// `poros-agent init` and `poros-hub node add` (the offline request flow). Admin verbs
    /// go through the running hub's admin API, so the hub is started for it if it is down.
    pub fn add_agent(&mut self, code: &str) {
        let was_running = self.hub_running();
        if !was_running {
            self.start_hub();
        }
        self.register_agent(code);
        if !was_running {
            self.stop_hub();
        }
    }

    fn register_agent(&self, code: &str) {
        ok(self.d.register_agent(code, &format!("Agency {code}")));
    }

    /// Start an agent and wait until its API answers and it is connected to the hub.
    pub fn start_agent(&mut self, code: &str) {
        let wait_connected = self.hub_running();
        self.start_agent_opts(code, wait_connected);
    }

    /// Start an agent; wait for its API, and for its hub connection if `connected`.
    pub fn start_agent_opts(&mut self, code: &str, connected: bool) {
        ok(self.d.start_agent(code, connected));
    }

    /// SIGKILL an agent.
    pub fn kill_agent(&mut self, code: &str) {
        self.d.kill_agent(code);
    }

    /// SIGTERM an agent and wait for it to exit.
    pub fn stop_agent(&mut self, code: &str) {
        ok(self.d.stop_agent(code));
    }

    fn api_base(&self, code: &str) -> Option<String> {
        Some(format!("http://{}", self.d.api_addr(code)?))
    }

    /// GET on an agent's local API; `None` if it is not answering or not 2xx.
    pub fn api_get(&self, code: &str, path: &str) -> Option<Value> {
        self.d.api_get(code, path)
    }

    /// Every item of a listing (`/v1/documents`, `/v1/inbox`, ...), following its cursor
    /// page by page; `None` if the agent is not answering or a page fails.
    pub fn api_list_get(&self, code: &str, path: &str) -> Option<Value> {
        self.d.api_list(code, path).map(Value::Array)
    }

    /// A whole listing that must succeed.
    pub fn api_list(&self, code: &str, path: &str) -> Value {
        self.api_list_get(code, path)
            .unwrap_or_else(|| panic!("listing {path} on agent {code} failed"))
    }

    /// GET that must succeed.
    pub fn api(&self, code: &str, path: &str) -> Value {
        self.api_get(code, path)
            .unwrap_or_else(|| panic!("GET {path} on agent {code} failed"))
    }

    /// Send `body` from `from` to `to` over the local HTTP API; returns the document ID.
    pub fn send(&self, from: &str, to: &[&str], subject: &str, body: &[u8]) -> String {
        self.try_send(from, to, subject, body)
            .unwrap_or_else(|e| panic!("send from {from}: {e}"))
    }

    /// Like [`Net::send`], but reports failures.
    pub fn try_send(
        &self,
        from: &str,
        to: &[&str],
        subject: &str,
        body: &[u8],
    ) -> Result<String, String> {
        self.handle(from).try_send(to, subject, body)
    }

    /// A handle on an agent's API that can be moved to another thread.
    pub fn handle(&self, code: &str) -> AgentHandle {
        AgentHandle {
            dir: self.agent_dir(code),
            http: self.http().clone(),
        }
    }

    /// Write `body` to a file and send it with `poros-agent send`; returns the document ID.
    pub fn send_cli(&self, from: &str, to: &[&str], subject: &str, body: &[u8]) -> String {
        let f = self.write_file(&format!("send-{}.bin", sha256_hex(body)), body);
        let out = self.agent_cli(&[
            "send",
            "--dir",
            &s(&self.agent_dir(from)),
            &s(&f),
            "--to",
            &to.join(","),
            "--subject",
            subject,
            "--number",
            "1/TEST",
        ]);
        assert_ok(&out, "poros-agent send");
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(id.len(), 36, "send printed {id:?}");
        id
    }

    pub fn write_file(&self, name: &str, body: &[u8]) -> PathBuf {
        let p = self.root.join("files").join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    /// Run `poros-agent` with `args`.
    pub fn agent_cli(&self, args: &[&str]) -> Output {
        run(AGENT_EXE, args)
    }

    /// Run `poros-agent <verb> --dir <code> [extra] --json` and parse its stdout.
    pub fn agent_json(&self, code: &str, verb: &str, extra: &[&str]) -> Value {
        let d = s(&self.agent_dir(code));
        let mut args = vec![verb, "--dir", &d];
        args.extend_from_slice(extra);
        args.push("--json");
        let out = self.agent_cli(&args);
        assert_ok(&out, &format!("poros-agent {verb}"));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "poros-agent {verb} printed non-JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Sender-side status of one document (`GET /v1/documents/ID`).
    pub fn status(&self, from: &str, id: &str) -> Value {
        self.api(from, &format!("/v1/documents/{id}"))
    }

    /// States of every recipient of `id` at the sender, by agency; empty if not answering.
    pub fn states(&self, from: &str, id: &str) -> BTreeMap<String, String> {
        let Some(v) = self.api_get(from, &format!("/v1/documents/{id}")) else {
            return BTreeMap::new();
        };
        recipient_states(&v)
    }

    /// Wait until every recipient of `id` is in `state` at the sender.
    pub fn wait_state(&self, from: &str, id: &str, state: &str) -> Value {
        let mut last = BTreeMap::new();
        let what = format!("{id} to be {state} at {from}");
        let done = poros_harness::wait_until(&what, DEADLINE, || {
            last = self.states(from, id);
            !last.is_empty() && last.values().all(|s| s == state)
        });
        if let Err(e) = done {
            panic!("{e}; last: {last:?}");
        }
        self.status(from, id)
    }

    /// IDs in an agent's inbox, with how often each occurs.
    pub fn inbox_counts(&self, code: &str) -> Option<BTreeMap<String, usize>> {
        let v = self.api_list_get(code, "/v1/inbox")?;
        let mut m = BTreeMap::new();
        for d in v.as_array()? {
            *m.entry(d["id"].as_str()?.to_string()).or_insert(0) += 1;
        }
        Some(m)
    }

    /// Body of a received document via the HTTP API.
    pub fn fetch(&self, code: &str, id: &str) -> Vec<u8> {
        let base = self.api_base(code).expect("agent running");
        let r = self
            .http()
            .get(format!("{base}/v1/inbox/{id}/body"))
            .send()
            .unwrap();
        assert!(
            r.status().is_success(),
            "fetch {id} at {code}: {}",
            r.status()
        );
        r.bytes().unwrap().to_vec()
    }

    /// SHA-256 (hex) of a received document's body as the agent serves it, read in chunks so
    /// any number of large bodies can be checked without holding them.
    pub fn fetch_sha256(&self, code: &str, id: &str) -> Result<String, String> {
        use std::io::Read;
        let base = self.api_base(code).ok_or("agent not running")?;
        let mut r = self
            .http()
            .get(format!("{base}/v1/inbox/{id}/body"))
            .send()
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("HTTP {}", r.status()));
        }
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return Ok(hex::encode(ctx.finish())),
                Ok(n) => ctx.update(&buf[..n]),
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.hub_dir.join("admin.token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// GET on the hub's admin API.
    pub fn admin_get(&self, path: &str) -> Value {
        let r = self
            .http()
            .get(format!("{}{path}", self.d.ops_base()))
            .bearer_auth(self.admin_token())
            .send()
            .unwrap_or_else(|e| panic!("admin GET {path}: {e}"));
        assert!(r.status().is_success(), "admin GET {path}: {}", r.status());
        r.json().unwrap()
    }

    /// Committed body files in the hub store (`data/bodies/<2 hex>/<64 hex>`).
    pub fn hub_body_files(&self) -> Vec<PathBuf> {
        body_files(&self.hub_dir.join("data/bodies"))
    }

    /// Every file in an agent's body store (`data/bodies`), staging files in `tmp/` included.
    pub fn agent_body_files(&self, code: &str) -> Vec<PathBuf> {
        let dir = self.agent_dir(code).join("data/bodies");
        let mut out = body_files(&dir);
        if let Ok(rd) = std::fs::read_dir(dir.join("tmp")) {
            out.extend(rd.flatten().map(|e| e.path()));
        }
        out
    }

    /// Print the tail of every log (used on failure).
    pub fn dump_logs(&self) {
        let Ok(rd) = std::fs::read_dir(self.root.join("logs")) else {
            return;
        };
        let mut files: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        for p in files {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(40);
            eprintln!(
                "----- {} (last {} lines) -----",
                p.display(),
                lines.len() - from
            );
            for l in &lines[from..] {
                eprintln!("{l}");
            }
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.d.kill_all();
        for m in std::mem::take(&mut self.mounts) {
            match Command::new("umount").arg(&m).output() {
                Ok(o) if o.status.success() => {}
                other => eprintln!("umount {}: {other:?}", m.display()),
            }
        }
        let keep = std::env::var_os("POROS_E2E_KEEP").is_some();
        if std::thread::panicking() {
            self.dump_logs();
            if !keep {
                eprintln!("(set POROS_E2E_KEEP=1 to keep {})", self.root.display());
            }
        }
        if keep {
            if let Some(t) = self.tmp.take() {
                eprintln!("keeping {}", t.keep().display());
            }
        }
    }
}

/// Committed body files under a body store (`<2 hex>/<64 hex>`; `tmp/` is skipped).
pub fn body_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if !p.is_dir() || name.len() != 2 {
            continue; // skips tmp/
        }
        for f in std::fs::read_dir(&p).unwrap().flatten() {
            if f.path().is_file() && f.file_name().len() == 64 {
                out.push(f.path());
            }
        }
    }
    out
}

/// An agent's local API, usable from any thread (re-reads `run/api.addr` on every call).
#[derive(Clone)]
pub struct AgentHandle {
    dir: PathBuf,
    http: reqwest::blocking::Client,
}

/// What became of one `POST /v1/documents`, as far as the caller can know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostOutcome {
    /// The agent answered with the document's ID: it is durably stored.
    Acknowledged(String),
    /// The agent answered with an error status: nothing was stored.
    Refused(String),
    /// The request never reached an agent (not running, connection refused).
    NotSent(String),
    /// The request went out but no complete answer came back (e.g. the agent was killed):
    /// the document may or may not exist.
    Unknown(String),
}

impl AgentHandle {
    /// POST a document; `Ok(id)` only when the agent acknowledged it (durably stored).
    pub fn try_send(&self, to: &[&str], subject: &str, body: &[u8]) -> Result<String, String> {
        match self.post(to, subject, body) {
            PostOutcome::Acknowledged(id) => Ok(id),
            PostOutcome::Refused(e) | PostOutcome::NotSent(e) | PostOutcome::Unknown(e) => Err(e),
        }
    }

    /// POST a document and classify the outcome (see [`PostOutcome`]).
    pub fn post(&self, to: &[&str], subject: &str, body: &[u8]) -> PostOutcome {
        let addr = match std::fs::read_to_string(self.dir.join("run/api.addr")) {
            Ok(a) => a,
            Err(e) => return PostOutcome::NotSent(format!("agent not running: {e}")),
        };
        let to = to.join(",");
        let r = match self
            .http
            .post(format!("http://{}/v1/documents", addr.trim()))
            .query(&[("to", to.as_str()), ("subject", subject)])
            .body(body.to_vec())
            .send()
        {
            Ok(r) => r,
            Err(e) if e.is_connect() => return PostOutcome::NotSent(e.to_string()),
            Err(e) => return PostOutcome::Unknown(e.to_string()),
        };
        let status = r.status();
        // A success status whose body was cut off leaves the outcome unknown; an error
        // status is a refusal whatever its body says.
        let v: Value = match r.json() {
            Ok(v) => v,
            Err(e) if status.is_success() => return PostOutcome::Unknown(e.to_string()),
            Err(e) => return PostOutcome::Refused(e.to_string()),
        };
        if !status.is_success() {
            return PostOutcome::Refused(format!("{status}: {v}"));
        }
        match v["id"].as_str() {
            Some(id) => PostOutcome::Acknowledged(id.to_string()),
            None => PostOutcome::Unknown(format!("no id in {v}")),
        }
    }
}

/// Per-recipient states from a `/v1/documents/ID` answer.
pub use poros_harness::recipient_states;

pub fn s(p: &Path) -> String {
    p.to_string_lossy().to_string()
}

pub fn run(exe: &str, args: &[&str]) -> Output {
    ok(poros_harness::output(Path::new(exe), args))
}

pub fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}): stdout: {} stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Replace the first `key = ...` line of a TOML file (panics naming what failed).
pub fn set_toml_key(path: &Path, key: &str, value: &str) {
    ok(poros_harness::set_toml_key(path, key, value));
}

// ---------------------------------------------------------------------------------------------
// Raw QUIC clients (for protocol-level refusal tests).

/// A rustls client config from certificate and key files.
pub fn client_tls(network_ca_pem: &str, cert_pem: &str, key_pem: &str) -> rustls::ClientConfig {
    let ca = poros_certs::pem_to_der_certs(network_ca_pem)
        .unwrap()
        .remove(0);
    let cert = poros_certs::pem_to_der_certs(cert_pem).unwrap();
    let key = rcgen_key_der(key_pem);
    poros_certs::agent_client_config(&ca, cert, key).unwrap()
}

fn rcgen_key_der(key_pem: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("k.pem");
    poros_certs::write_secret_file(&p, key_pem.as_bytes()).unwrap();
    let k = poros_certs::load_key_pem(&p).unwrap();
    poros_certs::key_pkcs8_der(&k)
}

/// The client config an agent directory's files give.
pub fn agent_tls(agent_dir: &Path) -> rustls::ClientConfig {
    let r = |p: &str| std::fs::read_to_string(agent_dir.join(p)).unwrap();
    client_tls(
        &r("certs/network-ca.crt"),
        &r("certs/tls.crt"),
        &r("keys/tls.key"),
    )
}

/// A QUIC client endpoint for `tls`.
pub fn endpoint(tls: rustls::ClientConfig) -> quinn::Endpoint {
    poros_transport::client_endpoint(tls, &poros_transport::Limits::default(), false).unwrap()
}

/// A small tokio runtime for raw-client code.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Node lifecycle helpers (admin CLI, token enrolment, metrics, logs).

impl Net {
    /// Run `poros-hub` with `args`.
    pub fn hub_cli(&self, args: &[&str]) -> Output {
        run(HUB_EXE, args)
    }

    /// Run `poros-hub <words...> --dir HUB [extra] --json` (must succeed) and parse stdout.
    pub fn hub_json(&self, words: &[&str], extra: &[&str]) -> Value {
        let d = s(&self.hub_dir);
        let mut args: Vec<&str> = words.to_vec();
        args.extend_from_slice(&["--dir", &d]);
        args.extend_from_slice(extra);
        args.push("--json");
        let out = self.hub_cli(&args);
        assert_ok(&out, &format!("poros-hub {}", words.join(" ")));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "poros-hub {} printed non-JSON ({e}): {}",
                words.join(" "),
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// `poros-hub node list --json`.
    pub fn node_list(&self) -> Value {
        self.hub_json(&["node", "list"], &[])
    }

    /// One agency's entry of `poros-hub node list --json`, if registered.
    pub fn node_entry(&self, code: &str) -> Option<Value> {
        self.node_list()
            .as_array()?
            .iter()
            .find(|n| n["agency"] == code)
            .cloned()
    }

    /// `poros-hub node show CODE --json`.
    pub fn node_show(&self, code: &str) -> Value {
        self.hub_json(&["node", "show"], &[code])
    }

    /// `poros-hub audit --json`.
    pub fn audit(&self) -> Value {
        self.hub_json(&["audit"], &[])
    }

    /// `poros-hub node <action> CODE` (suspend, resume, revoke); returns the raw output.
    pub fn node_action(&self, action: &str, code: &str) -> Output {
        self.hub_cli(&["node", action, "--dir", &s(&self.hub_dir), code])
    }

    /// `poros-hub node add` without requests: the raw output (the token is on stdout).
    pub fn try_issue_token(&self, code: &str) -> Output {
        ok(self.d.try_issue_token(code, &format!("Agency {code}")))
    }

    /// Register `code` as pending on the running hub and return its one-time token.
    pub fn issue_token(&self, code: &str) -> String {
        let out = self.try_issue_token(code);
        assert_ok(&out, "poros-hub node add (token)");
        let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            token.starts_with(poros_protocol::token::TOKEN_PREFIX),
            "node add printed {token:?}"
        );
        token
    }

    /// `poros-agent enroll --dir DIR --token TOKEN`; the raw output.
    pub fn enroll_dir(&self, dir: &Path, token: &str) -> Output {
        self.agent_cli(&["enroll", "--dir", &s(dir), "--token", token])
    }

    /// Token enrolment of `code` into `agent_dir(code)` (the hub must be running); the agent
    /// can then be started with [`Net::start_agent`].
    pub fn enroll_agent(&self, code: &str) {
        assert!(self.hub_running(), "token enrolment needs the running hub");
        let token = self.issue_token(code);
        let out = self.enroll_dir(&self.agent_dir(code), &token);
        assert_ok(&out, "poros-agent enroll");
    }

    /// The hub's Prometheus text (`/metrics`).
    pub fn metrics(&self) -> String {
        self.d
            .metrics()
            .unwrap_or_else(|e| panic!("GET /metrics: {e}"))
    }

    /// Value of one metric line (`name` including labels), 0 when absent.
    pub fn metric(&self, name: &str) -> u64 {
        poros_harness::metric_value(&self.metrics(), name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Everything a process wrote to `logs/<name>.log` so far.
    pub fn log_text(&self, name: &str) -> String {
        std::fs::read_to_string(self.d.log_path(name)).unwrap_or_default()
    }

    /// The shared HTTP client (for raw requests).
    pub fn http(&self) -> &reqwest::blocking::Client {
        self.d.http()
    }
}
