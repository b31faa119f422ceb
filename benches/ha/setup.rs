//! The configurations the `ha` bench compares and starting one: a database (none for redb,
//! a PostgreSQL server, a Patroni cluster), hub instances on it and the six agents pinned to
//! them; and what the running configuration costs (CPU by process kind, store statistics).

use crate::common::load::{RECEIVERS, SENDERS};
use crate::common::procstat::{cpu_secs, cpu_secs_path, ProcTable};
use crate::common::{Binaries, Deployment, Res, AGENT_EXE, HUB_EXE};
use poros_harness::{psql, PatroniCluster, PgServer};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Where the hub keeps its state.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Backend {
    Redb,
    /// One PostgreSQL server (`PgServer`).
    Pg,
    /// Two Patroni-managed nodes, synchronous_mode_strict (a commit waits for the standby).
    Patroni,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub name: String,
    pub backend: Backend,
    pub hubs: usize,
}

impl Config {
    pub fn parse(s: &str) -> Res<Config> {
        let (b, n) = s
            .trim()
            .split_once('-')
            .ok_or_else(|| format!("{s:?}: expected BACKEND-HUBS, e.g. pg-3"))?;
        let backend = match b {
            "redb" => Backend::Redb,
            "pg" => Backend::Pg,
            "patroni" => Backend::Patroni,
            _ => return Err(format!("{s:?}: backend is redb, pg or patroni").into()),
        };
        let hubs: usize = n.parse().map_err(|_| format!("{s:?}: hubs is a number"))?;
        if hubs == 0 || (backend == Backend::Redb && hubs != 1) {
            return Err(format!("{s:?}: redb serves exactly one hub, PostgreSQL 1 or more").into());
        }
        Ok(Config {
            name: s.trim().to_string(),
            backend,
            hubs,
        })
    }

    pub fn describe(&self) -> String {
        let store = match self.backend {
            Backend::Redb => "redb",
            Backend::Pg => "PostgreSQL (one server)",
            Backend::Patroni => "PostgreSQL (Patroni, primary + synchronous standby)",
        };
        format!(
            "{} hub{} on {store}",
            self.hubs,
            if self.hubs == 1 { "" } else { "s" }
        )
    }
}

/// The database behind the hubs, if any.
pub enum Db {
    Pg(PgServer),
    Patroni(PatroniCluster),
}

impl Db {
    fn url(&self) -> String {
        match self {
            Db::Pg(s) => s.url(),
            Db::Patroni(c) => c.url(),
        }
    }

    /// A path every one of its processes has on its command line (data directories, Patroni's
    /// configuration, etcd's data directory), to find them in `/proc`.
    fn dir(&self) -> PathBuf {
        match self {
            Db::Pg(s) => s.dir().to_path_buf(),
            Db::Patroni(c) => c.dir().to_path_buf(),
        }
    }
}

/// One configuration running: hubs, agents, database.
pub struct Net {
    /// Declared first, dropped first: the hubs and agents stop before their database.
    pub d: Deployment,
    pub db: Option<Db>,
    /// The senders' local API addresses, in the order of `SENDERS`.
    pub apis: Vec<String>,
}

fn io_err(what: String) -> impl FnOnce(std::io::Error) -> Box<dyn std::error::Error + Send + Sync> {
    move |e| format!("{what}: {e}").into()
}

/// Point agent `code` at hub instance `inst` only (`hub =` in its agent.toml), so the agents
/// are spread over the instances evenly and the same way in every run (an agent given the
/// whole list starts from a random entry).
fn pin_agent(d: &Deployment, code: &str, inst: usize) -> Res<()> {
    let toml = d.agent_dir(code).join("agent.toml");
    let text = std::fs::read_to_string(&toml).map_err(io_err(format!("reading {toml:?}")))?;
    let addr = d.instances()[inst].quic_listen();
    let mut done = false;
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            if !done && l.trim_start().starts_with("hub =") {
                done = true;
                format!("hub = [\"{addr}\"]")
            } else {
                l.to_string()
            }
        })
        .collect();
    if !done {
        return Err(format!("{toml:?} has no `hub =` line").into());
    }
    std::fs::write(&toml, lines.join("\n") + "\n").map_err(io_err(format!("writing {toml:?}")))?;
    Ok(())
}

