//! Poros configuration: `hub.toml` and `agent.toml`, parsed with serde and validated so that a
//! bad value fails at start with the file, the key and what is expected.
#![forbid(unsafe_code)]

use poros_protocol::AgencyId;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod hub_addrs;
pub use hub_addrs::{HubAddrError, HubAddrs};

/// Configuration failures; every message names the file, and the key where one is at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// TOML syntax, unknown key or wrong type (toml's message names the key and line).
    #[error("{path}: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// Parser message.
        message: String,
    },
    /// A value of the right type but outside what is allowed.
    #[error("{path}: key `{key}`: {expected}")]
    Invalid {
        /// File.
        path: PathBuf,
        /// Dotted key.
        key: &'static str,
        /// What is expected.
        expected: String,
    },
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// `path` only names the file in messages; the text has already been read.
fn parse<T: for<'de> Deserialize<'de>>(text: &str, path: &Path) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().replace('\n', " "),
    })
}

/// `hub.toml`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct HubConfig {
    /// Network settings.
    pub network: HubNetwork,
    /// Size and concurrency limits.
    pub limits: HubLimits,
    /// Delivery policy.
    pub delivery: DeliveryPolicy,
    /// Enrolment and certificate lifetimes.
    pub enrolment: Enrolment,
    /// Exchange statistics and the monitors' dashboard.
    pub monitoring: Monitoring,
    /// Where the hub keeps its state.
    pub store: HubStoreConfig,
}

/// Which store holds the hub's state.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// The embedded redb store in the deployment directory (one machine; the default).
    #[default]
    Redb,
    /// A PostgreSQL cluster shared by every hub instance (several machines).
    Postgres,
}

/// `[store]` of `hub.toml`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HubStoreConfig {
    /// `redb` (default) or `postgres`.
    pub backend: StoreBackend,
    /// For `postgres`: a libpq connection string listing every database host, e.g.
    /// `postgres://poros@db1:5432,db2:5432,db3:5432/poros?target_session_attrs=read-write`,
    /// so the hub follows the primary after a failover.
    pub url: String,
    /// File holding the database password (mode 0600), if the server asks for one; kept out
    /// of `hub.toml` so the configuration can be shared and read.
    pub password_file: Option<std::path::PathBuf>,
    /// Connections to the database per hub instance.
    pub pool_size: usize,
    /// A commit not confirmed within this many seconds (no synchronous standby, a lost
    /// primary) is answered as unavailable and resolved by reading later.
    pub commit_timeout_secs: u64,
    /// Name of this hub instance, unique in the deployment (leases and logs); the host name
    /// when empty.
    pub instance: String,
}

impl Default for HubStoreConfig {
    fn default() -> Self {
        HubStoreConfig {
            backend: StoreBackend::Redb,
            url: String::new(),
            password_file: None,
            pool_size: 16,
            commit_timeout_secs: 5,
            instance: String::new(),
        }
    }
}

/// `[monitoring]` of `hub.toml`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Monitoring {
    /// A delivery answered with a receipt within this many seconds counts as on time.
    pub on_time_secs: u64,
    /// Agencies whose delivery or electronic-exchange rate is below this percentage are
    /// highlighted on the dashboard.
    pub alert_below_percent: f64,
    /// A received document registered (`03`) within this many working days of its delivery
    /// counts as registered in time.
    pub registration_working_days: u32,
    /// Offset of the agencies' civil time from UTC, in seconds, for working days (e.g. 25200
    /// for UTC+7).
    pub utc_offset_secs: i64,
    /// Public holidays (`YYYY-MM-DD`, local dates), which are not working days.
    pub holidays: Vec<String>,
}

impl Default for Monitoring {
    fn default() -> Self {
        Monitoring {
            on_time_secs: 3600,
            alert_below_percent: 90.0,
            registration_working_days: 1,
            utc_offset_secs: 0,
            holidays: Vec::new(),
        }
    }
}

/// `[enrolment]` of `hub.toml`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Enrolment {
    /// QUIC address of the enrolment endpoint (server-authenticated, token-authorised).
    /// Port 0 picks a free port; tokens carry the address actually bound.
    pub listen: SocketAddr,
    /// Host name new agents check the hub's certificate against.
    pub server_name: String,
    /// How long an enrolment token stays valid, in seconds.
    pub token_ttl_secs: u64,
    /// Lifetime of node certificates, in seconds.
    pub cert_lifetime_secs: u64,
    /// After a renewal, how long the superseded certificates are still admitted while the agent
    /// switches to the new ones; they are retired (put on the CRLs) when the new TLS certificate
    /// is first used or when this runs out, whichever comes first.
    pub renewal_overlap_secs: u64,
    /// Enrolment requests processed at once (each holds a slot only while it is processed).
    pub max_in_progress: u32,
    /// Enrolment connections open at once from one source address.
    pub max_per_source: u32,
    /// Deadline for each step of an enrolment: the first request after the handshake, reading
    /// it, and delivering the answer. An idle connection is closed when it runs out.
    pub step_timeout_secs: u64,
}

