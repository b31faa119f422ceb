//! Progress of long command-line operations (backup, restore, store migration): a bar with
//! bytes, rate and time left on a terminal; nothing at all when standard error is not a
//! terminal or the output is JSON, so scripts and logs see only the result.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A byte-counting progress display; `total` when known in advance (else a spinner with the
/// bytes and rate so far).
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// Shown on standard error if it is a terminal and `json` is false.
    pub fn bytes(what: &str, total: Option<u64>, json: bool) -> Progress {
        let shown = !json && std::io::IsTerminal::is_terminal(&std::io::stderr());
        let bar = match total {
            Some(t) => ProgressBar::new(t),
            None => ProgressBar::new_spinner(),
        };
        bar.set_draw_target(if shown {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let template = if total.is_some() {
            "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}, {eta} left"
        } else {
            "{prefix} {spinner} {bytes} {bytes_per_sec}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(what.to_owned());
        Progress { bar }
    }

    /// Bytes done so far.
    pub fn set(&self, done: u64) {
        self.bar.set_position(done);
    }

    /// Remove the display (before the result is printed).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Bytes of the files under `dir` (an estimate of what a backup will copy).
pub fn tree_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}
