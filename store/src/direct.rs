//! Writing a body file past the page cache (direct I/O, `O_DIRECT`) where the filesystem
//! allows it, with the buffered writes as before where it does not.
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
        }
        // Short files: only a tail, or nothing.
        for len in [0usize, 1, ALIGN - 1, ALIGN, ALIGN + 1] {
            let path = dir.path().join(format!("short{len}"));
            let mut sink = FileSink::new(File::create(&path).unwrap());
            sink.write(&data[..len]).unwrap();
            sink.finish().unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), &data[..len]);
        }
    }

    /// On the filesystem the project is built on (ext4 on its machines), writes are direct.
    #[test]
    fn direct_on_the_build_filesystem() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let sink = FileSink::new(File::create(dir.path().join("f")).unwrap());
        assert!(
            sink.is_direct(),
            "direct I/O refused on the filesystem of {}",
            dir.path().display()
        );
    }
}
