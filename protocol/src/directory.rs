//! The agency directory: what the hub's registry says about each agency (code, name, parent,
//! contact details, whether it takes part), the rules its fields obey, and how it is paged.
//!
//! One definition for the hub (which validates what `node add`/`node edit` set and answers
//! `DirectoryRequest` frames) and the agent (which asks for it and caches it).
//!
//! Paging: a registry of 10,000 agencies is megabytes, far over [`MAX_FRAME_LEN`]. Rather
//! than raising the limit (which would let any peer make the other side allocate that much
//! for one frame), the directory travels as `DirectoryPage` frames filled up to
//! [`PAGE_BUDGET`] bytes each, by encoded size and not by count, with a cursor (the last code
//! of the page) for the next request. Entries are in code order.

use crate::frame::MAX_FRAME_LEN;
use crate::ids::AgencyId;
use crate::text::{self, TextError};
use serde::{Deserialize, Serialize};

/// Longest e-mail address, in bytes (the SMTP path limit).
pub const MAX_EMAIL_BYTES: usize = 254;
/// Longest postal address, in characters.
pub const MAX_ADDRESS_CHARS: usize = 300;
/// Longest phone field, in bytes (it may hold a few numbers).
pub const MAX_PHONE_BYTES: usize = 64;
/// Bytes of entries one `DirectoryPage` frame carries at most; the rest of the frame limit is
/// left for the frame's own encoding (variant, lengths, cursor).
pub const PAGE_BUDGET: usize = MAX_FRAME_LEN - 4096;
/// Most entries an agent accepts in one directory (all pages together): bounds its memory
/// whatever a hub sends.
pub const MAX_ENTRIES: usize = 200_000;

/// One agency as the directory shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryEntry {
    /// Agency code.
    pub code: AgencyId,
    /// Name.
    pub name: String,
    /// The agency it belongs to, if any.
    pub parent: Option<AgencyId>,
    /// E-mail address.
    pub email: Option<String>,
    /// Postal address.
    pub address: Option<String>,
    /// Phone number(s).
    pub phone: Option<String>,
    /// Whether it takes part in the exchange now: false when suspended or revoked (a
    /// registered agency that has not enrolled yet is active: documents to it are queued).
    pub active: bool,
}

/// What is wrong with a directory field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    /// Not one line of printable text, too long or blank.
    #[error(transparent)]
    Text(#[from] TextError),
    /// Not an e-mail address.
    #[error("e-mail {shown:?} is not an address of the form name@domain.tld ({problem})")]
    Email {
        /// The value, shortened and escaped for display.
        shown: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// Not a phone number.
    #[error("phone {shown:?} is not a phone number ({problem})")]
    Phone {
        /// The value, shortened and escaped for display.
        shown: String,
        /// What is wrong.
        problem: &'static str,
    },
}

/// A value shown in an error: at most 60 characters, escaped for a terminal.
fn shown(s: &str) -> String {
    let short: String = s.chars().take(60).collect();
    text::escape_for_terminal(&short).into_owned()
}

/// Check an e-mail address, loosely: one line, at most [`MAX_EMAIL_BYTES`], no spaces, one
/// `@` between a non-empty local part and a domain that has a dot inside it.
pub fn check_email(s: &str) -> Result<(), FieldError> {
    text::single_line("e-mail", s, MAX_EMAIL_BYTES)?;
    let bad = |problem| {
        Err(FieldError::Email {
            shown: shown(s),
            problem,
        })
    };
    if s.chars().any(char::is_whitespace) {
        return bad("it contains a space");
    }
    let Some((local, domain)) = s.split_once('@') else {
        return bad("no @");
    };
    if domain.contains('@') {
        return bad("more than one @");
    }
    if local.is_empty() {
        return bad("nothing before the @");
    }
    let inner_dot = domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.');
    if !inner_dot || domain.contains("..") {
        return bad("the domain must be like example.gov.vn");
    }
    Ok(())
}

/// Check a postal address: one line of printable text, not blank, at most
/// [`MAX_ADDRESS_CHARS`] characters.
pub fn check_address(s: &str) -> Result<(), FieldError> {
    if s.trim().is_empty() {
        return Err(TextError::Empty { field: "address" }.into());
    }
    if s.chars().count() > MAX_ADDRESS_CHARS {
        return Err(TextError::TooLong {
            field: "address",
            max: MAX_ADDRESS_CHARS,
            unit: "characters",
        }
        .into());
    }
    Ok(text::single_line("address", s, MAX_ADDRESS_CHARS * 4)?)
}

/// Check a phone field: at most [`MAX_PHONE_BYTES`], digits with the usual separators
/// (space `+ - ( ) . /`), several numbers separated by `,` or `;`, an extension after `#`
/// or `*`; at least one digit.
pub fn check_phone(s: &str) -> Result<(), FieldError> {
    text::single_line("phone", s, MAX_PHONE_BYTES)?;
    let bad = |problem| {
        Err(FieldError::Phone {
            shown: shown(s),
            problem,
        })
    };
    if s.chars()
        .any(|c| !(c.is_ascii_digit() || " +-()./,;#*".contains(c)))
    {
        return bad("only digits, spaces and + - ( ) . / , ; # * are allowed");
    }
    if !s.chars().any(|c| c.is_ascii_digit()) {
        return bad("it has no digit");
    }
    Ok(())
}

/// Why an agency cannot have this parent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParentError {
    /// The parent is not in the registry.
    #[error("parent {parent} of {agency} is not a registered agency")]
    Unknown {
        /// The agency being changed.
        agency: AgencyId,
        /// The parent asked for.
        parent: AgencyId,
    },
    /// An agency cannot be its own parent.
    #[error("{0} cannot be its own parent")]
    Itself(AgencyId),
    /// The parent is below the agency already.
    #[error("{parent} cannot be the parent of {agency}: {parent} is below {agency} ({chain})")]
    Cycle {
        /// The agency being changed.
        agency: AgencyId,
        /// The parent asked for.
        parent: AgencyId,
        /// The chain from the parent up to the agency, e.g. `A -> B -> C`.
        chain: String,
    },
}

