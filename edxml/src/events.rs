//! The event layer under the edXML reader: quick-xml events turned into owned, namespace-blind
//! ones (elements by local name, whatever their prefix), XML 1.0 text rules applied (line ends
//! normalised, references resolved, illegal characters refused), and the limits enforced.

use std::io::BufRead;

use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::Reader;

use crate::error::{EdxmlError, Limits};
use crate::sink::AttachmentSink;
use crate::source::Source;
use crate::stream::{stream_base64, Decoded};

/// QCVN 102:2016's namespace.
pub const NAMESPACE: &str = "http://www.mic.gov.vn/TBT/QCVN_102_2016";

/// How many open element names are remembered for error messages.
const NAMES_KEPT: usize = 64;
/// How much of a name is remembered for error messages.
const NAME_CHARS: usize = 64;

/// A start tag (or empty-element tag), by local name.
pub(crate) struct Open {
    pub(crate) name: String,
    /// The value of an attribute whose local name is `href` (e.g. `xlink:href`), declared or not.
    pub(crate) href: Option<String>,
    /// `<name/>`: there is no content and no end tag to read.
    pub(crate) empty: bool,
}

/// One owned event.
pub(crate) enum Ev {
    Open(Open),
    Close,
    Text(String),
    Eof,
}

/// The reader's state: the XML reader over the counted source, and what the limits count.
pub(crate) struct Events<'s, R: BufRead> {
    xml: Reader<Source<R>>,
    buf: Vec<u8>,
    pub(crate) limits: Limits,
    pub(crate) sink: &'s mut dyn AttachmentSink,
    /// Bytes the attachment decoder consumed behind the XML reader's back.
    bypassed: u64,
    elements: usize,
    text_kept: usize,
    /// Local names of the open elements (the first [`NAMES_KEPT`]), and how many more are open.
    names: Vec<String>,
    names_beyond: usize,
}

impl<'s, R: BufRead> Events<'s, R> {
    pub(crate) fn new(input: R, sink: &'s mut dyn AttachmentSink, limits: &Limits) -> Self {
        let mut xml = Reader::from_reader(Source::new(input));
        let config = xml.config_mut();
        config.trim_text(false);
        config.check_end_names = true;
        config.expand_empty_elements = false;
        Events {
            xml,
            buf: Vec::new(),
            limits: limits.clone(),
            sink,
            bypassed: 0,
            elements: 0,
            text_kept: 0,
            names: Vec::new(),
            names_beyond: 0,
        }
    }

    /// Where the reader is in the input.
    pub(crate) fn position(&self) -> u64 {
        self.xml.buffer_position() + self.bypassed
    }

    /// A refusal for malformed XML at `position`, naming the element being read.
    pub(crate) fn malformed(&self, position: u64, problem: impl std::fmt::Display) -> EdxmlError {
        let message = match self.names.last() {
            Some(name) => format!("{problem} (inside <{name}>)"),
            None => format!("{problem} (outside the root element)"),
        };
        EdxmlError::Xml { position, message }
    }

    /// The refusal for input that ends before the open elements are closed.
    pub(crate) fn unexpected_eof(&self) -> EdxmlError {
        self.malformed(
            self.position(),
            "the document ends before its elements are closed",
        )
    }

    /// Counts kept text against [`Limits::max_header_text`].
    pub(crate) fn keep_text(&mut self, bytes: usize) -> Result<(), EdxmlError> {
        self.text_kept += bytes;
        if self.text_kept > self.limits.max_header_text {
            return Err(EdxmlError::TooLarge {
                what: "the text kept from the document",
                limit: self.limits.max_header_text as u64,
            });
        }
        Ok(())
    }

