//! Store format versions: the record of which kind of store a redb file is and which format
//! version it holds, the upgrade of an older store (a backup first, then the registered steps)
//! and the refusal of a newer one or of another kind's store.
//!
//! Each kind of store (the hub's, the agent's) declares a [`Format`]: its kind, a table every
//! store of it had before versions were recorded, and its list of [`Step`]s. Version 1
//! ([`LEGACY_VERSION`]) is every store written before the record existed; step `n` brings a
//! store from version `n - 1` to `n` in one write transaction that also writes the record, so
//! a store is always at a version some step left it at. A future change of format is one
//! function and one line in the kind's list.
//!
//! [`Format::open`] is the one way an existing store file is opened. Before redb touches the
//! file it takes the file's lock (the one redb takes) and reads the record from a view that
//! writes nothing to the disk. An older store is then copied, byte for byte, to a backup next to
//! it (`<file>.v<old>-<UTC time>.bak`, fsync'd, renamed into place, directory fsync'd), and
//! only then opened and upgraded; redb opens the same locked file, so nothing can change it in
//! between. Body files are never changed by a format step. A newer store, or another kind's,
//! is refused with [`FormatError`] and left untouched. [`Format::record`] runs in the
//! transaction that creates a store's tables: it writes the record of a new store and refuses
//! a store that was opened without going through [`Format::open`] at an older version.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use redb::{ReadableTable, TableDefinition, TableHandle, WriteTransaction};

use crate::{fsync_dir, Db, StoreError};

/// The table holding the format record: [`RECORD_KEY`] → (kind, version).
pub const FORMAT_TABLE: TableDefinition<&str, (&str, u64)> = TableDefinition::new("poros_format");

/// The key of the format record in [`FORMAT_TABLE`].
pub const RECORD_KEY: &str = "format";

/// The version of every store written before the format was recorded.
pub const LEGACY_VERSION: u64 = 1;

/// One step of upgrade: brings a store from version `to - 1` to `to`.
///
/// `run` changes the tables as the new version needs, inside the step's write transaction;
/// the record is written by the same transaction afterwards. It must not touch body files
/// (the backup covers the redb file only).
#[derive(Clone, Copy)]
pub struct Step {
    /// The version the store has after this step.
    pub to: u64,
    /// What the step changes, for the log ("recorded the format version").
    pub what: &'static str,
    /// The change.
    pub run: fn(&WriteTransaction) -> Result<(), StoreError>,
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Step(to {}: {})", self.to, self.what)
    }
}

/// Version 2, the first recorded one: it differs from version 1 only by the record, which the
/// step's transaction writes; the tables are unchanged.
pub const RECORD_STEP: Step = Step {
    to: 2,
    what: "recorded the store's kind and format version",
    run: |_| Ok(()),
};

/// One kind of store and its format history.
#[derive(Debug, Clone, Copy)]
pub struct Format {
    /// The kind written in the record (`"hub"`, `"agent"`).
    pub kind: &'static str,
    /// A table every store of this kind had before the record existed: an unrecorded store
    /// without it is not of this kind.
    pub legacy_table: &'static str,
    /// The steps from version 1 on, in order: `steps[i].to == i + 2`.
    pub steps: &'static [Step],
}

/// Why a store was not opened: it is of another format than this binary can use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The store was written by a newer binary.
    #[error(
        "{kind} store {} has format version {found}, newer than the highest this binary \
         knows ({known}); run a newer poros binary (the one that wrote it, or later)",
        .path.display()
    )]
    Newer {
        /// The store file.
        path: PathBuf,
        /// Its kind.
        kind: String,
        /// The version it records.
        found: u64,
        /// The highest version this binary knows.
        known: u64,
    },
    /// The store is another kind's (an agent's store given to the hub, or an unknown file).
    #[error("{} is {found}, where a store of kind \"{expected}\" was expected", .path.display())]
    WrongKind {
        /// The store file.
        path: PathBuf,
        /// The kind the caller opens.
        expected: &'static str,
        /// What the file is instead.
        found: String,
    },
    /// An older store reached the table set-up without being upgraded (opened without
    /// [`Format::open`]).
    #[error(
        "{kind} store {} has format version {found}, older than this binary's {current}, and \
         was opened without its upgrade; open it through Format::open, which backs it up and \
         upgrades it",
        .path.display()
    )]
    NotUpgraded {
        /// The store file.
        path: PathBuf,
        /// Its kind.
        kind: &'static str,
        /// Its version.
        found: u64,
        /// This binary's version.
        current: u64,
    },
    /// A hub's PostgreSQL database has a schema migration newer than this binary knows.
    #[error(
        "the PostgreSQL database's schema has migration {found}, newer than the highest this \
         hub knows ({known}); run a newer poros-hub (the one that migrated it, or later)"
    )]
    NewerSchema {
        /// The newest migration the database records.
        found: i64,
        /// The last migration this binary has.
        known: i64,
    },
    /// The steps of a format do not go 2, 3, … (a programming error).
    #[error("format steps of {kind} stores are out of order at step {index} (to {to})")]
    BadSteps {
        /// The kind.
        kind: &'static str,
        /// The position of the wrong step.
        index: usize,
        /// The version it claims.
        to: u64,
    },
}

