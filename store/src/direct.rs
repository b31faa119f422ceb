//! Writing and reading body files past the page cache (direct I/O, `O_DIRECT`) where the
//! filesystem allows it, with buffered IO as before where it does not.
//!
//! A large body is written once and read back rarely (a delivery from the hub's copy, a
//! fetch). Through the page cache every byte is first copied by the kernel into freshly
//! allocated cache pages and written back later; for a 1 GiB document that copy was the
//! largest CPU cost of all three processes (`copy_folio_from_iter_atomic`, about a third of
//! the machine's samples in `perf record -a` during the exchange bench's phase C), and on this
//! machine `dd` wrote 1 GiB with fsync in 4.2 s through the cache against 0.5 s with direct
//! I/O. Durability does not change: the file is fsync'd before it is published either way.
//!
//! Direct I/O needs the memory, the file offset and the length aligned to the device's
//! blocks, so the bytes are gathered in an aligned buffer and written in whole blocks; the
//! last partial block is written after direct I/O is switched off again. A filesystem that
//! refuses direct I/O (tmpfs on older kernels), or a write it refuses for its alignment, gets
//! buffered writes, flushed every [`SYNC_EVERY`] bytes so the final fsync has little left.
//!
//! Reading a body back (a sender's upload of its outbox copy, the hub's delivery from its
//! copy, a fetch) went through the cache the same way, the kernel filling fresh cache pages and
//! copying them out (`copy_page_to_iter`, the largest cost once writes were direct): a body is
//! read in aligned blocks with direct I/O too ([`FileSource`]).

use std::fs::File;
use std::io::{self, Write};

use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};

/// Alignment of direct writes: the largest logical block size in common use.
const ALIGN: usize = 4096;
/// Bytes gathered before one direct write (a multiple of [`ALIGN`]).
const BLOCK: usize = 1024 * 1024;
/// Buffered data is flushed to disk (fdatasync) after this many bytes.
pub const SYNC_EVERY: u64 = 32 * 1024 * 1024;

/// A new file being written front to back, then made durable by [`FileSink::finish`].
pub(crate) struct FileSink {
    file: File,
    direct: bool,
    /// `BLOCK + ALIGN` bytes; the aligned block starts at `start`.
    buf: Vec<u8>,
    start: usize,
    filled: usize,
    unsynced: u64,
}

fn set_direct(file: &File, on: bool) -> io::Result<()> {
    let flags = fcntl_getfl(file)?;
    let flags = if on {
        flags | OFlags::DIRECT
    } else {
        flags - OFlags::DIRECT
    };
    fcntl_setfl(file, flags)?;
    Ok(())
}

impl FileSink {
    /// Writes `file` (empty, opened for writing) directly if its filesystem allows it.
    pub(crate) fn new(file: File) -> FileSink {
        let direct = set_direct(&file, true).is_ok();
        let (buf, start) = if direct {
            let buf = vec![0u8; BLOCK + ALIGN];
            let start = buf.as_ptr().align_offset(ALIGN);
            (buf, start)
        } else {
            (Vec::new(), 0)
        };
        FileSink {
            file,
            direct,
            buf,
            start,
            filled: 0,
            unsynced: 0,
        }
    }

    /// Whether writes bypass the page cache.
    #[cfg(test)]
    pub(crate) fn is_direct(&self) -> bool {
        self.direct
    }

    /// Appends `data`.
    pub(crate) fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while self.direct && !data.is_empty() {
            let n = (BLOCK - self.filled).min(data.len());
            let at = self.start + self.filled;
            self.buf[at..at + n].copy_from_slice(&data[..n]);
            self.filled += n;
            data = &data[n..];
            if self.filled == BLOCK {
                self.flush_block(BLOCK)?;
            }
        }
        if !data.is_empty() {
            self.buffered(data)?;
        }
        Ok(())
    }

    /// Writes the first `len` (aligned) bytes of the block; what follows them moves to the
    /// front.
    fn flush_block(&mut self, len: usize) -> io::Result<()> {
        let block = &self.buf[self.start..self.start + len];
        match self.file.write_all(block) {
            Ok(()) => {}
            // Direct I/O refused for this write (alignment the device wants is larger): the
            // rest of the file goes through the page cache.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                set_direct(&self.file, false)?;
                self.direct = false;
                let rest = self.buf[self.start..self.start + self.filled].to_vec();
                self.filled = 0;
                return self.buffered(&rest);
            }
            Err(e) => return Err(e),
        }
        self.buf
            .copy_within(self.start + len..self.start + self.filled, self.start);
        self.filled -= len;
        Ok(())
    }

    fn buffered(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.unsynced += data.len() as u64;
        if self.unsynced >= SYNC_EVERY {
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(())
    }

    /// Writes what is left and makes the file durable (data and metadata).
    pub(crate) fn finish(mut self) -> io::Result<()> {
        if self.direct {
            let whole = self.filled / ALIGN * ALIGN;
            if whole > 0 {
                self.flush_block(whole)?;
            }
            if self.direct && self.filled > 0 {
                set_direct(&self.file, false)?;
                self.direct = false;
                let tail = self.buf[self.start..self.start + self.filled].to_vec();
                self.filled = 0;
                self.file.write_all(&tail)?;
            }
        }
        self.file.sync_all()
    }
}