    /// The start tag of the root element: refuses what is not an `edXML` element in QCVN 102's
    /// namespace or in no namespace (an undeclared prefix counts as none).
    pub(crate) fn root(&mut self) -> Result<Open, EdxmlError> {
        loop {
            match self.read(true)? {
                Raw::Open(open, namespace) => {
                    if open.name != "edXML" {
                        return Err(EdxmlError::NotEdxml(format!(
                            "the root element is <{}>, not <edXML>",
                            clip(&open.name)
                        )));
                    }
                    if let Some(ns) = namespace.filter(|ns| !same_namespace(ns)) {
                        return Err(EdxmlError::NotEdxml(format!(
                            "the root element is in the namespace \"{}\", not QCVN 102:2016's \"{NAMESPACE}\"",
                            clip(&ns)
                        )));
                    }
                    return self.opened(open);
                }
                Raw::Text(text) if !text.bytes().all(crate::detect::is_space) => {
                    return Err(EdxmlError::NotEdxml("text before the root element".into()));
                }
                Raw::Text(_) | Raw::Skip => {}
                Raw::Close => {
                    return Err(
                        self.malformed(self.position(), "an end tag before the root element")
                    )
                }
                Raw::Eof => return Err(EdxmlError::NotEdxml("no root element".into())),
            }
        }
    }

    /// The next event, owned.
    pub(crate) fn next(&mut self) -> Result<Ev, EdxmlError> {
        loop {
            return match self.read(false)? {
                Raw::Open(open, _) => Ok(Ev::Open(self.opened(open)?)),
                Raw::Close => {
                    if self.names_beyond > 0 {
                        self.names_beyond -= 1;
                    } else {
                        self.names.pop();
                    }
                    Ok(Ev::Close)
                }
                Raw::Text(text) => Ok(Ev::Text(text)),
                Raw::Eof => Ok(Ev::Eof),
                Raw::Skip => continue,
            };
        }
    }

    /// Counts an opened element and remembers its name.
    fn opened(&mut self, open: Open) -> Result<Open, EdxmlError> {
        self.elements += 1;
        if self.elements > self.limits.max_elements {
            return Err(EdxmlError::TooLarge {
                what: "the number of elements",
                limit: self.limits.max_elements as u64,
            });
        }
        if !open.empty {
            if self.names.len() < NAMES_KEPT {
                self.names.push(clip(&open.name));
            } else {
                self.names_beyond += 1;
            }
        }
        Ok(open)
    }

    /// Streams the text of the `ContentTransferEncoded` element just opened into the sink's
    /// writer for attachment `index`, then reads its end tag.
    pub(crate) fn attachment_content(&mut self, index: usize) -> Result<Decoded, EdxmlError> {
        let src = self.xml.get_mut();
        src.set_budget(None);
        let before = src.position();
        let mut writer = self.sink.begin(index)?;
        let decoded = stream_base64(src, &mut *writer, index);
        drop(writer);
        self.bypassed += src.position() - before;
        let decoded = decoded?;
        match self.next()? {
            Ev::Close => Ok(decoded),
            Ev::Open(open) => Err(EdxmlError::Invalid {
                element: "ContentTransferEncoded",
                problem: format!(
                    "holds an element <{}> after its base64 text",
                    clip(&open.name)
                ),
            }),
            Ev::Text(_) => Err(EdxmlError::Invalid {
                element: "ContentTransferEncoded",
                problem: "holds text after markup that is not its end tag".into(),
            }),
            Ev::Eof => Err(self.unexpected_eof()),
        }
    }

    /// Reads one quick-xml event, within the per-event budget, and makes it owned; with
    /// `namespace`, also finds the namespace the element's prefix (or no prefix) is bound to.
    fn read(&mut self, namespace: bool) -> Result<Raw, EdxmlError> {
        self.buf.clear();
        self.xml
            .get_mut()
            .set_budget(Some(self.limits.max_header_text as u64));
        let raw = match self.xml.read_event_into(&mut self.buf) {
            Ok(Event::Start(start)) => owned_open(&start, false, namespace),
            Ok(Event::Empty(start)) => owned_open(&start, true, namespace),
            Ok(Event::End(_)) => Ok(Raw::Close),
            Ok(Event::Text(text)) => text_of(&text).map(Raw::Text),
            Ok(Event::CData(text)) => text_of(&text).map(Raw::Text),
            Ok(Event::GeneralRef(reference)) => reference_of(&reference).map(Raw::Text),
            Ok(Event::Eof) => Ok(Raw::Eof),
            Ok(Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_)) => {
                Ok(Raw::Skip)
            }
            Err(quick_xml::Error::Io(e)) => {
                return Err(if self.xml.get_ref().over_budget() {
                    EdxmlError::TooLarge {
                        what: "one piece of text or markup",
                        limit: self.limits.max_header_text as u64,
                    }
                } else {
                    EdxmlError::Io(std::io::Error::new(e.kind(), e.to_string()))
                });
            }
            Err(e) => {
                let position = self.xml.error_position() + self.bypassed;
                return Err(self.malformed(position, e));
            }
        };
        raw.map_err(|problem| self.malformed(self.position(), problem))
    }
}