impl From<FormatError> for StoreError {
    fn from(e: FormatError) -> Self {
        StoreError::Format(Box::new(e))
    }
}

/// What [`Format::open`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// A new (or empty) store: the record is written with the tables.
    Created,
    /// The store was at this binary's version.
    Current(u64),
    /// The store was upgraded.
    Upgraded(Upgrade),
}

/// An upgrade done at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    /// The kind of store.
    pub kind: &'static str,
    /// The store file.
    pub path: PathBuf,
    /// The version it had.
    pub from: u64,
    /// The version it has now.
    pub to: u64,
    /// What each step changed, in order.
    pub steps: Vec<&'static str>,
    /// The copy of the file as it was before the upgrade.
    pub backup: PathBuf,
}

impl fmt::Display for Upgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "upgraded {} store {} from format version {} to {} ({}); the version-{} file is \
             backed up as {} (body files are not changed by a format upgrade); to roll back, \
             stop, put the backup back in its place and run the older binary",
            self.kind,
            self.path.display(),
            self.from,
            self.to,
            self.steps.join("; "),
            self.from,
            self.backup.display()
        )
    }
}

/// What a store's record and tables say it is, for this kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// No tables yet: a new store.
    Empty,
    /// A store of this kind at this version (older, current or newer).
    At(u64),
}

/// The record (if any) and the table names of a store, as read.
struct Found {
    record: Option<(String, u64)>,
    tables: Vec<String>,
}

impl Format {
    /// The version this binary writes: the last step's, or 1 without steps.
    pub fn current(&self) -> u64 {
        self.steps.last().map_or(LEGACY_VERSION, |s| s.to)
    }

    fn check_steps(&self) -> Result<(), FormatError> {
        for (index, s) in self.steps.iter().enumerate() {
            if s.to != LEGACY_VERSION + 1 + index as u64 {
                return Err(FormatError::BadSteps {
                    kind: self.kind,
                    index,
                    to: s.to,
                });
            }
        }
        Ok(())
    }