impl Default for Enrolment {
    fn default() -> Self {
        Enrolment {
            listen: "127.0.0.1:0".parse().expect("literal"),
            server_name: "localhost".into(),
            token_ttl_secs: 24 * 3600,
            cert_lifetime_secs: 30 * 24 * 3600,
            renewal_overlap_secs: 600,
            max_in_progress: 32,
            max_per_source: 4,
            step_timeout_secs: 10,
        }
    }
}

/// `[network]` of `hub.toml`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HubNetwork {
    /// QUIC listen address for agents.
    pub listen: SocketAddr,
    /// Operations HTTP listener (health, metrics, admin API); loopback by default.
    pub ops_listen: SocketAddr,
}

/// `[limits]` of `hub.toml`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HubLimits {
    /// Largest document body accepted, in bytes.
    pub max_body_bytes: u64,
    /// Concurrent streams one node may open.
    pub max_streams_per_node: u32,
    /// Deliveries in flight to one node at a time.
    pub deliveries_in_flight: u32,
    /// Connected nodes at most.
    pub max_connections: u32,
    /// Connections being admitted at once (TLS handshake, identity and registry checks);
    /// further attempts are refused at once and their agents retry with backoff, so a
    /// reconnect storm never starves the nodes already connected.
    pub handshakes_in_flight: u32,
}

/// `[delivery]` of `hub.toml`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryPolicy {
    /// A delivery still pending after this many seconds expires and the sender is told.
    pub expiry_secs: u64,
    /// A body is removed this many seconds after every recipient has answered.
    pub body_retention_secs: u64,
    /// How often the hub looks for expired deliveries and removable bodies.
    pub sweep_interval_secs: u64,
    /// How often the hub re-reads every stored body and checks it against its hash
    /// (a background scrub); 0 disables the periodic scrub (`poros-hub scrub` still works).
    pub scrub_interval_secs: u64,
    /// A body file that no document references (left by a crash or a refused submission) is
    /// removed once it is this many seconds old; the hub looks at start and every
    /// `orphan_sweep_interval_secs`.
    pub orphan_grace_secs: u64,
    /// How often the hub looks for such files.
    pub orphan_sweep_interval_secs: u64,
}

impl Default for HubNetwork {
    fn default() -> Self {
        HubNetwork {
            listen: "127.0.0.1:7443".parse().expect("literal"),
            ops_listen: "127.0.0.1:7080".parse().expect("literal"),
        }
    }
}

impl Default for HubLimits {
    fn default() -> Self {
        HubLimits {
            max_body_bytes: 2 * 1024 * 1024 * 1024,
            max_streams_per_node: 256,
            deliveries_in_flight: 64,
            max_connections: 50_000,
            handshakes_in_flight: 256,
        }
    }
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            expiry_secs: 30 * 24 * 3600,
            body_retention_secs: 7 * 24 * 3600,
            sweep_interval_secs: 60,
            scrub_interval_secs: 24 * 3600,
            orphan_grace_secs: DEFAULT_ORPHAN_GRACE_SECS,
            orphan_sweep_interval_secs: 3600,
        }
    }
}

