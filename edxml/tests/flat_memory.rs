//! Memory stays flat whatever the attachment's size: a package with a 64 MiB attachment,
//! generated on the fly by a `Read` (never a buffer), is read and written while a counting
//! global allocator records the peak of live heap bytes. Holding the base64 text node (85 MiB)
//! or the decoded attachment anywhere would show in the peak; so would a header text node
//! read past its limit.
//!
//! One test function only: the allocator counts the whole process, so nothing may run beside it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, BufReader, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use poros_edxml::*;
use ring::digest;

/// The system allocator, counting live bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = LIVE.fetch_add(bytes, Ordering::SeqCst) + bytes;
    PEAK.fetch_max(now, Ordering::SeqCst);
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the `GlobalAlloc`
// contract; the counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
            grew(new_size);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result with the most heap it held live at once beyond what was
/// live before.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let result = f();
    (result, PEAK.load(Ordering::SeqCst) - base)
}

const ATTACHMENT: u64 = 64 << 20;
const MIB: usize = 1 << 20;

/// The attachment's bytes: a zip signature, then a deterministic pseudo-random stream.
struct Bytes {
    left: u64,
    state: u64,
    started: bool,
}

impl Bytes {
    fn new(len: u64) -> Self {
        Bytes {
            left: len,
            state: 0x9E37_79B9_7F4A_7C15,
            started: false,
        }
    }
}

impl Read for Bytes {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = (out.len() as u64).min(self.left) as usize;
        for b in &mut out[..n] {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            *b = self.state as u8;
        }
        if !self.started && n >= 4 {
            out[..4].copy_from_slice(b"PK\x03\x04");
            self.started = true;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A package whose one attachment is `Bytes`, base64 in CRLF-wrapped lines, produced as read.
struct Package {
    head: io::Cursor<Vec<u8>>,
    bytes: Bytes,
    line: Vec<u8>,
    line_at: usize,
    tail: io::Cursor<Vec<u8>>,
}

impl Package {
    fn new(len: u64) -> Self {
        let head = "<?xml version=\"1.0\"?>\r\n<edXML xmlns=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\">\
            <edXMLEnvelope><edXMLHeader><MessageHeader><From><OrganId>000.00.01.H26</OrganId></From>\
            <To><OrganId>000.00.02.H26</OrganId></To><Subject>Tệp lớn</Subject></MessageHeader>\
            </edXMLHeader></edXMLEnvelope><AttachmentEncoded><Attachment><ContentId>cid:big</ContentId>\
            <ContentType>application/pdf</ContentType><ContentTransferEncoded>\r\n";
        let tail = "</ContentTransferEncoded></Attachment></AttachmentEncoded></edXML>\r\n";
        Package {
            head: io::Cursor::new(head.as_bytes().to_vec()),
            bytes: Bytes::new(len),
            line: Vec::new(),
            line_at: 0,
            tail: io::Cursor::new(tail.as_bytes().to_vec()),
        }
    }
}

impl Read for Package {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.head.read(out)?;
        if n > 0 {
            return Ok(n);
        }
        if self.line_at == self.line.len() {
            let mut raw = [0u8; 57];
            let got = self.bytes.read(&mut raw)?;
            self.line.clear();
            self.line_at = 0;
            if got > 0 {
                self.line
                    .extend_from_slice(STANDARD.encode(&raw[..got]).as_bytes());
                self.line.extend_from_slice(b"\r\n");
            }
        }
        if self.line_at < self.line.len() {
            let n = (self.line.len() - self.line_at).min(out.len());
            out[..n].copy_from_slice(&self.line[self.line_at..self.line_at + n]);
            self.line_at += n;
            return Ok(n);
        }
        self.tail.read(out)
    }
}

/// Counts what the reader decodes, keeping nothing.
#[derive(Default)]
struct Counter {
    bytes: u64,
}

impl AttachmentSink for Counter {
    fn begin(&mut self, _index: usize) -> io::Result<Box<dyn Write + '_>> {
        Ok(Box::new(CountingWriter(&mut self.bytes)))
    }
}

struct CountingWriter<'a>(&'a mut u64);

impl Write for CountingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        *self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn memory_stays_flat_for_a_64_mib_attachment_and_a_huge_header_text() {
    let mut expected = digest::Context::new(&digest::SHA256);
    let mut bytes = Bytes::new(ATTACHMENT);
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = bytes.read(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        expected.update(&chunk[..n]);
    }
    let expected = expected.finish();

    // Reading: the input is produced as it is read; the sink keeps nothing.
    let input = BufReader::with_capacity(1 << 16, Package::new(ATTACHMENT));
    let mut sink = Counter::default();
    let (message, peak) = peak_of(|| read(input, &mut sink));
    let Message::Package(p) = message.unwrap() else {
        panic!("not a package")
    };
    assert_eq!(sink.bytes, ATTACHMENT);
    assert_eq!(p.attachments[0].len, ATTACHMENT);
    assert_eq!(p.attachments[0].sha256.as_slice(), expected.as_ref());
    assert_eq!(p.attachments[0].detected, ContentKind::Zip);
    assert_eq!(p.header.subject.as_deref(), Some("Tệp lớn"));
    println!("reading a 64 MiB attachment: peak heap {peak} bytes beyond the input buffer");
    assert!(
        peak < MIB,
        "reading held {peak} bytes at once for a 64 MiB attachment"
    );

    // Writing: the attachment comes from a reader, the output goes nowhere.
    let mut content = Bytes::new(ATTACHMENT);
    let mut sources = [AttachmentSource {
        meta: p.attachments[0].meta.clone(),
        content: &mut content,
    }];
    let mut counted = 0u64;
    let (written, peak) = peak_of(|| {
        write_package(
            CountingWriter(&mut counted),
            &p.header,
            &p.traces,
            None,
            &mut sources,
        )
    });
    assert_eq!(written.unwrap(), counted);
    assert!(counted > ATTACHMENT / 3 * 4);
    println!("writing a 64 MiB attachment: peak heap {peak} bytes");
    assert!(
        peak < MIB,
        "writing held {peak} bytes at once for a 64 MiB attachment"
    );

    // A 64 MiB text node outside an attachment is refused at the limit, not read into memory.
    let head: &[u8] = b"<edXML><edXMLEnvelope><edXMLHeader><MessageHeader><Subject>";
    let huge = io::repeat(b'x').take(ATTACHMENT);
    let input = BufReader::with_capacity(1 << 16, head.chain(huge));
    let limits = Limits {
        max_header_text: MIB,
        ..Limits::default()
    };
    let (result, peak) = peak_of(|| read_with(input, &mut Discard, &limits));
    let error = result.unwrap_err();
    assert!(matches!(error, EdxmlError::TooLarge { .. }), "{error}");
    println!("a 64 MiB header text: {error}; peak heap {peak} bytes");
    assert!(
        peak < 4 * MIB,
        "a huge header text held {peak} bytes at once"
    );
}
