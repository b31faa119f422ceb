//! Store format versions through the public API: a new store is recorded, a legacy or older
//! store is backed up byte for byte and upgraded once, steps run in order, and a newer store,
//! another kind's or one in use is refused with the file left as it was.

use poros_store::format::{Step, FORMAT_TABLE, RECORD_KEY, RECORD_STEP};
use poros_store::{Db, Format, FormatError, Opened, StoreError};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use std::path::{Path, PathBuf};

const THINGS: TableDefinition<u64, u64> = TableDefinition::new("things");

/// Today's kind: version 2, the record.
const TEST: Format = Format {
    kind: "test",
    legacy_table: "things",
    steps: &[RECORD_STEP],
};

/// A next version: one function and one line.
fn double_things(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut t = txn.open_table(THINGS)?;
    let all: Vec<(u64, u64)> = t
        .iter()?
        .map(|e| e.map(|(k, v)| (k.value(), v.value())))
        .collect::<Result<_, _>>()?;
    for (k, v) in all {
        t.insert(k, v * 2)?;
    }
    Ok(())
}

const NEXT: Format = Format {
    kind: "test",
    legacy_table: "things",
    steps: &[
        RECORD_STEP,
        Step {
            to: 3,
            what: "doubled the things",
            run: double_things,
        },
    ],
};

/// A store as written before versions were recorded: tables, no record.
fn legacy_store(path: &Path) {
    let db = Db::open(path).unwrap();
    db.write_blocking(|txn| {
        let mut t = txn.open_table(THINGS)?;
        for k in 0..100u64 {
            t.insert(k, k + 1)?;
        }
        Ok(())
    })
    .unwrap();
}

/// A store written by `fmt`'s binary (record in the table set-up transaction).
fn current_store(path: &Path, fmt: &'static Format) {
    let (db, opened) = fmt.open(path).unwrap();
    assert_eq!(opened, Opened::Created);
    let p = path.to_owned();
    db.write_blocking(move |txn| {
        fmt.record(txn, &p)?;
        txn.open_table(THINGS)?.insert(7, 8)?;
        Ok(())
    })
    .unwrap();
}

fn record(db: &Db) -> Option<(String, u64)> {
    let r = db.read().unwrap();
    let t = r.open_table(FORMAT_TABLE).ok()?;
    let got = t.get(RECORD_KEY).unwrap();
    got.map(|g| {
        let (k, v) = g.value();
        (k.to_string(), v)
    })
}

fn thing(db: &Db, k: u64) -> Option<u64> {
    let r = db.read().unwrap();
    let t = r.open_table(THINGS).unwrap();
    let v = t.get(k).unwrap();
    v.map(|g| g.value())
}

fn set_record(path: &Path, kind: &'static str, version: u64) {
    let db = Db::open(path).unwrap();
    db.write_blocking(move |txn| {
        txn.open_table(FORMAT_TABLE)?
            .insert(RECORD_KEY, (kind, version))?;
        Ok(())
    })
    .unwrap();
}

fn backups(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".bak"))
        .collect();
    v.sort();
    v
}

fn upgrade_of(opened: Opened) -> poros_store::Upgrade {
    match opened {
        Opened::Upgraded(u) => u,
        other => panic!("expected an upgrade, got {other:?}"),
    }
}

#[test]
fn a_new_store_records_its_kind_and_version_with_its_tables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    current_store(&path, &TEST);
    let (db, opened) = TEST.open(&path).unwrap();
    assert_eq!(opened, Opened::Current(2));
    assert_eq!(record(&db), Some(("test".into(), 2)));
    assert_eq!(TEST.current(), 2);
    assert!(backups(dir.path()).is_empty());
}

#[test]
fn a_legacy_store_is_backed_up_byte_for_byte_then_upgraded_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    legacy_store(&path);
    let before = std::fs::read(&path).unwrap();

    let (db, opened) = TEST.open(&path).unwrap();
    let up = upgrade_of(opened);
    assert_eq!((up.kind, up.from, up.to), ("test", 1, 2));
    assert_eq!(up.steps, [RECORD_STEP.what]);
    assert_eq!(backups(dir.path()), std::slice::from_ref(&up.backup));
    let name = up.backup.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        name.starts_with("s.redb.v1-") && name.ends_with("Z.bak"),
        "{name}"
    );
    assert!(
        std::fs::read(&up.backup).unwrap() == before,
        "the backup differs from the store as it was"
    );
    let said = up.to_string();
    for part in [
        "from format version 1 to 2",
        &up.backup.display().to_string(),
        "body files are not changed",
        "older binary",
    ] {
        assert!(said.contains(part), "{said:?} does not say {part:?}");
    }
    assert_eq!(record(&db), Some(("test".into(), 2)));
    assert_eq!(thing(&db, 0), Some(1));
    assert_eq!(thing(&db, 99), Some(100));
    // The table set-up of the kind's open passes the upgraded store.
    db.write_blocking(move |txn| TEST.record(txn, Path::new("s.redb")))
        .unwrap();
    drop(db);

    let (db, opened) = TEST.open(&path).unwrap();
    assert_eq!(opened, Opened::Current(2), "a second open upgraded again");
    assert_eq!(backups(dir.path()).len(), 1);
    assert_eq!(thing(&db, 99), Some(100));
}

