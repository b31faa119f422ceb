//! The byte source under the XML reader: counts the bytes consumed (error positions), lets the
//! attachment decoder read past the XML reader and give back a few bytes it peeked at, and caps
//! how many bytes one XML event may span so no text node can grow the reader's buffer unbounded.

use std::io::{self, BufRead, Read};

/// Error text of the I/O error the source raises when an event runs past its budget.
const OVER_BUDGET: &str = "one XML event is longer than the limit";

/// A [`BufRead`] over the input with a position, a small push-back buffer and a per-event budget.
pub(crate) struct Source<R> {
    inner: R,
    /// Bytes given back by [`Source::push_back`], served before `inner`'s.
    pushback: Vec<u8>,
    pushback_at: usize,
    position: u64,
    /// Bytes the XML reader may still consume before the current event is too long.
    budget: Option<u64>,
    over_budget: bool,
}

impl<R: BufRead> Source<R> {
    pub(crate) fn new(inner: R) -> Self {
        Source {
            inner,
            pushback: Vec::new(),
            pushback_at: 0,
            position: 0,
            budget: None,
            over_budget: false,
        }
    }

    /// Bytes consumed from the input so far.
    pub(crate) fn position(&self) -> u64 {
        self.position
    }

    /// Limits the bytes the next event may span (`None`: no limit).
    pub(crate) fn set_budget(&mut self, budget: Option<u64>) {
        self.budget = budget;
        self.over_budget = false;
    }

    /// Whether the last read failed because an event ran past its budget.
    pub(crate) fn over_budget(&self) -> bool {
        self.over_budget
    }

    /// The next byte, consumed (`None` at the end of the input).
    pub(crate) fn next_byte(&mut self) -> io::Result<Option<u8>> {
        let byte = loop {
            match self.fill_buf() {
                Ok(buf) => break buf.first().copied(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if byte.is_some() {
            self.consume(1);
        }
        Ok(byte)
    }

    /// Gives back bytes just consumed, so the next reads see them again (in this order).
    pub(crate) fn push_back(&mut self, bytes: &[u8]) {
        let mut again = bytes.to_vec();
        again.extend_from_slice(&self.pushback[self.pushback_at..]);
        self.pushback = again;
        self.pushback_at = 0;
        self.position -= bytes.len() as u64;
    }
}

impl<R: BufRead> Read for Source<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Source<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pushback_at < self.pushback.len() {
            return Ok(&self.pushback[self.pushback_at..]);
        }
        if self.budget == Some(0) {
            self.over_budget = true;
            return Err(io::Error::other(OVER_BUDGET));
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        let from_pushback = (self.pushback.len() - self.pushback_at).min(amount);
        if from_pushback > 0 {
            self.pushback_at += from_pushback;
            if self.pushback_at == self.pushback.len() {
                self.pushback.clear();
                self.pushback_at = 0;
            }
        }
        if amount > from_pushback {
            self.inner.consume(amount - from_pushback);
        }
        self.position += amount as u64;
        if let Some(budget) = &mut self.budget {
            *budget = budget.saturating_sub(amount as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushed_back_bytes_come_first_and_positions_follow() {
        let mut src = Source::new(io::BufReader::with_capacity(2, &b"abcdef"[..]));
        assert_eq!(src.next_byte().unwrap(), Some(b'a'));
        assert_eq!(src.next_byte().unwrap(), Some(b'b'));
        assert_eq!(src.next_byte().unwrap(), Some(b'c'));
        src.push_back(b"bc");
        assert_eq!(src.position(), 1);
        let mut rest = String::new();
        src.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "bcdef");
        assert_eq!(src.position(), 6);
        assert_eq!(src.next_byte().unwrap(), None);
    }

    #[test]
    fn an_event_past_its_budget_fails() {
        let mut src = Source::new(&b"0123456789"[..]);
        src.set_budget(Some(4));
        let mut four = [0; 4];
        src.read_exact(&mut four).unwrap();
        assert!(src.fill_buf().is_err());
        assert!(src.over_budget());
        src.set_budget(None);
        assert_eq!(src.fill_buf().unwrap(), b"456789");
    }
}
