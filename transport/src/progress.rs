//! Progress of long command-line operations (sending or fetching a large document, backup,
//! restore, store migration), shared by `poros-hub` and `poros-agent`: a bar with the amount
//! done, the rate and the time left on a terminal; nothing at all when standard error is not a
//! terminal or the output is JSON, so scripts and logs see only the result.

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What a display counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    Bytes,
    Rows,
}

/// A progress display on standard error; cheap to clone, updated from any thread.
#[derive(Clone)]
pub struct Progress {
    bar: ProgressBar,
    unit: Unit,
}

/// Whether a display is drawn: standard error is a terminal and the output is not JSON.
pub fn shown(json: bool) -> bool {
    !json && std::io::IsTerminal::is_terminal(&std::io::stderr())
}

impl Progress {
    /// Bytes, `total` when known in advance (else a spinner with the bytes and rate so far).
    pub fn bytes(what: &str, total: Option<u64>, json: bool) -> Progress {
        Progress::new(what, Unit::Bytes, total, json)
    }

    /// Rows of a store, with a note (e.g. the body bytes copied) after them.
    pub fn rows(what: &str, total: Option<u64>, json: bool) -> Progress {
        Progress::new(what, Unit::Rows, total, json)
    }

    fn new(what: &str, unit: Unit, total: Option<u64>, json: bool) -> Progress {
        let bar = match total {
            Some(t) => ProgressBar::new(t),
            None => ProgressBar::new_spinner(),
        };
        bar.set_draw_target(if shown(json) {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let p = Progress { bar, unit };
        p.style(total.is_some());
        p.bar.set_prefix(what.to_owned());
        p
    }

    fn style(&self, known: bool) {
        if let Ok(style) = ProgressStyle::with_template(template(self.unit, known)) {
            self.bar.set_style(style.progress_chars("=> "));
        }
    }

    /// Done so far.
    pub fn set(&self, done: u64) {
        self.bar.set_position(done);
    }

    /// The total, once known.
    pub fn set_total(&self, total: u64) {
        self.bar.set_length(total);
        self.style(true);
    }

    /// A new phase of the same operation: its name, the count and the rate start again.
    pub fn phase(&self, what: &str) {
        self.bar.set_prefix(what.to_owned());
        self.bar.set_message("");
        self.bar.reset();
    }

    /// Body bytes done beside the rows (shown after them).
    pub fn note_bytes(&self, bytes: u64) {
        self.bar
            .set_message(format!(", {} of body files", HumanBytes(bytes)));
    }

    /// A reader that counts what is read through it (a document being sent).
    pub fn wrap_read<R: std::io::Read>(&self, r: R) -> indicatif::ProgressBarIter<R> {
        self.bar.wrap_read(r)
    }

    /// A writer that counts what is written through it (a document being fetched).
    pub fn wrap_write<W: std::io::Write>(&self, w: W) -> indicatif::ProgressBarIter<W> {
        self.bar.wrap_write(w)
    }

    /// Remove the display (before the result is printed).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The display of a unit, with or without a known total.
fn template(unit: Unit, known: bool) -> &'static str {
    match (unit, known) {
        (Unit::Bytes, true) => {
            "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}, {eta} left"
        }
        (Unit::Bytes, false) => "{prefix} {spinner} {bytes} {bytes_per_sec}",
        (Unit::Rows, true) => {
            "{prefix} [{bar:30}] {human_pos}/{human_len} rows{msg}, {per_sec}, {eta} left"
        }
        (Unit::Rows, false) => "{prefix} {spinner} {human_pos} rows{msg}, {per_sec}",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_display_parses() {
        for unit in [Unit::Bytes, Unit::Rows] {
            for known in [true, false] {
                let t = template(unit, known);
                assert!(ProgressStyle::with_template(t).is_ok(), "{t}");
            }
        }
    }

    #[test]
    fn a_json_display_is_hidden_even_on_a_terminal() {
        let p = Progress::bytes("backup", Some(10), true);
        assert!(p.bar.is_hidden());
        p.set(5);
        p.finish();
    }
}