/// An owned event, before the bookkeeping.
enum Raw {
    /// A start tag, and the namespace its prefix is bound to when that was asked for.
    Open(Open, Option<String>),
    Close,
    Text(String),
    Eof,
    /// Declarations, processing instructions, comments.
    Skip,
}

fn owned_open(start: &BytesStart<'_>, empty: bool, want_namespace: bool) -> Result<Raw, String> {
    let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
    let prefix = start.name().prefix().map(|p| p.as_ref().to_vec());
    let mut href = None;
    let mut namespace = None;
    for attr in start.attributes() {
        let attr = attr.map_err(|e| format!("a malformed attribute: {e}"))?;
        let key = attr.key;
        let is_href = key.local_name().as_ref() == b"href";
        let declares = want_namespace
            && match (&prefix, key.as_ref()) {
                (None, b"xmlns") => true,
                (Some(p), k) => k.strip_prefix(b"xmlns:") == Some(p.as_slice()),
                _ => false,
            };
        if is_href || declares {
            let value = attr
                .unescape_value()
                .map_err(|e| format!("attribute {}: {e}", String::from_utf8_lossy(key.as_ref())))?;
            check_chars(&value)?;
            if is_href {
                href = Some(value.into_owned());
            } else {
                namespace = Some(value.into_owned());
            }
        }
    }
    Ok(Raw::Open(Open { name, href, empty }, namespace))
}

/// Text as XML 1.0 gives it to an application: UTF-8, line ends normalised to `\n`, only legal
/// characters.
fn text_of(raw: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(raw).map_err(|e| format!("text that is not UTF-8: {e}"))?;
    check_chars(text)?;
    Ok(if text.contains('\r') {
        text.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        text.to_owned()
    })
}

/// A character or predefined entity reference, resolved.
fn reference_of(reference: &BytesRef<'_>) -> Result<String, String> {
    let shown = || String::from_utf8_lossy(reference).into_owned();
    let c = match reference.resolve_char_ref() {
        Ok(Some(c)) => c,
        Ok(None) => match &reference[..] {
            b"lt" => '<',
            b"gt" => '>',
            b"amp" => '&',
            b"apos" => '\'',
            b"quot" => '"',
            _ => return Err(format!("the unknown entity &{};", clip(&shown()))),
        },
        Err(e) => return Err(format!("the reference &{};: {e}", clip(&shown()))),
    };
    let mut text = String::new();
    text.push(c);
    check_chars(&text)?;
    Ok(text)
}

/// Refuses characters XML 1.0 does not allow (most C0 controls, U+FFFE, U+FFFF).
fn check_chars(text: &str) -> Result<(), String> {
    match text.chars().find(|&c| !legal(c)) {
        Some(c) => Err(format!(
            "the character U+{:04X}, which XML 1.0 does not allow",
            c as u32
        )),
        None => Ok(()),
    }
}

/// Whether XML 1.0 allows the character in a document.
pub(crate) fn legal(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// QCVN 102's namespace, allowing for a trailing slash and letter case.
fn same_namespace(ns: &str) -> bool {
    ns.trim()
        .trim_end_matches('/')
        .eq_ignore_ascii_case(NAMESPACE)
}

/// A name or value cut short for an error message.
pub(crate) fn clip(text: &str) -> String {
    match text.char_indices().nth(NAME_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}
