//! Compressed traces: a zstd stream around the trace's bytes (docs/FORMAT.md,
//! "Compressed traces"), recognised by its first four bytes and decompressed
//! as it is read, so the rest of the pipeline sees the frames as an
//! uncompressed trace holds them. Memory stays bounded: a compressed block
//! at a time, plus the zstd window (memscope-std's level 1 uses 512 KiB; a
//! frame asking for more than 8 MiB is refused as damage), and at most 16
//! faults listed (the rest counted).
//!
//! A raw trace starts with `0x00` (docs/FORMAT.md, "Frames"), a zstd frame
//! with `28 b5 2f fd`; anything else is handed on unchanged and judged by the
//! frame reader.
//!
//! Damage. A file cut short (a process killed mid-write) ends inside a zstd
//! frame: every byte of its complete blocks is handed on, then the input
//! ends, and the frame reader reports the cut frame as it does for a raw
//! trace. Data that zstd cannot decode ends what it yields there, and
//! decoding resumes at the next zstd frame (memscope-std starts one every
//! 16 MiB of trace); the frame reader then reports the seam as damage and
//! re-synchronises every stream at its next Sync record. Either way one line
//! on stderr names the input and the offset in the *compressed* file; the
//! offsets in the report are offsets in the decompressed trace (what
//! `zstd -d` writes).

use std::io::{self, Read};

/// The first bytes of a zstd frame.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// Compressed bytes handed to libzstd per call. The bound on how precisely a
/// fault's offset is known (libzstd finds damage only once it has a whole
/// block, up to 128 KiB, so finer steps would not say more).
#[cfg(feature = "zstd")]
const STEP: usize = 16 << 10;

/// `reader`, decompressed if it starts like a zstd stream. `name` is used in
/// messages. Only the first byte is awaited unless it is zstd's first
/// (a live raw stream starts with `0x00`: nothing waits for more input).
pub fn decompressing(
    name: &str,
    mut reader: Box<dyn Read + Send>,
) -> io::Result<Box<dyn Read + Send>> {
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < head.len() {
        let n = match reader.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        got += n;
        if head[0] != ZSTD_MAGIC[0] {
            break;
        }
    }
    let head = head[..got].to_vec();
    if head != ZSTD_MAGIC {
        return Ok(Box::new(io::Cursor::new(head).chain(reader)));
    }
    zstd_reader(name, head, reader)
}

#[cfg(feature = "zstd")]
fn zstd_reader(
    name: &str,
    head: Vec<u8>,
    reader: Box<dyn Read + Send>,
) -> io::Result<Box<dyn Read + Send>> {
    Ok(Box::new(Zstd::new(name, head, reader)?))
}

#[cfg(not(feature = "zstd"))]
fn zstd_reader(
    name: &str,
    _head: Vec<u8>,
    _reader: Box<dyn Read + Send>,
) -> io::Result<Box<dyn Read + Send>> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!(
            "{name} is zstd-compressed and this memscope-decode was built without its `zstd` \
             feature (decompress it with `zstd -d` first)"
        ),
    ))
}

/// What went wrong in a compressed input, with its offsets there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The input ended inside a zstd frame, at this compressed offset.
    Truncated { at: u64 },
    /// libzstd refused the data: the damage is somewhere in `[from, to)`
    /// (libzstd decodes a block, up to 128 KiB, only once it has all of it).
    /// Decoding went on at the next zstd frame (`resumed`), or the input
    /// ended without one.
    Damaged {
        from: u64,
        to: u64,
        reason: String,
        resumed: Option<u64>,
    },
    /// The zstd frame in `[from, to)` decoded, but its content checksum does
    /// not match: its bytes were handed on, and the trace frames' own CRCs
    /// find the damaged ones (with offsets in the decompressed stream).
    Checksum {
        from: u64,
        to: u64,
        resumed: Option<u64>,
    },
}

