//! Real PostgreSQL for tests: [`PgServer`], one `postgres` from the distribution's packages
//! (`/usr/lib/postgresql/<version>/bin`) with its data under the test's root, on a free
//! loopback port; and [`psql`], to run SQL against any server through the packaged client.
//!
//! # Who runs PostgreSQL
//! PostgreSQL refuses to run as root. When the harness runs as root (CI does, for the tests
//! that mount tmpfs filesystems), it creates the system user [`PG_USER`] once (idempotently,
//! `useradd --system`) and runs `initdb`, `postgres` and Patroni as that user through
//! `setpriv`. The directories those processes write are created owned by it with mode 0700.
//! The test's root directory itself is typically a `tempfile` directory of mode 0700 owned by
//! root, which that user could not even enter: the harness adds the search bit for others
//! (`o+x`, not read) to that one directory, and checks, as the user, that its own directory
//! is writable (every directory above the root must be searchable, as `/tmp` is). Not root:
//! everything runs as the current user and no mode is changed outside the harness's own
//! directories.
//!
//! # Authentication (tests only)
//! `pg_hba.conf` trusts every connection over the server's Unix socket and from 127.0.0.1,
//! without a password. That is acceptable only for a test server on loopback; see
//! `config/ha/` for a production-style setup.
//!
//! # Durability
//! These servers back durability tests: `fsync`, `full_page_writes` and `synchronous_commit`
//! stay on. Only memory (`shared_buffers`) is kept small.
//!
//! # Processes
//! Each long-running process ([`Daemon`]) leads its own process group and writes stdout and
//! stderr to a log file under the root (a restart appends a `===== start` line). Stopping is a
//! signal, a wait of [`STOP_GRACE`], then SIGKILL to the whole group; the files stay for the
//! test to inspect.

use crate::procs::STOP_GRACE;
use crate::{free_port, run_cmd, wait_until, Error};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// The OS user PostgreSQL and Patroni run as when the harness runs as root.
pub const PG_USER: &str = "poros-pg";
/// The application role (not a superuser) and the database it owns.
pub const APP_ROLE: &str = "poros";
pub const APP_DB: &str = "poros";
/// The bootstrap superuser, used only to create the application role and database.
pub const SUPERUSER: &str = "postgres";

/// How long a server (or a Patroni cluster) gets to come up.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Where Debian's server packages put the binaries, one directory per major version.
const PG_LIB: &str = "/usr/lib/postgresql";

/// Longest Unix socket path the kernel accepts (`sun_path` is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// A program the harness needs is not installed: the error names the Debian package.
pub(crate) fn missing(what: &str, package: &str) -> Error {
    Error::Io {
        what: format!(
            "{what} not found: install Debian's `{package}` package (scripts/test.sh installs it)"
        ),
        source: std::io::ErrorKind::NotFound.into(),
    }
}

/// The server binaries of the newest PostgreSQL installed (`/usr/lib/postgresql/<ver>/bin`,
/// the one holding `initdb`, `postgres`, `pg_ctl`, `psql` and `pg_isready`).
pub fn bin_dir() -> Result<PathBuf, Error> {
    let mut best: Option<(u32, PathBuf)> = None;
    for entry in fs::read_dir(PG_LIB).into_iter().flatten().flatten() {
        let Some(version) = entry
            .file_name()
            .to_str()
            .and_then(|v| v.parse::<u32>().ok())
        else {
            continue;
        };
        let bin = entry.path().join("bin");
        let complete = ["initdb", "postgres", "pg_isready", "psql"]
            .iter()
            .all(|b| bin.join(b).is_file());
        if complete && best.as_ref().is_none_or(|(v, _)| version > *v) {
            best = Some((version, bin));
        }
    }
    best.map(|(_, bin)| bin).ok_or_else(|| {
        missing(
            &format!("PostgreSQL server and client binaries under {PG_LIB}/<version>/bin"),
            "postgresql",
        )
    })
}

/// `name` on `PATH` (or in /usr/bin, /usr/sbin), else an error naming `package`.
pub(crate) fn find_program(name: &str, package: &str) -> Result<PathBuf, Error> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| missing(&format!("`{name}`"), package))
}

