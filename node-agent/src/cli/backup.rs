//! `poros-agent backup` and `restore` on the command line: the progress bar while they run
//! and what they print after (every sentence of theirs is here, for a translation catalogue).

use super::utc;
use crate::paths::AgentPaths;
use anyhow::Result;
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
    let m = &report.manifest;
    println!(
        "backup written to {} ({} bytes, archive format {})",
        report.file.display(),
        report.bytes,
        m.format
    );
    println!(
        "  snapshot at {} ({}): {} documents, {} body files",
        utc(Some(m.number("snapshot_ms"))),
        match report.online {
            true => "taken by the running agent",
            false => "agent stopped",
        },
        m.number("documents"),
        m.number("body_files")
    );
    if m.contains_private_keys {
        let files: Vec<&str> = m
            .contents
            .get("private_files")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|f| f.as_str()).collect())
            .unwrap_or_default();
        println!(
            "  WARNING: it holds the agency's private keys and secrets ({}): keep it like the keys",
            files.join(", ")
        );
    } else {
        println!("  no private keys inside: keep keys/*.key (and vdxp.secret) in your key backup");
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
    println!(
        "restored {} into {}: {} documents, {} body files, verified",
        from.display(),
        dir.display(),
        report.documents,
        report.body_files
    );
    println!(
        "  the backup's snapshot is from {}: what this agent sent or received after it is not \
         in it (docs/backup.md, \"Agents\")",
        utc(Some(report.manifest.number("snapshot_ms")))
    );
    if !report.missing_private.is_empty() {
        println!(
            "  the backup holds no private keys: copy {} from your key backup into {} before `poros-agent run`",
            report.missing_private.join(", "),
            dir.display()
        );
    }
    Ok(())
}