impl HubConfig {
    /// Load and validate.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_toml(&read(path)?, path)
    }

    /// Parse and validate `text`; `path` is only used to name the file in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let c: HubConfig = parse(text, path)?;
        c.validate(path)?;
        Ok(c)
    }

    /// Check ranges.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |key, expected: &str| {
            Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                key,
                expected: expected.to_string(),
            })
        };
        if self.limits.max_body_bytes == 0 {
            return bad("limits.max_body_bytes", "a size in bytes greater than 0");
        }
        if !(1..=10_000).contains(&self.limits.max_streams_per_node) {
            return bad("limits.max_streams_per_node", "between 1 and 10000");
        }
        if !(1..=10_000).contains(&self.limits.deliveries_in_flight) {
            return bad("limits.deliveries_in_flight", "between 1 and 10000");
        }
        if self.limits.max_connections == 0 {
            return bad("limits.max_connections", "at least 1");
        }
        if !(1..=100_000).contains(&self.limits.handshakes_in_flight) {
            return bad("limits.handshakes_in_flight", "between 1 and 100000");
        }
        if self.delivery.expiry_secs == 0 {
            return bad("delivery.expiry_secs", "a number of seconds greater than 0");
        }
        if self.enrolment.token_ttl_secs == 0 {
            return bad(
                "enrolment.token_ttl_secs",
                "a number of seconds greater than 0",
            );
        }
        if self.enrolment.cert_lifetime_secs < 10 {
            return bad(
                "enrolment.cert_lifetime_secs",
                "a number of seconds, at least 10",
            );
        }
        if self.enrolment.renewal_overlap_secs > 7 * 24 * 3600 {
            return bad(
                "enrolment.renewal_overlap_secs",
                "a number of seconds, at most 604800 (7 days)",
            );
        }
        if !(1..=10_000).contains(&self.enrolment.max_in_progress) {
            return bad("enrolment.max_in_progress", "between 1 and 10000");
        }
        if !(1..=1_000).contains(&self.enrolment.max_per_source) {
            return bad("enrolment.max_per_source", "between 1 and 1000");
        }
        if !(1..=600).contains(&self.enrolment.step_timeout_secs) {
            return bad(
                "enrolment.step_timeout_secs",
                "a number of seconds between 1 and 600",
            );
        }
        if self.enrolment.server_name.is_empty() {
            return bad("enrolment.server_name", "a DNS name in the hub certificate");
        }
        if self.store.backend == StoreBackend::Postgres
            && !(self.store.url.starts_with("postgres://")
                || self.store.url.starts_with("postgresql://"))
        {
            return bad(
                "store.url",
                "a postgres:// connection string (backend = \"postgres\")",
            );
        }
        if !(1..=1_000).contains(&self.store.pool_size) {
            return bad("store.pool_size", "between 1 and 1000");
        }
        if !(1..=600).contains(&self.store.commit_timeout_secs) {
            return bad(
                "store.commit_timeout_secs",
                "a number of seconds between 1 and 600",
            );
        }
        if self.monitoring.on_time_secs == 0 {
            return bad(
                "monitoring.on_time_secs",
                "a number of seconds greater than 0",
            );
        }
        if !(0.0..=100.0).contains(&self.monitoring.alert_below_percent) {
            return bad(
                "monitoring.alert_below_percent",
                "a percentage between 0 and 100",
            );
        }
        if !(1..=30).contains(&self.monitoring.registration_working_days) {
            return bad(
                "monitoring.registration_working_days",
                "a number of working days between 1 and 30",
            );
        }
        if self.monitoring.utc_offset_secs.abs() > 14 * 3600 {
            return bad(
                "monitoring.utc_offset_secs",
                "an offset from UTC between -50400 and 50400 seconds",
            );
        }
        if let Some(h) = self
            .monitoring
            .holidays
            .iter()
            .find(|h| !poros_protocol::text::is_calendar_date(h))
        {
            return bad(
                "monitoring.holidays",
                &format!("calendar dates written YYYY-MM-DD ({h:?} is not one)"),
            );
        }
        if self.delivery.orphan_grace_secs == 0 {
            return bad(
                "delivery.orphan_grace_secs",
                "a number of seconds greater than 0",
            );
        }
        if self.delivery.orphan_sweep_interval_secs == 0 {
            return bad(
                "delivery.orphan_sweep_interval_secs",
                "a number of seconds greater than 0",
            );
        }
        if self.delivery.sweep_interval_secs == 0 {
            return bad(
                "delivery.sweep_interval_secs",
                "a number of seconds greater than 0",
            );
        }
        Ok(())
    }
}

/// `agent.toml`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// This node's agency code.
    pub agency: AgencyId,
    /// The hub's QUIC address(es): `host:port`, a list of them (one per hub instance), or a
    /// name resolving to several; an agent whose hub goes away connects to another.
    pub hub: HubAddrs,
    /// A hub connection that carries nothing (not even keep-alives) for this many seconds
    /// is taken as dead and the agent connects to the next hub address; keep-alives are sent
    /// at a third of it. Unset: see [`AgentConfig::hub_idle_timeout`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_idle_timeout_secs: Option<u64>,
    /// Name the hub's certificate is checked against.
    #[serde(default = "default_server_name")]
    pub hub_server_name: String,
    /// Local HTTP API (loopback); port 0 picks a free port, written to `run/api.addr`.
    #[serde(default = "default_api_listen")]
    pub api_listen: SocketAddr,
    /// Largest body this agent will send or accept, in bytes.
    #[serde(default = "default_agent_max_body")]
    pub max_body_bytes: u64,
    /// Submissions in flight to the hub at once.
    #[serde(default = "default_submit_in_flight")]
    pub submit_in_flight: u32,
    /// A body file that no record references is removed once it is this many seconds old.
    #[serde(default = "default_orphan_grace")]
    pub orphan_grace_secs: u64,
    /// How often the agent looks for such files (also once at start).
    #[serde(default = "default_body_sweep_interval")]
    pub body_sweep_interval_secs: u64,
    /// The national platform's SDK protocol for existing document-management software
    /// (`[vdxp]`); absent or `enabled = false`: no such listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vdxp: Option<VdxpConfig>,
}

