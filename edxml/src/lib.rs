//! edXML (QCVN 102:2016) packages and status messages: a streaming reader and a writer, with no
//! IO of their own (any `BufRead` in, any `Write` out) and memory flat whatever the attachments.
//!
//! # Layout
//! - [`model`]: the values a package or status message carries; text is kept as written (dates,
//!   codes and numbers are not parsed, agency codes not checked: the caller checks what it
//!   routes on).
//! - [`read()`] / [`read_with`] (`read.rs`): the document walked by local names, children in any
//!   order, unknown elements skipped; `events.rs` under it turns quick-xml's events into owned
//!   ones (any prefix or none, undeclared prefixes included; line ends normalised, illegal
//!   characters refused; [`Limits`] enforced), `source.rs` counts and caps the bytes under it,
//!   and `stream.rs` reads each `ContentTransferEncoded` itself, chunk by chunk, decoding the
//!   base64 into the [`AttachmentSink`] (`sink.rs`) while it hashes it.
//! - [`write_package`] / [`write_status`] (`write.rs`): the QCVN 102 layout, attachments
//!   encoded from readers a chunk at a time; what it writes reads back to the same values.
//! - [`detect`] / [`sniff`] (`detect.rs`): an attachment's kind by its magic bytes, and whether
//!   bytes start like an edXML document.
//! - [`EdxmlError`] (`error.rs`): every refusal names the element and the problem.
//!
//! A document is a status message when its `MessageHeader` has `StatusCode` and no `To`;
//! otherwise it is a package.
#![forbid(unsafe_code)]

mod detect;
mod error;
mod events;
pub mod model;
mod read;
mod sink;
mod source;
mod stream;
mod write;

pub use detect::{detect, sniff, DETECT_LEN};
pub use error::{EdxmlError, Limits};
pub use events::NAMESPACE;
pub use model::*;
pub use read::{read, read_with};
pub use sink::{AttachmentSink, Collect, Discard};
pub use write::{write_package, write_status, AttachmentSource};
