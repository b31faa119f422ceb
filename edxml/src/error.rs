//! Why an edXML document was refused, and the limits that keep a hostile one from using memory.
//! Every refusal names the element concerned (or the byte where the XML broke).

/// Why an edXML document could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EdxmlError {
    /// The bytes are not well-formed XML; `message` names the element being read.
    #[error("malformed XML at byte {position}: {message}")]
    Xml {
        /// Byte offset in the input where the problem was found.
        position: u64,
        /// What is wrong, and inside which element.
        message: String,
    },
    /// A required element is not there.
    #[error("no <{element}> in the edXML message")]
    Missing {
        /// The element's local name.
        element: &'static str,
    },
    /// An element is there but its content cannot be used.
    #[error("<{element}>: {problem}")]
    Invalid {
        /// The element's local name.
        element: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// An attachment's `ContentTransferEncoded` is not base64.
    #[error("<ContentTransferEncoded> of attachment {attachment} (0-based): {message}")]
    Base64 {
        /// The attachment's index, 0-based, in document order.
        attachment: usize,
        /// What is wrong, with the offset in the encoded text.
        message: String,
    },
    /// The document goes past one of the [`Limits`].
    #[error("{what} exceeds the limit of {limit}")]
    TooLarge {
        /// Which limit.
        what: &'static str,
        /// Its value.
        limit: u64,
    },
    /// Reading the input or writing to the sink or the output failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The root element is not `edXML`, or is in a namespace other than QCVN 102:2016's.
    #[error("not an edXML document: {0}")]
    NotEdxml(String),
}

/// Bounds on what the reader keeps in memory, whatever the input.
///
/// Attachment bytes are never held (they stream to the sink), so they need no limit here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of text the reader keeps from the whole document (all header fields together),
    /// and the most bytes one piece of markup or text between two tags may span.
    pub max_header_text: usize,
    /// Most `Attachment` elements.
    pub max_attachments: usize,
    /// Most elements in the document, attachments' elements included.
    pub max_elements: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_text: 4 << 20,
            max_attachments: 1000,
            max_elements: 100_000,
        }
    }
}