/// `[vdxp]` of `agent.toml`: the listener speaking the national platform's SDK protocol, so
/// an agency's document-management software switches to Poros by changing its endpoint and
/// secret. Every request carries an HMAC of its headers under the secret kept in
/// `secret_file` (mode 0600, made by `poros-agent vdxp enable`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VdxpConfig {
    /// Whether the listener runs.
    #[serde(default)]
    pub enabled: bool,
    /// Address it listens on (HTTP; put it behind the agency's TLS proxy when the DMS is on
    /// another machine). Port 0 picks a free port, written to `run/vdxp.addr`.
    #[serde(default = "default_vdxp_listen")]
    pub listen: SocketAddr,
    /// The shared secret's file, relative to the agent directory.
    #[serde(default = "default_vdxp_secret_file")]
    pub secret_file: String,
    /// A request whose `XroadVnpt-timestamp` is further than this from the agent's clock,
    /// either way, is refused; replays are refused within the same window.
    #[serde(default = "default_vdxp_window")]
    pub timestamp_window_secs: u64,
    /// The DMS's local time zone, as `+HH:MM`: the SDK writes its timestamps in local time
    /// without an offset. Vietnam's (`+07:00`) unless told otherwise.
    #[serde(default = "default_vdxp_utc_offset")]
    pub timestamp_utc_offset: String,
}

fn default_vdxp_listen() -> SocketAddr {
    "127.0.0.1:8088".parse().expect("literal")
}
fn default_vdxp_secret_file() -> String {
    "vdxp.secret".into()
}
fn default_vdxp_window() -> u64 {
    300
}
fn default_vdxp_utc_offset() -> String {
    "+07:00".into()
}

impl Default for VdxpConfig {
    fn default() -> Self {
        VdxpConfig {
            enabled: false,
            listen: default_vdxp_listen(),
            secret_file: default_vdxp_secret_file(),
            timestamp_window_secs: default_vdxp_window(),
            timestamp_utc_offset: default_vdxp_utc_offset(),
        }
    }
}

impl VdxpConfig {
    /// The time zone offset in seconds east of UTC, if `timestamp_utc_offset` is `+HH:MM` or
    /// `-HH:MM` within ±14 hours.
    pub fn utc_offset_secs(&self) -> Option<i64> {
        let s = self.timestamp_utc_offset.as_str();
        let (sign, rest) = match s.as_bytes().first()? {
            b'+' => (1, &s[1..]),
            b'-' => (-1, &s[1..]),
            _ => return None,
        };
        let (h, m) = rest.split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
        if h > 14 || m > 59 || h * 60 + m > 14 * 60 {
            return None;
        }
        Some(sign * (h * 3600 + m * 60))
    }

    /// Commented TOML of this section.
    pub fn to_toml(&self) -> String {
        format!(
            "\n[vdxp]\n\
             # The national platform's SDK protocol for the agency's document-management\n\
             # software: endpoint http://LISTEN, system id = this agency's code, secret in\n\
             # secret_file (mode 0600). Turned on by `poros-agent vdxp enable`.\n\
             enabled = {}\n\
             listen = \"{}\"\n\
             secret_file = {}\n\
             # Requests whose timestamp is further than this from the agent's clock are refused.\n\
             timestamp_window_secs = {}\n\
             # The DMS's time zone: its SDK writes local time without an offset.\n\
             timestamp_utc_offset = {}\n",
            self.enabled,
            self.listen,
            toml_string(&self.secret_file),
            self.timestamp_window_secs,
            toml_string(&self.timestamp_utc_offset),
        )
    }
}

fn default_server_name() -> String {
    "localhost".into()
}
fn default_api_listen() -> SocketAddr {
    "127.0.0.1:0".parse().expect("literal")
}
fn default_agent_max_body() -> u64 {
    2 * 1024 * 1024 * 1024
}
fn default_submit_in_flight() -> u32 {
    64
}
/// One hour: far longer than any send or delivery takes between staging a body and
/// committing the record that references it.
pub const DEFAULT_ORPHAN_GRACE_SECS: u64 = 3600;
fn default_orphan_grace() -> u64 {
    DEFAULT_ORPHAN_GRACE_SECS
}
fn default_body_sweep_interval() -> u64 {
    3600
}
/// The idle timeout of an agent with several hub addresses to move between (seconds): a hub
/// instance that went silent is left this soon (docs/high-availability.md).
pub const FAILOVER_IDLE_SECS: u64 = 10;
/// The idle timeout of an agent with one hub address (seconds). It has nowhere else to go, and
/// a restarted hub answers the next keep-alive with a stateless reset, so a short timeout
/// would only cost keep-alives: at 10 s (a keep-alive every 3.3 s), those of 10,000 agencies
/// were three quarters of an idle hub's CPU (`cargo bench --bench scale`).
pub const SINGLE_HUB_IDLE_SECS: u64 = 30;