impl Fault {
    /// The line printed for it, naming the input.
    pub fn message(&self, name: &str) -> String {
        let then = |resumed: &Option<u64>| match resumed {
            Some(at) => format!("decoding resumes at the next zstd frame, byte {at}"),
            None => "no zstd frame follows".to_owned(),
        };
        match self {
            Fault::Truncated { at } => format!(
                "{name}: the compressed trace ends inside a zstd frame at byte {at} of the \
                 compressed file (cut short); every whole block before it is decoded"
            ),
            Fault::Damaged {
                from,
                to,
                reason,
                resumed,
            } => format!(
                "{name}: damaged zstd data somewhere in bytes {from}..{to} of the compressed \
                 file ({reason}); the blocks before it are decoded, {}",
                then(resumed)
            ),
            Fault::Checksum { from, to, resumed } => format!(
                "{name}: the zstd frame in bytes {from}..{to} of the compressed file fails its \
                 checksum (its bytes were decoded; the trace frames' CRCs tell which are \
                 damaged); {}",
                then(resumed)
            ),
        }
    }
}

/// Faults listed (and printed) per input; past these only counted, so a
/// hostile input cannot grow memory or flood stderr.
#[cfg(feature = "zstd")]
const MAX_FAULTS: usize = 16;

/// Largest zstd window accepted: 2^23 = 8 MiB, what level 19 (the highest
/// memscope-std writes) uses; level 1 uses 512 KiB. A frame asking for more
/// is a fault, not 128 MiB of memory.
#[cfg(feature = "zstd")]
const WINDOW_LOG_MAX: u32 = 23;

/// A zstd stream decompressed as it is read, faults reported on stderr.
#[cfg(feature = "zstd")]
pub struct Zstd {
    name: String,
    inner: Box<dyn Read + Send>,
    dec: zstd::stream::raw::Decoder<'static>,
    /// Compressed bytes read, not yet all consumed: `buf[at..end]`.
    buf: Vec<u8>,
    at: usize,
    end: usize,
    /// Compressed offset of `buf[at]`.
    offset: u64,
    /// A frame was started and not finished.
    in_frame: bool,
    /// Compressed offset where the current zstd frame started.
    frame_from: u64,
    /// Compressed offset of the step that last produced output (or the
    /// frame's start): damage found later lies after it.
    good_to: u64,
    /// The inner reader is at its end.
    eof: bool,
    /// The first [`MAX_FAULTS`] faults (each printed when found).
    faults: Vec<Fault>,
    /// Faults past those.
    unlisted: u64,
    /// Print faults on stderr (the command line); tests read [`Zstd::faults`].
    print: bool,
}

#[cfg(feature = "zstd")]
impl Zstd {
    /// Reads the zstd stream whose first bytes, already read from `inner`,
    /// are `head`.
    pub fn new(name: &str, head: Vec<u8>, inner: Box<dyn Read + Send>) -> io::Result<Zstd> {
        use zstd::stream::raw::DParameter;
        let mut buf = vec![0u8; 128 << 10];
        buf[..head.len()].copy_from_slice(&head);
        let mut dec = zstd::stream::raw::Decoder::new()?;
        dec.set_parameter(DParameter::WindowLogMax(WINDOW_LOG_MAX))?;
        Ok(Zstd {
            name: name.to_owned(),
            inner,
            dec,
            buf,
            at: 0,
            end: head.len(),
            offset: 0,
            in_frame: false,
            frame_from: 0,
            good_to: 0,
            eof: false,
            faults: Vec::new(),
            unlisted: 0,
            print: true,
        })
    }

    /// Keeps faults to itself ([`faults`](Self::faults)) instead of printing them.
    pub fn quiet(mut self) -> Self {
        self.print = false;
        self
    }

    /// The first faults found (at most 16).
    pub fn faults(&self) -> &[Fault] {
        &self.faults
    }

    /// Faults found past those [`faults`](Self::faults) lists.
    pub fn unlisted(&self) -> u64 {
        self.unlisted
    }

    fn fault(&mut self, f: Fault) {
        if self.faults.len() >= MAX_FAULTS {
            self.unlisted += 1;
            return;
        }
        if self.print {
            eprintln!("memscope-decode: {}", f.message(&self.name));
        }
        self.faults.push(f);
    }

