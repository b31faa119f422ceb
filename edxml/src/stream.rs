//! The text of one `ContentTransferEncoded`, read straight from the byte source chunk by chunk
//! and decoded as it comes: the text node is never held whole, whatever the attachment's size.
//!
//! Whitespace (CRLF included) may stand anywhere in the base64; character references to base64
//! characters or whitespace, comments, processing instructions and CDATA sections are accepted
//! too. The decoder keeps the 0–3 characters of an unfinished quantum between chunks.

use std::io::{self, BufRead, Write};

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use ring::digest;

use crate::detect::{detect, DETECT_LEN};
use crate::error::EdxmlError;
use crate::model::ContentKind;
use crate::source::Source;

/// Base64 characters collected before they are decoded (a multiple of 4).
const PENDING: usize = 64 * 1024;

/// Lenient on the ending only: missing padding and non-zero trailing bits are accepted.
const DECODER: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// What the reader learnt of an attachment's decoded bytes.
pub(crate) struct Decoded {
    pub(crate) len: u64,
    pub(crate) sha256: [u8; 32],
    pub(crate) detected: ContentKind,
}

impl Decoded {
    /// An attachment with no bytes.
    pub(crate) fn empty() -> Self {
        Hashing::new().finish()
    }
}

/// Length, digest and first bytes of the decoded bytes, built as they pass.
struct Hashing {
    len: u64,
    digest: digest::Context,
    head: Vec<u8>,
}

impl Hashing {
    fn new() -> Self {
        Hashing {
            len: 0,
            digest: digest::Context::new(&digest::SHA256),
            head: Vec::new(),
        }
    }

    fn add(&mut self, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        self.digest.update(bytes);
        if self.head.len() < DETECT_LEN {
            let take = (DETECT_LEN - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
        }
    }

    fn finish(self) -> Decoded {
        let mut sha256 = [0; 32];
        sha256.copy_from_slice(self.digest.finish().as_ref());
        Decoded {
            len: self.len,
            sha256,
            detected: detect(&self.head),
        }
    }
}

/// Where in the text the scanner is.
#[derive(Clone, Copy)]
enum Mode {
    Text,
    /// Inside `<![CDATA[`; how many `]` were just seen.
    Cdata(u8),
    /// Inside `<!--`; how many `-` were just seen.
    Comment(u8),
    /// Inside `<?`; whether a `?` was just seen.
    Pi(bool),
}

/// What `<` opens, decided by peeking at the bytes after it.
enum Markup {
    Cdata,
    Comment,
    Pi,
    /// Anything else (the end tag): the bytes are given back for the XML reader.
    Other,
}

/// The decoder's state between chunks.
struct Decoder<'w> {
    out: &'w mut dyn Write,
    attachment: usize,
    pending: Vec<u8>,
    decoded: Vec<u8>,
    /// Base64 characters decoded so far (for error offsets).
    chars_done: u64,
    /// Where the first `=` was seen, if one was.
    padding_at: Option<u64>,
    hashing: Hashing,
}

impl Decoder<'_> {
    fn error(&self, message: String) -> EdxmlError {
        EdxmlError::Base64 {
            attachment: self.attachment,
            message,
        }
    }

    /// Takes one character of the base64 text; `at` is its byte position in the document.
    fn push(&mut self, c: u8, at: u64) -> Result<(), EdxmlError> {
        match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' => {
                if let Some(pad) = self.padding_at {
                    return Err(self.error(format!(
                        "base64 continues at byte {at} after the '=' padding at byte {pad}"
                    )));
                }
            }
            b'=' => {
                self.padding_at.get_or_insert(at);
            }
            b' ' | b'\t' | b'\r' | b'\n' => return Ok(()),
            _ => {
                let shown = if c.is_ascii_graphic() {
                    format!("'{}' ", c as char)
                } else {
                    String::new()
                };
                return Err(self.error(format!(
                    "the character {shown}(byte 0x{c:02X}) at byte {at} is not base64"
                )));
            }
        }
        self.pending.push(c);
        if self.pending.len() == PENDING {
            self.flush(false)?;
        }
        Ok(())
    }

    /// Decodes what is pending: whole quanta only, unless this is the end.
    fn flush(&mut self, end: bool) -> Result<(), EdxmlError> {
        let take = if end {
            self.pending.len()
        } else {
            self.pending.len() / 4 * 4
        };
        if take == 0 {
            return Ok(());
        }
        if end && take % 4 == 1 {
            return Err(self.error(format!(
                "the text ends with one base64 character past the last group of four (character {}): it is cut short",
                self.chars_done + take as u64 - 1
            )));
        }
        self.decoded.resize(take / 4 * 3 + 3, 0);
        let n = DECODER
            .decode_slice(&self.pending[..take], &mut self.decoded)
            .map_err(|e| {
                let detail = match e {
                    base64::DecodeSliceError::DecodeError(base64::DecodeError::InvalidByte(
                        off,
                        byte,
                    )) => {
                        format!(
                            "misplaced '{}' at base64 character {}",
                            byte as char,
                            self.chars_done + off as u64
                        )
                    }
                    base64::DecodeSliceError::DecodeError(base64::DecodeError::InvalidPadding) => {
                        "wrong '=' padding at the end".to_string()
                    }
                    other => other.to_string(),
                };
                self.error(detail)
            })?;
        let chunk = &self.decoded[..n];
        self.out.write_all(chunk)?;
        self.hashing.add(chunk);
        self.chars_done += take as u64;
        self.pending.drain(..take);
        Ok(())
    }
}