impl AgentConfig {
    /// The hub connection's idle timeout when the hub names resolve to `addresses`
    /// addresses: `hub_idle_timeout_secs` if set, else [`FAILOVER_IDLE_SECS`] with several
    /// and [`SINGLE_HUB_IDLE_SECS`] with one.
    pub fn hub_idle_timeout(&self, addresses: usize) -> std::time::Duration {
        let secs = self.hub_idle_timeout_secs.unwrap_or(if addresses > 1 {
            FAILOVER_IDLE_SECS
        } else {
            SINGLE_HUB_IDLE_SECS
        });
        std::time::Duration::from_secs(secs)
    }

    /// A configuration with defaults for everything but the agency and hub.
    pub fn new(agency: AgencyId, hub: SocketAddr) -> Self {
        AgentConfig {
            agency,
            hub: hub.into(),
            hub_idle_timeout_secs: None,
            hub_server_name: default_server_name(),
            api_listen: default_api_listen(),
            max_body_bytes: default_agent_max_body(),
            submit_in_flight: default_submit_in_flight(),
            orphan_grace_secs: default_orphan_grace(),
            body_sweep_interval_secs: default_body_sweep_interval(),
            vdxp: None,
        }
    }

    /// Load and validate.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_toml(&read(path)?, path)
    }

    /// Parse and validate `text`; `path` is only used to name the file in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let c: AgentConfig = parse(text, path)?;
        let bad = |key, expected: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            expected: expected.to_string(),
        };
        if !c.api_listen.ip().is_loopback() {
            return Err(bad(
                "api_listen",
                "a loopback address (the local API has no authentication)",
            ));
        }
        if c.max_body_bytes == 0 {
            return Err(bad("max_body_bytes", "a size in bytes greater than 0"));
        }
        if !(1..=10_000).contains(&c.submit_in_flight) {
            return Err(bad("submit_in_flight", "between 1 and 10000"));
        }
        if c.hub_server_name.is_empty() {
            return Err(bad("hub_server_name", "a DNS name in the hub certificate"));
        }
        if c.hub_idle_timeout_secs
            .is_some_and(|s| !(3..=600).contains(&s))
        {
            return Err(bad(
                "hub_idle_timeout_secs",
                "a number of seconds between 3 and 600",
            ));
        }
        if c.orphan_grace_secs == 0 {
            return Err(bad(
                "orphan_grace_secs",
                "a number of seconds greater than 0",
            ));
        }
        if c.body_sweep_interval_secs == 0 {
            return Err(bad(
                "body_sweep_interval_secs",
                "a number of seconds greater than 0",
            ));
        }
        if let Some(v) = &c.vdxp {
            if !(1..=86_400).contains(&v.timestamp_window_secs) {
                return Err(bad(
                    "vdxp.timestamp_window_secs",
                    "between 1 and 86400 seconds",
                ));
            }
            if v.utc_offset_secs().is_none() {
                return Err(bad(
                    "vdxp.timestamp_utc_offset",
                    "an offset from UTC written +HH:MM or -HH:MM, at most 14 hours",
                ));
            }
            let f = std::path::Path::new(&v.secret_file);
            if v.secret_file.is_empty()
                || f.is_absolute()
                || f.components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(bad(
                    "vdxp.secret_file",
                    "a file name inside the agent directory",
                ));
            }
        }
        Ok(c)
    }

    /// Render as commented TOML.
    pub fn to_toml(&self) -> String {
        format!(
            "# Poros node agent configuration.\n\
             # This node's agency code (DDD.DD.DD.XDD); must match its certificates.\n\
             agency = \"{}\"\n\
             # The hub's QUIC address (host:port) and the name in its certificate. Several hub\n\
             # instances: a list, hub = [\"hub1:7000\", \"hub2:7000\"], or one name resolving\n\
             # to several; the agent moves to another when its hub goes away.\n\
             hub = {}\n\
             hub_server_name = {}\n\
             # A hub connection silent this long (seconds) is taken as dead; keep-alives go\n\
             # at a third of it. Unset: {} with several hub addresses (to move to another\n\
             # instance soon), {} with one (a restarted hub is noticed at the next keep-alive).\n\
             {}\n\
             # Local HTTP API for the agency's software and the CLI verbs; loopback only.\n\
             # Port 0 picks a free port; the bound address is written to run/api.addr.\n\
             api_listen = \"{}\"\n\
             # Largest document body sent or accepted, in bytes.\n\
             max_body_bytes = {}\n\
             # Submissions to the hub in flight at once.\n\
             submit_in_flight = {}\n\
             # Body files that no record references (left by a crash between staging a body\n\
             # and storing its document) are removed once older than this, in seconds;\n\
             # the agent looks for them at start and every body_sweep_interval_secs.\n\
             orphan_grace_secs = {}\n\
             body_sweep_interval_secs = {}\n",
            self.agency,
            self.hub.to_toml(),
            toml_string(&self.hub_server_name),
            FAILOVER_IDLE_SECS,
            SINGLE_HUB_IDLE_SECS,
            match self.hub_idle_timeout_secs {
                Some(secs) => format!("hub_idle_timeout_secs = {secs}"),
                None => format!("# hub_idle_timeout_secs = {SINGLE_HUB_IDLE_SECS}"),
            },
            self.api_listen,
            self.max_body_bytes,
            self.submit_in_flight,
            self.orphan_grace_secs,
            self.body_sweep_interval_secs
        ) + &self
            .vdxp
            .as_ref()
            .map(VdxpConfig::to_toml)
            .unwrap_or_default()
    }
}