/// Check that `agency` may have `parent`: registered, not itself, and not below `agency` (no
/// cycle). `parent_of(x)` is `None` when `x` is not registered, else `Some(x's parent)`.
/// The walk up is bounded by `registered` steps, so a registry that somehow holds a cycle
/// already is reported rather than followed for ever.
pub fn check_parent(
    agency: &AgencyId,
    parent: &AgencyId,
    registered: usize,
    parent_of: impl Fn(&AgencyId) -> Option<Option<AgencyId>>,
) -> Result<(), ParentError> {
    if parent == agency {
        return Err(ParentError::Itself(agency.clone()));
    }
    let mut next = match parent_of(parent) {
        None => {
            return Err(ParentError::Unknown {
                agency: agency.clone(),
                parent: parent.clone(),
            })
        }
        Some(p) => p,
    };
    let mut chain = vec![parent.clone()];
    while let Some(up) = next {
        chain.push(up.clone());
        if &up == agency || chain.len() > registered + 1 {
            return Err(ParentError::Cycle {
                agency: agency.clone(),
                parent: parent.clone(),
                chain: chain
                    .iter()
                    .map(AgencyId::as_str)
                    .collect::<Vec<_>>()
                    .join(" -> "),
            });
        }
        next = parent_of(&up).flatten();
    }
    Ok(())
}

/// Encoded size of one entry, as it counts against [`PAGE_BUDGET`].
fn encoded_len(e: &DirectoryEntry) -> usize {
    postcard::experimental::serialized_size(e).unwrap_or(usize::MAX)
}

/// One page from `entries` (in code order, starting after the previous page's cursor):
/// entries up to [`PAGE_BUDGET`] bytes, at least one, and the cursor of the next page
/// (`None` when `entries` ran out).
pub fn page(
    entries: impl IntoIterator<Item = DirectoryEntry>,
) -> (Vec<DirectoryEntry>, Option<AgencyId>) {
    let mut out: Vec<DirectoryEntry> = Vec::new();
    let mut used = 0usize;
    for e in entries {
        let len = encoded_len(&e);
        if !out.is_empty() && used.saturating_add(len) > PAGE_BUDGET {
            let next = out.last().map(|l| l.code.clone());
            return (out, next);
        }
        used = used.saturating_add(len);
        out.push(e);
    }
    (out, None)
}

