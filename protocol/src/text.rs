//! Rules for text that crosses a trust boundary: single-line fields and names refuse control
//! characters and have length limits, and whatever is shown on a terminal is escaped first.
//! One definition, used by the agent's API, the hub, the receiving agent and both CLIs.

use std::borrow::Cow;

/// Longest agency or credential name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// What is wrong with a piece of text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TextError {
    /// A control, line-breaking or direction-overriding character.
    #[error("{field} contains the control character U+{code:04X} (at character {at}); it must be one line of printable text")]
    Control {
        /// The field concerned.
        field: &'static str,
        /// The character's code point.
        code: u32,
        /// Its position, in characters.
        at: usize,
    },
    /// Longer than allowed.
    #[error("{field} is longer than {max} {unit}")]
    TooLong {
        /// The field concerned.
        field: &'static str,
        /// The limit.
        max: usize,
        /// `bytes` or `characters`.
        unit: &'static str,
    },
    /// Empty or only spaces.
    #[error("{field} is empty")]
    Empty {
        /// The field concerned.
        field: &'static str,
    },
}

/// Characters a single-line field may not hold: C0 and C1 controls (ESC, CR, LF, NUL, DEL…),
/// the Unicode line and paragraph separators, and the bidirectional controls that reorder
/// what a reader sees.
pub fn is_forbidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{061C}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// Check a single-line field: no forbidden character, at most `max_bytes` bytes.
pub fn single_line(field: &'static str, s: &str, max_bytes: usize) -> Result<(), TextError> {
    if s.len() > max_bytes {
        return Err(TextError::TooLong {
            field,
            max: max_bytes,
            unit: "bytes",
        });
    }
    match s.chars().enumerate().find(|(_, c)| is_forbidden(*c)) {
        Some((at, c)) => Err(TextError::Control {
            field,
            code: c as u32,
            at,
        }),
        None => Ok(()),
    }
}

/// Check a name (of an agency, a credential): not blank, one line, at most
/// [`MAX_NAME_CHARS`] characters.
pub fn name(field: &'static str, s: &str) -> Result<(), TextError> {
    if s.trim().is_empty() {
        return Err(TextError::Empty { field });
    }
    if s.chars().count() > MAX_NAME_CHARS {
        return Err(TextError::TooLong {
            field,
            max: MAX_NAME_CHARS,
            unit: "characters",
        });
    }
    single_line(field, s, MAX_NAME_CHARS * 4)
}

/// `s` made safe to print on a terminal: every forbidden character (see [`is_forbidden`]) is
/// shown as an escape (`\n`, `\e`, `\u{202e}`…) and a backslash as `\\`, so text from the
/// network can neither move the cursor nor forge lines. Text without them is borrowed as is.
pub fn escape_for_terminal(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| is_forbidden(c) || c == '\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{1b}' => out.push_str("\\e"),
            c if is_forbidden(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Whether `s` is a real calendar date written `YYYY-MM-DD` (2026-02-31 is not).
pub fn is_calendar_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = &b[r];
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let (Some(y), Some(m), Some(d)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    y >= 1 && (1..=days).contains(&d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused_in_single_line_fields() {
        for bad in [
            "a\u{1b}[2Jb",
            "line\nforged",
            "cr\rover",
            "nul\0",
            "del\u{7f}",
            "c1\u{9b}",
            "bidi\u{202e}txt",
            "sep\u{2028}",
        ] {
            assert!(
                matches!(
                    single_line("subject", bad, 100),
                    Err(TextError::Control { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(single_line("subject", "Công văn số 12/BTC — ổn", 100).is_ok());
        assert!(matches!(
            single_line("subject", &"x".repeat(101), 100),
            Err(TextError::TooLong { .. })
        ));
    }

    #[test]
    fn names_have_limits() {
        assert!(name("name", "Bộ Tài chính").is_ok());
        assert!(matches!(name("name", "  "), Err(TextError::Empty { .. })));
        assert!(matches!(
            name("name", &"é".repeat(MAX_NAME_CHARS + 1)),
            Err(TextError::TooLong { .. })
        ));
        assert!(name("name", &"é".repeat(MAX_NAME_CHARS)).is_ok());
        assert!(matches!(
            name("name", "x\ny"),
            Err(TextError::Control { .. })
        ));
    }

    #[test]
    fn terminal_escaping_neutralises_control_sequences() {
        assert!(matches!(escape_for_terminal("plain ổn"), Cow::Borrowed(_)));
        let e = escape_for_terminal("a\u{1b}[2J\r\nfake\u{202e}\\");
        assert_eq!(e, "a\\e[2J\\r\\nfake\\u{202e}\\\\");
        assert!(!e.chars().any(is_forbidden));
    }

    #[test]
    fn calendar_dates_are_real() {
        for ok in ["2026-02-28", "2024-02-29", "2000-02-29", "2026-12-31"] {
            assert!(is_calendar_date(ok), "{ok}");
        }
        for bad in [
            "2026-02-31",
            "2026-02-29",
            "1900-02-29",
            "2026-04-31",
            "2026-13-01",
            "2026-00-10",
            "2026-1-01",
            "+026-01-01",
            "2026-01-0x",
            "0000-01-01",
        ] {
            assert!(!is_calendar_date(bad), "{bad}");
        }
    }
}