    /// More compressed input into `buf` (keeping `buf[at..end]`); false at
    /// the end of the input.
    fn refill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        self.buf.copy_within(self.at..self.end, 0);
        self.end -= self.at;
        self.at = 0;
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("at byte {} of the compressed file: {e}", self.offset),
                    ))
                }
            }
        }
    }

    /// After damage: skips to the next zstd frame's magic number. False if
    /// the input ends first.
    fn resync(&mut self) -> io::Result<bool> {
        // The damaged frame's own magic is not a way forward.
        if self.offset == self.frame_from {
            self.advance(1.min(self.end - self.at));
        }
        loop {
            let window = &self.buf[self.at..self.end];
            if let Some(p) = window.windows(4).position(|w| w == ZSTD_MAGIC) {
                self.advance(p);
                return Ok(true);
            }
            // Keep the last three bytes: a magic may straddle the refill.
            self.advance(window.len().saturating_sub(3));
            if !self.refill()? {
                let rest = self.end - self.at;
                self.advance(rest);
                return Ok(false);
            }
        }
    }

    fn advance(&mut self, n: usize) {
        self.at += n;
        self.offset += n as u64;
    }

    /// The input is at its end: hands out what libzstd still holds of the
    /// blocks it has whole (the caller's buffer may have been too small for
    /// them), then reports a frame left open.
    fn drain(&mut self, out: &mut [u8]) -> io::Result<usize> {
        use zstd::stream::raw::Operation;
        if self.in_frame {
            if let Ok(s) = self.dec.run_on_buffers(&[], out) {
                if s.bytes_written > 0 {
                    self.in_frame = s.remaining != 0;
                    return Ok(s.bytes_written);
                }
            }
            self.in_frame = false;
            let at = self.offset;
            self.fault(Fault::Truncated { at });
        }
        if self.unlisted > 0 && self.print {
            eprintln!(
                "memscope-decode: {}: ... and {} more damaged stretches of the compressed file",
                self.name, self.unlisted
            );
            // Said once.
            self.print = false;
        }
        Ok(0)
    }

    /// Reports damage found in `[good_to, to)` and moves to the next frame.
    fn damaged(&mut self, to: u64, reason: String) -> io::Result<()> {
        use zstd::stream::raw::Operation;
        self.dec.reinit()?;
        self.in_frame = false;
        let (from, frame_from) = (self.good_to, self.frame_from);
        let resumed = self.resync()?.then_some(self.offset);
        // The damage lies before the next frame (the step may reach into it).
        let to = resumed.map_or(to, |r| r.min(to));
        self.frame_from = self.offset;
        self.good_to = self.offset;
        // libzstd says so in its message (ZSTD_error_checksum_wrong).
        let fault = if reason.contains("checksum") {
            Fault::Checksum {
                from: frame_from,
                to,
                resumed,
            }
        } else {
            Fault::Damaged {
                from,
                to,
                reason,
                resumed,
            }
        };
        self.fault(fault);
        Ok(())
    }
}

#[cfg(feature = "zstd")]
impl Read for Zstd {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        use zstd::stream::raw::Operation;
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if self.at == self.end && !self.refill()? {
                return self.drain(out);
            }
            if !self.in_frame {
                self.frame_from = self.offset;
                self.good_to = self.offset;
            }
            let step = (self.end - self.at).min(STEP);
            let input = &self.buf[self.at..self.at + step];
            let step_from = self.offset;
            match self.dec.run_on_buffers(input, out) {
                Ok(s) => {
                    self.advance(s.bytes_read);
                    if s.bytes_read > 0 || s.bytes_written > 0 {
                        // 0: the frame is complete and flushed.
                        self.in_frame = s.remaining != 0;
                    }
                    if s.bytes_written > 0 {
                        self.good_to = step_from;
                        return Ok(s.bytes_written);
                    }
                    if s.bytes_read == 0 {
                        // libzstd took nothing and gave nothing from a full
                        // step: it cannot go on from here.
                        self.damaged(step_from + step as u64, "zstd made no progress".into())?;
                    }
                }
                Err(e) => self.damaged(step_from + step as u64, e.to_string())?,
            }
        }
    }
}