impl Net {
    pub fn start(cfg: &Config, root: &Path) -> Res<Net> {
        let dir = root.join(&cfg.name);
        std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {dir:?}")))?;
        let db = match cfg.backend {
            Backend::Redb => None,
            Backend::Pg => Some(Db::Pg(PgServer::start(&dir, "pg")?)),
            Backend::Patroni => Some(Db::Patroni(PatroniCluster::start(&dir, 2)?)),
        };
        let mut d = Deployment::create(Binaries::new(HUB_EXE, AGENT_EXE), &dir.join("net"))?;
        d.set_rust_log("warn");
        if let Some(db) = &db {
            d.share_store(&db.url(), cfg.hubs)?;
        }
        d.start_hub()?;
        let codes: Vec<&str> = SENDERS.iter().chain(RECEIVERS.iter()).copied().collect();
        for code in &codes {
            d.register_agent(code, &format!("Bench agency {code}"))?;
        }
        for i in 1..cfg.hubs {
            d.start_instance(i)?;
        }
        for (k, code) in SENDERS.iter().enumerate() {
            pin_agent(&d, code, k % cfg.hubs)?;
        }
        for (k, code) in RECEIVERS.iter().enumerate() {
            pin_agent(&d, code, k % cfg.hubs)?;
        }
        d.start_agents(&codes, true)?;
        let apis = SENDERS
            .iter()
            .map(|c| d.api_addr(c).ok_or("a started agent has no API address"))
            .collect::<Result<Vec<String>, _>>()?;
        Ok(Net { d, db, apis })
    }

    /// The processes of the database, found by their directory on the command line, with
    /// everything they forked (postgres backends, Patroni's postgres).
    fn db_pids(&self, t: &ProcTable) -> BTreeSet<u32> {
        match &self.db {
            None => BTreeSet::new(),
            Some(db) => {
                let roots = t.matching_cmdline(&db.dir().to_string_lossy());
                t.tree(&roots)
            }
        }
    }

    /// CPU seconds so far by process kind.
    pub fn cpu(&self) -> BTreeMap<String, f64> {
        let t = ProcTable::read();
        let mut m: BTreeMap<String, f64> = BTreeMap::new();
        let hub_names: Vec<String> = self.d.instances().into_iter().map(|i| i.name).collect();
        for (name, pid) in self.d.procs().pids() {
            let Some(s) = cpu_secs(pid) else { continue };
            let kind = if hub_names.contains(&name) {
                *m.entry(format!("hub instance {name}")).or_default() += s;
                "hubs"
            } else if SENDERS.contains(&name.as_str()) {
                "sending agents"
            } else if RECEIVERS.contains(&name.as_str()) {
                "receiving agents"
            } else {
                "other children"
            };
            *m.entry(kind.to_string()).or_default() += s;
        }
        for (comm, s) in t.cpu_by_comm(&self.db_pids(&t)) {
            let kind = if comm.starts_with("postgres") {
                "postgres"
            } else {
                // patroni (a Python program) and etcd
                "patroni + etcd"
            };
            *m.entry(kind.to_string()).or_default() += s;
        }
        if let Some(s) = cpu_secs_path("/proc/self/stat") {
            m.insert("load generator".into(), s);
        }
        m
    }

    /// What the store holds and has done: database bytes, WAL position, transactions
    /// committed and rolled back (`pg_stat_database`: each backend reports its counts at most
    /// once a second, and up to 10 s late once it goes idle, so these are approximate at a
    /// phase's edges), and the next transaction ID (exact: only writing transactions take
    /// one); on redb the bytes of every hub directory and zeros.
    pub fn store_stats(&self) -> [u64; 5] {
        match &self.db {
            Some(db) => {
                let out = psql(
                    &db.url(),
                    "SELECT pg_database_size(current_database()) || ' ' \
                     || (pg_current_wal_lsn() - '0/0'::pg_lsn) || ' ' || xact_commit || ' ' \
                     || xact_rollback || ' ' || txid_current() \
                     FROM pg_stat_database WHERE datname = current_database()",
                )
                .unwrap_or_default();
                let mut v = [0u64; 5];
                for (slot, x) in v.iter_mut().zip(out.split_whitespace()) {
                    *slot = x.parse::<f64>().unwrap_or(0.0) as u64;
                }
                v
            }
            None => [
                self.d.instances().iter().map(|i| dir_bytes(&i.dir)).sum(),
                0,
                0,
                0,
                0,
            ],
        }
    }
}

/// Bytes of the files under `dir` (allocated size is not asked for: this is what was written).
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        match e.metadata() {
            Ok(m) if m.is_dir() => total += dir_bytes(&e.path()),
            Ok(m) => total += m.len(),
            Err(_) => {}
        }
    }
    total
}