    /// Opens the store file at `path` (creating it if absent) at this binary's version:
    /// upgrades an older store after backing it up, refuses a newer store or another kind's
    /// (leaving the file untouched). An upgrade is logged at warn level and returned.
    pub fn open(&self, path: &Path) -> Result<(Db, Opened), StoreError> {
        self.check_steps()?;
        let file = match File::options().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok((Db::open(path)?, Opened::Created));
            }
            Err(source) => return Err(io_error("open store", path)(source)),
        };
        // The lock redb takes (flock on the same open file): held from here, through the
        // copy, and then by redb itself, so no other process sees the file in between.
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    path: path.to_owned(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_error("lock store", path)(e)),
        }
        let found = peek(&file, path)?;
        let opened = match self.judge(path, &found)? {
            Verdict::Empty => Opened::Created,
            Verdict::At(v) if v == self.current() => Opened::Current(v),
            Verdict::At(from) => {
                let backup = backup(&file, path, from)?;
                Opened::Upgraded(Upgrade {
                    kind: self.kind,
                    path: path.to_owned(),
                    from,
                    to: self.current(),
                    steps: self.steps_after(from).map(|s| s.what).collect(),
                    backup,
                })
            }
        };
        let db = Db::open_locked(path, file)?;
        if let Opened::Upgraded(up) = &opened {
            for step in self.steps_after(up.from) {
                let (kind, to, run) = (self.kind, step.to, step.run);
                db.write_blocking(move |txn| {
                    run(txn)?;
                    txn.open_table(FORMAT_TABLE)?
                        .insert(RECORD_KEY, (kind, to))?;
                    Ok(())
                })?;
            }
            tracing::warn!(
                kind = self.kind,
                store = %path.display(),
                from = up.from,
                to = up.to,
                backup = %up.backup.display(),
                "{up}"
            );
        }
        Ok((db, opened))
    }

    /// In the transaction that creates the store's tables, before it creates them: writes the
    /// record of a new store; passes a store at this version; refuses any other (a newer one,
    /// another kind's, or an older one that did not go through [`Format::open`]). `path` is
    /// for messages.
    pub fn record(&self, txn: &WriteTransaction, path: &Path) -> Result<(), StoreError> {
        self.check_steps()?;
        let mut tables = Vec::new();
        for t in txn.list_tables()? {
            tables.push(t.name().to_string());
        }
        let record = if tables.iter().any(|t| t == FORMAT_TABLE.name()) {
            let t = txn.open_table(FORMAT_TABLE)?;
            let r = t.get(RECORD_KEY)?;
            r.map(|g| {
                let (k, v) = g.value();
                (k.to_string(), v)
            })
        } else {
            None
        };
        match self.judge(path, &Found { record, tables })? {
            Verdict::Empty => {
                txn.open_table(FORMAT_TABLE)?
                    .insert(RECORD_KEY, (self.kind, self.current()))?;
                Ok(())
            }
            Verdict::At(v) if v == self.current() => Ok(()),
            Verdict::At(found) => Err(FormatError::NotUpgraded {
                path: path.to_owned(),
                kind: self.kind,
                found,
                current: self.current(),
            }
            .into()),
        }
    }

    fn steps_after(&self, version: u64) -> impl Iterator<Item = &'static Step> {
        self.steps.iter().filter(move |s| s.to > version)
    }

    /// What a store is for this kind: new, or at a version; refused if newer or another
    /// kind's.
    fn judge(&self, path: &Path, found: &Found) -> Result<Verdict, StoreError> {
        let verdict = match &found.record {
            Some((kind, _)) if kind != self.kind => {
                return Err(FormatError::WrongKind {
                    path: path.to_owned(),
                    expected: self.kind,
                    found: format!("a store of kind {kind:?}"),
                }
                .into())
            }
            Some((_, v)) if *v < LEGACY_VERSION => {
                return Err(StoreError::Corrupt(format!(
                    "store {}: format record says version {v}, which no binary writes",
                    path.display()
                )))
            }
            Some((_, v)) => Verdict::At(*v),
            None => {
                let tables: Vec<&str> = found
                    .tables
                    .iter()
                    .map(String::as_str)
                    .filter(|t| *t != FORMAT_TABLE.name())
                    .collect();
                if tables.is_empty() {
                    Verdict::Empty
                } else if tables.contains(&self.legacy_table) {
                    Verdict::At(LEGACY_VERSION)
                } else {
                    return Err(FormatError::WrongKind {
                        path: path.to_owned(),
                        expected: self.kind,
                        found: format!(
                            "a store of unknown kind without a format record (tables {})",
                            tables.join(", ")
                        ),
                    }
                    .into());
                }
            }
        };
        if let Verdict::At(v) = verdict {
            if v > self.current() {
                return Err(FormatError::Newer {
                    path: path.to_owned(),
                    kind: self.kind.to_owned(),
                    found: v,
                    known: self.current(),
                }
                .into());
            }
        }
        Ok(verdict)
    }
}

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Reads the record and the table names of the (locked) store file without writing to it:
/// redb runs over a view whose writes (the header redb marks at open, a repair after a crash)
/// stay in memory.
fn peek(file: &File, path: &Path) -> Result<Found, StoreError> {
    let len = file
        .metadata()
        .map_err(io_error("read the size of store", path))?
        .len();
    if len == 0 {
        return Ok(Found {
            record: None,
            tables: Vec::new(),
        });
    }
    let view = ReadOnlyView {
        file: file.try_clone().map_err(io_error("open store", path))?,
        state: Mutex::new(ViewState {
            len,
            disk_limit: len,
            writes: Vec::new(),
        }),
    };
    let db = redb::Builder::new()
        .set_cache_size(1024 * 1024)
        .create_with_backend(view)?;
    let r = db.begin_read()?;
    let mut tables = Vec::new();
    for t in r.list_tables()? {
        tables.push(t.name().to_string());
    }
    let record = if tables.iter().any(|t| t == FORMAT_TABLE.name()) {
        let t = r.open_table(FORMAT_TABLE)?;
        let got = t.get(RECORD_KEY)?;
        got.map(|g| {
            let (k, v) = g.value();
            (k.to_string(), v)
        })
    } else {
        None
    };
    Ok(Found { record, tables })
}

