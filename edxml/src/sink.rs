//! Where the reader sends decoded attachment bytes: one writer per attachment, fed chunk by
//! chunk, so no attachment is ever held whole by this crate.

use std::io::{self, Write};

/// Where decoded attachment bytes go, streamed chunk by chunk (never whole in memory).
pub trait AttachmentSink {
    /// Called when the index-th (0-based) attachment's content starts; returns the writer.
    ///
    /// The reader calls it exactly once for every `Attachment` element, also for one without
    /// `ContentTransferEncoded` (which then gets no bytes).
    fn begin(&mut self, index: usize) -> io::Result<Box<dyn Write + '_>>;
}

/// A sink that discards attachment bytes (the reader still counts len, sha256 and kind).
#[derive(Clone, Copy, Debug, Default)]
pub struct Discard;

impl AttachmentSink for Discard {
    fn begin(&mut self, _index: usize) -> io::Result<Box<dyn Write + '_>> {
        Ok(Box::new(io::sink()))
    }
}

/// A sink that keeps every attachment in memory, for tests and small documents.
#[derive(Clone, Debug, Default)]
pub struct Collect {
    /// The decoded bytes of each attachment, by index.
    pub attachments: Vec<Vec<u8>>,
}

impl AttachmentSink for Collect {
    fn begin(&mut self, index: usize) -> io::Result<Box<dyn Write + '_>> {
        if self.attachments.len() <= index {
            self.attachments.resize(index + 1, Vec::new());
        }
        let slot = &mut self.attachments[index];
        slot.clear();
        Ok(Box::new(slot))
    }
}