impl DirectoryEntry {
    /// The entry with each text field cut to its limit (records stored before the limits
    /// existed), so that any entry fits a page.
    pub fn bounded(mut self) -> DirectoryEntry {
        fn cut(s: &mut String, chars: usize, bytes: usize) {
            if s.len() > bytes || s.chars().count() > chars {
                let mut t: String = s.chars().take(chars).collect();
                while t.len() > bytes {
                    t.pop();
                }
                *s = t;
            }
        }
        cut(
            &mut self.name,
            text::MAX_NAME_CHARS,
            text::MAX_NAME_CHARS * 4,
        );
        if let Some(e) = self.email.as_mut() {
            cut(e, MAX_EMAIL_BYTES, MAX_EMAIL_BYTES);
        }
        if let Some(a) = self.address.as_mut() {
            cut(a, MAX_ADDRESS_CHARS, MAX_ADDRESS_CHARS * 4);
        }
        if let Some(p) = self.phone.as_mut() {
            cut(p, MAX_PHONE_BYTES, MAX_PHONE_BYTES);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;
    use std::collections::HashMap;

    fn id(s: &str) -> AgencyId {
        AgencyId::parse(s).unwrap()
    }

    #[test]
    fn emails_are_checked_loosely() {
        for ok in [
            "vanthu@mof.gov.vn",
            "a.b+c@x.y",
            "văn.thư@bộ.gov.vn",
            "o'neil@example.org",
        ] {
            assert_eq!(check_email(ok), Ok(()), "{ok}");
        }
        for (bad, what) in [
            ("no-at.gov.vn", "no @"),
            ("a@b@c.vn", "more than one @"),
            ("@mof.gov.vn", "nothing before"),
            ("a@localhost", "domain"),
            ("a@.gov", "domain"),
            ("a@gov.", "domain"),
            ("a@gov..vn", "domain"),
            ("a b@mof.gov.vn", "space"),
        ] {
            let e = check_email(bad).expect_err(bad);
            assert!(e.to_string().contains(what), "{bad}: {e}");
        }
        assert!(matches!(
            check_email("a@b.vn\nBcc: x@y.z"),
            Err(FieldError::Text(TextError::Control { .. }))
        ));
        let long = format!("{}@mof.gov.vn", "a".repeat(MAX_EMAIL_BYTES));
        assert!(matches!(
            check_email(&long),
            Err(FieldError::Text(TextError::TooLong { .. }))
        ));
    }

    #[test]
    fn addresses_and_phones() {
        assert_eq!(check_address("12 Phan Huy Chú, Hoàn Kiếm, Hà Nội"), Ok(()));
        assert!(matches!(
            check_address("  "),
            Err(FieldError::Text(TextError::Empty { .. }))
        ));
        assert!(matches!(
            check_address("line\u{2028}two"),
            Err(FieldError::Text(TextError::Control { .. }))
        ));
        assert!(check_address(&"ổ".repeat(MAX_ADDRESS_CHARS)).is_ok());
        assert!(check_address(&"ổ".repeat(MAX_ADDRESS_CHARS + 1)).is_err());
        for ok in [
            "024.2220.2828",
            "+84 24 3825 1234",
            "(024) 3825-1234 #12",
            "0243 825 1234; 0912 345 678",
        ] {
            assert_eq!(check_phone(ok), Ok(()), "{ok}");
        }
        for bad in ["call me", "+-()", "024 3825 1234 ext 5", ""] {
            assert!(
                matches!(check_phone(bad), Err(FieldError::Phone { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            check_phone(&"1".repeat(MAX_PHONE_BYTES + 1)),
            Err(FieldError::Text(TextError::TooLong { .. }))
        ));
    }

    #[test]
    fn parents_must_exist_and_make_no_cycle() {
        // G01 <- G02 <- G03 (G03's parent is G02, whose parent is G01).
        let reg: HashMap<AgencyId, Option<AgencyId>> = [
            (id("000.00.00.G01"), None),
            (id("000.00.00.G02"), Some(id("000.00.00.G01"))),
            (id("000.00.00.G03"), Some(id("000.00.00.G02"))),
        ]
        .into_iter()
        .collect();
        let check =
            |a: &str, p: &str| check_parent(&id(a), &id(p), reg.len(), |x| reg.get(x).cloned());
        assert_eq!(check("000.00.00.G03", "000.00.00.G01"), Ok(()));
        assert_eq!(check("000.00.00.H01", "000.00.00.G03"), Ok(()));
        assert!(matches!(
            check("000.00.00.G01", "000.00.00.G01"),
            Err(ParentError::Itself(_))
        ));
        assert!(matches!(
            check("000.00.00.G01", "000.00.00.H09"),
            Err(ParentError::Unknown { .. })
        ));
        let e = check("000.00.00.G01", "000.00.00.G03").unwrap_err();
        assert!(matches!(e, ParentError::Cycle { .. }));
        assert!(
            e.to_string()
                .contains("000.00.00.G03 -> 000.00.00.G02 -> 000.00.00.G01"),
            "{e}"
        );
        // A registry that holds a cycle already is reported, not walked for ever.
        let looped: HashMap<AgencyId, Option<AgencyId>> = [
            (id("000.00.00.G01"), Some(id("000.00.00.G02"))),
            (id("000.00.00.G02"), Some(id("000.00.00.G01"))),
        ]
        .into_iter()
        .collect();
        let r = check_parent(&id("000.00.00.H01"), &id("000.00.00.G01"), 2, |x| {
            looped.get(x).cloned()
        });
        assert!(matches!(r, Err(ParentError::Cycle { .. })), "{r:?}");
    }

    /// Agency `n`; `big`: every text field as long as its limit allows, in three-byte
    /// characters.
    fn entry(n: usize, big: bool) -> DirectoryEntry {
        let (name, address) = if big {
            (
                "ổ".repeat(text::MAX_NAME_CHARS),
                "ở".repeat(MAX_ADDRESS_CHARS),
            )
        } else {
            (
                format!("Ủy ban nhân dân xã số {n}"),
                "Số 1 đường Trần Phú, thành phố".to_string(),
            )
        };
        DirectoryEntry {
            code: id(&format!(
                "{:03}.{:02}.{:02}.H{:02}",
                n / 10_000,
                (n / 100) % 100,
                n % 100,
                n % 97
            )),
            name,
            parent: n.is_multiple_of(3).then(|| id("000.00.00.G01")),
            email: Some(format!("vanthu{n}@tinh.gov.vn")),
            address: Some(address),
            phone: Some(if big {
                "1".repeat(MAX_PHONE_BYTES)
            } else {
                "024.2220.2828".into()
            }),
            active: !n.is_multiple_of(5),
        }
    }

    /// Ten thousand agencies (and the largest entries the limits allow) come out in pages
    /// that each fit a frame, in order, none lost or repeated.
    #[test]
    fn a_large_registry_is_paged_within_the_frame_limit() {
        for big in [false, true] {
            let all: Vec<DirectoryEntry> = (0..10_000).map(|n| entry(n, big)).collect();
            let mut got = Vec::new();
            let mut after: Option<AgencyId> = None;
            let mut pages = 0;
            loop {
                let rest = all
                    .iter()
                    .filter(|e| after.as_ref().is_none_or(|a| &e.code > a))
                    .cloned();
                let (entries, next) = page(rest);
                pages += 1;
                let frame = Frame::DirectoryPage {
                    entries: entries.clone(),
                    next: next.clone(),
                };
                let bytes = frame.encode().expect("every page fits a frame");
                assert!(bytes.len() - 4 <= MAX_FRAME_LEN);
                assert_eq!(Frame::decode(&bytes[4..]).unwrap(), frame);
                got.extend(entries);
                match next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            assert_eq!(got, all);
            assert!(pages > 1, "10,000 agencies need more than one page");
        }
    }

    #[test]
    fn an_empty_registry_is_one_empty_page_and_overlong_old_fields_are_cut() {
        assert_eq!(page(Vec::new()), (Vec::new(), None));
        let mut e = entry(1, false);
        e.name = "é".repeat(100_000);
        e.phone = Some("1".repeat(1000));
        let b = e.clone().bounded();
        assert_eq!(b.name.chars().count(), text::MAX_NAME_CHARS);
        assert_eq!(b.phone.as_deref().map(str::len), Some(MAX_PHONE_BYTES));
        assert_eq!(entry(2, false).bounded(), entry(2, false));
        assert_eq!(entry(3, true).bounded(), entry(3, true));
    }
}
