//! What an attachment really is (by its first bytes, whatever its claimed content type) and
//! whether a byte stream looks like an edXML document at all, both without parsing.

use crate::model::ContentKind;

/// How many leading bytes [`detect`] looks at; the reader keeps this many of each attachment.
pub const DETECT_LEN: usize = 16;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Content kind from the first bytes.
pub fn detect(first_bytes: &[u8]) -> ContentKind {
    let b = first_bytes;
    if b.starts_with(b"%PDF") {
        ContentKind::Pdf
    } else if b.starts_with(b"PK\x03\x04")
        || b.starts_with(b"PK\x05\x06")
        || b.starts_with(b"PK\x07\x08")
    {
        ContentKind::Zip
    } else if b.starts_with(b"\xD0\xCF\x11\xE0") {
        ContentKind::Ole
    } else if b.starts_with(b"\x89PNG\r\n\x1A\n") {
        ContentKind::Png
    } else if b.starts_with(b"\xFF\xD8\xFF") {
        ContentKind::Jpeg
    } else if b.starts_with(b"II*\0") || b.starts_with(b"MM\0*") {
        ContentKind::Tiff
    } else if skip_space(b.strip_prefix(UTF8_BOM).unwrap_or(b)).starts_with(b"<?xml") {
        ContentKind::Xml
    } else {
        ContentKind::Unknown
    }
}

/// Quick check without full parse: does this look like an edXML document (root element edXML)?
///
/// Skips a byte-order mark, the XML declaration, processing instructions, comments and a
/// document type declaration, then looks at the first element's local name (any prefix). False
/// when the bytes end before the root element's name does.
pub fn sniff(first_bytes: &[u8]) -> bool {
    let mut rest = first_bytes.strip_prefix(UTF8_BOM).unwrap_or(first_bytes);
    loop {
        rest = skip_space(rest);
        // Where the markup before the root ends, found as an XML reader finds it.
        let end = if rest.starts_with(b"<?") {
            find(&rest[2..], b"?>").map(|at| 2 + at + 2)
        } else if rest.starts_with(b"<!--") {
            find(&rest[4..], b"-->").map(|at| 4 + at + 3)
        } else if rest.starts_with(b"<!") {
            // A document type declaration: its `<` and `>` balance (an internal subset nests).
            let mut depth = 0usize;
            rest.iter()
                .skip(2)
                .position(|&c| match c {
                    b'<' => {
                        depth += 1;
                        false
                    }
                    b'>' if depth == 0 => true,
                    b'>' => {
                        depth -= 1;
                        false
                    }
                    _ => false,
                })
                .map(|at| 2 + at + 1)
        } else if let Some(tag) = rest.strip_prefix(b"<") {
            let end = tag
                .iter()
                .position(|&c| is_space(c) || c == b'/' || c == b'>');
            let Some(end) = end else { return false };
            let name = &tag[..end];
            let local = name.rsplit(|&c| c == b':').next().unwrap_or(name);
            return local == b"edXML";
        } else {
            return false;
        };
        match end {
            Some(end) => rest = &rest[end..],
            None => return false,
        }
    }
}

/// XML's whitespace (not Unicode's, nor ASCII's form feed).
pub(crate) fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn skip_space(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&c| !is_space(c))
        .unwrap_or(bytes.len());
    &bytes[start..]
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_magic_bytes() {
        assert_eq!(detect(b"%PDF-1.7\n"), ContentKind::Pdf);
        assert_eq!(detect(b"PK\x03\x04\x14\0"), ContentKind::Zip);
        assert_eq!(detect(b"PK\x05\x06"), ContentKind::Zip);
        assert_eq!(
            detect(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1"),
            ContentKind::Ole
        );
        assert_eq!(detect(b"\x89PNG\r\n\x1A\n\0\0"), ContentKind::Png);
        assert_eq!(detect(b"\xFF\xD8\xFF\xE0"), ContentKind::Jpeg);
        assert_eq!(detect(b"II*\0\x08"), ContentKind::Tiff);
        assert_eq!(detect(b"MM\0*"), ContentKind::Tiff);
        assert_eq!(detect(b"\xEF\xBB\xBF  <?xml version"), ContentKind::Xml);
        assert_eq!(detect(b"<html>"), ContentKind::Unknown);
        assert_eq!(detect(b"%PD"), ContentKind::Unknown);
        assert_eq!(detect(b""), ContentKind::Unknown);
    }

    #[test]
    fn sniff_finds_the_root_name_behind_prolog() {
        assert!(sniff(b"<edXML xmlns='x'>"));
        assert!(sniff(
            b"\xEF\xBB\xBF<?xml version=\"1.0\"?>\r\n<!-- a > b --><edXML:edXML>"
        ));
        assert!(sniff(b"<!DOCTYPE edXML [<!ENTITY a \"b\">]><ns0:edXML/>"));
        assert!(sniff(
            b"<!DOCTYPE edXML [<!ENTITY a \"b\"> ] ><!----><edXML>"
        ));
        assert!(!sniff(b"<!--><edXML>"));
        assert!(!sniff(b"\x0C<edXML>"));
        assert!(sniff(b"<edXML>"));
        assert!(!sniff(b"<edXMLEnvelope>"));
        assert!(!sniff(b"<html><edXML>"));
        assert!(!sniff(b"<?xml version"));
        assert!(!sniff(b"<edXM"));
        assert!(!sniff(b"edXML"));
        assert!(!sniff(b""));
    }
}