/// A store file seen read-only by redb: reads come from the file, with what redb wrote since
/// laid over them; writes stay in memory.
#[derive(Debug)]
struct ReadOnlyView {
    file: File,
    state: Mutex<ViewState>,
}

#[derive(Debug)]
struct ViewState {
    /// The length redb sees.
    len: u64,
    /// The file's bytes from here on read as zeros (redb shrank the view below it).
    disk_limit: u64,
    /// What redb wrote, in order.
    writes: Vec<(u64, Vec<u8>)>,
}

impl ReadOnlyView {
    fn state(&self) -> Result<std::sync::MutexGuard<'_, ViewState>, io::Error> {
        self.state
            .lock()
            .map_err(|_| io::Error::other("read-only store view poisoned"))
    }
}

impl redb::StorageBackend for ReadOnlyView {
    fn len(&self) -> Result<u64, io::Error> {
        Ok(self.state()?.len)
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, io::Error> {
        use std::os::unix::fs::FileExt;
        let state = self.state()?;
        let end = offset + len as u64;
        if end > state.len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end of the store",
            ));
        }
        let mut buf = vec![0; len];
        let on_disk = self.file.metadata()?.len().min(state.disk_limit);
        if offset < on_disk {
            let n = (on_disk.min(end) - offset) as usize;
            self.file.read_exact_at(&mut buf[..n], offset)?;
        }
        for (at, data) in &state.writes {
            let (w_start, w_end) = (*at, *at + data.len() as u64);
            let (from, to) = (w_start.max(offset), w_end.min(end));
            if from < to {
                buf[(from - offset) as usize..(to - offset) as usize]
                    .copy_from_slice(&data[(from - w_start) as usize..(to - w_start) as usize]);
            }
        }
        Ok(buf)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let mut state = self.state()?;
        // What lies beyond the new end reads as zeros if the view grows again.
        state.disk_limit = state.disk_limit.min(len);
        for (at, data) in &mut state.writes {
            data.truncate(len.saturating_sub(*at) as usize);
        }
        state.len = len;
        Ok(())
    }

    fn sync_data(&self, _eventual: bool) -> Result<(), io::Error> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.state()?.writes.push((offset, data.to_vec()));
        Ok(())
    }
}

/// Copies the locked store file to `<file>.v<version>-<UTC time>.bak` beside it: written
/// under a temporary name, fsync'd, renamed, and the directory fsync'd, so a backup that
/// exists is whole.
fn backup(file: &File, path: &Path, version: u64) -> Result<PathBuf, StoreError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "store".into());
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let mut target = dir.join(format!("{name}.v{version}-{stamp}.bak"));
    let mut n = 1;
    while target.exists() {
        n += 1;
        target = dir.join(format!("{name}.v{version}-{stamp}-{n}.bak"));
    }
    let partial = target.with_extension("bak.partial");
    let copy = || -> Result<(), io::Error> {
        let mut from = file.try_clone()?;
        io::Seek::seek(&mut from, io::SeekFrom::Start(0))?;
        let mut to = File::options()
            .write(true)
            .create_new(true)
            .open(&partial)?;
        io::copy(&mut from, &mut to)?;
        to.sync_all()?;
        std::fs::rename(&partial, &target)
    };
    if let Err(e) = copy() {
        let _ = std::fs::remove_file(&partial);
        return Err(io_error("back up store", &target)(e));
    }
    fsync_dir(&dir)?;
    Ok(target)
}