/// A body file read front to back in blocks of up to 1 MiB.
pub(crate) struct FileSource {
    file: File,
    direct: bool,
    buf: Vec<u8>,
    start: usize,
    eof: bool,
}

impl FileSource {
    /// Reads `file` (opened for reading, at its start) directly if its filesystem allows it.
    pub(crate) fn new(file: File) -> FileSource {
        let direct = set_direct(&file, true).is_ok();
        let buf = vec![0u8; BLOCK + ALIGN];
        let start = buf.as_ptr().align_offset(ALIGN);
        FileSource {
            file,
            direct,
            buf,
            start,
            eof: false,
        }
    }

    /// The next block, or `None` at the end of the file.
    pub(crate) fn next_block(&mut self) -> io::Result<Option<Vec<u8>>> {
        use std::io::Read;
        if self.eof {
            return Ok(None);
        }
        let mut got = 0;
        let region = self.start..self.start + BLOCK;
        while got < BLOCK {
            let at = region.start + got;
            match self.file.read(&mut self.buf[at..region.end]) {
                Ok(0) => break,
                Ok(n) => {
                    got += n;
                    // Direct reads come in whole blocks except at the end of the file.
                    if self.direct && got % ALIGN != 0 {
                        break;
                    }
                }
                Err(e)
                    if self.direct
                        && got == 0
                        && e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) =>
                {
                    set_direct(&self.file, false)?;
                    self.direct = false;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if got < BLOCK {
            self.eof = true;
        }
        if got == 0 {
            return Ok(None);
        }
        Ok(Some(self.buf[region.start..region.start + got].to_vec()))
    }

    /// Whether reads bypass the page cache.
    #[cfg(test)]
    pub(crate) fn is_direct(&self) -> bool {
        self.direct
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every split of the input, aligned or not, direct or buffered, ends as the same file.
    #[test]
    fn writes_any_pieces_front_to_back() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(3 * BLOCK + 5000))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        for (n, sizes) in [
            vec![1usize],
            vec![4096],
            vec![BLOCK],
            vec![BLOCK + 1, 3],
            vec![100_000, 4095, 777],
        ]
        .into_iter()
        .enumerate()
        {
            let path = dir.path().join(format!("f{n}"));
            let file = File::create(&path).unwrap();
            let mut sink = FileSink::new(file);
            let mut off = 0;
            let mut i = 0;
            while off < data.len() {
                let len = sizes[i % sizes.len()].min(data.len() - off);
                sink.write(&data[off..off + len]).unwrap();
                off += len;
                i += 1;
            }
            sink.finish().unwrap();
            assert!(std::fs::read(&path).unwrap() == data, "pieces {sizes:?}");
            assert!(read_back(&path) == data, "pieces {sizes:?} read back");
        }
        // Short files: only a tail, or nothing.
        for len in [0usize, 1, ALIGN - 1, ALIGN, ALIGN + 1] {
            let path = dir.path().join(format!("short{len}"));
            let mut sink = FileSink::new(File::create(&path).unwrap());
            sink.write(&data[..len]).unwrap();
            sink.finish().unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), &data[..len]);
            assert_eq!(read_back(&path), &data[..len]);
        }
    }

    fn read_back(path: &std::path::Path) -> Vec<u8> {
        let mut src = FileSource::new(File::open(path).unwrap());
        let mut out = Vec::new();
        while let Some(b) = src.next_block().unwrap() {
            assert!(b.len() <= BLOCK);
            out.extend_from_slice(&b);
        }
        assert!(src.next_block().unwrap().is_none(), "a block after the end");
        out
    }

    /// On the filesystem the project is built on (ext4 on its machines), writes are direct.
    #[test]
    fn direct_on_the_build_filesystem() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let path = dir.path().join("f");
        let sink = FileSink::new(File::create(&path).unwrap());
        assert!(
            sink.is_direct(),
            "direct I/O refused on the filesystem of {}",
            dir.path().display()
        );
        sink.finish().unwrap();
        assert!(FileSource::new(File::open(&path).unwrap()).is_direct());
    }
}