/// `s` as a TOML string, quoted and escaped, so any text written into a rendered file loads
/// back unchanged.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The commented default `hub.toml` written by `poros-hub init`.
pub fn hub_toml_template(
    listen: SocketAddr,
    ops_listen: SocketAddr,
    enroll_listen: SocketAddr,
    server_name: &str,
) -> String {
    let d = HubConfig::default();
    format!(
        "# Poros hub configuration. Every key is optional; shown values are the defaults\n\
         # except where `poros-hub init` was told otherwise.\n\n\
         [network]\n\
         # QUIC address agents connect to (mutual TLS 1.3, ALPN poros/3; poros/1 still accepted).\n\
         listen = \"{listen}\"\n\
         # Operations HTTP listener: health, metrics, JSON API. Keep it on loopback.\n\
         ops_listen = \"{ops_listen}\"\n\n\
         [limits]\n\
         # Largest document body accepted, in bytes (default 2 GiB).\n\
         max_body_bytes = {}\n\
         # Concurrent streams one node may open.\n\
         max_streams_per_node = {}\n\
         # Deliveries in flight to one node at a time.\n\
         deliveries_in_flight = {}\n\
         # Connected nodes at most.\n\
         max_connections = {}\n\
         # Connections admitted at once; more attempts are refused and retried by their\n\
         # agents with backoff (a reconnect storm after a restart).\n\
         handshakes_in_flight = {}\n\n\
         [delivery]\n\
         # A delivery still pending after this long expires and the sender is told (30 days).\n\
         expiry_secs = {}\n\
         # Bodies are deleted this long after every recipient answered (7 days);\n\
         # metadata, acceptances and receipts are kept.\n\
         body_retention_secs = {}\n\
         # How often expiry and retention are checked.\n\
         sweep_interval_secs = {}\n\
         # How often every stored body is re-read and checked against its hash (daily);\n\
         # damaged bodies are asked again from their senders. 0 disables the periodic scrub.\n\
         scrub_interval_secs = {}\n\
         # Body files no document references (a crash between storing a body and its\n\
         # document) are removed once this many seconds old; checked at start and every\n\
         # orphan_sweep_interval_secs.\n\
         orphan_grace_secs = {}\n\
         orphan_sweep_interval_secs = {}\n\n\
         [enrolment]\n\
         # QUIC endpoint where new agencies redeem one-time tokens (no client certificate;\n\
         # the hub is authenticated by the CA pin in the token). Port 0 = any free port.\n\
         listen = \"{enroll_listen}\"\n\
         # Name in the hub certificate that new agents check.\n\
         server_name = {}\n\
         # Enrolment tokens expire after this long (24 h).\n\
         token_ttl_secs = {}\n\
         # Node certificates live this long (30 days); agents renew at two thirds.\n\
         cert_lifetime_secs = {}\n\
         # After a renewal the old certificates are admitted this long at most (10 min), then\n\
         # revoked; they are revoked at once when the agent first uses the new ones.\n\
         renewal_overlap_secs = {}\n\
         # Enrolments processed at once, enrolment connections per source address, and the\n\
         # deadline of each enrolment step (idle connections are closed when it runs out).\n\
         max_in_progress = {}\n\
         max_per_source = {}\n\
         step_timeout_secs = {}\n\n\
         [monitoring]\n\
         # A delivery whose receipt arrives within this long of acceptance is on time (1 h).\n\
         on_time_secs = {}\n\
         # Agencies below this delivery or electronic-exchange rate are highlighted.\n\
         alert_below_percent = {:.1}\n\
         # Business figures: a received document registered (03) within this many working\n\
         # days of delivery counts as registered in time; working days are Monday to Friday in\n\
         # the civil time at this offset from UTC (seconds), except the listed holidays.\n\
         registration_working_days = {}\n\
         utc_offset_secs = {}\n\
         holidays = []\n",
        d.limits.max_body_bytes,
        d.limits.max_streams_per_node,
        d.limits.deliveries_in_flight,
        d.limits.max_connections,
        d.limits.handshakes_in_flight,
        d.delivery.expiry_secs,
        d.delivery.body_retention_secs,
        d.delivery.sweep_interval_secs,
        d.delivery.scrub_interval_secs,
        d.delivery.orphan_grace_secs,
        d.delivery.orphan_sweep_interval_secs,
        toml_string(server_name),
        d.enrolment.token_ttl_secs,
        d.enrolment.cert_lifetime_secs,
        d.enrolment.renewal_overlap_secs,
        d.enrolment.max_in_progress,
        d.enrolment.max_per_source,
        d.enrolment.step_timeout_secs,
        d.monitoring.on_time_secs,
        d.monitoring.alert_below_percent,
        d.monitoring.registration_working_days,
        d.monitoring.utc_offset_secs,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(s: &str) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.toml");
        std::fs::write(&p, s).unwrap();
        (d, p)
    }

    /// The shipped example of a hub instance on PostgreSQL (`config/ha/hub-instance1.toml`)
    /// is a valid configuration saying what its comments say.
    #[test]
    fn the_ha_instance_example_parses() {
        let text = include_str!("../ha/hub-instance1.toml");
        let c = HubConfig::from_toml(text, Path::new("hub-instance1.toml")).unwrap();
        assert_eq!(c.store.backend, StoreBackend::Postgres);
        assert_eq!(c.store.instance, "hub1");
        assert!(c
            .store
            .url
            .contains("10.0.0.11:5432,10.0.0.12:5432,10.0.0.13:5432"));
        assert_eq!(c.store.pool_size, 16);
        assert_eq!(c.store.commit_timeout_secs, 5);
        assert_eq!(c.network.listen.to_string(), "10.0.1.21:7443");
    }

    #[test]
    fn template_parses_to_defaults() {
        let d = HubConfig::default();
        let (_t, p) = write(&hub_toml_template(
            d.network.listen,
            d.network.ops_listen,
            d.enrolment.listen,
            &d.enrolment.server_name,
        ));
        assert_eq!(HubConfig::load(&p).unwrap(), d);
    }

    #[test]
    fn errors_name_file_and_key() {
        let (_t, p) = write("[limits]\nmax_body_bytes = \"big\"\n");
        let e = HubConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("x.toml") && e.contains("max_body_bytes"), "{e}");
        let (_t, p) = write("[limits]\nmax_body_bytes = 0\n");
        let e = HubConfig::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("limits.max_body_bytes") && e.contains("greater than 0"),
            "{e}"
        );
        let (_t, p) = write("[network]\nlisten = \"nowhere\"\n");
        let e = HubConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("listen"), "{e}");
        let (_t, p) = write("[delivery]\nexpiry = 3\n");
        let e = HubConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("unknown field") && e.contains("expiry"), "{e}");
        let (_t, p) = write("[monitoring]\nholidays = [\"2026-02-30\"]\n");
        let e = HubConfig::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("monitoring.holidays") && e.contains("2026-02-30"),
            "{e}"
        );
        let (_t, p) = write("[monitoring]\nregistration_working_days = 0\n");
        let e = HubConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("registration_working_days"), "{e}");
    }

    /// Found by the `config` fuzz target: a server name holding a quote or a backslash
    /// (valid in a TOML literal string) was rendered unescaped, so the file `poros-agent`
    /// writes, and the template `poros-hub init` writes, did not load again.
    #[test]
    fn rendered_files_escape_their_strings() {
        let path = Path::new("agent.toml");
        for name in ["h\\x", "a\"b", "tab\there", "new\nline", "h\\"] {
            let mut c = AgentConfig::new(
                AgencyId::parse("000.00.00.G22").unwrap(),
                "127.0.0.1:7443".parse().unwrap(),
            );
            c.hub_server_name = name.to_string();
            let again = AgentConfig::from_toml(&c.to_toml(), path)
                .unwrap_or_else(|e| panic!("server name {name:?}: {e}"));
            assert_eq!(again, c);

            let d = HubConfig::default();
            let text = hub_toml_template(
                d.network.listen,
                d.network.ops_listen,
                d.enrolment.listen,
                name,
            );
            let hub = HubConfig::from_toml(&text, Path::new("hub.toml"))
                .unwrap_or_else(|e| panic!("server name {name:?}: {e}"));
            assert_eq!(hub.enrolment.server_name, name);
        }
    }

    #[test]
    fn agent_config_round_trip_and_checks() {
        let c = AgentConfig::new(
            AgencyId::parse("000.00.00.G22").unwrap(),
            "127.0.0.1:7443".parse().unwrap(),
        );
        let (_t, p) = write(&c.to_toml());
        assert_eq!(AgentConfig::load(&p).unwrap(), c);
        let (_t, p) = write(&c.to_toml().replace("000.00.00.G22", "G22"));
        let e = AgentConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("agency") && e.contains("DDD.DD.DD.XDD"), "{e}");
        let (_t, p) = write(&c.to_toml().replace("127.0.0.1:0", "0.0.0.0:8080"));
        let e = AgentConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("api_listen") && e.contains("loopback"), "{e}");
        let (_t, p) = write("agency = \"000.00.00.G22\"\n");
        let e = AgentConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("hub"), "{e}");
    }

    #[test]
    fn hub_idle_timeout_is_short_only_where_there_is_another_hub_to_go_to() {
        let mut c = AgentConfig::new(
            AgencyId::parse("000.00.00.G22").unwrap(),
            "127.0.0.1:7443".parse().unwrap(),
        );
        let secs = |d: std::time::Duration| d.as_secs();
        assert_eq!(secs(c.hub_idle_timeout(1)), SINGLE_HUB_IDLE_SECS);
        assert_eq!(secs(c.hub_idle_timeout(3)), FAILOVER_IDLE_SECS);
        // Unset, the rendered file shows the default commented out and loads unset.
        let text = c.to_toml();
        assert!(text.contains("# hub_idle_timeout_secs = 30\n"), "{text}");
        let (_t, p) =
            write(&text.replace("# hub_idle_timeout_secs = 30", "hub_idle_timeout_secs = 7"));
        c.hub_idle_timeout_secs = Some(7);
        assert_eq!(AgentConfig::load(&p).unwrap(), c);
        assert_eq!(
            (secs(c.hub_idle_timeout(1)), secs(c.hub_idle_timeout(3))),
            (7, 7)
        );
        let (_t, p) = write(&c.to_toml());
        assert_eq!(AgentConfig::load(&p).unwrap(), c);
        let (_t, p) = write(&c.to_toml().replace("= 7", "= 2"));
        let e = AgentConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("hub_idle_timeout_secs"), "{e}");
    }

    #[test]
    fn vdxp_section_round_trips_and_names_bad_keys() {
        let mut c = AgentConfig::new(
            AgencyId::parse("000.00.00.G22").unwrap(),
            "127.0.0.1:7443".parse().unwrap(),
        );
        c.vdxp = Some(VdxpConfig {
            enabled: true,
            listen: "0.0.0.0:8088".parse().unwrap(),
            ..Default::default()
        });
        let text = c.to_toml();
        let (_t, p) = write(&text);
        assert_eq!(AgentConfig::load(&p).unwrap(), c);
        assert_eq!(c.vdxp.as_ref().unwrap().utc_offset_secs(), Some(7 * 3600));
        for (from, to, key) in [
            ("\"+07:00\"", "\"7\"", "vdxp.timestamp_utc_offset"),
            ("\"+07:00\"", "\"+15:00\"", "vdxp.timestamp_utc_offset"),
            (
                "timestamp_window_secs = 300",
                "timestamp_window_secs = 0",
                "vdxp.timestamp_window_secs",
            ),
            (
                "\"vdxp.secret\"",
                "\"../../etc/passwd\"",
                "vdxp.secret_file",
            ),
            ("\"vdxp.secret\"", "\"/etc/secret\"", "vdxp.secret_file"),
        ] {
            assert!(text.contains(from), "{from} not in {text}");
            let (_t, p) = write(&text.replace(from, to));
            let e = AgentConfig::load(&p).unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
        let off = VdxpConfig {
            timestamp_utc_offset: "-03:30".into(),
            ..Default::default()
        };
        assert_eq!(off.utc_offset_secs(), Some(-(3 * 3600 + 1800)));
    }
}
