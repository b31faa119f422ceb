//! What `backup` and `restore` print for a person, the hub's and the agent's alike, in the
//! reader's language (the catalogue's `common-backup-*` and `common-restore-*` messages).
//! `--json` prints the reports' own JSON instead.

use poros_i18n::{t, Lang};
use poros_store::backup_file::{BackupReport, RestoreReport};
use std::path::Path;

/// Whose backup it is: the words about the service and its key files differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// `poros-hub`.
    Hub,
    /// `poros-agent`.
    Agent,
}

/// The lines after a backup; `time` formats a Unix-ms time.
pub fn backup_lines(
    lang: Lang,
    service: Service,
    r: &BackupReport,
    time: &dyn Fn(u64) -> String,
) -> Vec<String> {
    let m = &r.manifest;
    let (at, documents, bodies) = (
        time(m.number("snapshot_ms")),
        m.number("documents"),
        m.number("body_files"),
    );
    let snapshot = match (service, r.online) {
        (Service::Hub, true) => t!(
            lang,
            "common-backup-snapshot-hub-online",
            time = at,
            documents = documents,
            bodies = bodies
        ),
        (Service::Hub, false) => t!(
            lang,
            "common-backup-snapshot-hub-offline",
            time = at,
            documents = documents,
            bodies = bodies
        ),
        (Service::Agent, true) => t!(
            lang,
            "common-backup-snapshot-agent-online",
            time = at,
            documents = documents,
            bodies = bodies
        ),
        (Service::Agent, false) => t!(
            lang,
            "common-backup-snapshot-agent-offline",
            time = at,
            documents = documents,
            bodies = bodies
        ),
    };
    let files: Vec<&str> = m
        .contents
        .get("private_files")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|f| f.as_str()).collect())
        .unwrap_or_default();
    let keys = match (service, m.contains_private_keys) {
        (Service::Hub, true) => t!(lang, "common-backup-keys-hub"),
        (Service::Agent, true) => t!(lang, "common-backup-keys-agent", files = files.join(", ")),
        (Service::Hub, false) => t!(lang, "common-backup-no-keys-hub"),
        (Service::Agent, false) => t!(lang, "common-backup-no-keys-agent"),
    };
    vec![
        t!(
            lang,
            "common-backup-written",
            file = r.file.display().to_string(),
            bytes = r.bytes,
            format = m.format
        ),
        format!("  {snapshot}"),
        format!("  {keys}"),
    ]
}

/// The lines after a restore of `from`; `time` formats a Unix-ms time.
pub fn restore_lines(
    lang: Lang,
    service: Service,
    from: &Path,
    r: &RestoreReport,
    time: &dyn Fn(u64) -> String,
) -> Vec<String> {
    let at = time(r.manifest.number("snapshot_ms"));
    let mut lines = vec![
        t!(
            lang,
            "common-restore-done",
            from = from.display().to_string(),
            dir = r.dir.display().to_string(),
            documents = r.documents,
            bodies = r.body_files
        ),
        format!(
            "  {}",
            match service {
                Service::Hub => t!(lang, "common-restore-after-hub", time = at),
                Service::Agent => t!(lang, "common-restore-after-agent", time = at),
            }
        ),
    ];
    if !r.missing_private.is_empty() {
        let (files, dir) = (r.missing_private.join(", "), r.dir.display().to_string());
        lines.push(format!(
            "  {}",
            match service {
                Service::Hub => t!(
                    lang,
                    "common-restore-missing-keys-hub",
                    files = files,
                    dir = dir
                ),
                Service::Agent => t!(
                    lang,
                    "common-restore-missing-keys-agent",
                    files = files,
                    dir = dir
                ),
            }
        ));
    }
    lines
}
