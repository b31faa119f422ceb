//! Real high-availability PostgreSQL for tests: [`PatroniCluster`], one etcd (v3 API) and N
//! PostgreSQL nodes each managed by its own Patroni, all on loopback ports, in synchronous
//! mode so that an acknowledged commit is on two servers.
//!
//! # Layout (under `root/patroni/`)
//! - `etcd/`: etcd's data (`data/`) and log (`etcd.log`).
//! - `node<i>/`: `patroni.yml`, `post_bootstrap.sh`, the data directory `data/`, the Unix
//!   socket, and `patroni.log` (Patroni's log; the postgres it starts inherits its stderr, so
//!   the server's log is there too).
//!
//! Nodes are numbered from 0; Patroni member `node<i>` is node `i`. As in [`crate::pg`], the
//! node directories belong to [`crate::pg::PG_USER`] when the harness runs as root, and
//! authentication is `trust` on 127.0.0.1 (tests only).
//!
//! # Timings
//! Patroni's dynamic configuration is bootstrapped with `ttl` [`TTL`] s, `loop_wait`
//! [`LOOP_WAIT`] s and `retry_timeout` [`RETRY_TIMEOUT`] s, within Patroni's rule
//! `loop_wait + 2 * retry_timeout <= ttl`: a leader that stops renewing its lock (its Patroni
//! is killed) loses it after at most `ttl`, and the synchronous standby takes over within a
//! `loop_wait` or two of that. (Patroni 3.0.2, Debian bookworm's, accepts a `ttl` this short;
//! later versions document a minimum of 20.)
//!
//! # Synchronous mode
//! `synchronous_mode: true` makes Patroni name one standby in `synchronous_standby_names` and
//! promote only that standby on failover, so no acknowledged commit is lost.
//! `synchronous_mode_strict: true` keeps a primary that has no standby left waiting for one
//! (`synchronous_standby_names = '*'`) instead of falling back to asynchronous commits: writes
//! then block rather than being acknowledged from one machine.

use crate::pg::{
    bin_dir, check_socket_dir, find_program, free_ports, io_err, kill_group, process_alive, psql,
    send_signal, Daemon, Owner, START_TIMEOUT,
};
use crate::pg::{APP_DB, APP_ROLE, SUPERUSER};
use crate::{wait_until, Error};
use serde_json::Value;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The Patroni cluster name (`scope`).
pub const SCOPE: &str = "poros";
/// Leader lock TTL, seconds.
pub const TTL: u32 = 10;
/// Seconds between two runs of Patroni's HA loop.
pub const LOOP_WAIT: u32 = 1;
/// Timeout of DCS and PostgreSQL operation retries, seconds.
pub const RETRY_TIMEOUT: u32 = 4;

/// Timeout of one call to a Patroni REST API.
const API_TIMEOUT: Duration = Duration::from_secs(2);

struct Node {
    name: String,
    dir: PathBuf,
    pg_port: u16,
    api_port: u16,
    patroni: Option<Daemon>,
}

impl Node {
    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }
}

/// One etcd and N Patroni nodes, started by [`PatroniCluster::start`]. Dropping it stops every
/// process (SIGTERM, then SIGKILL after the grace period) and leaves `root/patroni/` for the
/// test to inspect.
pub struct PatroniCluster {
    dir: PathBuf,
    owner: Owner,
    patroni_exe: PathBuf,
    etcd: Option<Daemon>,
    etcd_port: u16,
    nodes: Vec<Node>,
    http: reqwest::blocking::Client,
}