/// `psql` with `sql` against `url`, unaligned and tuples only, stopping at the first error:
/// its trimmed output, or [`Error::Command`] quoting psql's stderr. No timeout: a statement
/// that blocks (a commit waiting for a synchronous standby) blocks the caller; use
/// [`psql_command`] to run it in the background.
pub fn psql(url: &str, sql: &str) -> Result<String, Error> {
    let exe = bin_dir()?.join("psql");
    run_cmd(&exe, &psql_args(url, sql))
}

/// The [`psql`] command for `url` and `sql`, not started (stdin null), for a caller that needs
/// to watch or kill it.
pub fn psql_command(url: &str, sql: &str) -> Result<Command, Error> {
    let mut cmd = Command::new(bin_dir()?.join("psql"));
    cmd.args(psql_args(url, sql)).stdin(Stdio::null());
    Ok(cmd)
}

fn psql_args<'a>(url: &'a str, sql: &'a str) -> [&'a str; 10] {
    [
        "-X",
        "-q",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        url,
        "-c",
        sql,
    ]
}

/// Whether the harness process runs as root (effective uid 0, from /proc/self/status).
fn running_as_root() -> Result<bool, Error> {
    let status =
        fs::read_to_string("/proc/self/status").map_err(io_err("reading /proc/self/status"))?;
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|id| id.parse::<u32>().ok());
    Ok(euid == Some(0))
}

/// Serialises `useradd` between the tests of one process (`/etc/passwd` is locked by it).
static USERADD: Mutex<()> = Mutex::new(());

/// Who runs PostgreSQL and Patroni: the current user, or [`PG_USER`] when that is root.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Owner {
    Me,
    User { uid: u32, gid: u32 },
}

impl Owner {
    /// The current user, or (as root) [`PG_USER`], created if missing.
    pub(crate) fn get() -> Result<Owner, Error> {
        if !running_as_root()? {
            return Ok(Owner::Me);
        }
        let _guard = USERADD.lock().unwrap_or_else(|e| e.into_inner());
        if lookup_id("-u").is_err() {
            let created = run_cmd(
                &find_program("useradd", "passwd")?,
                &[
                    "--system",
                    "--no-create-home",
                    "--user-group",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    "--comment",
                    "PostgreSQL of the Poros test harness",
                    PG_USER,
                ],
            );
            // Another process may have created it meanwhile: only its absence is an error.
            if let (Err(e), Err(_)) = (created, lookup_id("-u")) {
                return Err(e);
            }
        }
        Ok(Owner::User {
            uid: lookup_id("-u")?,
            gid: lookup_id("-g")?,
        })
    }

    /// `exe` run as this owner (through `setpriv` when that is [`PG_USER`]); the caller adds
    /// the arguments.
    pub(crate) fn command(&self, exe: &Path) -> Command {
        match self {
            Owner::Me => Command::new(exe),
            Owner::User { uid, gid } => {
                let mut cmd = Command::new("setpriv");
                cmd.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--init-groups")
                    .arg("--")
                    .arg(exe);
                cmd
            }
        }
    }

    /// As [`PG_USER`]: give `root` the search bit for others, so that user can reach the
    /// directories the harness creates for it below. A no-op for the current user.
    pub(crate) fn open_root(&self, root: &Path) -> Result<(), Error> {
        if let Owner::User { .. } = self {
            let meta = fs::metadata(root).map_err(io_err(format!("reading {}", root.display())))?;
            let mode = meta.permissions().mode();
            if mode & 0o001 == 0 {
                fs::set_permissions(root, fs::Permissions::from_mode(mode | 0o001))
                    .map_err(io_err(format!("adding o+x to {}", root.display())))?;
            }
        }
        Ok(())
    }

    /// Create `dir` (and its parents) if missing, mode 0700, owned by this owner.
    pub(crate) fn own_dir(&self, dir: &Path) -> Result<(), Error> {
        fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(io_err(format!("setting the mode of {}", dir.display())))?;
        self.chown(dir)
    }

    /// Hand `path` (a file or directory the harness wrote) to this owner.
    pub(crate) fn chown(&self, path: &Path) -> Result<(), Error> {
        if let Owner::User { uid, gid } = self {
            std::os::unix::fs::chown(path, Some(*uid), Some(*gid))
                .map_err(io_err(format!("giving {} to {PG_USER}", path.display())))?;
        }
        Ok(())
    }