#[test]
fn steps_run_in_order_from_the_stores_version_each_with_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.redb");
    legacy_store(&legacy);
    let (db, opened) = NEXT.open(&legacy).unwrap();
    let up = upgrade_of(opened);
    assert_eq!((up.from, up.to), (1, 3));
    assert_eq!(up.steps, [RECORD_STEP.what, "doubled the things"]);
    assert_eq!(record(&db), Some(("test".into(), 3)));
    assert_eq!(thing(&db, 99), Some(200));
    drop(db);

    let v2 = dir.path().join("v2.redb");
    current_store(&v2, &TEST);
    let (db, opened) = NEXT.open(&v2).unwrap();
    let up = upgrade_of(opened);
    assert_eq!((up.from, up.to), (2, 3));
    assert_eq!(up.steps, ["doubled the things"]);
    assert!(up
        .backup
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("v2.redb.v2-"));
    assert_eq!(thing(&db, 7), Some(16));
    drop(db);

    // The older binary now refuses what the newer one wrote.
    let e = TEST.open(&v2).unwrap_err();
    assert!(
        matches!(&e, StoreError::Format(f) if matches!(**f, FormatError::Newer { found: 3, known: 2, .. })),
        "{e}"
    );
}

#[test]
fn a_newer_store_is_refused_naming_both_versions_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    current_store(&path, &TEST);
    set_record(&path, "test", 99);
    let before = std::fs::read(&path).unwrap();

    let e = TEST.open(&path).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(&e, StoreError::Format(f) if matches!(**f, FormatError::Newer { found: 99, known: 2, .. })),
        "{msg}"
    );
    for part in [
        &path.display().to_string(),
        "version 99",
        "(2)",
        "newer poros binary",
    ] {
        assert!(msg.contains(part), "{msg:?} does not say {part:?}");
    }
    assert!(std::fs::read(&path).unwrap() == before, "the store changed");
    assert!(backups(dir.path()).is_empty());

    // Opened without `Format::open`, the table set-up refuses it as well.
    let db = Db::open(&path).unwrap();
    let p = path.clone();
    let e = db
        .write_blocking(move |txn| TEST.record(txn, &p))
        .unwrap_err();
    assert!(e.to_string().contains("version 99"), "{e}");
}

#[test]
fn another_kinds_store_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let recorded = dir.path().join("other.redb");
    current_store(&recorded, &TEST);
    set_record(&recorded, "agent", 2);
    let unrecorded = dir.path().join("unknown.redb");
    let db = Db::open(&unrecorded).unwrap();
    db.write_blocking(|txn| {
        txn.open_table(TableDefinition::<u64, u64>::new("outbox"))?
            .insert(1, 1)?;
        Ok(())
    })
    .unwrap();
    drop(db);
    for (path, says) in [
        (
            &recorded,
            "is a store of kind \"agent\", where a store of kind \"test\" was expected",
        ),
        (&unrecorded, "tables outbox"),
    ] {
        let before = std::fs::read(path).unwrap();
        let e = TEST.open(path).unwrap_err();
        assert!(
            matches!(&e, StoreError::Format(f) if matches!(**f, FormatError::WrongKind { expected: "test", .. })),
            "{e}"
        );
        assert!(e.to_string().contains(says), "{e}");
        assert!(std::fs::read(path).unwrap() == before);
    }
    assert!(backups(dir.path()).is_empty());
}

#[test]
fn a_store_in_use_is_refused_as_locked_without_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    legacy_store(&path);
    let held = Db::open(&path).unwrap();
    let e = TEST.open(&path).unwrap_err();
    assert!(matches!(e, StoreError::Locked { .. }), "{e}");
    assert!(backups(dir.path()).is_empty());
    drop(held);
    assert!(matches!(TEST.open(&path).unwrap().1, Opened::Upgraded(_)));
}

#[test]
fn an_older_store_opened_without_its_upgrade_is_refused_at_table_set_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    legacy_store(&path);
    let db = Db::open(&path).unwrap();
    let p = path.clone();
    let e = db
        .write_blocking(move |txn| TEST.record(txn, &p))
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::Format(f) if matches!(**f, FormatError::NotUpgraded { found: 1, current: 2, .. })),
        "{e}"
    );
    assert!(record(&db).is_none());
}

#[test]
fn a_store_left_by_a_crash_is_read_without_writing_and_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.redb");
    legacy_store(&live);
    // A copy taken while the store is open is what a crash leaves: redb marks an open file as
    // needing recovery.
    let db = Db::open(&live).unwrap();
    let crashed = dir.path().join("crashed.redb");
    std::fs::copy(&live, &crashed).unwrap();
    drop(db);
    let before = std::fs::read(&crashed).unwrap();

    let (db, opened) = TEST.open(&crashed).unwrap();
    let up = upgrade_of(opened);
    assert!(std::fs::read(&up.backup).unwrap() == before);
    assert_eq!(thing(&db, 42), Some(43));
    assert_eq!(record(&db), Some(("test".into(), 2)));
}

#[test]
fn steps_out_of_order_are_refused() {
    const BAD: Format = Format {
        kind: "test",
        legacy_table: "things",
        steps: &[Step {
            to: 3,
            what: "skips 2",
            run: double_things,
        }],
    };
    let dir = tempfile::tempdir().unwrap();
    let e = BAD.open(&dir.path().join("s.redb")).unwrap_err();
    assert!(
        matches!(&e, StoreError::Format(f) if matches!(**f, FormatError::BadSteps { index: 0, to: 3, .. })),
        "{e}"
    );
}