impl PatroniCluster {
    /// Start etcd and `nodes` Patroni nodes under `root/patroni/`, and wait until a primary
    /// serves the database `poros` to the role `poros` (created by the bootstrap script) and,
    /// with two nodes or more, a synchronous standby streams from it.
    pub fn start(root: &Path, nodes: usize) -> Result<PatroniCluster, Error> {
        if nodes == 0 {
            return Err(Error::Io {
                what: "a Patroni cluster needs at least one node".into(),
                source: std::io::ErrorKind::InvalidInput.into(),
            });
        }
        let bin = bin_dir()?;
        let patroni_exe = find_program("patroni", "patroni")?;
        let etcd_exe = find_program("etcd", "etcd-server")?;
        let owner = Owner::get()?;
        let root =
            fs::canonicalize(root).map_err(io_err(format!("resolving {}", root.display())))?;
        owner.open_root(&root)?;
        let dir = root.join("patroni");
        fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        if let Owner::User { .. } = owner {
            // Root's directory: the PostgreSQL user may pass through, not list it.
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o711))
                .map_err(io_err(format!("setting the mode of {}", dir.display())))?;
        }

        let ports = free_ports(2 + 2 * nodes)?;
        let (etcd_port, etcd_peer_port) = (ports[0], ports[1]);
        let http = reqwest::blocking::Client::builder()
            .timeout(API_TIMEOUT)
            .no_proxy()
            .build()
            .map_err(|e| Error::Io {
                what: "building the HTTP client".into(),
                source: std::io::Error::other(e),
            })?;
        let mut cluster = PatroniCluster {
            dir: dir.clone(),
            owner,
            patroni_exe,
            etcd: None,
            etcd_port,
            nodes: Vec::with_capacity(nodes),
            http,
        };
        for i in 0..nodes {
            let node = Node {
                name: format!("node{i}"),
                dir: dir.join(format!("node{i}")),
                pg_port: ports[2 + 2 * i],
                api_port: ports[3 + 2 * i],
                patroni: None,
            };
            owner.own_dir(&node.dir)?;
            owner.check_writable(&node.dir)?;
            check_socket_dir(&node.dir, node.pg_port)?;
            cluster.write_node_files(&node, &bin)?;
            cluster.nodes.push(node);
        }

        cluster.start_etcd(&etcd_exe, etcd_peer_port)?;
        for i in 0..nodes {
            cluster.spawn_patroni(i)?;
        }
        for i in 0..nodes {
            cluster.wait_api(i)?;
        }
        cluster.wait_primary(START_TIMEOUT)?;
        let url = cluster.url();
        wait_until(
            "the bootstrap script to create the role and database `poros`",
            START_TIMEOUT,
            || psql(&url, "SELECT 1").is_ok(),
        )?;
        if nodes > 1 {
            cluster.wait_sync_standby(START_TIMEOUT)?;
        }
        Ok(cluster)
    }

    /// Multi-host URL over every node, connecting to whichever accepts writes:
    /// `postgres://poros@127.0.0.1:P1,127.0.0.1:P2/poros?target_session_attrs=read-write`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.pg_port))
            .collect();
        format!(
            "postgres://{APP_ROLE}@{}/{APP_DB}?target_session_attrs=read-write",
            hosts.join(",")
        )
    }

    /// `postgres://poros@127.0.0.1:PORT/poros` for node `node` alone (a standby is read-only).
    pub fn node_url(&self, node: usize) -> String {
        format!(
            "postgres://{APP_ROLE}@127.0.0.1:{}/{APP_DB}",
            self.nodes[node].pg_port
        )
    }

    /// The bootstrap superuser on node `node`, for test set-up and inspection.
    pub fn superuser_url(&self, node: usize) -> String {
        format!(
            "postgres://{SUPERUSER}@127.0.0.1:{}/postgres",
            self.nodes[node].pg_port
        )
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The PostgreSQL port of node `node`.
    pub fn pg_port(&self, node: usize) -> u16 {
        self.nodes[node].pg_port
    }

    /// The base URL of node `node`'s Patroni REST API, `http://127.0.0.1:PORT`.
    pub fn api_url(&self, node: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[node].api_port)
    }

    /// `root/patroni`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Node `node`'s directory (`patroni.yml`, `data/`, `patroni.log`).
    pub fn node_dir(&self, node: usize) -> &Path {
        &self.nodes[node].dir
    }

    /// The one node whose Patroni answers `GET /primary` with 200 (it holds the leader lock)
    /// and reports its postgres running out of recovery (read-write); `None` if no node does,
    /// or more than one. (200 alone is not enough: Patroni answers it as soon as it has the
    /// lock, while postgres is still being promoted.)
    pub fn primary(&self) -> Option<usize> {
        let leaders: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| {
                self.api_get(i, "/primary").is_some_and(|(s, status)| {
                    s == 200
                        && status["state"] == "running"
                        && (status["role"] == "master" || status["role"] == "primary")
                })
            })
            .collect();
        match leaders[..] {
            [one] => Some(one),
            _ => None,
        }
    }

    /// Poll [`PatroniCluster::primary`] until there is one.
    pub fn wait_primary(&self, within: Duration) -> Result<usize, Error> {
        let mut found = None;
        wait_until("a Patroni primary", within, || {
            found = self.primary();
            found.is_some()
        })?;
        found.ok_or_else(|| unreachable_timeout("a Patroni primary", within))
    }

    /// The synchronous standby: a node other than the primary whose Patroni answers
    /// `GET /sync` with 200 and which the primary's `pg_stat_replication` (as reported by
    /// `GET /primary`) shows `streaming` with `sync_state = sync`.
    pub fn sync_standby(&self) -> Option<usize> {
        let primary = self.primary()?;
        let (_, status) = self.api_get(primary, "/primary")?;
        let streaming_sync: Vec<&str> = status["replication"]
            .as_array()?
            .iter()
            .filter(|r| r["state"] == "streaming" && r["sync_state"] == "sync")
            .filter_map(|r| r["application_name"].as_str())
            .collect();
        (0..self.nodes.len()).find(|&i| {
            i != primary
                && streaming_sync.contains(&self.nodes[i].name.as_str())
                && self.api_get(i, "/sync").is_some_and(|(s, _)| s == 200)
        })
    }

    /// Poll [`PatroniCluster::sync_standby`] until there is one.
    pub fn wait_sync_standby(&self, within: Duration) -> Result<usize, Error> {
        let what = "a streaming synchronous standby";
        let mut found = None;
        wait_until(what, within, || {
            found = self.sync_standby();
            found.is_some()
        })?;
        found.ok_or_else(|| unreachable_timeout(what, within))
    }

    /// SIGKILL node `node`'s postmaster and every process of its group (Patroni starts
    /// postgres in a session of its own), leaving its Patroni running: Patroni sees its
    /// postgres crashed. Panics if `node` is out of range.
    pub fn kill9_postgres(&mut self, node: usize) {
        if let Some(pid) = self.postmaster_pid(node) {
            send_signal("KILL", &pid.to_string());
            kill_group(pid);
        }
    }

    /// SIGKILL node `node`'s Patroni, then its postgres ([`PatroniCluster::kill9_postgres`]):
    /// the node is gone as if its machine had crashed, and it still holds the leader lock
    /// until the lock's TTL runs out. Panics if `node` is out of range.
    pub fn kill9_patroni(&mut self, node: usize) {
        if let Some(mut d) = self.nodes[node].patroni.take() {
            d.kill();
        }
        self.kill9_postgres(node);
    }

    /// Stop node `node` cleanly: SIGTERM to its Patroni, which shuts postgres down and, on the
    /// leader, releases the leader lock; after the grace period both are killed. Panics if
    /// `node` is out of range.
    pub fn stop_node(&mut self, node: usize) {
        if let Some(mut d) = self.nodes[node].patroni.take() {
            let _ = d.stop("TERM");
        }
        self.kill9_postgres(node);
    }

    /// Start node `node`'s Patroni (again) and wait until its REST API answers; whether it
    /// then runs as primary or standby (rewound or cloned if need be) is Patroni's business:
    /// wait for it with [`PatroniCluster::wait_primary`] or
    /// [`PatroniCluster::wait_sync_standby`]. Panics if `node` is out of range.
    pub fn start_node(&mut self, node: usize) -> Result<(), Error> {
        self.spawn_patroni(node)?;
        self.wait_api(node)
    }

    fn spawn_patroni(&mut self, node: usize) -> Result<(), Error> {
        let n = &self.nodes[node];
        if n.patroni.is_some() {
            return Err(Error::AlreadyRunning(n.name.clone()));
        }
        let mut cmd = self.owner.command(&self.patroni_exe);
        cmd.arg(n.dir.join("patroni.yml"))
            .current_dir(&n.dir)
            .env("HOME", &n.dir);
        let daemon = Daemon::spawn(
            &format!("patroni {}", n.name),
            &n.dir.join("patroni.log"),
            cmd,
        )?;
        self.nodes[node].patroni = Some(daemon);
        Ok(())
    }

    /// Wait until node `node`'s REST API answers (any status); [`Error::Exited`] if its
    /// Patroni exits first.
    fn wait_api(&mut self, node: usize) -> Result<(), Error> {
        let Some(mut daemon) = self.nodes[node].patroni.take() else {
            return Ok(());
        };
        let health = format!("{}/liveness", self.api_url(node));
        let http = &self.http;
        daemon.wait_ready(
            &format!("the REST API of Patroni {}", self.nodes[node].name),
            START_TIMEOUT,
            || http.get(&health).send().is_ok(),
        )?;
        self.nodes[node].patroni = Some(daemon);
        Ok(())
    }

    /// Stop every node (SIGTERM to every Patroni at once, then wait for each), then etcd.
    /// Drop also stops.
    pub fn stop(&mut self) {
        for n in &self.nodes {
            if let Some(d) = &n.patroni {
                d.signal("TERM");
            }
        }
        for i in 0..self.nodes.len() {
            if let Some(mut d) = self.nodes[i].patroni.take() {
                let _ = d.finish();
            }
            self.kill9_postgres(i);
        }
        if let Some(mut etcd) = self.etcd.take() {
            let _ = etcd.stop("TERM");
        }
    }

    /// A GET on node `node`'s Patroni REST API: the status and the JSON body (`Null` if the
    /// body is not JSON); `None` if the API does not answer.
    fn api_get(&self, node: usize, path: &str) -> Option<(u16, Value)> {
        self.nodes[node].patroni.as_ref()?;
        let resp = self
            .http
            .get(format!("{}{path}", self.api_url(node)))
            .send()
            .ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.json().unwrap_or(Value::Null)))
    }

    /// The pid of node `node`'s live postmaster, from `data/postmaster.pid`.
    fn postmaster_pid(&self, node: usize) -> Option<u32> {
        let pidfile = fs::read_to_string(self.nodes[node].data().join("postmaster.pid")).ok()?;
        let pid = pidfile.lines().next()?.trim().parse().ok()?;
        process_alive(pid, "postgres").then_some(pid)
    }

    fn start_etcd(&mut self, exe: &Path, peer_port: u16) -> Result<(), Error> {
        let dir = self.dir.join("etcd");
        Owner::Me.own_dir(&dir)?;
        let client = format!("http://127.0.0.1:{}", self.etcd_port);
        let peer = format!("http://127.0.0.1:{peer_port}");
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("--name")
            .arg("etcd0")
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("etcd0={peer}")])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "poros-test"])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .current_dir(&dir);
        let mut daemon = Daemon::spawn("etcd", &dir.join("etcd.log"), cmd)?;
        let health = format!("{client}/health");
        let http = &self.http;
        daemon.wait_ready("etcd to report healthy", START_TIMEOUT, || {
            http.get(&health)
                .send()
                .ok()
                .and_then(|r| r.json::<Value>().ok())
                .is_some_and(|v| v["health"] == "true")
        })?;
        self.etcd = Some(daemon);
        Ok(())
    }

    /// `patroni.yml` and `post_bootstrap.sh` in the node's directory, owned by the owner.
    fn write_node_files(&self, node: &Node, bin: &Path) -> Result<(), Error> {
        let script = node.dir.join("post_bootstrap.sh");
        let psql = bin.join("psql");
        let body = format!(
            "#!/bin/sh\n\
             # Run by Patroni once, on the node that initialises the cluster, with a superuser\n\
             # connection string as its argument.\n\
             set -e\n\
             {psql} -X -q -v ON_ERROR_STOP=1 -d \"$1\" \\\n\
             \x20   -c 'CREATE ROLE {APP_ROLE} LOGIN' \\\n\
             \x20   -c 'CREATE DATABASE {APP_DB} OWNER {APP_ROLE}'\n",
            psql = sh_quote(&psql.to_string_lossy()),
        );
        write_file(&script, &body, 0o755)?;
        self.owner.chown(&script)?;

        let config = node.dir.join("patroni.yml");
        write_file(&config, &self.config_yaml(node, bin, &script), 0o600)?;
        self.owner.chown(&config)
    }

    fn config_yaml(&self, node: &Node, bin: &Path, post_bootstrap: &Path) -> String {
        let q = |p: &Path| yaml_str(&p.to_string_lossy());
        let (pg, api, etcd) = (node.pg_port, node.api_port, self.etcd_port);
        format!(
            r#"# Written by poros-harness for a TEST cluster: trust authentication on 127.0.0.1,
# no watchdog, short timings. See config/ha/ for a production-style configuration.
scope: {SCOPE}
namespace: /poros-test/
name: {name}
log:
  level: INFO
restapi:
  listen: 127.0.0.1:{api}
  connect_address: 127.0.0.1:{api}
etcd3:
  hosts:
    - 127.0.0.1:{etcd}
bootstrap:
  dcs:
    ttl: {TTL}
    loop_wait: {LOOP_WAIT}
    retry_timeout: {RETRY_TIMEOUT}
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    synchronous_mode_strict: true
    postgresql:
      use_pg_rewind: true
      use_slots: true
      remove_data_directory_on_rewind_failure: true
      remove_data_directory_on_diverged_timelines: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: 64MB
  initdb:
    - encoding: UTF8
    - locale: C
  post_bootstrap: {post_bootstrap}
postgresql:
  listen: 127.0.0.1:{pg}
  connect_address: 127.0.0.1:{pg}
  data_dir: {data}
  bin_dir: {bin}
  pgpass: {pgpass}
  # pg_basebackup's default spread checkpoint would keep a new standby waiting minutes.
  basebackup:
    - checkpoint: fast
  authentication:
    superuser:
      username: {SUPERUSER}
      password: poros-test-superuser
    replication:
      username: replicator
      password: poros-test-replicator
  parameters:
    unix_socket_directories: {socket}
    fsync: "on"
    full_page_writes: "on"
    synchronous_commit: "on"
    recovery_init_sync_method: syncfs
    shared_buffers: 16MB
    log_line_prefix: "%m [%p] "
  pg_hba:
    - local all all trust
    - host replication replicator 127.0.0.1/32 trust
    - host all all 127.0.0.1/32 trust
watchdog:
  mode: "off"
"#,
            name = node.name,
            post_bootstrap = q(post_bootstrap),
            data = q(&node.data()),
            bin = q(bin),
            pgpass = q(&node.dir.join("pgpass")),
            socket = q(&node.dir),
        )
    }
}

impl Drop for PatroniCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// wait_until returned Ok, so the value was found; kept as an error rather than a panic.
fn unreachable_timeout(what: &str, after: Duration) -> Error {
    Error::Timeout {
        what: what.to_string(),
        after,
    }
}

/// A YAML double-quoted scalar (a JSON string is one).
fn yaml_str(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// A single-quoted shell word.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn write_file(path: &Path, body: &str, mode: u32) -> Result<(), Error> {
    fs::write(path, body).map_err(io_err(format!("writing {}", path.display())))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(io_err(format!("setting the mode of {}", path.display())))
}