/// Reads the text of a `ContentTransferEncoded` whose start tag the XML reader just returned,
/// decoding it into `out`, and stops before the markup that ends it (left for the XML reader).
pub(crate) fn stream_base64<R: BufRead>(
    src: &mut Source<R>,
    out: &mut dyn Write,
    attachment: usize,
) -> Result<Decoded, EdxmlError> {
    let mut dec = Decoder {
        out,
        attachment,
        pending: Vec::new(),
        decoded: Vec::new(),
        chars_done: 0,
        padding_at: None,
        hashing: Hashing::new(),
    };
    let mut mode = Mode::Text;
    loop {
        let start = src.position();
        let available = match src.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if available.is_empty() {
            return Err(EdxmlError::Xml {
                position: start,
                message: "the document ends inside <ContentTransferEncoded>".into(),
            });
        }
        // How far this chunk is used, and what stopped the scan (a byte to look at more closely).
        let mut used = available.len();
        let mut stop = None;
        for (i, &c) in available.iter().enumerate() {
            let at = start + i as u64;
            match mode {
                Mode::Text => match c {
                    b'<' | b'&' => {
                        used = i;
                        stop = Some(c);
                        break;
                    }
                    _ => dec.push(c, at)?,
                },
                Mode::Cdata(brackets) => match c {
                    b']' => mode = Mode::Cdata(brackets.saturating_add(1)),
                    b'>' if brackets >= 2 => mode = Mode::Text,
                    _ if brackets > 0 => dec.push(b']', at - 1)?,
                    _ => dec.push(c, at)?,
                },
                Mode::Comment(dashes) => match c {
                    b'-' => mode = Mode::Comment(dashes.saturating_add(1)),
                    b'>' if dashes >= 2 => mode = Mode::Text,
                    _ => mode = Mode::Comment(0),
                },
                Mode::Pi(question) => match c {
                    b'?' => mode = Mode::Pi(true),
                    b'>' if question => mode = Mode::Text,
                    _ => mode = Mode::Pi(false),
                },
            }
        }
        src.consume(used);
        match stop {
            None => {}
            Some(b'&') => {
                let at = src.position();
                src.consume(1);
                let c = reference(src, &dec)?;
                dec.push(c, at)?;
            }
            Some(_) => match peek_markup(src)? {
                Markup::Cdata => mode = Mode::Cdata(0),
                Markup::Comment => mode = Mode::Comment(0),
                Markup::Pi => mode = Mode::Pi(false),
                Markup::Other => {
                    dec.flush(true)?;
                    dec.out.flush()?;
                    return Ok(dec.hashing.finish());
                }
            },
        }
    }
}

/// Reads a character or entity reference after its `&`; returns the ASCII character it stands
/// for (anything else cannot be base64, so it is refused here).
fn reference<R: BufRead>(src: &mut Source<R>, dec: &Decoder<'_>) -> Result<u8, EdxmlError> {
    let at = src.position() - 1;
    let mut name = Vec::new();
    loop {
        match src.next_byte()? {
            Some(b';') => break,
            Some(c) if name.len() < 10 && (c.is_ascii_alphanumeric() || c == b'#') => name.push(c),
            _ => return Err(dec.error(format!("an unfinished or unknown reference at byte {at}"))),
        }
    }
    let code = match &name[..] {
        [b'#', b'x' | b'X', hex @ ..] => std::str::from_utf8(hex)
            .ok()
            .and_then(|h| u32::from_str_radix(h, 16).ok()),
        [b'#', dec @ ..] => std::str::from_utf8(dec).ok().and_then(|d| d.parse().ok()),
        b"amp" => Some(u32::from(b'&')),
        b"lt" => Some(u32::from(b'<')),
        b"gt" => Some(u32::from(b'>')),
        b"quot" => Some(u32::from(b'"')),
        b"apos" => Some(u32::from(b'\'')),
        _ => None,
    };
    match code.and_then(|c| u8::try_from(c).ok()).filter(u8::is_ascii) {
        Some(c) => Ok(c),
        None => Err(dec.error(format!(
            "the reference &{}; at byte {at} is not a base64 character",
            String::from_utf8_lossy(&name)
        ))),
    }
}