#[cfg(all(test, feature = "zstd"))]
mod tests {
    use super::*;
    use std::io::Write;

    /// `cycles` pieces of trace-like bytes, compressed as memscope-std's
    /// writer does (a flush after each piece, a new frame every `per_frame`
    /// pieces). Returns (raw, compressed).
    fn sample(cycles: usize, per_frame: usize) -> (Vec<u8>, Vec<u8>) {
        let (raw, file, _) = sample_with_ends(cycles, per_frame);
        (raw, file)
    }

    /// [`sample`], with the (compressed, raw) length after each piece's flush.
    fn sample_with_ends(
        cycles: usize,
        per_frame: usize,
    ) -> (Vec<u8>, Vec<u8>, Vec<(usize, usize)>) {
        let mut ends = Vec::new();
        let mut raw = Vec::new();
        let mut file = Vec::new();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let new = || {
            let mut e = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
            e.include_checksum(true).unwrap();
            e
        };
        let mut enc = new();
        for i in 0..cycles {
            let piece: Vec<u8> = (0..20_000)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % 13) as u8
                })
                .collect();
            enc.write_all(&piece).unwrap();
            enc.flush().unwrap();
            raw.extend_from_slice(&piece);
            ends.push((file.len() + enc.get_ref().len(), raw.len()));
            if (i + 1) % per_frame == 0 {
                file.extend(enc.finish().unwrap());
                enc = new();
            }
        }
        file.extend(enc.finish().unwrap());
        (raw, file, ends)
    }

    fn read_all(file: &[u8]) -> (Vec<u8>, Vec<Fault>) {
        let mut z = Zstd::new("t", Vec::new(), Box::new(io::Cursor::new(file.to_vec())))
            .unwrap()
            .quiet();
        let mut out = Vec::new();
        // Small reads: the reader must return partial output correctly.
        let mut buf = vec![0u8; 3000];
        loop {
            let n = z.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        (out, z.faults().to_vec())
    }

    #[test]
    fn raw_input_passes_through_and_zstd_is_detected() {
        let mut raw = vec![0u8, 5, 6, 7, 0, 0x28];
        let mut out = Vec::new();
        decompressing("raw", Box::new(io::Cursor::new(raw.clone())))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, raw);
        // Starts like zstd, is not: unchanged.
        raw = vec![0x28, 0xB5, 0x2F];
        out.clear();
        decompressing("short", Box::new(io::Cursor::new(raw.clone())))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, raw);
        let (want, file) = sample(5, 2);
        out.clear();
        decompressing("z", Box::new(io::Cursor::new(file)))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, want);
    }

    #[test]
    fn a_cut_keeps_every_whole_block_and_names_the_compressed_offset() {
        let (raw, file, ends) = sample_with_ends(12, 5);
        let mut last = 0;
        for cut in (0..file.len()).step_by(997).chain([file.len() - 1]) {
            let (out, faults) = read_all(&file[..cut]);
            assert!(raw.starts_with(&out), "cut {cut}");
            // Every piece flushed before the cut comes out whole, though the
            // reads (3000 bytes) are smaller than a piece's block.
            let flushed = ends
                .iter()
                .filter(|(z, _)| *z <= cut)
                .map(|(_, r)| *r)
                .max()
                .unwrap_or(0);
            assert!(out.len() >= flushed, "cut {cut}: {} < {flushed}", out.len());
            assert!(out.len() >= last, "cut {cut}: less than an earlier cut");
            last = out.len();
            match faults.as_slice() {
                [] => {}
                [Fault::Truncated { at }] => assert_eq!(*at, cut as u64),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
        // Whole blocks come out as soon as they are in: a cut just before the
        // end loses at most the last piece.
        assert!(last + 20_000 >= raw.len());
        assert_eq!(read_all(&file), (raw, Vec::new()));
    }

    #[test]
    fn damage_loses_the_rest_of_its_frame_only() {
        let (raw, file) = sample(12, 4);
        let second = zstd::zstd_safe::find_frame_compressed_size(&file).unwrap();
        let mut bad = file.clone();
        // Garbage over a stretch of the first frame's blocks.
        for b in &mut bad[200..260] {
            *b ^= 0xA5;
        }
        let (out, faults) = read_all(&bad);
        let (Fault::Damaged { from, resumed, .. } | Fault::Checksum { from, resumed, .. }) =
            faults.first().expect("a fault")
        else {
            panic!("{faults:?}");
        };
        assert_eq!(faults.len(), 1, "{faults:?}");
        // Found within the damaged frame (by a block, or by its checksum at its end).
        assert!(*from < second as u64, "{faults:?}");
        assert_eq!(*resumed, Some(second as u64));
        // Before the damage: a prefix of the raw bytes; after it: the raw
        // bytes from the second frame's start (4 pieces in) to the end.
        let tail = &raw[4 * 20_000..];
        assert!(out.ends_with(tail), "the frames after the damage");
        // The damaged frame yields at most its own four pieces (a block
        // zstd decodes without noticing shows as damaged trace frames).
        assert!(out.len() - tail.len() <= 4 * 20_000);
    }

    #[test]
    fn a_flipped_literal_is_named_by_its_frame_checksum() {
        let (raw, file) = sample(8, 4);
        let second = zstd::zstd_safe::find_frame_compressed_size(&file).unwrap();
        // Bytes of the first frame's first block, past its headers: a flip
        // there may decode silently (a literal), or not.
        for at in [40, 100, 1000] {
            let mut bad = file.clone();
            bad[at] ^= 0x01;
            let (out, faults) = read_all(&bad);
            match faults.as_slice() {
                [Fault::Checksum { from, to, resumed }] => {
                    assert_eq!((*from, *to as usize), (0, second), "{faults:?}");
                    assert_eq!(*resumed, Some(second as u64));
                    // The frame's bytes were handed on, but for what of its
                    // last block libzstd still held when it checked.
                    assert!(out.len() + 20_000 >= raw.len(), "{}", out.len());
                }
                [Fault::Damaged { from, resumed, .. }] => {
                    assert!((*from as usize) <= at, "{faults:?}");
                    assert_eq!(*resumed, Some(second as u64));
                }
                other => panic!("flip at {at}: {other:?}"),
            }
        }
    }

    #[test]
    fn faults_past_sixteen_are_counted_not_kept() {
        let mut bytes = Vec::new();
        for _ in 0..10_000 {
            bytes.extend_from_slice(&ZSTD_MAGIC);
            bytes.push(0xFF);
        }
        let mut z = Zstd::new("t", Vec::new(), Box::new(io::Cursor::new(bytes)))
            .unwrap()
            .quiet();
        let mut out = Vec::new();
        z.read_to_end(&mut out).unwrap();
        assert_eq!(z.faults().len(), MAX_FAULTS);
        assert!(z.unlisted() > 9_000, "{}", z.unlisted());
    }

    #[test]
    fn a_window_above_8_mib_is_refused() {
        let mut e = zstd::stream::raw::Encoder::new(1).unwrap();
        use zstd::stream::raw::{CParameter, Operation, OutBuffer};
        e.set_parameter(CParameter::WindowLog(24)).unwrap();
        let mut file = vec![0u8; 1 << 16];
        let mut o = OutBuffer::around(&mut file[..]);
        let mut i = zstd::stream::raw::InBuffer::around(&[1u8, 2, 3][..]);
        e.run(&mut i, &mut o).unwrap();
        e.finish(&mut o, true).unwrap();
        let n = o.pos();
        let (out, faults) = read_all(&file[..n]);
        assert!(out.is_empty());
        assert!(
            matches!(faults.as_slice(), [Fault::Damaged { .. }]),
            "{faults:?}"
        );
    }

    #[test]
    fn arbitrary_bytes_after_the_magic_never_panic() {
        let mut x = 7u64;
        for len in [0usize, 1, 5, 17, 300, 5000] {
            for _ in 0..50 {
                let mut bytes = ZSTD_MAGIC.to_vec();
                bytes.extend((0..len).map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                }));
                let _ = read_all(&bytes);
            }
        }
    }
}