    /// Check, as this owner, that `dir` can be entered and written.
    pub(crate) fn check_writable(&self, dir: &Path) -> Result<(), Error> {
        if let Owner::Me = self {
            return Ok(());
        }
        let ok = self
            .command(Path::new("test"))
            .arg("-w")
            .arg(dir)
            .arg("-a")
            .arg("-x")
            .arg(dir)
            .stdin(Stdio::null())
            .status()
            .map_err(io_err("running `setpriv test`"))?
            .success();
        if ok {
            return Ok(());
        }
        Err(Error::Io {
            what: format!(
                "{PG_USER} cannot write {}: every directory above it must be searchable by others",
                dir.display()
            ),
            source: std::io::ErrorKind::PermissionDenied.into(),
        })
    }
}

/// `id <flag> poros-pg`: the uid (`-u`) or gid (`-g`) of [`PG_USER`].
fn lookup_id(flag: &str) -> Result<u32, Error> {
    let out = run_cmd(Path::new("id"), &[flag, PG_USER])?;
    out.parse().map_err(|_| Error::Io {
        what: format!("reading the output of `id {flag} {PG_USER}`: {out:?}"),
        source: std::io::ErrorKind::InvalidData.into(),
    })
}

/// Send `signal` (a name such as `TERM`) to `target`, a pid or `-pgid`. std has no signals
/// and this crate forbids unsafe code: kill(1) sends it.
pub(crate) fn send_signal(signal: &str, target: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(target)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// `(state, process group, command name)` of a process from /proc, if it exists.
fn proc_stat(pid: u32) -> Option<(char, u32, String)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    let mut rest = stat[close + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let _ppid = rest.next()?;
    let pgrp = rest.next()?.parse().ok()?;
    Some((state, pgrp, comm))
}

/// Whether `pid` is a live (not zombie) process named `comm`.
pub(crate) fn process_alive(pid: u32, comm: &str) -> bool {
    matches!(proc_stat(pid), Some((state, _, c)) if !matches!(state, 'Z' | 'X') && c == comm)
}

/// Whether any live process is in process group `pgid`.
fn group_alive(pgid: u32) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        e.file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
            .and_then(proc_stat)
            .is_some_and(|(state, pgrp, _)| pgrp == pgid && !matches!(state, 'Z' | 'X'))
    })
}

/// SIGKILL every process of group `pgid` and wait (up to [`STOP_GRACE`]) until none is left.
pub(crate) fn kill_group(pgid: u32) {
    send_signal("KILL", &format!("-{pgid}"));
    let _ = wait_until(&format!("process group {pgid} to die"), STOP_GRACE, || {
        !group_alive(pgid)
    });
}

/// A long-running child leading its own process group, with stdout and stderr appended to a
/// log file. Dropped while running, its whole group is killed.
pub(crate) struct Daemon {
    name: String,
    log: PathBuf,
    child: Child,
    /// Reaped (stopped or killed): nothing left to do on drop.
    done: bool,
}