/// After a `<` in the text: is it a CDATA section, a comment or a processing instruction (which
/// the decoder reads through), or other markup (given back, `<` included, to the XML reader)?
fn peek_markup<R: BufRead>(src: &mut Source<R>) -> Result<Markup, EdxmlError> {
    const CDATA: &[u8] = b"<![CDATA[";
    const COMMENT: &[u8] = b"<!--";
    let mut seen = Vec::with_capacity(CDATA.len());
    loop {
        if seen.len() == 2 && seen[1] == b'?' {
            return Ok(Markup::Pi);
        }
        if seen == COMMENT {
            return Ok(Markup::Comment);
        }
        if seen == CDATA {
            return Ok(Markup::Cdata);
        }
        if !seen.is_empty()
            && !CDATA.starts_with(&seen)
            && !COMMENT.starts_with(&seen)
            && seen != b"<"
        {
            src.push_back(&seen);
            return Ok(Markup::Other);
        }
        match src.next_byte()? {
            Some(c) => seen.push(c),
            None => {
                src.push_back(&seen);
                return Ok(Markup::Other);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(text: &[u8], capacity: usize) -> (Result<Decoded, EdxmlError>, Vec<u8>, Vec<u8>) {
        let mut src = Source::new(io::BufReader::with_capacity(capacity, text));
        let mut out = Vec::new();
        let result = stream_base64(&mut src, &mut out, 3);
        let mut rest = Vec::new();
        io::Read::read_to_end(&mut src, &mut rest).unwrap();
        (result, out, rest)
    }

    #[test]
    fn whitespace_references_cdata_and_comments_anywhere() {
        let text = b"JV\r\nBE&#x52;i\t0x<!-- a -- b -->Lj\n<![CDATA[c]]><?pi ?><![CDATA[K]]>  </ContentTransferEncoded>";
        for capacity in [1, 2, 3, 5, 7, 64] {
            let (result, out, rest) = decode(text, capacity);
            let decoded = result.unwrap();
            assert_eq!(out, b"%PDF-1.7\n");
            assert_eq!(decoded.len, 9);
            assert_eq!(decoded.detected, ContentKind::Pdf);
            assert_eq!(rest, b"</ContentTransferEncoded>", "capacity {capacity}");
        }
    }

    #[test]
    fn missing_padding_is_accepted_but_data_after_padding_is_not() {
        let (result, out, _) = decode(b"UEsDBA</x>", 4);
        assert_eq!(result.unwrap().detected, ContentKind::Zip);
        assert_eq!(out, b"PK\x03\x04");
        let (result, _, _) = decode(b"QQ==QUFB</x>", 4);
        let message = result.err().unwrap().to_string();
        assert!(message.contains("after the '=' padding"), "{message}");
        assert!(message.contains("attachment 3"), "{message}");
    }

    #[test]
    fn refusals_name_the_byte() {
        let (result, _, _) = decode(b"QUFB\n*QUFB</x>", 8);
        let message = result.err().unwrap().to_string();
        assert!(
            message.contains("'*'") && message.contains("byte 5"),
            "{message}"
        );
        let (result, _, _) = decode(b"QUFBQ</x>", 8);
        assert!(result.err().unwrap().to_string().contains("cut short"));
        let (result, _, _) = decode(b"QU&#233;B</x>", 8);
        assert!(result.err().unwrap().to_string().contains("&#233;"));
        let (result, _, _) = decode(b"QUFB", 8);
        assert!(matches!(result, Err(EdxmlError::Xml { position: 4, .. })));
    }

    #[test]
    fn large_text_is_decoded_across_many_flushes() {
        use base64::engine::general_purpose::STANDARD;
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut text = STANDARD.encode(&data).into_bytes();
        text.extend_from_slice(b"</ContentTransferEncoded>");
        let (result, out, _) = decode(&text, 1000);
        let decoded = result.unwrap();
        assert_eq!(out, data);
        assert_eq!(
            decoded.sha256.as_slice(),
            digest::digest(&digest::SHA256, &data).as_ref()
        );
    }
}
