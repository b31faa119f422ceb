//! `poros-agent backup` and `restore` on the command line: the progress bar while they run
//! and what they print after (`poros_transport::backup_text`, from the catalogue).

use super::{lang, utc};
use crate::paths::AgentPaths;
use anyhow::Result;
use poros_transport::backup_text::{backup_lines, restore_lines, Service};
use poros_transport::progress::{tree_bytes, Progress};
use std::path::Path;

/// `poros-agent backup`.
pub(super) fn backup(dir: &Path, to: &Path, include_keys: bool, json: bool) -> Result<()> {
    let paths = AgentPaths::new(dir);
    let estimate = tree_bytes(&paths.at("data"));
    let bar = Progress::bytes("backup", Some(estimate), json);
    let report = crate::backup::backup(&paths, to, include_keys, &|n| bar.set(n));
    bar.finish();
    let report = report?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
        return Ok(());
    }
    for line in backup_lines(lang(), Service::Agent, &report, &|ms| utc(Some(ms))) {
        println!("{line}");
    }
    Ok(())
}

/// `poros-agent restore`.
pub(super) fn restore(from: &Path, dir: &Path, json: bool) -> Result<()> {
    let total = std::fs::metadata(from).map(|m| m.len()).ok();
    let bar = Progress::bytes("restore", total, json);
    let report = crate::backup::restore::restore(from, dir, &|n| bar.set(n));
    bar.finish();
    let report = report?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
        return Ok(());
    }
    for line in restore_lines(lang(), Service::Agent, from, &report, &|ms| utc(Some(ms))) {
        println!("{line}");
    }
    Ok(())
}