impl Daemon {
    /// Start `cmd` as `name` in a new process group, logging to `log`.
    pub(crate) fn spawn(name: &str, log: &Path, mut cmd: Command) -> Result<Daemon, Error> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(io_err(format!("opening {}", log.display())))?;
        let _ = writeln!(file, "===== start {name} =====");
        let stdout = file
            .try_clone()
            .map_err(io_err(format!("duplicating {}", log.display())))?;
        cmd.stdin(Stdio::null())
            .stdout(stdout)
            .stderr(file)
            .process_group(0);
        let child = cmd.spawn().map_err(io_err(format!("starting {name}")))?;
        Ok(Daemon {
            name: name.to_string(),
            log: log.to_path_buf(),
            child,
            done: false,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has exited on its own.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Poll `ready` until it holds; [`Error::Exited`] as soon as the process exits instead.
    pub(crate) fn wait_ready(
        &mut self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), Error> {
        let mut exited = None;
        wait_until(what, timeout, || {
            exited = self.exited();
            exited.is_some() || ready()
        })?;
        match exited {
            None => Ok(()),
            Some(status) => {
                self.done = true;
                kill_group(self.pid());
                Err(Error::Exited {
                    name: self.name.clone(),
                    status,
                    log: self.log.clone(),
                })
            }
        }
    }

    /// Send `signal` to the process (not its group).
    pub(crate) fn signal(&self, signal: &str) {
        if !self.done {
            send_signal(signal, &self.pid().to_string());
        }
    }

    /// Wait up to [`STOP_GRACE`] for the process to exit (after [`Daemon::signal`]), then kill
    /// whatever is left of its group; [`Error::NotStopped`] if it had to be killed.
    pub(crate) fn finish(&mut self) -> Result<(), Error> {
        if self.done {
            return Ok(());
        }
        let exited = wait_until(&self.name, STOP_GRACE, || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        self.kill();
        exited.map_err(|_| Error::NotStopped {
            name: self.name.clone(),
            after: STOP_GRACE,
        })
    }

    /// `signal`, then [`Daemon::finish`].
    pub(crate) fn stop(&mut self, signal: &str) -> Result<(), Error> {
        self.signal(signal);
        self.finish()
    }

    /// SIGKILL the whole group, reap the process and wait for the group to be gone.
    pub(crate) fn kill(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        kill_group(self.pid());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One PostgreSQL server: its directory `root/<name>` (data in `data/`, the Unix socket, and
/// the logs `initdb.log` and `postgres.log`), its loopback port and its postmaster. Dropping
/// it stops the server (fast shutdown) and leaves the directory.
pub struct PgServer {
    dir: PathBuf,
    data: PathBuf,
    port: u16,
    bin: PathBuf,
    owner: Owner,
    postmaster: Option<Daemon>,
}

impl PgServer {
    /// initdb in `root/<name>` (unless it already holds a cluster, which is then reused) and
    /// start postgres on 127.0.0.1:<free port>, as [`PG_USER`] when running as root
    /// (PostgreSQL refuses root). A fresh cluster gets the role `poros` (login, no superuser)
    /// and the database `poros` owned by it.
    pub fn start(root: &Path, name: &str) -> Result<PgServer, Error> {
        let bin = bin_dir()?;
        let owner = Owner::get()?;
        let root =
            fs::canonicalize(root).map_err(io_err(format!("resolving {}", root.display())))?;
        owner.open_root(&root)?;
        let dir = root.join(name);
        owner.own_dir(&dir)?;
        owner.check_writable(&dir)?;
        let port = free_port()?;
        check_socket_dir(&dir, port)?;
        let data = dir.join("data");
        let fresh = !data.join("PG_VERSION").exists();
        let mut server = PgServer {
            dir,
            data,
            port,
            bin,
            owner,
            postmaster: None,
        };
        if fresh {
            server.initdb()?;
        }
        server.launch()?;
        if fresh {
            let su = server.superuser_url();
            psql(&su, &format!("CREATE ROLE {APP_ROLE} LOGIN"))?;
            psql(&su, &format!("CREATE DATABASE {APP_DB} OWNER {APP_ROLE}"))?;
        }
        Ok(server)
    }

    /// `postgres://poros@127.0.0.1:PORT/poros`: the application role on its database.
    pub fn url(&self) -> String {
        format!("postgres://{APP_ROLE}@127.0.0.1:{}/{APP_DB}", self.port)
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`: the bootstrap superuser, for test set-up.
    pub fn superuser_url(&self) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `root/<name>`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The server's log (stderr of every start, appended).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// The postmaster's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.postmaster.as_ref().map(Daemon::pid)
    }

    /// Whether the postmaster was started and has not exited.
    pub fn is_running(&mut self) -> bool {
        self.postmaster
            .as_mut()
            .is_some_and(|d| d.exited().is_none())
    }

    /// SIGKILL the postmaster and, with it, every process of its group (backends,
    /// checkpointer, WAL writer): the instance dies at once with no shutdown checkpoint, as in
    /// a crash, and can be restarted immediately (a postmaster killed alone leaves backends
    /// holding its shared memory until they notice).
    pub fn kill9(&mut self) {
        if let Some(mut d) = self.postmaster.take() {
            d.kill();
        }
    }

    /// Fast shutdown (SIGINT: running transactions are rolled back, a shutdown checkpoint is
    /// written); after [`STOP_GRACE`] the instance is killed. Drop also stops.
    pub fn stop(&mut self) {
        if let Some(mut d) = self.postmaster.take() {
            let _ = d.stop("INT");
        }
    }

    /// Start the server again on the same directory and port (after [`PgServer::kill9`] or
    /// [`PgServer::stop`]; a running server is stopped first). Crash recovery replays the WAL.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.stop();
        self.launch()
    }

    fn initdb(&self) -> Result<(), Error> {
        let log = self.dir.join("initdb.log");
        let file = fs::File::create(&log).map_err(io_err(format!("creating {}", log.display())))?;
        let stdout = file
            .try_clone()
            .map_err(io_err(format!("duplicating {}", log.display())))?;
        let status = self
            .owner
            .command(&self.bin.join("initdb"))
            .arg("--pgdata")
            .arg(&self.data)
            .args([
                "--username",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ])
            .current_dir(&self.dir)
            .env("HOME", &self.dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(file)
            .status()
            .map_err(io_err("running initdb"))?;
        if !status.success() {
            return Err(Error::Exited {
                name: "initdb".into(),
                status,
                log,
            });
        }
        // Tests only: trust on the socket and loopback, no passwords (see the module docs).
        let hba = self.data.join("pg_hba.conf");
        fs::write(
            &hba,
            "# Written by poros-harness for a TEST server: every connection over the Unix socket\n\
             # or from 127.0.0.1 is trusted without a password. Never use this outside tests.\n\
             local all all trust\n\
             host  all all 127.0.0.1/32 trust\n",
        )
        .map_err(io_err(format!("writing {}", hba.display())))
    }

    /// Start the postmaster and wait until it accepts connections.
    fn launch(&mut self) -> Result<(), Error> {
        let mut cmd = self.owner.command(&self.bin.join("postgres"));
        cmd.arg("-D").arg(&self.data);
        for setting in [
            "listen_addresses=127.0.0.1".to_string(),
            format!("port={}", self.port),
            format!("unix_socket_directories={}", self.dir.display()),
            // Durability stays on: these servers back durability tests.
            "fsync=on".into(),
            "full_page_writes=on".into(),
            "synchronous_commit=on".into(),
            // Crash recovery starts with one syncfs(2) of the data directory's file system
            // instead of an fsync of every file: as safe on Linux, and seconds faster here.
            "recovery_init_sync_method=syncfs".into(),
            "shared_buffers=16MB".into(),
            "log_line_prefix=%m [%p] ".into(),
        ] {
            cmd.arg("-c").arg(setting);
        }
        cmd.current_dir(&self.dir).env("HOME", &self.dir);
        let mut daemon = Daemon::spawn("postgres", &self.log_path(), cmd)?;
        let isready = self.bin.join("pg_isready");
        let port = self.port.to_string();
        daemon.wait_ready(
            &format!("postgres on port {port} to accept connections"),
            START_TIMEOUT,
            || pg_isready(&isready, &port),
        )?;
        self.postmaster = Some(daemon);
        Ok(())
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether the server on 127.0.0.1:`port` accepts connections.
pub(crate) fn pg_isready(exe: &Path, port: &str) -> bool {
    Command::new(exe)
        .args([
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            port,
            "-t",
            "1",
            "-U",
            SUPERUSER,
        ])
        .args(["-d", "postgres"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The server's Unix socket goes in `dir`; its path must fit in `sun_path`.
pub(crate) fn check_socket_dir(dir: &Path, port: u16) -> Result<(), Error> {
    let socket = dir.join(format!(".s.PGSQL.{port}"));
    if socket.as_os_str().len() <= MAX_SOCKET_PATH {
        return Ok(());
    }
    Err(Error::Io {
        what: format!(
            "the Unix socket path {} is longer than {MAX_SOCKET_PATH} bytes: use a shorter root",
            socket.display()
        ),
        source: std::io::ErrorKind::InvalidInput.into(),
    })
}

/// `n` distinct free loopback ports.
pub(crate) fn free_ports(n: usize) -> Result<Vec<u16>, Error> {
    let mut ports = Vec::with_capacity(n);
    while ports.len() < n {
        let p = free_port()?;
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    Ok(ports)
}
